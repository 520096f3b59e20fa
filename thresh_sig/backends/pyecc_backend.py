"""The reference backend: py_ecc 8.0.0, pure Python (the Ethereum consensus-spec library).

It is 100-1000 times slower than blspy (hash-to-curve ~140 ms, a G2 subgroup check ~50 ms, a
verification ~0.5 s) and exists to cross-check: for the same seed and message it must produce
the same bytes as blspy. Signing and verification follow py_ecc's own ``G2Basic._CoreSign`` /
``_CoreVerify`` step by step, but on points that were validated once when decoded instead of
re-parsing bytes (and re-running the subgroup checks) on every call.
"""

from __future__ import annotations

from hashlib import sha256
from typing import Any, ClassVar

from py_ecc.bls.g2_primitives import (
    G1_to_pubkey,
    G2_to_signature,
    pubkey_to_G1,
    signature_to_G2,
    subgroup_check,
)
from py_ecc.bls.hash_to_curve import hash_to_G2
from py_ecc.fields import optimized_bls12_381_FQ12 as FQ12
from py_ecc.optimized_bls12_381.optimized_curve import (
    G1,
    Z1,
    Z2,
    add,
    double,
    eq,
    is_inf,
    multiply,
    neg,
)
from py_ecc.optimized_bls12_381.optimized_pairing import final_exponentiate, pairing

from ..errors import InvalidPointError
from ..msm import GroupOps
from .base import DST, Backend

__all__ = ["PyEccBackend"]


class PyEccBackend(Backend):
    """py_ecc backend: slow, pure-Python reference."""

    name: ClassVar[str] = "py_ecc"

    def __init__(self) -> None:
        self.g1 = GroupOps(add, double, neg)
        self.g2 = GroupOps(add, double, neg)

    def _decode_g1(self, data: bytes, what: str) -> Any:
        try:
            point = pubkey_to_G1(data)  # type: ignore[arg-type]
        except (ValueError, AssertionError) as exc:
            raise InvalidPointError(f"{what}: not on the curve ({exc})") from None
        if is_inf(point) or not subgroup_check(point):
            raise InvalidPointError(f"{what}: not in the G1 subgroup")
        return point

    def _decode_g2(self, data: bytes, what: str) -> Any:
        try:
            point = signature_to_G2(data)  # type: ignore[arg-type]
        except (ValueError, AssertionError) as exc:
            raise InvalidPointError(f"{what}: not on the twist curve ({exc})") from None
        if is_inf(point) or not subgroup_check(point):
            raise InvalidPointError(f"{what}: not in the G2 subgroup")
        return point

    def encode_g1(self, point: Any) -> bytes:
        return bytes(G1_to_pubkey(point))

    def encode_g2(self, point: Any) -> bytes:
        return bytes(G2_to_signature(point))

    def g1_identity(self) -> Any:
        return Z1

    def g2_identity(self) -> Any:
        return Z2

    def g1_equal(self, p: Any, q: Any) -> bool:
        return bool(eq(p, q))

    def g1_base_mul(self, k: int) -> Any:
        return multiply(G1, k)

    def secret_key(self, k: int) -> Any:
        return k

    def sign(self, sk: Any, message: bytes) -> Any:
        # py_ecc annotates the hash argument as a hash object but calls it as a constructor.
        return multiply(hash_to_G2(message, DST, sha256), sk)  # type: ignore[arg-type]

    def verify(self, pk: Any, message: bytes, signature: Any) -> bool:
        # e(σ, G1) · e(H(m), −PK) == 1, with one shared final exponentiation.
        product = pairing(signature, G1, final_exponentiate=False) * pairing(
            hash_to_G2(message, DST, sha256),  # type: ignore[arg-type]
            neg(pk),
            final_exponentiate=False,
        )
        return bool(final_exponentiate(product) == FQ12.one())
