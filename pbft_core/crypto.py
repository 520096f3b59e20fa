"""Authentication for the protocol: Ed25519 identities and certificates of one of two schemes.

Two suites implement one interface, `NodeCrypto`:

- `RealCrypto` (the default, and the only one a key file or the CLI can produce): Ed25519 via
  libsodium (PyNaCl) for point-to-point messages, and certificates of the cluster's scheme
  (`ClusterConfig.certificates`, carried by the public keys as `PublicKeys.certificates`):
  ``bls``, `thresh_sig` (BLS12-381) threshold signatures, or ``ed25519``, the replicas'
  collected identity signatures (`multisig`).
- `SimCrypto`, for the simulator only: keyed hashes (HMAC-SHA256) with the same verification
  semantics: only the holder of a secret can produce a valid signature or share, a combined
  certificate verifies only if it was made from `quorum` valid shares of distinct signers, and the
  n-of-n aggregate only from all n. Its shares and certificates have the real sizes of the chosen
  scheme (so simulated byte counts mean something), but it does not model signature cost,
  malleability or the algebra of BLS (e.g. rogue-key attacks are out of scope); it makes seeds cheap.

BLS: the fast path has its own n-of-n key, dealt separately: the plain sum of all n fast shares
verifies against the sum of the n fast verification keys. It cannot be the 2f+1 key's shares:
from any 2f+1 shares of a (2f+1, n) sharing anyone can interpolate the other shares, so their
sum would prove only that 2f+1 signed. Ed25519: no key is dealt; a fast share signs its own
domain (`multisig.FAST_SHARE_DOMAIN`), and a fast certificate needs all n signers.

Threshold messages are domain-separated: ``pbft/v1/ts/<kind>/`` + msgpack([view, seq, digest]),
so a prepare share can never be used as a commit or checkpoint share. Each scheme rejects the
other's shares and certificates by their size (a BLS share is 106 bytes, an Ed25519 one 64; a
BLS certificate 96, a multi-signature 65·k), as it rejects any malformed bytes: never an error.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import msgpack
from nacl.signing import SigningKey, VerifyKey

from . import multisig
from .config import BLS, CERTIFICATE_SCHEMES, ED25519
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


class CertificateScheme(Protocol):
    """The certificate half of `NodeCrypto`: what differs between BLS and multi-signatures."""

    def sign_share(self, message: bytes) -> bytes: ...
    def sign_fast_share(self, message: bytes) -> bytes: ...
    def verify_share(self, replica: int, message: bytes, share: bytes) -> bool: ...
    def combine(self, shares: Mapping[int, bytes], message: bytes) -> tuple[bytes | None, set[int]]: ...
    def verify_certificate(self, message: bytes, certificate: bytes) -> bool: ...
    def aggregate_all(self, fast_shares: Mapping[int, bytes], message: bytes) -> bytes | None: ...
    def verify_aggregate(self, message: bytes, aggregate: bytes) -> bool: ...


# ---- real -----------------------------------------------------------------------------------


@dataclass
class PublicKeys:
    """What everyone knows: identities, the certificate scheme and (BLS) the group keys."""

    replicas: dict[int, bytes]  # Ed25519 public keys
    clients: dict[str, bytes]
    group: bytes  # thresh_sig.GroupKey bytes: the (2f+1, n) certificate key (BLS; else empty)
    fast_group: bytes  # thresh_sig.GroupKey bytes: the (n, n) fast-path key (BLS; else empty)
    certificates: str = BLS  # one of CERTIFICATE_SCHEMES


class RealCrypto:
    def __init__(
        self,
        public: PublicKeys,
        signing_seed: bytes,
        key_share: bytes | None,
        fast_share: bytes | None = None,
    ) -> None:
        self._signing = SigningKey(signing_seed)
        self._replica_keys = {r: VerifyKey(k) for r, k in public.replicas.items()}
        self._client_keys = {c: VerifyKey(k) for c, k in public.clients.items()}
        self._certificates: CertificateScheme
        if public.certificates == ED25519:
            n = len(public.replicas)
            mine = bytes(self._signing.verify_key)
            me = next((r for r, k in public.replicas.items() if k == mine), None)
            self._certificates = multisig.MultiSignatures(self.sign, self.verify_replica, n, _quorum(n), me)
        elif public.certificates == BLS:
            self._certificates = BlsCertificates(public, key_share, fast_share)
        else:
            raise ValueError(f"unknown certificate scheme {public.certificates!r}")

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

    # The certificate half goes to the cluster's scheme.

    def sign_share(self, message: bytes) -> bytes:
        return self._certificates.sign_share(message)

    def sign_fast_share(self, message: bytes) -> bytes:
        return self._certificates.sign_fast_share(message)

    def verify_share(self, replica: int, message: bytes, share: bytes) -> bool:
        return self._certificates.verify_share(replica, message, share)

    def combine(self, shares: Mapping[int, bytes], message: bytes) -> tuple[bytes | None, set[int]]:
        return self._certificates.combine(shares, message)

    def verify_certificate(self, message: bytes, certificate: bytes) -> bool:
        return self._certificates.verify_certificate(message, certificate)

    def aggregate_all(self, fast_shares: Mapping[int, bytes], message: bytes) -> bytes | None:
        return self._certificates.aggregate_all(fast_shares, message)

    def verify_aggregate(self, message: bytes, aggregate: bytes) -> bool:
        return self._certificates.verify_aggregate(message, aggregate)


def _quorum(n: int) -> int:
    """2f+1 for n = 3f+1 (`ClusterConfig.quorum`, from the number of identity keys)."""
    f = (n - 1) // 3
    assert n == 3 * f + 1, f"a cluster has 3f+1 replicas, not {n}"
    return 2 * f + 1


class BlsCertificates:
    """The certificate half of `RealCrypto` for ``bls``: `thresh_sig` threshold signatures."""

    def __init__(self, public: PublicKeys, key_share: bytes | None, fast_share: bytes | None) -> None:
        import thresh_sig

        self._ts = thresh_sig
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

    def __init__(self, seed: bytes, me: str, n: int, quorum: int, certificates: str = BLS) -> None:
        if certificates not in CERTIFICATE_SCHEMES:
            raise ValueError(f"unknown certificate scheme {certificates!r}")
        self._seed = seed
        self._me = me
        self._n = n
        self._quorum = quorum
        self._multisig: multisig.MultiSignatures | None = None
        if certificates == ED25519:
            # Shares are signed with the identity "key", as `RealCrypto` does (module docstring).
            replica = int(me[1:]) if me[:1] == "n" and me[1:].isdigit() else None
            self._multisig = multisig.MultiSignatures(self.sign, self.verify_replica, n, quorum, replica)

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
        if self._multisig is not None:
            return self._multisig.sign_share(message)
        return self._mac("share/" + self._me, message, SHARE_SIZE)

    def sign_fast_share(self, message: bytes) -> bytes:
        if self._multisig is not None:
            return self._multisig.sign_fast_share(message)
        return self._mac("fastshare/" + self._me, message, SHARE_SIZE)

    def verify_share(self, replica: int, message: bytes, share: bytes) -> bool:
        if self._multisig is not None:
            return self._multisig.verify_share(replica, message, share)
        return 1 <= replica <= self._n and _same(self._mac(f"share/n{replica}", message, SHARE_SIZE), share)

    def combine(self, shares: Mapping[int, bytes], message: bytes) -> tuple[bytes | None, set[int]]:
        if self._multisig is not None:
            return self._multisig.combine(shares, message)
        bad = {r for r, s in shares.items() if not self.verify_share(r, message, s)}
        if bad or len(shares) < self._quorum:
            return None, bad
        return self._mac("group/t", message, CERT_SIZE), set()

    def verify_certificate(self, message: bytes, certificate: bytes) -> bool:
        if self._multisig is not None:
            return self._multisig.verify_certificate(message, certificate)
        return _same(self._mac("group/t", message, CERT_SIZE), certificate)

    def aggregate_all(self, fast_shares: Mapping[int, bytes], message: bytes) -> bytes | None:
        if self._multisig is not None:
            return self._multisig.aggregate_all(fast_shares, message)
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
        if self._multisig is not None:
            return self._multisig.verify_aggregate(message, aggregate)
        return _same(self._mac("group/n", message, CERT_SIZE), aggregate)


def _same(expected: bytes, given: object) -> bool:
    """Constant-time comparison that treats anything but bytes as a mismatch (never raises)."""
    return type(given) is bytes and hmac.compare_digest(expected, given)
