"""Shared helpers for the thresh_sig tests: crafted bad curve points and cached deals."""

from __future__ import annotations

from functools import lru_cache

from py_ecc.bls.point_compression import modular_squareroot_in_FQ2
from py_ecc.fields import optimized_bls12_381_FQ2 as FQ2
from py_ecc.optimized_bls12_381 import b2, curve_order, is_inf, multiply

import thresh_sig
from thresh_sig.backends.base import FIELD_MODULUS as P

C_FLAG = 1 << 383
A_FLAG = 1 << 381


def _g1_x_with(on_curve: bool, start: int = 5) -> tuple[int, int]:
    """First x >= start for which x^3+4 is (or is not) a square mod p; returns (x, y or 0)."""
    x = start
    while True:
        rhs = (x * x * x + 4) % P
        y = pow(rhs, (P + 1) // 4, P)
        if (y * y % P == rhs) == on_curve:
            return x, (y if on_curve else 0)
        x += 1


def g1_off_curve() -> bytes:
    """Well-formed compressed G1 encoding whose x has no curve point."""
    x, _ = _g1_x_with(on_curve=False)
    return (C_FLAG | x).to_bytes(48, "big")


def g1_outside_subgroup() -> bytes:
    """A point on the G1 curve but not in the order-r subgroup (the cofactor is large)."""
    from py_ecc.fields import optimized_bls12_381_FQ as FQ

    start = 5
    while True:
        x, y = _g1_x_with(on_curve=True, start=start)
        pt = (FQ(x), FQ(y), FQ(1))
        if not is_inf(multiply(pt, curve_order)):
            a = A_FLAG if (y * 2) // P else 0
            return (C_FLAG | a | x).to_bytes(48, "big")
        start = x + 1  # pragma: no cover - first candidate is outside the subgroup


def _g2_x(on_curve: bool, start: int = 3) -> tuple[FQ2, FQ2 | None]:
    a = start
    while True:
        x = FQ2([a, 1])
        y = modular_squareroot_in_FQ2(x**3 + b2)
        if (y is not None) == on_curve:
            return x, y
        a += 1


def _encode_g2(x: FQ2, y: FQ2 | None) -> bytes:
    x_re, x_im = (int(c) for c in x.coeffs)
    flag = 0
    if y is not None:
        y_re, y_im = (int(c) for c in y.coeffs)
        flag = A_FLAG if ((y_im * 2) // P if y_im else (y_re * 2) // P) else 0
    return (C_FLAG | flag | x_im).to_bytes(48, "big") + x_re.to_bytes(48, "big")


def g2_off_curve() -> bytes:
    """Well-formed compressed G2 encoding whose x has no twist-curve point."""
    return _encode_g2(*_g2_x(on_curve=False))


def g2_outside_subgroup() -> bytes:
    """A point on the G2 twist curve but not in the order-r subgroup."""
    x, y = _g2_x(on_curve=True)
    assert y is not None
    pt = (x, y, FQ2([1, 0]))
    assert not is_inf(multiply(pt, curve_order))
    return _encode_g2(x, y)


G1_INFINITY = bytes([0xC0]) + bytes(47)
G2_INFINITY = bytes([0xC0]) + bytes(95)


@lru_cache(maxsize=64)
def dealt(
    t: int, n: int, seed: bytes = b"ts-test"
) -> tuple[thresh_sig.GroupKey, tuple[thresh_sig.KeyShare, ...]]:
    """A deterministic blspy deal, cached across tests (dealing is cheap, but not free)."""
    group, shares = thresh_sig.deal(t, n, seed=seed, backend="blspy")
    return group, tuple(shares)


@lru_cache(maxsize=256)
def signed(
    t: int, n: int, message: bytes, seed: bytes = b"ts-test"
) -> tuple[thresh_sig.SignatureShare, ...]:
    """All n signature shares of ``message`` for :func:`dealt` ``(t, n, seed)``."""
    _, shares = dealt(t, n, seed)
    return tuple(thresh_sig.sign_share(s, message) for s in shares)
