"""Scalar-field arithmetic: Shamir polynomials and Lagrange interpolation plans.

Everything here is plain Python integers, independent of any curve library, so both backends
share it and produce identical results.

Shamir over the BLS12-381 scalar field
--------------------------------------
The dealer draws ``f(x) = a_0 + a_1 x + ... + a_{t-1} x^{t-1}`` over ``Z_r`` (``r`` is the order of
the prime subgroups of G1 and G2). Signer ``i`` (1-based) gets ``f(i)``; the group secret is
``f(0) = a_0``. Any ``t`` values ``f(x_j)`` determine ``f`` and hence ``f(0)``:

    f(0) = Σ_j λ_j f(x_j),   λ_j = Π_{k≠j} x_k / (x_k − x_j)

Because signing is linear in the secret (``σ_j = f(x_j)·H(m)``), the same weights combine
signature shares "in the exponent": ``σ = Σ_j λ_j σ_j = f(0)·H(m)``.

Why the plan is computed over the rationals first
-------------------------------------------------
Reduced mod ``r`` every ``λ_j`` is a ~255-bit number, so a multi-scalar multiplication (MSM) over
them costs about 255 doublings plus ``t·255/(w+1)`` additions. But as *rationals* the ``λ_j`` have
tiny numerators and denominators (they are built from the small integers ``x_k``). Writing
``λ_j = e_j / q`` with ``q`` the least common denominator gives

    σ = q⁻¹ · Σ_j e_j σ_j

where the ``e_j`` are small signed integers (a few bits for n = 7, < 200 bits even for n = 100)
and ``q⁻¹ mod r`` is one full-size scalar applied once to one point. For contiguous signer sets,
and always when t = n, ``q = 1`` (the weights are signed binomial-like integers), so the whole
interpolation is a handful of additions. :func:`lagrange_plan` builds both the "small integers +
one post-multiplication" plan and the classic "reduced λ" plan and keeps the cheaper one under
the additions-count cost model of :mod:`thresh_sig.msm`.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from math import gcd, lcm

from .errors import ParameterError
from .msm import estimate_msm_cost

__all__ = [
    "InterpolationPlan",
    "R",
    "check_polynomial",
    "derive_polynomial",
    "eval_poly",
    "lagrange_plan",
]

#: Order of the BLS12-381 prime-order subgroups (the scalar field modulus).
R = 0x73EDA753299D7D483339D80809A1D80553BDA402FFFE5BFEFFFFFFFF00000001

# Domain separation for deterministic dealing: a seed used here yields keys unrelated to any
# other use of the same seed.
_DEAL_DOMAIN = b"thresh_sig/deal/v1"


def eval_poly(coeffs: list[int] | tuple[int, ...], x: int) -> int:
    """Evaluate ``Σ coeffs[k]·x^k mod R`` by Horner's rule."""
    acc = 0
    for c in reversed(coeffs):
        acc = (acc * x + c) % R
    return acc


def _acceptable(coeffs: list[int], n: int) -> bool:
    """Reject the (probability ~n/r, i.e. never in practice) degenerate draws.

    A zero secret or a zero share would give an identity public/verification key, which BLS
    verifiers reject. A zero top coefficient would make t-1 shares sufficient. A zero sum of
    shares would make the n-of-n aggregate key the identity, and a sum equal to the secret would
    make an n-of-n aggregate indistinguishable from a t-of-n signature (unavoidable, and
    harmless, only for n = 1). Checking is cheap and
    makes these properties unconditional instead of overwhelmingly likely.
    """
    if coeffs[0] == 0 or (len(coeffs) > 1 and coeffs[-1] == 0):
        return False
    total = 0
    for i in range(1, n + 1):
        s = eval_poly(coeffs, i)
        if s == 0:
            return False
        total += s
    total %= R
    if n == 1:
        # One signer: the "aggregate" is that signer's signature, which is the group signature.
        return True
    return total not in (0, coeffs[0])


def derive_polynomial(t: int, n: int, seed: bytes | None) -> list[int]:
    """Return the ``t`` coefficients of the dealer's polynomial.

    With a seed the coefficients are SHAKE-256 output (64 bytes per coefficient, reduced mod
    ``R``, so the bias is ~2⁻²⁵⁶) keyed by the seed, ``t`` and ``n``: the same seed gives the same
    deal on every backend and machine. Without a seed a fresh 32-byte seed is drawn from the OS
    CSPRNG, so both paths share one code path.
    """
    if seed is None:
        seed = secrets.token_bytes(32)
    counter = 0
    while True:
        h = hashlib.shake_256()
        h.update(_DEAL_DOMAIN)
        h.update(t.to_bytes(2, "big") + n.to_bytes(2, "big") + counter.to_bytes(4, "big"))
        h.update(seed)
        stream = h.digest(64 * t)
        coeffs = [int.from_bytes(stream[64 * k : 64 * k + 64], "big") % R for k in range(t)]
        if _acceptable(coeffs, n):
            return coeffs
        counter += 1  # pragma: no cover - probability ~ n / 2^255


def check_polynomial(coefficients: object, t: int, n: int) -> list[int]:
    """Validate a caller-given dealing polynomial: ``t`` integers in ``1..r−1`` that pass the
    same degeneracy checks as a drawn one (so a deal from it has the same guarantees).

    Raises ParameterError otherwise (TypeError for a non-sequence or non-integers).
    """
    if isinstance(coefficients, str | bytes) or not hasattr(coefficients, "__len__"):
        raise TypeError("coefficients must be a sequence of integers")
    coeffs = list(coefficients)  # type: ignore[call-overload]
    if any(not isinstance(c, int) or isinstance(c, bool) for c in coeffs):
        raise TypeError("coefficients must be integers")
    if len(coeffs) != t:
        raise ParameterError(f"a degree-{t - 1} polynomial has {t} coefficients, got {len(coeffs)}")
    # Zero is refused everywhere, not only at both ends: its commitment would be the identity,
    # which no decoder of this package accepts.
    if any(not 0 < c < R for c in coeffs):
        raise ParameterError("coefficients must be in 1..r-1")
    if not _acceptable(coeffs, n):
        raise ParameterError(
            "degenerate polynomial: zero secret, zero top coefficient, a zero share, or a sum of "
            "shares equal to 0 or to the secret"
        )
    return coeffs


@dataclass(frozen=True, slots=True)
class InterpolationPlan:
    """How to interpolate at 0 from the points ``xs``: ``σ = post · Σ coeffs[j]·σ_j``.

    ``coeffs`` are signed integers aligned with ``xs`` (the order the caller asked for).
    ``post == 1`` means no post-multiplication. ``cost`` is the estimated number of group
    additions/doublings, used by the benchmark and tests.
    """

    xs: tuple[int, ...]
    coeffs: tuple[int, ...]
    post: int
    cost: float


def _exact_weights(xs: tuple[int, ...]) -> list[Fraction]:
    # λ_j = Π_{k≠j} x_k / (x_k − x_j) = P / (x_j · Π_{k≠j}(x_k − x_j)) with P = Π x_k.
    # Computing P once keeps this O(t²) small-integer products, about 1 ms for t = 67.
    p = 1
    for x in xs:
        p *= x
    out = []
    for xj in xs:
        d = xj
        for xk in xs:
            if xk != xj:
                d *= xk - xj
        out.append(Fraction(p, d))
    return out


@lru_cache(maxsize=4096)
def _plan_sorted(xs: tuple[int, ...]) -> tuple[tuple[int, ...], int, float]:
    weights = _exact_weights(xs)
    # Plan 1: λ_j = e_j / q with small integers e_j, then one multiplication by q⁻¹.
    q = lcm(*(w.denominator for w in weights))
    small = [int(w * q) for w in weights]
    post = 1
    if q != 1:
        # The post scalar is full-size anyway, so fold any common factor of the e_j into it.
        g = gcd(*small)
        small = [e // g for e in small]
        post = g * pow(q, -1, R) % R
    cost_small = estimate_msm_cost([abs(e).bit_length() for e in small])
    if post != 1:
        cost_small += estimate_msm_cost([post.bit_length()])
    # Plan 2: the textbook weights reduced mod r, centred to (-r/2, r/2] (a negation is free).
    # Each is at most 254 bits; skip computing them (t modular inversions) when even that
    # bound cannot beat plan 1, which is the common case.
    if cost_small <= estimate_msm_cost([R.bit_length() - 1] * len(xs)):
        return tuple(small), post, cost_small
    reduced = []
    for w in weights:
        v = w.numerator * pow(w.denominator, -1, R) % R
        reduced.append(v - R if v > R // 2 else v)
    cost_reduced = estimate_msm_cost([abs(v).bit_length() for v in reduced])
    if cost_small <= cost_reduced:
        return tuple(small), post, cost_small
    return tuple(reduced), 1, cost_reduced


def lagrange_plan(xs: tuple[int, ...]) -> InterpolationPlan:
    """Plan the interpolation at 0 from the distinct nonzero abscissae ``xs``.

    Cached on the sorted set, because a replica sees the same signer sets again and again.
    """
    order = sorted(range(len(xs)), key=xs.__getitem__)
    key = tuple(xs[i] for i in order)
    coeffs_sorted, post, cost = _plan_sorted(key)
    coeffs = [0] * len(xs)
    for pos, i in enumerate(order):
        coeffs[i] = coeffs_sorted[pos]
    return InterpolationPlan(xs, tuple(coeffs), post, cost)
