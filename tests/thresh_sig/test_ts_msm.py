"""Unit and property tests of the arithmetic: wNAF, MSM, Lagrange plans."""

from __future__ import annotations

import itertools
import random

from blspy import BasicSchemeMPL, G2Element, PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from thresh_sig.backends import get_backend
from thresh_sig.field import R, derive_polynomial, eval_poly, lagrange_plan
from thresh_sig.msm import GroupOps, estimate_msm_cost, msm, wnaf

FAST = settings(max_examples=200, deadline=None)


@FAST
@given(k=st.integers(min_value=0, max_value=2**300), w=st.integers(min_value=2, max_value=8))
def test_wnaf_reconstructs_and_is_sparse(k: int, w: int) -> None:
    digits = wnaf(k, w)
    assert sum(d << j for j, d in enumerate(digits)) == k
    half = 1 << (w - 1)
    nonzero = [j for j, d in enumerate(digits) if d]
    assert all(digits[j] % 2 == 1 and -half < digits[j] < half for j in nonzero)
    assert all(b - a >= w for a, b in itertools.pairwise(nonzero))


class Counter:
    """The additive group of integers, counting operations: exact results, exact costs."""

    def __init__(self) -> None:
        self.ops = 0
        self.group = GroupOps(self._add, self._dbl, lambda a: -a)

    def _add(self, a: int, b: int) -> int:
        self.ops += 1
        return a + b

    def _dbl(self, a: int) -> int:
        self.ops += 1
        return 2 * a


@FAST
@given(
    pairs=st.lists(
        st.tuples(st.integers(1, 10**6), st.integers(-(2**256), 2**256)), min_size=0, max_size=12
    )
)
def test_msm_is_exact_and_cost_model_is_close(pairs: list[tuple[int, int]]) -> None:
    c = Counter()
    points = [p for p, _ in pairs]
    scalars = [k for _, k in pairs]
    result = msm(c.group, points, scalars)
    expected = sum(p * k for p, k in pairs)
    assert (result or 0) == expected
    estimate = estimate_msm_cost([abs(k).bit_length() for k in scalars])
    assert c.ops <= 1.5 * estimate + 8


def test_msm_on_g2_matches_library_scalar_multiplication() -> None:
    """blspy signs with k·H(m): use that as the oracle for our k·P built from additions."""
    bk = get_backend("blspy")
    rng = random.Random(7)
    messages = [b"p%d" % i for i in range(5)]
    bases = [BasicSchemeMPL.g2_from_message(m) for m in messages]
    for scalars in (
        [1],
        [R - 1],
        [2**255 % R],
        [rng.randrange(R) for _ in range(5)],
        [0, 3, -5, 0, 1],
    ):
        got = msm(bk.g2, bases[: len(scalars)], scalars)
        want = G2Element()
        for m, k in zip(messages, scalars, strict=False):
            k %= R
            if k:
                want = want + BasicSchemeMPL.sign(PrivateKey.from_bytes(k.to_bytes(32, "big")), m)
        assert (got if got is not None else G2Element()) == want


@FAST
@given(
    xs=st.sets(st.integers(1, 300), min_size=1, max_size=25),
    seed=st.binary(min_size=1, max_size=8),
)
def test_lagrange_plan_interpolates_at_zero(xs: set[int], seed: bytes) -> None:
    order = list(xs)
    random.Random(seed).shuffle(order)
    coeffs = derive_polynomial(len(order), 300, seed)
    plan = lagrange_plan(tuple(order))
    total = sum(c * eval_poly(coeffs, x) for c, x in zip(plan.coeffs, order, strict=True))
    assert plan.post * total % R == coeffs[0]


def test_contiguous_and_full_sets_need_no_post_multiplication() -> None:
    for n in (4, 7, 16, 31, 64, 100):
        assert lagrange_plan(tuple(range(1, n + 1))).post == 1
        f = (n - 1) // 3
        assert lagrange_plan(tuple(range(1, 2 * f + 2))).post == 1


def test_interpolation_cost_for_n7_stays_small() -> None:
    """Regression guard on the cost model: every 5-of-7 set needs < 400 G2 operations
    (a naive per-share 255-bit double-and-add would need ~5 x 380)."""
    worst = max(lagrange_plan(c).cost for c in itertools.combinations(range(1, 8), 5))
    assert worst < 400
    assert lagrange_plan(tuple(range(1, 8))).cost < 60
