"""The backend interface and the encoding checks both backends share.

A backend supplies the curve arithmetic: G1/G2 group law (for the MSM of :mod:`thresh_sig.msm`),
point (de)serialisation in the standard compressed ZCash/IETF format, ``k·G1`` for key
generation, and the IETF BLS basic-scheme ``Sign``/``Verify``
(ciphersuite ``BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_NUL_``). Points are opaque objects owned by
the backend; everything that crosses a backend boundary is bytes, and because both backends
implement the same standard, the bytes are identical.

Decoding is split in two. :func:`check_g1_encoding` / :func:`check_g2_encoding` validate the
*format* in pure Python (length, flag bits, canonical infinity, coordinates below the field
modulus) and raise :class:`~thresh_sig.errors.MalformedError`; only then does the backend decode
the point, and any failure there (no curve point with that x, not in the prime-order subgroup)
becomes :class:`~thresh_sig.errors.InvalidPointError`. Doing the format part ourselves gives
both backends the same exception for the same input, whatever messages the libraries use.
The identity is rejected everywhere: no public key, verification key or signature of this
package is ever the identity (the dealer excludes the ~2⁻²⁵⁵ draws that would make one).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from ..errors import InvalidPointError, MalformedError
from ..msm import GroupOps

__all__ = [
    "DST",
    "FIELD_MODULUS",
    "G1_SIZE",
    "G2_SIZE",
    "Backend",
    "check_g1_encoding",
    "check_g2_encoding",
]

#: The IETF basic-scheme ciphersuite: hash-to-G2 with SSWU, no augmentation, no PoP.
DST = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_NUL_"

#: The BLS12-381 base field modulus p.
FIELD_MODULUS = int(
    "1a0111ea397fe69a4b1ba7b6434bacd764774b84f38512bf6730d2a0f6b0f6241eabfffeb153ffffb9feffffffffaaab",
    16,
)
G1_SIZE = 48
G2_SIZE = 96

_X_MASK = (1 << 381) - 1
_C_FLAG = 1 << 383  # compressed form
_B_FLAG = 1 << 382  # point at infinity
_A_FLAG = 1 << 381  # sign of y


def _check_flags(z: int, what: str) -> None:
    if not z & _C_FLAG:
        raise MalformedError(f"{what}: not a compressed encoding (c flag clear)")
    if z & _B_FLAG:
        if z & (_A_FLAG | _X_MASK):
            raise MalformedError(f"{what}: non-canonical encoding of the point at infinity")
        raise InvalidPointError(f"{what}: the identity (point at infinity) is not allowed")


def check_g1_encoding(data: bytes, what: str = "G1 point") -> None:
    """Raise unless ``data`` is a well-formed compressed non-identity G1 encoding."""
    if len(data) != G1_SIZE:
        raise MalformedError(f"{what}: expected {G1_SIZE} bytes, got {len(data)}")
    z = int.from_bytes(data, "big")
    _check_flags(z, what)
    if z & _X_MASK >= FIELD_MODULUS:
        raise MalformedError(f"{what}: x coordinate not below the field modulus")


def check_g2_encoding(data: bytes, what: str = "G2 point") -> None:
    """Raise unless ``data`` is a well-formed compressed non-identity G2 encoding."""
    if len(data) != G2_SIZE:
        raise MalformedError(f"{what}: expected {G2_SIZE} bytes, got {len(data)}")
    z1 = int.from_bytes(data[:48], "big")
    _check_flags(z1, what)
    if z1 & _X_MASK >= FIELD_MODULUS:
        raise MalformedError(f"{what}: x coordinate (imaginary part) not below the field modulus")
    # The second half carries no flags: any of its top three bits set makes it >= p too.
    if int.from_bytes(data[48:], "big") >= FIELD_MODULUS:
        raise MalformedError(f"{what}: x coordinate (real part) not below the field modulus")


class Backend(ABC):
    """Curve arithmetic and BLS primitives of one library."""

    name: ClassVar[str]
    g1: GroupOps
    g2: GroupOps

    def decode_g1(self, data: bytes, what: str = "G1 point") -> Any:
        """Validated decode (format, on curve, in subgroup, not identity)."""
        check_g1_encoding(data, what)
        return self._decode_g1(data, what)

    def decode_g2(self, data: bytes, what: str = "G2 point") -> Any:
        """Validated decode (format, on curve, in subgroup, not identity)."""
        check_g2_encoding(data, what)
        return self._decode_g2(data, what)

    @abstractmethod
    def _decode_g1(self, data: bytes, what: str) -> Any:
        """Decode a format-checked encoding; raise InvalidPointError if not a subgroup point."""

    @abstractmethod
    def _decode_g2(self, data: bytes, what: str) -> Any:
        """Decode a format-checked encoding; raise InvalidPointError if not a subgroup point."""

    @abstractmethod
    def encode_g1(self, point: Any) -> bytes:
        """Compressed 48-byte encoding."""

    @abstractmethod
    def encode_g2(self, point: Any) -> bytes:
        """Compressed 96-byte encoding."""

    @abstractmethod
    def g1_identity(self) -> Any:
        """The G1 identity (only used to represent an empty MSM result)."""

    @abstractmethod
    def g2_identity(self) -> Any:
        """The G2 identity (only used to represent an empty MSM result)."""

    @abstractmethod
    def g1_equal(self, p: Any, q: Any) -> bool:
        """Point equality in G1."""

    @abstractmethod
    def g1_base_mul(self, k: int) -> Any:
        """``k·G1`` for ``0 < k < r`` (the public key of secret ``k``)."""

    @abstractmethod
    def secret_key(self, k: int) -> Any:
        """The backend's handle for secret scalar ``0 < k < r`` (kept and reused for signing)."""

    @abstractmethod
    def sign(self, sk: Any, message: bytes) -> Any:
        """IETF basic-scheme CoreSign: ``k·H(message)`` as a G2 point."""

    @abstractmethod
    def verify(self, pk: Any, message: bytes, signature: Any) -> bool:
        """IETF basic-scheme CoreVerify on already validated points."""

    def __repr__(self) -> str:
        return f"<thresh_sig backend {self.name}>"
