"""The fast backend: Chia's blspy 2.0.3 (Python bindings over the blst/relic C library).

What blspy 2.0.3 offers, as checked with ``dir()`` on the installed wheel:

* ``G1Element``/``G2Element``: ``__add__``, ``negate()``, ``from_bytes`` (checks the encoding,
  on-curve and subgroup: ~97 µs on G2), ``from_bytes_unchecked`` (~36 µs, decompression only),
  ``__bytes__`` (~0.7 µs), ``pair``. **No ``__mul__``**: there is no scalar multiplication of an
  arbitrary point, so interpolation uses :mod:`thresh_sig.msm` over ``+`` (~2.8 µs per G2 add).
* ``PrivateKey.from_bytes`` (~1 µs, rejects scalars >= r), ``get_g1()``; ``PrivateKey`` has no
  arithmetic operators except the static ``aggregate`` (sum).
* ``BasicSchemeMPL``: the IETF basic scheme (DST ``..._NUL_``), byte-identical to py_ecc's
  ``G2Basic``: ``sign`` ~0.42 ms, ``verify`` ~1.3 ms. (``AugSchemeMPL`` would prepend the public
  key to the message and ``PopSchemeMPL`` uses another DST; neither is what the issue asks.)
* ``GTElement`` has ``__mul__`` — the GT group law, of no use for G2 scalar multiplication.

Only ``from_bytes`` (checked) is used on bytes from outside; points we compute ourselves are kept
as ``G2Element`` objects and never re-parsed.
"""

from __future__ import annotations

from typing import Any, ClassVar

from blspy import BasicSchemeMPL, G1Element, G2Element, PrivateKey

from ..errors import InvalidPointError
from ..msm import GroupOps
from .base import Backend

__all__ = ["BlspyBackend"]


def _dbl_g1(p: G1Element) -> G1Element:
    return p + p


def _dbl_g2(p: G2Element) -> G2Element:
    return p + p


class BlspyBackend(Backend):
    """blspy (blst) backend: the default."""

    name: ClassVar[str] = "blspy"

    def __init__(self) -> None:
        # Unbound methods avoid an attribute lookup per operation in the MSM inner loop.
        self.g1 = GroupOps(G1Element.__add__, _dbl_g1, G1Element.negate)
        self.g2 = GroupOps(G2Element.__add__, _dbl_g2, G2Element.negate)
        self._sign = BasicSchemeMPL.sign
        self._verify = BasicSchemeMPL.verify

    def _decode_g1(self, data: bytes, what: str) -> Any:
        try:
            return G1Element.from_bytes(data)
        except Exception as exc:  # blspy raises ValueError/RuntimeError with library text
            raise InvalidPointError(f"{what}: not a point of the G1 subgroup ({exc})") from None

    def _decode_g2(self, data: bytes, what: str) -> Any:
        try:
            return G2Element.from_bytes(data)
        except Exception as exc:
            raise InvalidPointError(f"{what}: not a point of the G2 subgroup ({exc})") from None

    def encode_g1(self, point: Any) -> bytes:
        return bytes(point)

    def encode_g2(self, point: Any) -> bytes:
        return bytes(point)

    def g1_identity(self) -> Any:
        return G1Element()

    def g2_identity(self) -> Any:
        return G2Element()

    def g1_equal(self, p: Any, q: Any) -> bool:
        return bool(p == q)

    def g1_base_mul(self, k: int) -> Any:
        return PrivateKey.from_bytes(k.to_bytes(32, "big")).get_g1()

    def secret_key(self, k: int) -> Any:
        return PrivateKey.from_bytes(k.to_bytes(32, "big"))

    def sign(self, sk: Any, message: bytes) -> Any:
        return self._sign(sk, message)

    def verify(self, pk: Any, message: bytes, signature: Any) -> bool:
        return bool(self._verify(pk, message, signature))
