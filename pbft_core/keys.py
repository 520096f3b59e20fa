"""Key material for a cluster: who is who, and the threshold key everyone verifies against.

`ClusterKeys.generate` deals, from one seed, an Ed25519 identity per replica and per client and
two BLS threshold keys whose shares are the replicas' (share i belongs to replica i): a
(2f+1, n) key for certificates and an (n, n) key for the fast path, whose n-of-n aggregate
verifies against the sum of its verification keys. (The fast path cannot reuse the 2f+1 key:
2f+1 of its shares determine all the others.)

`NodeSecrets` is what one process needs (its own secrets plus everyone's public keys); it has a
msgpack encoding so the pipes shell can hand it to a worker as bytes, and `save`/`load` for key
directories (secrets written with mode 0600).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import msgpack
from nacl.signing import SigningKey

from .config import ClusterConfig
from .crypto import PublicKeys, RealCrypto


def _seed_for(seed: bytes, label: str) -> bytes:
    return hashlib.sha256(b"pbft/v1/keys/" + seed + b"/" + label.encode()).digest()


@dataclass(frozen=True)
class NodeSecrets:
    name: str  # "n3" or a client name
    signing_seed: bytes
    key_share: bytes | None  # thresh_sig.KeyShare bytes (replicas only)
    fast_share: bytes | None  # the (n, n) fast-path key's share (replicas only)
    public: PublicKeys

    def crypto(self) -> RealCrypto:
        return RealCrypto(self.public, self.signing_seed, self.key_share, self.fast_share)

    def to_bytes(self) -> bytes:
        p = self.public
        return msgpack.packb(
            [
                self.name,
                self.signing_seed,
                self.key_share,
                self.fast_share,
                sorted(p.replicas.items()),
                sorted(p.clients.items()),
                p.group,
                p.fast_group,
            ],
            use_bin_type=True,
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> NodeSecrets:
        name, seed, share, fast, replicas, clients, group, fast_group = msgpack.unpackb(data, raw=False)
        public = PublicKeys(
            {int(r): bytes(k) for r, k in replicas},
            {str(c): bytes(k) for c, k in clients},
            bytes(group),
            bytes(fast_group),
        )
        return cls(
            str(name),
            bytes(seed),
            bytes(share) if share is not None else None,
            bytes(fast) if fast is not None else None,
            public,
        )

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(self.to_bytes())

    @classmethod
    def load(cls, path: Path) -> NodeSecrets:
        return cls.from_bytes(Path(path).read_bytes())


@dataclass(frozen=True)
class ClusterKeys:
    public: PublicKeys
    replica_secrets: dict[int, NodeSecrets]
    client_secrets: dict[str, NodeSecrets]

    @classmethod
    def generate(cls, config: ClusterConfig, clients: list[str], seed: bytes | None = None) -> ClusterKeys:
        import thresh_sig

        seed = seed if seed is not None else os.urandom(32)
        replica_seeds = {r: _seed_for(seed, f"n{r}") for r in config.replica_ids}
        client_seeds = {c: _seed_for(seed, f"client/{c}") for c in clients}
        group, shares = thresh_sig.deal(config.quorum, config.n, seed=_seed_for(seed, "threshold"))
        fast_group, fast_shares = thresh_sig.deal(config.fast_quorum, config.n, seed=_seed_for(seed, "fast"))
        public = PublicKeys(
            replicas={r: bytes(SigningKey(s).verify_key) for r, s in replica_seeds.items()},
            clients={c: bytes(SigningKey(s).verify_key) for c, s in client_seeds.items()},
            group=bytes(group),
            fast_group=bytes(fast_group),
        )
        return cls(
            public,
            {
                r: NodeSecrets(f"n{r}", s, bytes(shares[r - 1]), bytes(fast_shares[r - 1]), public)
                for r, s in replica_seeds.items()
            },
            {c: NodeSecrets(c, s, None, None, public) for c, s in client_seeds.items()},
        )
