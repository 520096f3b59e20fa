"""Key material for a cluster: who is who, and the threshold key everyone verifies against.

`ClusterKeys.generate` deals, from one seed, an Ed25519 identity per replica and per client and,
for a cluster with BLS certificates (the default), two BLS threshold keys whose shares are the
replicas' (share i belongs to replica i): a (2f+1, n) key for certificates and an (n, n) key
for the fast path, whose n-of-n aggregate verifies against the sum of its verification keys.
(The fast path cannot reuse the 2f+1 key: 2f+1 of its shares determine all the others.) A
cluster with ``ed25519`` certificates needs no key beyond the identities (`multisig`): its
group keys are empty and its replicas hold no key share. The scheme is part of the public keys
(`PublicKeys.certificates`), so every `NodeSecrets.crypto()` speaks the cluster's.

`generate_by_dkg` makes the same two keys with no dealer (`pbft keygen --dkg`): one process per
replica runs `thresh_sig.dkg` twice (t = 2f+1, then t = n: the fast-path key is a DKG too), and
the parent only routes bytes between them over `multiprocessing` pipes. Each replica process
draws its own Ed25519 identity and DKG key pair, ends up with its own two key shares, and writes
its own secrets file; it tells the parent only public things (its identity key, its DKG public
key, the group keys it computed). Shares travel encrypted to their recipient, so the parent never
sees one. The parent checks that every replica computed the same group keys from all n
contributions before anyone writes a file, and writes the clients' keys and the cluster file.

`NodeSecrets` is what one process needs (its own secrets plus everyone's public keys); it has a
msgpack encoding so the pipes shell can hand it to a worker as bytes, and `save`/`load` for key
directories (secrets written with mode 0600).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
from nacl.signing import SigningKey

from .config import ClusterConfig
from .crypto import BLS, PublicKeys, RealCrypto


def _seed_for(seed: bytes, label: str) -> bytes:
    return hashlib.sha256(b"pbft/v1/keys/" + seed + b"/" + label.encode()).digest()


def _public_fields(p: PublicKeys) -> list[object]:
    return [sorted(p.replicas.items()), sorted(p.clients.items()), p.group, p.fast_group, p.certificates]


def _public_from_fields(fields: list[object]) -> PublicKeys:
    # Secrets files written before the certificate scheme existed end at the group keys: BLS.
    replicas, clients, group, fast_group, certificates = [*fields, BLS] if len(fields) == 4 else fields
    return PublicKeys(
        {int(r): bytes(k) for r, k in replicas},  # type: ignore[attr-defined]
        {str(c): bytes(k) for c, k in clients},  # type: ignore[attr-defined]
        bytes(group),  # type: ignore[arg-type]
        bytes(fast_group),  # type: ignore[arg-type]
        str(certificates),
    )


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
        return msgpack.packb(
            [self.name, self.signing_seed, self.key_share, self.fast_share, *_public_fields(self.public)],
            use_bin_type=True,
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> NodeSecrets:
        name, seed, share, fast, *public_fields = msgpack.unpackb(data, raw=False)
        public = _public_from_fields(public_fields)
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
        group, fast_group = b"", b""
        shares: dict[int, bytes | None] = dict.fromkeys(config.replica_ids)
        fast_shares: dict[int, bytes | None] = dict.fromkeys(config.replica_ids)
        if config.certificates == BLS:
            group_key, dealt = thresh_sig.deal(config.quorum, config.n, seed=_seed_for(seed, "threshold"))
            fast_key, fast_dealt = thresh_sig.deal(config.fast_quorum, config.n, seed=_seed_for(seed, "fast"))
            group, fast_group = bytes(group_key), bytes(fast_key)
            shares = {r: bytes(dealt[r - 1]) for r in config.replica_ids}
            fast_shares = {r: bytes(fast_dealt[r - 1]) for r in config.replica_ids}
        public = PublicKeys(
            replicas={r: bytes(SigningKey(s).verify_key) for r, s in replica_seeds.items()},
            clients={c: bytes(SigningKey(s).verify_key) for c, s in client_seeds.items()},
            group=group,
            fast_group=fast_group,
            certificates=config.certificates,
        )
        return cls(
            public,
            {r: NodeSecrets(f"n{r}", s, shares[r], fast_shares[r], public) for r, s in replica_seeds.items()},
            {c: NodeSecrets(c, s, None, None, public) for c, s in client_seeds.items()},
        )


# ---- keys without a dealer: `pbft keygen --dkg` -------------------------------------------------
#
# Parent <-> participant messages are msgpack lists of bytes and ints over `send_bytes`:
#   participant: ["hello", identity key, DKG public key]
#   parent:      ["start", [DKG public key of n1..nN], context]
#   participant: ["dkg", which key (0 certificates, 1 fast path), message]     a broadcast
#   parent:      ["dkg", which key, sender, message]                           forwarded to all
#   participant: ["done", group key, fast group key, qualified, fast qualified]
#   parent:      ["write", public keys]        (everyone agreed; write your own secrets file)
#   participant: ["written"]            or, at any point, ["error", text]

DKG_PHASE_TIMEOUT_S = 30.0
_DKG_KEYS = ("certificates", "fast path")


class DkgRunError(RuntimeError):
    """`generate_by_dkg` could not produce a cluster's keys; the message says why."""


def _pack(*items: object) -> bytes:
    return msgpack.packb(list(items), use_bin_type=True)


def dkg_participant_main(conn: Any, spec: bytes) -> None:
    """One replica's process in `generate_by_dkg` (the target of a spawned process)."""
    try:
        _dkg_participant(conn, spec)
    except Exception as exc:  # report, then exit non-zero: the parent names the replica
        with contextlib.suppress(OSError):
            conn.send_bytes(_pack("error", f"{type(exc).__name__}: {exc}"))
        raise SystemExit(1) from None


def _dkg_participant(conn: Any, spec: bytes) -> None:
    import thresh_sig
    from thresh_sig.dkg import DkgKeyPair, DkgParticipant

    replica, f, thresholds, secrets_path, phase_timeout_s = msgpack.unpackb(spec, raw=False)
    n = 3 * f + 1
    signing_seed = os.urandom(32)
    keys = DkgKeyPair.generate()
    conn.send_bytes(_pack("hello", bytes(SigningKey(signing_seed).verify_key), keys.public))
    kind, dkg_publics, context = msgpack.unpackb(conn.recv_bytes(), raw=False)
    assert kind == "start", kind
    runs = [
        DkgParticipant(
            replica, t, n, keys, [bytes(k) for k in dkg_publics],
            context=bytes(context) + b"/" + label.encode(), min_qualified=f + 1,
        )
        for t, label in zip(thresholds, _DKG_KEYS, strict=True)
    ]  # fmt: skip
    for which, run in enumerate(runs):
        conn.send_bytes(_pack("dkg", which, run.start()))
    # The synchrony bound: a phase ends when every message it can bring has arrived (all
    # participants are live local processes, so this is the usual case) or after the timeout.
    deadlines = [time.monotonic() + phase_timeout_s for _ in runs]
    while True:
        for which, run in enumerate(runs):
            while run.result is None and (run.phase_complete or time.monotonic() >= deadlines[which]):
                out = _advance(run)
                if out is not None:
                    conn.send_bytes(_pack("dkg", which, out))
                deadlines[which] = time.monotonic() + phase_timeout_s
        pending = [d for d, run in zip(deadlines, runs, strict=True) if run.result is None]
        if not pending:
            break
        if conn.poll(max(0.0, min(pending) - time.monotonic())):
            kind, which, sender, data = msgpack.unpackb(conn.recv_bytes(), raw=False)
            # Undecodable or foreign bytes are as if never sent: the DKG copes with silence.
            with contextlib.suppress(thresh_sig.ThresholdError):
                runs[which].receive(sender, bytes(data))
    threshold, fast = (run.result for run in runs)
    assert threshold is not None and fast is not None
    conn.send_bytes(
        _pack("done", bytes(threshold.group), bytes(fast.group), threshold.qualified, fast.qualified)
    )
    kind, public_fields = msgpack.unpackb(conn.recv_bytes(), raw=False)
    assert kind == "write", kind
    public = _public_from_fields(public_fields)
    # Trust the router for nothing secret: the file is written only if it names our own keys.
    if (public.group, public.fast_group) != (bytes(threshold.group), bytes(fast.group)):
        raise DkgRunError("the parent's group keys differ from the ones this replica computed")
    if public.replicas.get(replica) != bytes(SigningKey(signing_seed).verify_key):
        raise DkgRunError("the parent's identity key for this replica is not ours")
    secrets = NodeSecrets(
        f"n{replica}", signing_seed, bytes(threshold.share), bytes(fast.share), public
    )
    path = Path(secrets_path)
    secrets.save(path)
    path.parent.chmod(0o700)
    conn.send_bytes(_pack("written"))


def _advance(run: Any) -> bytes | None:
    from thresh_sig.dkg import Phase

    if run.phase is Phase.DEALING:
        return run.end_of_dealing()
    if run.phase is Phase.COMPLAINTS:
        return run.end_of_complaints()
    run.end_of_justifications()
    return None


def generate_by_dkg(
    config: ClusterConfig,
    clients: list[str],
    secrets_paths: dict[int, Path],
    *,
    phase_timeout_s: float = DKG_PHASE_TIMEOUT_S,
) -> tuple[PublicKeys, dict[str, NodeSecrets]]:
    """Run the two DKGs among one process per replica; each writes its own secrets file to
    ``secrets_paths[r]``. Returns the public keys and the clients' secrets (for the caller to
    write: client identities are not threshold keys, and no replica needs them).

    Raises:
        DkgRunError: a participant failed, disagreed, or disqualified someone (every participant
            is a local honest process here, so anything but a unanimous result is a bug or a
            crash, never a key to use).
    """
    import multiprocessing as mp
    from multiprocessing.connection import wait

    import thresh_sig

    ctx = mp.get_context("spawn")
    n = config.n
    thresholds = [config.quorum, config.fast_quorum]
    conns: dict[int, Any] = {}
    processes: dict[int, Any] = {}
    try:
        for r in config.replica_ids:
            ours, theirs = ctx.Pipe(duplex=True)
            spec = _pack(r, config.f, thresholds, str(secrets_paths[r]), phase_timeout_s)
            process = ctx.Process(
                target=dkg_participant_main, args=(theirs, spec), name=f"pbft-dkg-n{r}", daemon=True
            )
            process.start()
            theirs.close()
            conns[r], processes[r] = ours, process
        deadline = time.monotonic() + 60.0 + 4 * phase_timeout_s
        by_conn = {conn: r for r, conn in conns.items()}
        by_sentinel = {p.sentinel: r for r, p in processes.items()}
        replies: dict[str, dict[int, list[Any]]] = {"hello": {}, "done": {}, "written": {}}
        exited: set[int] = set()

        def pump(stage: str) -> None:
            """Route broadcasts until every participant has sent `stage`."""
            while len(replies[stage]) < n:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    missing = sorted(set(config.replica_ids) - set(replies[stage]))
                    raise DkgRunError(f"timed out waiting for {', '.join(f'n{r}' for r in missing)}")
                # A participant may exit as soon as it has sent its last answer: an exit is an
                # error only for one that has not answered this stage.
                for r in exited - set(replies[stage]):
                    raise DkgRunError(f"n{r}'s key generation process exited")
                for ready in wait([*by_conn, *by_sentinel], remaining):
                    if ready in by_sentinel:
                        r = by_sentinel[ready]
                        if not conns[r].poll():  # an exit with nothing left to read
                            del by_sentinel[ready]
                            exited.add(r)
                        continue
                    r = by_conn[ready]
                    try:
                        kind, *rest = msgpack.unpackb(ready.recv_bytes(), raw=False)
                    except EOFError:
                        del by_conn[ready]
                        exited.add(r)
                        continue
                    if kind == "error":
                        raise DkgRunError(f"n{r}: {rest[0]}")
                    if kind == "dkg":
                        which, data = rest
                        forward = _pack("dkg", which, r, data)
                        for other, conn in conns.items():
                            if other != r:
                                conn.send_bytes(forward)
                    else:
                        replies[kind][r] = rest

        pump("hello")
        identities = {r: bytes(replies["hello"][r][0]) for r in config.replica_ids}
        dkg_publics = [bytes(replies["hello"][r][1]) for r in config.replica_ids]
        start = _pack("start", dkg_publics, b"pbft keygen --dkg/" + os.urandom(16))
        for conn in conns.values():
            conn.send_bytes(start)
        pump("done")
        outcomes = {tuple(bytes(v) if isinstance(v, bytes) else tuple(v) for v in replies["done"][r]) for r in conns}
        if len(outcomes) != 1:
            raise DkgRunError("the replicas computed different group keys")
        group, fast_group, qualified, fast_qualified = outcomes.pop()
        everyone = tuple(config.replica_ids)
        if qualified != everyone or fast_qualified != everyone:
            raise DkgRunError(f"not every replica qualified: {qualified} / {fast_qualified}")
        fast = thresh_sig.GroupKey.from_bytes(fast_group)
        if n > 1 and fast.aggregate_key == fast.public_key:  # pragma: no cover - ~2^-255
            raise DkgRunError("the fast-path key's aggregate equals its public key; run keygen again")
        client_secrets = _client_secrets(clients)
        public = PublicKeys(
            replicas=identities,
            clients={c: bytes(SigningKey(s.signing_seed).verify_key) for c, s in client_secrets.items()},
            group=group,
            fast_group=fast_group,
        )
        client_secrets = {c: NodeSecrets(c, s.signing_seed, None, None, public) for c, s in client_secrets.items()}
        write = _pack("write", _public_fields(public))
        for conn in conns.values():
            conn.send_bytes(write)
        pump("written")
        return public, client_secrets
    finally:
        for conn in conns.values():
            conn.close()
        for process in processes.values():
            process.join(5.0)
            if process.is_alive():
                process.terminate()
                process.join(5.0)


def _client_secrets(clients: list[str]) -> dict[str, NodeSecrets]:
    """Fresh identities for the clients (public keys filled in by the caller)."""
    placeholder = PublicKeys({}, {}, b"", b"")
    return {c: NodeSecrets(c, os.urandom(32), None, None, placeholder) for c in clients}
