"""Authentication for the protocol: Ed25519 identities and BLS threshold certificates.

Two suites implement one interface, `NodeCrypto`:

- `RealCrypto` (the default, and the only one a key file or the CLI can produce): Ed25519 via
  libsodium (PyNaCl) for point-to-point messages, `thresh_sig` (BLS12-381) for certificates.
- `SimCrypto`, for the simulator only: keyed hashes (HMAC-SHA256) with the same verification
  semantics: only the holder of a secret can produce a valid signature or share, a combined
  certificate verifies only if it was made from `quorum` valid shares of distinct signers, and the
  n-of-n aggregate only from all n. It does not model signature sizes' cost, malleability or the
  algebra of BLS (e.g. rogue-key attacks are out of scope); it makes seeds cheap.

The fast path has its own n-of-n key, dealt separately: the plain sum of all n fast shares
verifies against the sum of the n fast verification keys. It cannot be the 2f+1 key's shares:
from any 2f+1 shares of a (2f+1, n) sharing anyone can interpolate the other shares, so their
sum would prove only that 2f+1 signed.

Threshold messages are domain-separated: ``pbft/v1/ts/<kind>/`` + msgpack([view, seq, digest]),
so a prepare share can never be used as a commit or checkpoint share.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import msgpack
from nacl.signing import SigningKey, VerifyKey

from .messages import CERT_SIZE, SHARE_SIZE
from .messages import SIG_SIZE as ED25519_SIG_SIZE

# Own points remembered by `RealCrypto`, per kind (a few batches' shares and certificates).
OWN_POINTS_MAX = 64


def threshold_message(kind: str, *fields: int | bytes) -> bytes:
    return b"pbft/v1/ts/" + kind.encode() + b"/" + msgpack.packb(list(fields), use_bin_type=True)


class NodeCrypto(Protocol):
    """What one node (replica or client) can do: sign as itself, verify everyone."""

    def sign(self, payload: bytes) -> bytes: ...
    def verify_replica(self, replica: int, payload: bytes, sig: bytes) -> bool: ...
    def verify_client(self, client: str, payload: bytes, sig: bytes) -> bool: ...
    def knows_client(self, client: str) -> bool: ...
    # threshold certificates
    def sign_share(self, message: bytes) -> bytes: ...
    def sign_fast_share(self, message: bytes) -> bytes: ...
    def verify_share(self, replica: int, message: bytes, share: bytes) -> bool: ...
    def combine(self, shares: Mapping[int, bytes], message: bytes) -> tuple[bytes | None, set[int]]:
        """Combine `quorum` shares into a certificate, verifying once. On failure return
        ``(None, bad_signers)`` naming the shares that do not verify."""
        ...
    def verify_certificate(self, message: bytes, certificate: bytes) -> bool: ...
    def aggregate_all(self, fast_shares: Mapping[int, bytes], message: bytes) -> bytes | None:
        """The n-of-n fast-path certificate from all n fast shares, or None."""
        ...
    def verify_aggregate(self, message: bytes, aggregate: bytes) -> bool: ...


# ---- real -----------------------------------------------------------------------------------


@dataclass
class PublicKeys:
    """What everyone knows: identities and the threshold group key."""

    replicas: dict[int, bytes]  # Ed25519 public keys
    clients: dict[str, bytes]
    group: bytes  # thresh_sig.GroupKey bytes: the (2f+1, n) certificate key
    fast_group: bytes  # thresh_sig.GroupKey bytes: the (n, n) fast-path key


class RealCrypto:
    def __init__(
        self,
        public: PublicKeys,
        signing_seed: bytes,
        key_share: bytes | None,
        fast_share: bytes | None = None,
    ) -> None:
        import thresh_sig

        self._ts = thresh_sig
        self._signing = SigningKey(signing_seed)
        self._replica_keys = {r: VerifyKey(k) for r, k in public.replicas.items()}
        self._client_keys = {c: VerifyKey(k) for c, k in public.clients.items()}
        self._group = thresh_sig.GroupKey.from_bytes(public.group)
        self._share = thresh_sig.KeyShare.from_bytes(key_share) if key_share else None
        self._fast_group = thresh_sig.GroupKey.from_bytes(public.fast_group)
        self._fast_share = thresh_sig.KeyShare.from_bytes(fast_share) if fast_share else None
        assert (SHARE_SIZE, CERT_SIZE) == (thresh_sig.SIGNATURE_SHARE_SIZE, thresh_sig.SIGNATURE_SIZE)
        # Points this replica made itself, by their bytes: when they come back (its own share in
        # a quorum, the aggregate it verifies right after building it) they need no second
        # decompression and subgroup check. Shares and whole signatures are kept apart: peers
        # know these bytes (checkpoint shares and certificates are broadcast), so a share sent
        # back where a certificate goes, or the reverse, must parse as what the field says.
        self._own_shares: dict[bytes, Any] = {}
        self._own_signatures: dict[bytes, Any] = {}

    @staticmethod
    def _remember(cache: dict[bytes, Any], point: Any) -> bytes:
        encoded = bytes(point)
        if len(cache) >= OWN_POINTS_MAX:
            del cache[next(iter(cache))]
        cache[encoded] = point
        return encoded

    def sign(self, payload: bytes) -> bytes:
        return self._signing.sign(payload).signature

    @staticmethod
    def _verify(key: VerifyKey | None, payload: bytes, sig: bytes) -> bool:
        if key is None or type(sig) is not bytes or len(sig) != ED25519_SIG_SIZE:
            return False
        try:
            key.verify(payload, sig)
        except Exception:  # any failure on untrusted bytes is "not valid", never a crash
            return False
        return True

    def verify_replica(self, replica: int, payload: bytes, sig: bytes) -> bool:
        return self._verify(self._replica_keys.get(replica), payload, sig)

    def verify_client(self, client: str, payload: bytes, sig: bytes) -> bool:
        return self._verify(self._client_keys.get(client), payload, sig)

    def knows_client(self, client: str) -> bool:
        return client in self._client_keys

    def sign_share(self, message: bytes) -> bytes:
        assert self._share is not None, "clients hold no key share"
        return self._remember(self._own_shares, self._ts.sign_share(self._share, message))

    def sign_fast_share(self, message: bytes) -> bytes:
        assert self._fast_share is not None, "clients hold no key share"
        return self._remember(self._own_shares, self._ts.sign_share(self._fast_share, message))

    @staticmethod
    def _parse(data: bytes, size: int, own: dict[bytes, Any], parse: Any) -> Any | None:
        """`data` as a point of its kind (its size says which), from our own cache or parsed and
        checked; None if it is not one (malformed bytes from a peer are never an error)."""
        if type(data) is not bytes or len(data) != size:
            return None
        parsed = own.get(data)
        if parsed is None:
            try:
                parsed = parse(data)
            except Exception:
                return None
        return parsed

    def _parse_share(self, replica: int, share: bytes) -> Any | None:
        """The share `replica` claims to have signed; None if it is not one."""
        parsed = self._parse(share, SHARE_SIZE, self._own_shares, self._ts.SignatureShare.from_bytes)
        return parsed if parsed is not None and parsed.signer == replica else None

    def _parse_signature(self, signature: bytes) -> Any | None:
        """A whole (combined or aggregate) signature; None if it is not one."""
        return self._parse(signature, CERT_SIZE, self._own_signatures, self._ts.Signature.from_bytes)

    def verify_share(self, replica: int, message: bytes, share: bytes) -> bool:
        parsed = self._parse_share(replica, share)
        if parsed is None:
            return False
        try:
            return bool(self._ts.verify_share(self._group, parsed, message))
        except Exception:
            return False

    def combine(self, shares: Mapping[int, bytes], message: bytes) -> tuple[bytes | None, set[int]]:
        parsed = {r: self._parse_share(r, s) for r, s in shares.items()}
        bad = {r for r, p in parsed.items() if p is None}
        good = [p for p in parsed.values() if p is not None]
        try:
            signature = self._ts.combine(self._group, good, message)
        except self._ts.InvalidShareError as exc:
            return None, bad | {int(i) for i in exc.invalid}
        except self._ts.ThresholdError:
            return None, bad
        return self._remember(self._own_signatures, signature), bad

    def verify_certificate(self, message: bytes, certificate: bytes) -> bool:
        parsed = self._parse_signature(certificate)
        if parsed is None:
            return False
        try:
            return bool(self._ts.verify(self._group, message, parsed))
        except Exception:
            return False

    def aggregate_all(self, fast_shares: Mapping[int, bytes], message: bytes) -> bytes | None:
        parsed = [self._parse_share(r, s) for r, s in fast_shares.items()]
        if any(p is None for p in parsed):
            return None
        try:
            aggregate = self._ts.aggregate_all(self._fast_group, parsed)
        except self._ts.ThresholdError:
            return None
        return self._remember(self._own_signatures, aggregate)

    def verify_aggregate(self, message: bytes, aggregate: bytes) -> bool:
        parsed = self._parse_signature(aggregate)
        if parsed is None:
            return False
        try:
            return bool(self._ts.verify_all(self._fast_group, message, parsed))
        except Exception:
            return False


# ---- simulation-only ------------------------------------------------------------------------


class SimCrypto:
    """Keyed-hash stand-in for `RealCrypto`; see the module docstring. Simulator only."""

    def __init__(self, seed: bytes, me: str, n: int, quorum: int) -> None:
        self._seed = seed
        self._me = me
        self._n = n
        self._quorum = quorum

    def _secret(self, name: str) -> bytes:
        return hashlib.sha256(b"sim-secret/" + self._seed + b"/" + name.encode()).digest()

    def _mac(self, name: str, payload: bytes, size: int) -> bytes:
        digest = hmac.new(self._secret(name), payload, hashlib.sha256).digest()
        return (digest * (size // 32 + 1))[:size]

    def sign(self, payload: bytes) -> bytes:
        return self._mac(self._me, payload, ED25519_SIG_SIZE)

    def verify_replica(self, replica: int, payload: bytes, sig: bytes) -> bool:
        if type(replica) is not int or not 1 <= replica <= self._n:
            return False
        return _same(self._mac(f"n{replica}", payload, ED25519_SIG_SIZE), sig)

    def verify_client(self, client: str, payload: bytes, sig: bytes) -> bool:
        return _same(self._mac(f"client/{client}", payload, ED25519_SIG_SIZE), sig)

    def knows_client(self, client: str) -> bool:
        return True

    def sign_share(self, message: bytes) -> bytes:
        return self._mac("share/" + self._me, message, SHARE_SIZE)

    def sign_fast_share(self, message: bytes) -> bytes:
        return self._mac("fastshare/" + self._me, message, SHARE_SIZE)

    def verify_share(self, replica: int, message: bytes, share: bytes) -> bool:
        return 1 <= replica <= self._n and _same(self._mac(f"share/n{replica}", message, SHARE_SIZE), share)

    def combine(self, shares: Mapping[int, bytes], message: bytes) -> tuple[bytes | None, set[int]]:
        bad = {r for r, s in shares.items() if not self.verify_share(r, message, s)}
        if bad or len(shares) < self._quorum:
            return None, bad
        return self._mac("group/t", message, CERT_SIZE), set()

    def verify_certificate(self, message: bytes, certificate: bytes) -> bool:
        return _same(self._mac("group/t", message, CERT_SIZE), certificate)

    def aggregate_all(self, fast_shares: Mapping[int, bytes], message: bytes) -> bytes | None:
        if set(fast_shares) != set(range(1, self._n + 1)):
            return None
        # As with BLS, summing checks nothing: a bad share yields an aggregate that fails to verify.
        if all(
            _same(self._mac(f"fastshare/n{r}", message, SHARE_SIZE), s)
            for r, s in fast_shares.items()
        ):
            return self._mac("group/n", message, CERT_SIZE)
        return self._mac("group/n/invalid", message + b"".join(sorted(fast_shares.values())), CERT_SIZE)

    def verify_aggregate(self, message: bytes, aggregate: bytes) -> bool:
        return _same(self._mac("group/n", message, CERT_SIZE), aggregate)


def _same(expected: bytes, given: object) -> bool:
    """Constant-time comparison that treats anything but bytes as a mismatch (never raises)."""
    return type(given) is bytes and hmac.compare_digest(expected, given)
