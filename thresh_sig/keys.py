"""Value types: GroupKey, KeyShare, SignatureShare, Signature, and their byte formats.

Objects are backend-neutral: their identity is their canonical bytes, and each one caches the
decoded points per backend (``{"blspy": G2Element, ...}``), so a signature share produced by
blspy is never serialised and re-parsed to be combined, and a group's verification keys are
derived and decoded once, not per call. Each object also remembers a *preferred* backend (the
one it was created or loaded with); operations run on the group's preferred backend.

Byte formats (all integers big-endian)
--------------------------------------
``GroupKey`` — ``5 + 4 + 48·t`` bytes::

    b"TSGK" | version (1 byte, =1) | t (u16) | n (u16) | C_0 | C_1 | ... | C_{t-1}

  ``C_k = a_k·G1`` are the Feldman commitments to the dealer's polynomial (compressed G1, 48
  bytes each); ``C_0`` is the group public key. Verification keys are *not* stored: signer
  ``i``'s key is ``Σ_k i^k·C_k``, derived on first use and cached, so a file can never hold keys
  inconsistent with its commitments.

``KeyShare`` — 51 bytes (secret)::

    b"TSKS" | version (1 byte, =1) | signer (u16) | t (u16) | n (u16) | group fingerprint (8)
          | secret f(signer) (32 bytes, 0 < s < r)

``SignatureShare`` — 106 bytes::

    signer (u16) | group fingerprint (8) | σ_i (compressed G2, 96 bytes)

  ``share.point_bytes`` is the 96-byte σ_i alone, for callers that carry signer and group
  out of band (rebuild with :meth:`SignatureShare.from_parts`).

``Signature`` — exactly 96 bytes: the compressed G2 point, a standard IETF BLS signature.

The *group fingerprint* is ``SHA-256("thresh_sig/group-fingerprint/v1" ‖ bytes(group))[:8]``.
Shares carry it so that mixing up two deals fails fast with ``GroupMismatchError`` instead of
producing garbage; it is not an authenticator (see the errors module).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import Any

from .backends import Backend, get_backend
from .backends.base import G1_SIZE, G2_SIZE
from .errors import (
    GroupMismatchError,
    MalformedError,
    ParameterError,
    SignerIndexError,
)
from .field import R
from .msm import msm

__all__ = [
    "FINGERPRINT_SIZE",
    "KEY_SHARE_SIZE",
    "MAX_SIGNERS",
    "PUBLIC_KEY_SIZE",
    "SIGNATURE_SHARE_SIZE",
    "SIGNATURE_SIZE",
    "GroupKey",
    "KeyShare",
    "Signature",
    "SignatureShare",
]

MAX_SIGNERS = 0xFFFF  # signer indices are u16 on the wire
FINGERPRINT_SIZE = 8
PUBLIC_KEY_SIZE = G1_SIZE
SIGNATURE_SIZE = G2_SIZE
SIGNATURE_SHARE_SIZE = 2 + FINGERPRINT_SIZE + G2_SIZE
KEY_SHARE_SIZE = 4 + 1 + 6 + FINGERPRINT_SIZE + 32
_GROUP_MAGIC = b"TSGK"
_SHARE_MAGIC = b"TSKS"
_VERSION = 1
_GROUP_HEADER = 4 + 1 + 4
_FINGERPRINT_DOMAIN = b"thresh_sig/group-fingerprint/v1"


def as_bytes(data: object, what: str) -> bytes:
    """Accept bytes-like input, refuse everything else with TypeError."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    raise TypeError(f"{what} must be bytes, not {type(data).__name__}")


def check_parameters(t: object, n: object) -> tuple[int, int]:
    """Validate ``1 <= t <= n <= MAX_SIGNERS`` (ints, not bools)."""
    if (
        not isinstance(t, int)
        or isinstance(t, bool)
        or not isinstance(n, int)
        or isinstance(n, bool)
    ):
        raise TypeError("t and n must be integers")
    if n < 1 or n > MAX_SIGNERS:
        raise ParameterError(f"n must be in 1..{MAX_SIGNERS}, got {n}")
    if t < 1 or t > n:
        raise ParameterError(f"t must be in 1..n={n}, got {t}")
    return t, n


def _decoded_parameters(t: int, n: int) -> None:
    # Parameters read from bytes: out-of-range values mean corrupt input, not a bad request.
    try:
        check_parameters(t, n)
    except ParameterError as exc:
        raise MalformedError(f"encoded parameters invalid: {exc}") from None


def _check_signer(signer: object, n: int) -> int:
    if not isinstance(signer, int) or isinstance(signer, bool):
        raise TypeError("signer index must be an int")
    if signer < 1 or signer > n:
        raise SignerIndexError(f"signer index must be in 1..{n}, got {signer}")
    return signer


class _GroupState:
    """The decoded points of one GroupKey under one backend."""

    __slots__ = ("aggregate", "commitments", "vks")

    def __init__(self, commitments: list[Any]) -> None:
        self.commitments = commitments
        self.vks: dict[int, Any] = {}
        self.aggregate: Any = None


class _SharedCaches:
    """Caches shared by a GroupKey and its with_backend() views: decoded points per backend,
    and the encoded verification keys (encodings do not depend on the backend)."""

    __slots__ = ("aggregate_bytes", "states", "vk_bytes")

    def __init__(self, states: dict[str, _GroupState]) -> None:
        self.states = states
        self.vk_bytes: dict[int, bytes] = {}
        self.aggregate_bytes: bytes | None = None


class GroupKey:
    """The public side of a (t, n) deal: threshold, size, Feldman commitments.

    Create with :func:`thresh_sig.deal`, :meth:`from_bytes` or :func:`thresh_sig.load_group_key`.

    Attributes:
        t: the threshold (shares needed to combine).
        n: the number of signers; signer indices are ``1..n``.
        public_key: the 48-byte group public key (compressed G1), i.e. ``C_0``.
        commitments: the ``t`` Feldman commitments (48 bytes each).
        fingerprint: 8-byte identifier carried by shares of this group.
        backend: the name of the preferred backend.
    """

    __slots__ = (
        "_backend",
        "_commitments",
        "_fingerprint",
        "_n",
        "_raw",
        "_shared",
        "_t",
    )

    def __init__(
        self,
        t: int,
        n: int,
        commitments: Sequence[bytes],
        *,
        backend: str | Backend | None = None,
    ) -> None:
        t, n = check_parameters(t, n)
        commitments = tuple(as_bytes(c, "commitment") for c in commitments)
        if len(commitments) != t:
            raise MalformedError(
                f"a group with t={t} needs {t} commitments, got {len(commitments)}"
            )
        bk = get_backend(backend)
        # Validate every commitment now, with the preferred backend: bad bytes must fail at the
        # boundary, not at the first signature.
        points = [bk.decode_g1(c, f"commitment {k}") for k, c in enumerate(commitments)]
        self._init(t, n, commitments, bk, {bk.name: _GroupState(points)})

    def _init(
        self,
        t: int,
        n: int,
        commitments: tuple[bytes, ...],
        bk: Backend,
        states: dict[str, _GroupState],
    ) -> None:
        self._t = t
        self._n = n
        self._commitments = commitments
        self._raw = (
            _GROUP_MAGIC
            + bytes([_VERSION])
            + t.to_bytes(2, "big")
            + n.to_bytes(2, "big")
            + b"".join(commitments)
        )
        self._fingerprint = hashlib.sha256(_FINGERPRINT_DOMAIN + self._raw).digest()[
            :FINGERPRINT_SIZE
        ]
        self._backend = bk
        self._shared = _SharedCaches(states)

    @classmethod
    def _trusted(
        cls, t: int, n: int, commitments: tuple[bytes, ...], bk: Backend, state: _GroupState
    ) -> GroupKey:
        """Build from points the dealer just computed (no re-validation)."""
        self = cls.__new__(cls)
        self._init(t, n, commitments, bk, {bk.name: state})
        return self

    # ---------------------------------------------------------------- properties
    @property
    def t(self) -> int:
        return self._t

    @property
    def n(self) -> int:
        return self._n

    @property
    def public_key(self) -> bytes:
        return self._commitments[0]

    @property
    def commitments(self) -> tuple[bytes, ...]:
        return self._commitments

    @property
    def fingerprint(self) -> bytes:
        return self._fingerprint

    @property
    def backend(self) -> str:
        return self._backend.name

    def with_backend(self, backend: str | Backend | None) -> GroupKey:
        """The same group with another preferred backend (caches are shared)."""
        bk = get_backend(backend)
        other = GroupKey.__new__(GroupKey)
        other._t, other._n, other._commitments = self._t, self._n, self._commitments
        other._raw, other._fingerprint, other._shared = self._raw, self._fingerprint, self._shared
        other._backend = bk
        return other

    # ---------------------------------------------------------------- derived keys
    def _state(self, bk: Backend) -> _GroupState:
        states = self._shared.states
        st = states.get(bk.name)
        if st is None:
            pts = [bk.decode_g1(c, f"commitment {k}") for k, c in enumerate(self._commitments)]
            st = states[bk.name] = _GroupState(pts)
        return st

    def _vk_point(self, bk: Backend, i: int) -> Any:
        st = self._state(bk)
        p = st.vks.get(i)
        if p is None:
            # Feldman: vk_i = f(i)·G1 = Σ_k i^k·C_k, by Horner's rule so each step multiplies by
            # the small integer i (≤ 16 bits) instead of by a 255-bit power of i.
            ops = bk.g1
            acc = st.commitments[-1]
            for c in reversed(st.commitments[:-1]):
                acc = ops.add(msm(ops, [acc], [i]), c)
            p = st.vks[i] = acc
        return p

    def _pk_point(self, bk: Backend) -> Any:
        return self._state(bk).commitments[0]

    def _aggregate_point(self, bk: Backend) -> Any:
        st = self._state(bk)
        if st.aggregate is None:
            if len(st.vks) == self._n:
                acc = None
                for i in range(1, self._n + 1):
                    acc = st.vks[i] if acc is None else bk.g1.add(acc, st.vks[i])
            else:
                # Σ_i vk_i = Σ_k (Σ_i i^k)·C_k: one t-point MSM instead of n Horner evaluations.
                scalars = []
                for k in range(self._t):
                    s = sum(pow(i, k) for i in range(1, self._n + 1))
                    scalars.append(s if s.bit_length() <= 255 else s % R)
                acc = msm(bk.g1, st.commitments, scalars)
            st.aggregate = acc
        return st.aggregate

    def verification_key(self, signer: int) -> bytes:
        """Signer ``signer``'s 48-byte verification key ``f(signer)·G1``."""
        _check_signer(signer, self._n)
        cache = self._shared.vk_bytes
        b = cache.get(signer)
        if b is None:
            b = cache[signer] = self._backend.encode_g1(self._vk_point(self._backend, signer))
        return b

    @property
    def verification_keys(self) -> tuple[bytes, ...]:
        """All ``n`` verification keys, index 0 is signer 1."""
        return tuple(self.verification_key(i) for i in range(1, self._n + 1))

    @property
    def aggregate_key(self) -> bytes:
        """``Σ_i vk_i`` (48 bytes): the key :func:`thresh_sig.verify_all` checks against."""
        b = self._shared.aggregate_bytes
        if b is None:
            b = self._shared.aggregate_bytes = self._backend.encode_g1(
                self._aggregate_point(self._backend)
            )
        return b

    def check_share_origin(self, signer: int, fingerprint: bytes) -> None:
        """Raise GroupMismatchError / SignerIndexError unless a share can belong here."""
        if fingerprint != self._fingerprint:
            raise GroupMismatchError(
                f"share of signer {signer} belongs to group {fingerprint.hex()}, "
                f"not {self._fingerprint.hex()}"
            )
        _check_signer(signer, self._n)

    def verify_key_share(self, share: KeyShare) -> bool:
        """Feldman check: is ``share.secret·G1 == Σ_k signer^k·C_k``?

        Returns False for a share whose secret does not lie on the committed polynomial.
        Raises GroupMismatchError for a share of another group (different fingerprint, t or n).
        """
        if not isinstance(share, KeyShare):
            raise TypeError(f"expected a KeyShare, not {type(share).__name__}")
        self.check_share_origin(share.signer, share.group_fingerprint)
        if share.t != self._t or share.n != self._n:
            raise GroupMismatchError(
                f"share is for t={share.t}, n={share.n}; group has t={self._t}, n={self._n}"
            )
        bk = self._backend
        return bk.g1_equal(bk.g1_base_mul(share._secret), self._vk_point(bk, share.signer))

    # ---------------------------------------------------------------- bytes
    def __bytes__(self) -> bytes:
        return self._raw

    @classmethod
    def from_bytes(cls, data: bytes, *, backend: str | Backend | None = None) -> GroupKey:
        """Parse and validate (every commitment must be a G1 subgroup point)."""
        data = as_bytes(data, "group key")
        if len(data) < _GROUP_HEADER or data[:4] != _GROUP_MAGIC:
            raise MalformedError("not a thresh_sig group key (bad magic or too short)")
        if data[4] != _VERSION:
            raise MalformedError(f"unsupported group key version {data[4]}")
        t = int.from_bytes(data[5:7], "big")
        n = int.from_bytes(data[7:9], "big")
        _decoded_parameters(t, n)
        body = data[_GROUP_HEADER:]
        if len(body) != t * G1_SIZE:
            raise MalformedError(
                f"group key with t={t} must be {_GROUP_HEADER + t * G1_SIZE} bytes, got {len(data)}"
            )
        commitments = [body[k * G1_SIZE : (k + 1) * G1_SIZE] for k in range(t)]
        return cls(t, n, commitments, backend=backend)

    def save(self, path: str | bytes | Any) -> None:
        """Write to ``path`` in the documented JSON file format (see :mod:`thresh_sig.storage`)."""
        from .storage import save_group_key

        save_group_key(self, path)

    @classmethod
    def load(cls, path: str | bytes | Any, *, backend: str | Backend | None = None) -> GroupKey:
        """Read a file written by :meth:`save`."""
        from .storage import load_group_key

        return load_group_key(path, backend=backend)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GroupKey) and other._raw == self._raw

    def __hash__(self) -> int:
        return hash(self._raw)

    def __repr__(self) -> str:
        return (
            f"GroupKey(t={self._t}, n={self._n}, public_key={self.public_key.hex()[:16]}…, "
            f"fingerprint={self._fingerprint.hex()}, backend={self._backend.name!r})"
        )


class KeyShare:
    """Signer ``signer``'s secret share ``f(signer)`` of a (t, n) deal.

    Attributes:
        signer: 1-based signer index.
        t, n: the parameters of the group.
        group_fingerprint: the fingerprint of the group key it belongs to.
        backend: the name of the preferred backend (used by sign_share).
    """

    __slots__ = ("_backend", "_fingerprint", "_n", "_secret", "_signer", "_sks", "_t")

    def __init__(
        self,
        signer: int,
        t: int,
        n: int,
        group_fingerprint: bytes,
        secret: int,
        *,
        backend: str | Backend | None = None,
    ) -> None:
        t, n = check_parameters(t, n)
        _check_signer(signer, n)
        group_fingerprint = as_bytes(group_fingerprint, "group fingerprint")
        if len(group_fingerprint) != FINGERPRINT_SIZE:
            raise MalformedError(f"group fingerprint must be {FINGERPRINT_SIZE} bytes")
        if not isinstance(secret, int) or isinstance(secret, bool):
            raise TypeError("secret must be an int")
        if not 0 < secret < R:
            raise MalformedError("secret share must be in 1..r-1")
        self._signer = signer
        self._t = t
        self._n = n
        self._fingerprint = group_fingerprint
        self._secret = secret
        self._backend = get_backend(backend)
        self._sks: dict[str, Any] = {}

    @property
    def signer(self) -> int:
        return self._signer

    @property
    def t(self) -> int:
        return self._t

    @property
    def n(self) -> int:
        return self._n

    @property
    def group_fingerprint(self) -> bytes:
        return self._fingerprint

    @property
    def backend(self) -> str:
        return self._backend.name

    @property
    def verification_key(self) -> bytes:
        """This signer's 48-byte public verification key, computed from the secret."""
        return self._backend.encode_g1(self._backend.g1_base_mul(self._secret))

    def _sk(self, bk: Backend) -> Any:
        sk = self._sks.get(bk.name)
        if sk is None:
            sk = self._sks[bk.name] = bk.secret_key(self._secret)
        return sk

    def with_backend(self, backend: str | Backend | None) -> KeyShare:
        """The same share with another preferred backend."""
        return KeyShare(
            self._signer, self._t, self._n, self._fingerprint, self._secret, backend=backend
        )

    def __bytes__(self) -> bytes:
        return (
            _SHARE_MAGIC
            + bytes([_VERSION])
            + self._signer.to_bytes(2, "big")
            + self._t.to_bytes(2, "big")
            + self._n.to_bytes(2, "big")
            + self._fingerprint
            + self._secret.to_bytes(32, "big")
        )

    @classmethod
    def from_bytes(cls, data: bytes, *, backend: str | Backend | None = None) -> KeyShare:
        """Parse a 51-byte key share."""
        data = as_bytes(data, "key share")
        if len(data) != KEY_SHARE_SIZE:
            raise MalformedError(f"key share must be {KEY_SHARE_SIZE} bytes, got {len(data)}")
        if data[:4] != _SHARE_MAGIC:
            raise MalformedError("not a thresh_sig key share (bad magic)")
        if data[4] != _VERSION:
            raise MalformedError(f"unsupported key share version {data[4]}")
        signer = int.from_bytes(data[5:7], "big")
        t = int.from_bytes(data[7:9], "big")
        n = int.from_bytes(data[9:11], "big")
        fp = data[11 : 11 + FINGERPRINT_SIZE]
        secret = int.from_bytes(data[11 + FINGERPRINT_SIZE :], "big")
        _decoded_parameters(t, n)
        return cls(signer, t, n, fp, secret, backend=backend)

    def save(self, path: str | bytes | Any) -> None:
        """Write to ``path`` with mode 0600 (see :mod:`thresh_sig.storage`)."""
        from .storage import save_key_share

        save_key_share(self, path)

    @classmethod
    def load(cls, path: str | bytes | Any, *, backend: str | Backend | None = None) -> KeyShare:
        """Read a file written by :meth:`save`."""
        from .storage import load_key_share

        return load_key_share(path, backend=backend)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KeyShare) and hmac.compare_digest(bytes(other), bytes(self))

    def __hash__(self) -> int:
        return hash((self._signer, self._fingerprint))

    def __repr__(self) -> str:
        # Never print the secret.
        return (
            f"KeyShare(signer={self._signer}, t={self._t}, n={self._n}, "
            f"group={self._fingerprint.hex()}, backend={self._backend.name!r})"
        )


class _G2Value:
    """Shared machinery: canonical 96 bytes + per-backend decoded point, both lazy."""

    __slots__ = ("_backend", "_points", "_raw")
    _backend: Backend
    _points: dict[str, Any]
    _raw: bytes | None

    def _setup(self, bk: Backend, raw: bytes | None, point: Any) -> None:
        self._backend = bk
        self._raw = raw
        self._points = {} if point is None else {bk.name: point}

    @property
    def point_bytes(self) -> bytes:
        """The 96-byte compressed G2 point."""
        raw = self._raw
        if raw is None:
            raw = self._raw = self._backend.encode_g2(self._points[self._backend.name])
        return raw

    def _point(self, bk: Backend) -> Any:
        p = self._points.get(bk.name)
        if p is None:
            p = self._points[bk.name] = bk.decode_g2(self.point_bytes)
        return p

    @property
    def backend(self) -> str:
        return self._backend.name


class SignatureShare(_G2Value):
    """Signer ``signer``'s signature share ``σ_i = f(i)·H(m)``.

    Attributes:
        signer: 1-based signer index.
        group_fingerprint: fingerprint of the group of the key share that made it.
        point_bytes: the 96-byte σ_i alone (cheap: encoded once, then cached).
    """

    __slots__ = ("_fingerprint", "_signer")
    _fingerprint: bytes
    _signer: int

    def __init__(self) -> None:  # pragma: no cover - use sign_share/from_bytes/from_parts
        raise TypeError("create signature shares with sign_share(), from_bytes() or from_parts()")

    @classmethod
    def _make(
        cls, signer: int, fingerprint: bytes, bk: Backend, raw: bytes | None, point: Any
    ) -> SignatureShare:
        self = cls.__new__(cls)
        self._signer = signer
        self._fingerprint = fingerprint
        self._setup(bk, raw, point)
        return self

    @property
    def signer(self) -> int:
        return self._signer

    @property
    def group_fingerprint(self) -> bytes:
        return self._fingerprint

    @classmethod
    def from_parts(
        cls,
        signer: int,
        point: bytes,
        group_fingerprint: bytes,
        *,
        backend: str | Backend | None = None,
    ) -> SignatureShare:
        """Rebuild from the signer index, the 96-byte point and the group fingerprint.

        The point is fully validated (on curve, in subgroup, not identity).
        """
        if not isinstance(signer, int) or isinstance(signer, bool):
            raise TypeError("signer index must be an int")
        if signer < 1 or signer > MAX_SIGNERS:
            raise SignerIndexError(f"signer index must be in 1..{MAX_SIGNERS}, got {signer}")
        group_fingerprint = as_bytes(group_fingerprint, "group fingerprint")
        if len(group_fingerprint) != FINGERPRINT_SIZE:
            raise MalformedError(f"group fingerprint must be {FINGERPRINT_SIZE} bytes")
        point = as_bytes(point, "signature share point")
        bk = get_backend(backend)
        p = bk.decode_g2(point, f"signature share of signer {signer}")
        return cls._make(signer, group_fingerprint, bk, point, p)

    def __bytes__(self) -> bytes:
        return self._signer.to_bytes(2, "big") + self._fingerprint + self.point_bytes

    @classmethod
    def from_bytes(cls, data: bytes, *, backend: str | Backend | None = None) -> SignatureShare:
        """Parse and validate a 106-byte signature share."""
        data = as_bytes(data, "signature share")
        if len(data) != SIGNATURE_SHARE_SIZE:
            raise MalformedError(
                f"signature share must be {SIGNATURE_SHARE_SIZE} bytes, got {len(data)}"
            )
        signer = int.from_bytes(data[:2], "big")
        return cls.from_parts(
            signer, data[2 + FINGERPRINT_SIZE :], data[2 : 2 + FINGERPRINT_SIZE], backend=backend
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SignatureShare) and bytes(other) == bytes(self)

    def __hash__(self) -> int:
        return hash(bytes(self))

    def __repr__(self) -> str:
        return (
            f"SignatureShare(signer={self._signer}, group={self._fingerprint.hex()}, "
            f"point={self.point_bytes.hex()[:16]}…)"
        )


class Signature(_G2Value):
    """A 96-byte BLS signature: a combined t-of-n signature (valid under the group public key in
    the IETF basic scheme) or an n-of-n aggregate (valid under ``group.aggregate_key``)."""

    __slots__ = ()

    def __init__(self) -> None:  # pragma: no cover - use combine/aggregate_all/from_bytes
        raise TypeError("create signatures with combine(), aggregate_all() or from_bytes()")

    @classmethod
    def _make(cls, bk: Backend, raw: bytes | None, point: Any) -> Signature:
        self = cls.__new__(cls)
        self._setup(bk, raw, point)
        return self

    def __bytes__(self) -> bytes:
        return self.point_bytes

    @classmethod
    def from_bytes(cls, data: bytes, *, backend: str | Backend | None = None) -> Signature:
        """Parse and validate a 96-byte signature (on curve, in subgroup, not identity)."""
        data = as_bytes(data, "signature")
        bk = get_backend(backend)
        return cls._make(bk, data, bk.decode_g2(data, "signature"))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Signature) and bytes(other) == bytes(self)

    def __hash__(self) -> int:
        return hash(bytes(self))

    def __repr__(self) -> str:
        return f"Signature({self.point_bytes.hex()[:24]}…)"
