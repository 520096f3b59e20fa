"""What each certificate signs, and checking certificates once.

A certificate is either a 2f+1 certificate (prepare, commit, checkpoint) or the n-of-n
certificate of all fast-path shares (the fast path): with BLS (the default) one 96-byte
signature, a threshold signature or an aggregate under a separate key; with ed25519 certificates
(`multisig`) the signers' own signatures side by side. Each signs a domain-separated message
naming its kind, so no certificate can be passed off as another, and a fast certificate never
verifies as a 2f+1 one. Which scheme is the crypto's business (`crypto.NodeCrypto`), not this
module's.

Verifying a certificate costs a pairing (BLS, milliseconds) or k signature checks (ed25519), and
the same certificate reaches a replica many times (in view changes, catch-ups, new views), so
verified ones are remembered.
"""

from __future__ import annotations

from .crypto import NodeCrypto, threshold_message
from .messages import CheckpointProof, Proof, ProofKind, batch_digest

VERIFIED_CACHE_MAX = 50_000


def prepare_message(view: int, seq: int, digest: bytes) -> bytes:
    return threshold_message("prepare", view, seq, digest)


def commit_message(view: int, seq: int, digest: bytes) -> bytes:
    return threshold_message("commit", view, seq, digest)


def checkpoint_message(seq: int, state_digest: bytes) -> bytes:
    return threshold_message("checkpoint", seq, state_digest)


def proof_message(kind: int, view: int, seq: int, digest: bytes) -> bytes:
    if kind == ProofKind.COMMIT:
        return commit_message(view, seq, digest)
    return prepare_message(view, seq, digest)


class Certifier:
    """Checks certificates against the cluster's keys, caching successes."""

    def __init__(self, crypto: NodeCrypto) -> None:
        self._crypto = crypto
        self._verified: set[tuple[bytes, bytes]] = set()

    def _check(self, message: bytes, certificate: bytes, aggregate: bool) -> bool:
        key = (message, certificate)
        if key in self._verified:
            return True
        if aggregate:
            ok = self._crypto.verify_aggregate(message, certificate)
        else:
            ok = self._crypto.verify_certificate(message, certificate)
        if ok:
            if len(self._verified) >= VERIFIED_CACHE_MAX:
                self._verified.clear()
            self._verified.add(key)
        return ok

    def threshold(self, message: bytes, certificate: bytes) -> bool:
        return self._check(message, certificate, aggregate=False)

    def aggregate(self, message: bytes, aggregate: bytes) -> bool:
        return self._check(message, aggregate, aggregate=True)

    def check(self, kind: int, view: int, seq: int, digest: bytes, certificate: bytes) -> bool:
        """Is `certificate` a valid certificate of `kind` for (view, seq, digest)?"""
        if kind not in ProofKind.ALL:
            return False
        message = proof_message(kind, view, seq, digest)
        return self._check(message, certificate, aggregate=kind == ProofKind.FAST)

    def proof(self, proof: Proof) -> bool:
        digest = batch_digest(proof.batch)
        return self.check(proof.kind, proof.view, proof.seq, digest, proof.certificate)

    def checkpoint(self, checkpoint: CheckpointProof) -> bool:
        message = checkpoint_message(checkpoint.seq, checkpoint.state_digest)
        return self._check(message, checkpoint.certificate, aggregate=False)
