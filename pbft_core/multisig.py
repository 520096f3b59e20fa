"""Multi-signature certificates: k distinct replicas' plain signatures, collected (``--certificates ed25519``).

Theory of operation
-------------------
The scheme concord-bft adopted in 2023 when it dropped BLS threshold signatures. There is no
threshold key: a replica signs a share with its own Ed25519 identity key, and a certificate is
the collected shares of k distinct replicas, k = 2f+1 (quorum) for prepare, commit and
checkpoint certificates and k = n for the fast path. Nothing is combined, so nothing can be
interpolated or summed: a certificate proves exactly who signed, and verifying it costs k
signature verifications (BLS costs one pairing check whatever k is, but a certificate stays 96
bytes only because the algebra hides the signers).

What a share signs. Shares are signed with the same key as every point-to-point message, so the
payloads are domain-separated from all of them and from each other:

    slow-path share (prepare, commit, checkpoint)   SHARE_DOMAIN + threshold message
    fast-path share                                 FAST_SHARE_DOMAIN + threshold message

where the threshold message (`crypto.threshold_message`) is ``pbft/v1/ts/<kind>/`` + msgpack
of (view, seq, digest) or (seq, state digest), naming the kind. A signed protocol message signs
``pbft/v1/<MessageName>/...``, a reply root ``pbft/v1/ReplyRoot/...``; no message type is named
``multisig``, and ``share/`` and ``fast/`` differ in their first byte, so no payload of one of
these can ever be the payload of another: a prepare share never verifies as a commit share
(different kind), a fast share (different domain) or a signature on any message.

Wire encoding. One canonical encoding, so a certificate has exactly one byte string:

    certificate = entry(s1) || entry(s2) || ... || entry(sk)     s1 < s2 < ... < sk
    entry(s)    = s as one unsigned byte (the replica id, 1..n) || s's 64-byte Ed25519 signature

so a certificate of k signers is exactly ``65·k`` bytes, and signers strictly increasing rule out
duplicates by construction. A certificate has exactly the k signers its kind needs, no more
(more would be a second encoding of the same proof), and at most `SIGNERS_MAX` (n ≤ 100, the
largest cluster ``pbft bench scale`` runs; one byte would hold 255) — the codec accepts only
these lengths, so a certificate from a peer is bounded in bytes like everything else.

Sizes against BLS (96 bytes for every certificate):

    n = 4   (f = 1)   2f+1 certificate  195 B   fast (n-of-n)  260 B
    n = 7   (f = 2)   2f+1 certificate  325 B   fast (n-of-n)  455 B
    n = 100 (f = 33)  2f+1 certificate 4355 B   fast (n-of-n) 6500 B

Verification rejects, never raises: any length other than 65·k, a signer id that is zero,
above n or not strictly above the previous one, or any signature that does not verify for the
signer its entry names (so replica A's share presented as B's fails, and so does one signature
repeated under two ids).

`MultiSignatures` is the certificate half of `crypto.NodeCrypto` over any 64-byte signature
scheme given as two functions (sign as this node; verify as replica r), so `RealCrypto` runs it
over Ed25519 and the simulator's `SimCrypto` over its keyed hashes, with the same encoding and
the same sizes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

SIGNATURE_SIZE = 64  # Ed25519
SIGNER_ID_SIZE = 1
ENTRY_SIZE = SIGNER_ID_SIZE + SIGNATURE_SIZE
# The most signers a certificate may have, hence the largest cluster (n) this scheme serves.
SIGNERS_MAX = 100
SHARE_DOMAIN = b"pbft/v1/multisig/share/"
FAST_SHARE_DOMAIN = b"pbft/v1/multisig/fast/"
# Signatures this node made itself, remembered so that they need no verification when they come
# back inside a certificate (its own share in a quorum it combines or receives).
OWN_SIGNATURES_MAX = 256

Sign = Callable[[bytes], bytes]
Verify = Callable[[int, bytes, bytes], bool]


def certificate_size(signers: int) -> int:
    """The encoded size of a certificate of `signers` signatures."""
    return ENTRY_SIZE * signers


# Every length a certificate of this scheme can have on the wire (see `messages.Message.SIZES`).
CERTIFICATE_SIZES: tuple[int, ...] = tuple(certificate_size(k) for k in range(1, SIGNERS_MAX + 1))


def encode(signatures: Mapping[int, bytes]) -> bytes:
    """The canonical certificate of these (signer → signature) pairs; the caller checked them."""
    assert all(1 <= r <= min(SIGNERS_MAX, 255) and len(s) == SIGNATURE_SIZE for r, s in signatures.items())
    return b"".join(bytes((r,)) + signatures[r] for r in sorted(signatures))


def decode(certificate: object, signers: int, n: int) -> list[tuple[int, bytes]] | None:
    """The (signer, signature) entries of a certificate of exactly `signers` distinct replicas
    among 1..n in canonical order; None for anything else (never raises)."""
    if type(certificate) is not bytes or len(certificate) != certificate_size(signers) or signers < 1:
        return None
    entries = []
    previous = 0
    for offset in range(0, len(certificate), ENTRY_SIZE):
        signer = certificate[offset]
        if not previous < signer <= n:
            return None
        entries.append((signer, certificate[offset + SIGNER_ID_SIZE : offset + ENTRY_SIZE]))
        previous = signer
    return entries


class MultiSignatures:
    """Shares and certificates of one node of an n-replica cluster (module docstring)."""

    def __init__(self, sign: Sign, verify: Verify, n: int, quorum: int, me: int | None) -> None:
        assert 1 <= quorum <= n <= SIGNERS_MAX
        self._sign = sign
        self._verify = verify
        self._n = n
        self._quorum = quorum
        self._me = me  # None for a client: it signs no shares
        self._own: dict[bytes, bytes] = {}  # signature -> the payload this node signed
        # Certificates this node combined from shares it verified: valid when they come back
        # (its own prepared proofs in a view change), with no second round of k checks.
        self._combined: dict[tuple[bytes, bytes], None] = {}

    def _sign_payload(self, payload: bytes) -> bytes:
        assert self._me is not None, "clients sign no shares"
        signature = self._sign(payload)
        if len(self._own) >= OWN_SIGNATURES_MAX:
            del self._own[next(iter(self._own))]
        self._own[signature] = payload
        return signature

    def _valid(self, signer: int, payload: bytes, signature: bytes) -> bool:
        if type(signature) is not bytes or len(signature) != SIGNATURE_SIZE or not 1 <= signer <= self._n:
            return False
        if signer == self._me and self._own.get(signature) == payload:
            return True
        return self._verify(signer, payload, signature)

    def _certificate_valid(self, certificate: bytes, signers: int, payload: bytes) -> bool:
        if type(certificate) is bytes and (payload, certificate) in self._combined:
            return True
        entries = decode(certificate, signers, self._n)
        return entries is not None and all(self._valid(r, payload, s) for r, s in entries)

    # ---- the certificate half of `NodeCrypto` ----------------------------------------------

    def sign_share(self, message: bytes) -> bytes:
        return self._sign_payload(SHARE_DOMAIN + message)

    def sign_fast_share(self, message: bytes) -> bytes:
        return self._sign_payload(FAST_SHARE_DOMAIN + message)

    def verify_share(self, replica: int, message: bytes, share: bytes) -> bool:
        return type(replica) is int and self._valid(replica, SHARE_DOMAIN + message, share)

    def combine(self, shares: Mapping[int, bytes], message: bytes) -> tuple[bytes | None, set[int]]:
        """The certificate of the `quorum` lowest-numbered valid shares. Unlike a BLS
        combination there is nothing to check optimistically: every share is verified (a
        certificate must never carry a bad one), and the invalid ones are named."""
        payload = SHARE_DOMAIN + message
        good: dict[int, bytes] = {}
        bad: set[int] = set()
        for replica in sorted(shares):
            if len(good) == self._quorum:
                break
            if type(replica) is int and self._valid(replica, payload, shares[replica]):
                good[replica] = shares[replica]
            else:
                bad.add(replica)
        if len(good) < self._quorum:
            return None, bad
        certificate = encode(good)
        if len(self._combined) >= OWN_SIGNATURES_MAX:
            del self._combined[next(iter(self._combined))]
        self._combined[(payload, certificate)] = None
        return certificate, bad

    def verify_certificate(self, message: bytes, certificate: bytes) -> bool:
        return self._certificate_valid(certificate, self._quorum, SHARE_DOMAIN + message)

    def aggregate_all(self, fast_shares: Mapping[int, bytes], message: bytes) -> bytes | None:
        """All n fast shares side by side, unverified (as a BLS sum checks nothing): the
        collector sends it first and verifies it after, like every receiver."""
        if set(fast_shares) != set(range(1, self._n + 1)):
            return None
        if any(type(s) is not bytes or len(s) != SIGNATURE_SIZE for s in fast_shares.values()):
            return None
        return encode(fast_shares)

    def verify_aggregate(self, message: bytes, aggregate: bytes) -> bool:
        return self._certificate_valid(aggregate, self._n, FAST_SHARE_DOMAIN + message)
