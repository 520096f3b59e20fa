"""The cryptographic floor: the throughput the protocol's mandatory cryptography alone allows.

Theory of operation
-------------------
Every committed request costs signatures and verifications that no implementation of this
protocol can skip; everything else (codec, SQLite, pipes, Python) is overhead on top. The floor
is the throughput at which that cryptography alone would keep every core busy:

    floor_tps = cores / (crypto CPU seconds per completed transaction)

`measure_costs` times each primitive on this machine (Ed25519 with libsodium, BLS through
thresh_sig's default backend); `CryptoBudget` counts how many of each one transaction needs at a
given batch size, following the normal case of `replica.py` with the fast path:

per ordered request  client signs it; all n replicas verify the client's signature once.
per batch            leader signs PRE-PREPARE, n-1 backups verify it; every replica signs one
                     fast-path share (BLS; its 2f+1 share only when the fast path fails, which
                     the floor does not price); n-1 backups sign their
                     PREPARE-SHARE message, the leader verifies them; the leader decodes the
                     n fast shares, sums them and verifies the aggregate (BLS), signs
                     FAST-COMMIT, n-1 backups verify the message, decode the aggregate and
                     verify it; every replica signs one Merkle root over its replies, the
                     client side verifies f+1 of them (one process of clients shares
                     verified roots).
with --no-fast-path  instead of the fast-path shares and FAST-COMMIT, two rounds (prepare,
                     commit): every replica signs a share, n-1 backups send it in a signed
                     message, the collector decodes 2f+1, combines and verifies them, and
                     signs a certificate that n-1 backups verify (message, point, signature).
per checkpoint       (every K batches) every replica signs a share, decodes 2f+1 received
                     shares, combines them and verifies the certificate.
per unordered read   client signs; n replicas verify and each signs its reply; the client
                     verifies 2f+1 of them.

"Decodes" are BLS points received as bytes: decompression and the subgroup check, which no
implementation may skip before using a point from a peer. Hashing, Merkle paths and digests are
not counted: they are small next to these and partly
avoidable. The floor is therefore an upper bound on what any implementation of this exact
protocol could reach on these cores.

With ``ed25519`` certificates (`multisig`) every share is an Ed25519 signature and checking a
certificate of k signers is k Ed25519 verifications, less the checker's own signature when it
is among them (a node need not verify what it signed itself); nothing is decoded, combined or
aggregated. Per batch: every replica signs its fast-path share (n signs); the
collector checks the n-1 others' fast shares inside the aggregate, and each of the n-1 backups
checks the n-1 signatures not its own. Slow path, per round: n signs, the collector checks the
2f extra shares it combines, and the n-1 backups check the 2f+1 signatures of the certificate
(2f of them skip their own). Per checkpoint every replica signs and checks the 2f others' shares.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from .config import ClusterConfig


@dataclass(frozen=True)
class CryptoCosts:
    """Median CPU time of each primitive on this machine, in microseconds."""

    ed25519_sign_us: float
    ed25519_verify_us: float
    bls_sign_us: float
    bls_verify_us: float
    bls_combine_us: float  # interpolate 2f+1 shares
    bls_aggregate_us: float  # sum n fast-path shares
    # A signature or share received as bytes must become a G2 point in the right subgroup before
    # anything can use it (decompression and the subgroup check): once per point received.
    bls_decode_us: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 2) for k, v in asdict(self).items()}

    def used_by(self, config: ClusterConfig) -> dict[str, float]:
        """`as_dict` without the primitives `config`'s certificate scheme does not use."""
        return {k: v for k, v in self.as_dict().items() if config.certificates == "bls" or not k.startswith("bls_")}


def _median_us(fn: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e6)
    samples.sort()
    return samples[len(samples) // 2]


def measure_costs(config: ClusterConfig, *, repeat: int = 60) -> CryptoCosts:
    """Time each primitive with real keys of a cluster shaped like `config` (BLS only if its
    certificates are BLS; the others stay 0)."""
    from nacl.signing import SigningKey

    message = os.urandom(180)  # about a request's signing payload
    key = SigningKey(os.urandom(32))
    signature = key.sign(message).signature
    verify_key = key.verify_key
    ed25519_sign_us = _median_us(lambda: key.sign(message), repeat * 10)
    ed25519_verify_us = _median_us(lambda: verify_key.verify(message, signature), repeat * 10)
    if config.certificates != "bls":
        return CryptoCosts(ed25519_sign_us, ed25519_verify_us, 0.0, 0.0, 0.0, 0.0)
    import thresh_sig

    group, shares = thresh_sig.deal(config.quorum, config.n, seed=b"pbft/floor")
    fast_group, fast_shares = thresh_sig.deal(config.n, config.n, seed=b"pbft/floor/fast")
    sig_shares = [thresh_sig.sign_share(s, message) for s in shares]
    fast_sig_shares = [thresh_sig.sign_share(s, message) for s in fast_shares]
    certificate = thresh_sig.combine(group, sig_shares[: config.quorum])
    certificate_bytes = bytes(certificate)
    return CryptoCosts(
        ed25519_sign_us=ed25519_sign_us,
        ed25519_verify_us=ed25519_verify_us,
        bls_sign_us=_median_us(lambda: thresh_sig.sign_share(shares[0], message), repeat),
        bls_verify_us=_median_us(lambda: thresh_sig.verify(group, message, certificate), repeat),
        bls_combine_us=_median_us(
            lambda: thresh_sig.combine(group, sig_shares[: config.quorum]), repeat
        ),
        bls_aggregate_us=_median_us(
            lambda: thresh_sig.aggregate_all(fast_group, fast_sig_shares), repeat
        ),
        bls_decode_us=_median_us(lambda: thresh_sig.Signature.from_bytes(certificate_bytes), repeat),
    )


@dataclass(frozen=True)
class CryptoBudget:
    """Crypto CPU per completed transaction for one configuration (see the module docstring)."""

    config: ClusterConfig
    costs: CryptoCosts

    def per_ordered_request_us(self, mean_batch: float) -> float:
        c, n, f = self.costs, self.config.n, self.config.f
        quorum = self.config.quorum
        request = c.ed25519_sign_us + n * c.ed25519_verify_us
        if self.config.certificates != "bls":
            return request + self._multisig_batch_us() / max(mean_batch, 1.0)
        # The collector's certificate reaches n-1 backups, who check the message and the point.
        broadcast = c.ed25519_sign_us + (n - 1) * (c.ed25519_verify_us + c.bls_decode_us + c.bls_verify_us)
        # n-1 backups send their share in a signed message; the collector checks the messages.
        shares = (n - 1) * (c.ed25519_sign_us + c.ed25519_verify_us)
        if self.config.fast_path:
            certify = (
                n * c.bls_sign_us  # one fast-path share each (the 2f+1 share only if it fails)
                + shares
                + n * c.bls_decode_us + c.bls_aggregate_us + c.bls_verify_us  # the n-of-n aggregate
                + broadcast  # FAST-COMMIT
            )
        else:
            # Two rounds: prepare then commit shares, each combined from 2f+1 and verified once.
            certify = 2 * (
                n * c.bls_sign_us
                + shares
                + quorum * c.bls_decode_us + c.bls_combine_us + c.bls_verify_us
                + broadcast  # PREPARE / COMMIT certificate
            )
        batch = (
            c.ed25519_sign_us + (n - 1) * c.ed25519_verify_us  # PRE-PREPARE
            + certify
            + n * c.ed25519_sign_us + (f + 1) * c.ed25519_verify_us  # signed reply roots
        )
        checkpoint = n * (c.bls_sign_us + quorum * c.bls_decode_us + c.bls_combine_us + c.bls_verify_us)
        per_batch = batch + checkpoint / self.config.checkpoint_interval
        return request + per_batch / max(mean_batch, 1.0)

    def _multisig_batch_us(self) -> float:
        """One batch's crypto with ed25519 certificates (module docstring)."""
        c, n, f = self.costs, self.config.n, self.config.f
        sign, verify = c.ed25519_sign_us, c.ed25519_verify_us
        quorum = self.config.quorum
        shares = (n - 1) * (sign + verify)  # PREPARE-SHARE / COMMIT-SHARE messages
        if self.config.fast_path:
            certify = (
                n * sign  # one fast-path share each (the 2f+1 share only if it fails)
                + shares
                + (n - 1) * verify  # the collector checks the aggregate it sent
                + sign + (n - 1) * (verify + (n - 1) * verify)  # FAST-COMMIT: message and aggregate
            )
        else:
            # The collector checks the 2f shares not its own; of the n-1 receivers, 2f find
            # their own signature in the certificate.
            certificate_checks = (n - 1) * quorum - (quorum - 1)
            certify = 2 * (n * sign + shares + (quorum - 1) * verify + sign + (n - 1) * verify + certificate_checks * verify)
        batch = (
            sign + (n - 1) * verify  # PRE-PREPARE
            + certify
            + n * sign + (f + 1) * verify  # signed reply roots
        )
        checkpoint = n * (sign + (quorum - 1) * verify)
        return batch + checkpoint / self.config.checkpoint_interval

    def per_read_us(self) -> float:
        c, n = self.costs, self.config.n
        return c.ed25519_sign_us + n * (c.ed25519_verify_us + c.ed25519_sign_us) + self.config.read_quorum * c.ed25519_verify_us

    def floor_tps(self, mean_batch: float, read_share: float, cores: int) -> float:
        """Transactions per second the cryptography alone saturates `cores` at."""
        per_txn_us = (1 - read_share) * self.per_ordered_request_us(mean_batch) + read_share * self.per_read_us()
        return cores * 1e6 / per_txn_us
