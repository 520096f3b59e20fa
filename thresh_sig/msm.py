"""Multi-scalar multiplication (MSM) built only from point addition, doubling and negation.

blspy 2.0.3 exposes ``G1Element``/``G2Element`` with ``__add__`` and ``negate()`` but no scalar
multiplication (``dir(G2Element)`` has no ``__mul__``; ``PrivateKey`` has none either; only
``GTElement`` has ``__mul__``, which is the GT group law). So every ``k·P`` on a point we did not
hash ourselves must be built from additions. One call to blspy's ``+`` costs ~2.8 µs on G2 and
~1.5 µs on G1 on the development machine, so the cost of an MSM is, to a good approximation,
the number of additions and doublings it performs. That is the cost model used here and by
:mod:`thresh_sig.field` to pick an interpolation plan.

Algorithm: Straus/Shamir interleaving with a per-point width-w NAF
-----------------------------------------------------------------
For ``Σ k_i·P_i`` each scalar is recoded in width-w non-adjacent form (odd signed digits with
at least w−1 zeros between nonzero ones, so about ``bits/(w+1)`` nonzero digits), each point gets
a small table of odd multiples ``P, 3P, ..., (2^{w-1}−1)P`` (negatives by the cheap negation), and
then a *single* accumulator walks from the top bit down: one shared doubling per bit, plus one
addition per nonzero digit of any scalar. Compared with one double-and-add per point, the
doublings are paid once instead of once per point, which is what makes interpolation over t
shares cost little more than one scalar multiplication. Windows are chosen per point: a scalar of
a few bits gets plain NAF (no table), a 255-bit scalar gets w = 5 or 6.

The module is backend-agnostic: it takes the three group operations as callables. Points are
opaque; ``None`` is the identity (so no operation is ever spent on it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any, NamedTuple

__all__ = ["GroupOps", "estimate_msm_cost", "msm", "wnaf"]

_MAX_WINDOW = 8


class GroupOps(NamedTuple):
    """The group law of one curve group of one backend."""

    add: Callable[[Any, Any], Any]
    dbl: Callable[[Any], Any]
    neg: Callable[[Any], Any]


def wnaf(k: int, w: int) -> list[int]:
    """Width-``w`` NAF digits of ``k >= 0``, least significant first.

    Every nonzero digit is odd and in ``(-2^{w-1}, 2^{w-1})``; ``Σ d_j 2^j == k``.
    """
    if w < 2:
        raise ValueError("window must be >= 2")
    digits: list[int] = []
    full = 1 << w
    half = 1 << (w - 1)
    mask = full - 1
    while k:
        if k & 1:
            d = k & mask
            if d >= half:
                d -= full
            k -= d
            digits.append(d)
            k >>= 1
        else:
            # Skip a whole run of zero bits at once (the inner loop is hot for large t).
            zeros = (k & -k).bit_length() - 1
            digits.extend([0] * zeros)
            k >>= zeros
    return digits


def _table_cost(w: int) -> int:
    # Odd multiples P, 3P, ..., (2^{w-1}-1)P: one doubling for 2P, then 2^{w-2}-1 additions.
    return 0 if w == 2 else 1 << (w - 2)


@lru_cache(maxsize=1024)
def _best_window(bits: int) -> tuple[int, float]:
    """Window minimising table cost + expected nonzero digits, and that cost."""
    best_w, best_cost = 2, float("inf")
    for w in range(2, _MAX_WINDOW + 1):
        cost = _table_cost(w) + bits / (w + 1)
        if cost < best_cost:
            best_w, best_cost = w, cost
    return best_w, best_cost


def estimate_msm_cost(bit_lengths: Sequence[int]) -> float:
    """Expected group operations of :func:`msm` for scalars of the given bit lengths."""
    live = [b for b in bit_lengths if b > 0]
    if not live:
        return 0.0
    # Shared doublings: one per bit of the longest scalar, minus the first (acc starts empty).
    cost = float(max(live) - 1)
    for b in live:
        cost += 1.0 if b == 1 else _best_window(b)[1]
    # The first addition into the empty accumulator is free.
    return cost - 1.0


def msm(ops: GroupOps, points: Sequence[Any], scalars: Sequence[int]) -> Any:
    """Return ``Σ scalars[i]·points[i]`` (``None`` for the identity).

    Scalars are arbitrary Python integers, negative allowed; they are used as given (not
    reduced), so callers reduce mod the group order when that makes them shorter.
    """
    if len(points) != len(scalars):
        raise ValueError("points and scalars differ in length")
    add, dbl, neg = ops
    # columns[j] holds the table entries to add when the accumulator is at bit j.
    columns: list[list[Any]] = []
    for point, k in zip(points, scalars, strict=True):
        if k == 0 or point is None:
            continue
        if k < 0:
            point = neg(point)
            k = -k
        w = _best_window(k.bit_length())[0]
        table = [point]
        if w > 2:
            twice = dbl(point)
            for _ in range((1 << (w - 2)) - 1):
                table.append(add(table[-1], twice))
        negated: list[Any] = [None] * len(table)
        digits = wnaf(k, w)
        if len(digits) > len(columns):
            columns.extend([] for _ in range(len(digits) - len(columns)))
        for j, d in enumerate(digits):
            if d > 0:
                columns[j].append(table[d >> 1])
            elif d < 0:
                idx = (-d) >> 1
                entry = negated[idx]
                if entry is None:
                    entry = negated[idx] = neg(table[idx])
                columns[j].append(entry)
    acc: Any = None
    for j in range(len(columns) - 1, -1, -1):
        if acc is not None:
            acc = dbl(acc)
        for q in columns[j]:
            acc = q if acc is None else add(acc, q)
    return acc
