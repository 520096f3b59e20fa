"""What one ordered request costs each replica and the client, in CPU, phase by phase.

Theory of operation. The SmallBank benchmark measures the whole cluster: eight processes on
shared cores, so its CPU per transaction mixes protocol work with transport, scheduling and the
load generator, and single runs vary by several percent. This harness takes the transport and
the scheduler out: seven `NodeHost`s (real keys, real crypto, real SQLite stores) and the
clients live in one thread, messages go from outbox to inbox in FIFO order, and every call
into a host or a client is timed with the thread's CPU clock. Each batch of `batch` write
requests (SmallBank's mix without its read) runs the whole instance: requests reach the
leader, the PRE-PREPARE, the shares, the FAST-COMMIT (or the certificates when the fast path
is off), execution, replies, and every K-th batch a checkpoint.

Crypto calls go through a timing proxy, so each phase splits into "crypto" (what the floor
counts) and "other" (decoding, validation, execution, replies, the inspection log, SQLite):
the part of the cost that is Python's. Times are per ordered request, averaged over the
measured batches, for the leader and the mean backup; with `profile` the backup n2's work is
also run under cProfile.
"""

from __future__ import annotations

import cProfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..client import Client
from ..config import ClusterConfig
from ..crypto import NodeCrypto
from ..keys import ClusterKeys
from ..messages import MESSAGE_TYPES, DecodeError, Reply, decode_unpacked, encode, unpack
from ..replica import Replica
from ..smallbank import customers_of
from ..smallbank_workload import WorkloadGenerator, WorkloadSpec
from ..storage import ReplicaStore
from .host import NodeHost
from .pipes.clients import awaited
from .pipes.frames import STORE_COMMIT_INTERVAL_MS

LEADER = 1
PROFILED = 2  # the backup run under cProfile with `profile`
WARMUP_BATCHES = 3
CRYPTO_METHODS = (
    "sign", "verify_replica", "verify_client", "sign_share", "sign_fast_share", "verify_share",
    "combine", "verify_certificate", "aggregate_all", "verify_aggregate",
)  # fmt: skip


class _Tally:
    """Nanoseconds of CPU per (node, phase), and how much of it was crypto."""

    def __init__(self) -> None:
        self.total: Counter[tuple[str, str]] = Counter()
        self.crypto: Counter[tuple[str, str]] = Counter()
        self.phase: tuple[str, str] | None = None
        self.on = False

    def clear(self) -> None:
        self.total.clear()
        self.crypto.clear()


class TimedCrypto:
    """A `NodeCrypto` that charges its time to the phase being measured."""

    def __init__(self, inner: NodeCrypto, tally: _Tally) -> None:
        self._inner = inner
        self._tally = tally
        for name in CRYPTO_METHODS:
            setattr(self, name, self._timed(getattr(inner, name)))

    def _timed(self, method: Callable[..., Any]) -> Callable[..., Any]:
        tally = self._tally

        def call(*args: Any) -> Any:
            start = time.thread_time_ns()
            try:
                return method(*args)
            finally:
                if tally.on and tally.phase is not None:
                    tally.crypto[tally.phase] += time.thread_time_ns() - start

        return call

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@dataclass(frozen=True)
class PhaseCost:
    node: str  # "leader", "backup" (the mean of the n-1 backups) or "client"
    phase: str  # what the node was given: a message type, "tick", "flush" or "submit"/"reply"
    total_us: float  # per ordered request
    crypto_us: float

    @property
    def other_us(self) -> float:
        return self.total_us - self.crypto_us


@dataclass
class ReplicaCost:
    config: ClusterConfig
    batch: int
    batches: int
    phases: list[PhaseCost] = field(default_factory=list)
    fast_commits: int = 0
    profile_path: Path | None = None

    def node_total(self, node: str) -> tuple[float, float]:
        rows = [p for p in self.phases if p.node == node]
        return sum(p.total_us for p in rows), sum(p.crypto_us for p in rows)

    def cluster_total_us(self) -> float:
        """CPU per ordered request across the cluster and its client: the figure the
        SmallBank benchmark's "CPU per transaction" approaches without transport."""
        leader, _ = self.node_total("leader")
        backup, _ = self.node_total("backup")
        client, _ = self.node_total("client")
        return leader + (self.config.n - 1) * backup + client

    def as_dict(self) -> dict[str, Any]:
        return {
            "certificates": self.config.certificates,
            "fast_path": self.config.fast_path,
            "batch": self.batch,
            "batches": self.batches,
            "fast_commits": self.fast_commits,
            "cluster_us_per_request": round(self.cluster_total_us(), 1),
            "phases": [
                {"node": p.node, "phase": p.phase, "total_us": round(p.total_us, 2), "crypto_us": round(p.crypto_us, 2)}
                for p in self.phases
            ],
        }


def _type_of(data: bytes) -> str:
    wire = unpack(data)
    cls = MESSAGE_TYPES.get(wire[0]) if isinstance(wire, list) and wire else None
    return cls.__name__ if cls is not None else "?"


def measure_replica_cost(
    config: ClusterConfig,
    *,
    batch: int,
    batches: int,
    store_dir: Path,
    seed: int = 1,
    profile: Path | None = None,
) -> ReplicaCost:
    """Run `batches` (after `WARMUP_BATCHES`) full instances of `batch` requests each."""
    config = config.with_changes(batch_size_max=batch)
    clients = [f"c{i}" for i in range(batch)]
    keys = ClusterKeys.generate(config, clients, seed=seed.to_bytes(8, "big") * 4)
    tally = _Tally()
    network: list[tuple[int | None, str | None, str, bytes]] = []  # (to replica, to client, sender, data)
    hosts: dict[int, NodeHost] = {}
    for r in config.replica_ids:
        crypto = TimedCrypto(keys.replica_secrets[r].crypto(), tally)
        sender = f"n{r}"

        def to_replica(to: int, data: bytes, _sender: str = sender) -> None:
            network.append((to, None, _sender, data))

        def to_client(client: str, data: bytes, _sender: str = sender) -> None:
            network.append((None, client, _sender, data))

        hosts[r] = NodeHost(
            Replica(r, config, crypto),  # type: ignore[arg-type]
            ReplicaStore(store_dir / f"n{r}.db"),
            to_replica,
            to_client,
            links=frozenset(x for x in config.replica_ids if x != r),
            # The store commits as the pipes shell's does: trailing, not on every flush.
            store_commit_interval_ms=STORE_COMMIT_INTERVAL_MS,
            clock_ms=lambda: time.monotonic() * 1000.0,
        )
    verified: dict[tuple[int, bytes, bytes], None] = {}
    client_crypto = {c: TimedCrypto(keys.client_secrets[c].crypto(), tally) for c in clients}
    sans_io = {c: Client(c, config, client_crypto[c], verified=verified) for c in clients}  # type: ignore[arg-type]
    workload = WorkloadGenerator(WorkloadSpec(accounts=customers_of(config.state) or 1000, seed=seed))
    profiler = cProfile.Profile(time.thread_time) if profile is not None else None
    now_ms = 0.0

    def charged(node: str, phase: str, work: Callable[[], None]) -> None:
        tally.phase = (node, phase)
        profiled = profiler is not None and tally.on and node == f"n{PROFILED}"
        start = time.thread_time_ns()
        if profiled:
            profiler.enable()  # type: ignore[union-attr]
        work()
        if profiled:
            profiler.disable()  # type: ignore[union-attr]
        if tally.on:
            tally.total[(node, phase)] += time.thread_time_ns() - start
        tally.phase = None

    def pump() -> None:
        while True:
            for r, host in hosts.items():
                if host.wake_at_ms is not None and host.wake_at_ms <= now_ms:
                    charged(f"n{r}", "tick", lambda h=host: h.tick_if_due(now_ms))  # type: ignore[misc]
                charged(f"n{r}", "flush", host.flush)
            if not network:
                return
            pending = network[:]
            network.clear()
            for to, client, sender, data in pending:
                if to is not None:
                    phase = _type_of(data)
                    peer = int(sender[1:])
                    charged(f"n{to}", phase, lambda h=hosts[to], p=peer, d=data: h.on_peer_bytes(p, d, now_ms))  # type: ignore[misc]
                elif client is not None:
                    charged("client", "reply", lambda c=client, d=data: _client_reply(sans_io[c], d, now_ms))  # type: ignore[misc]

    fast_before = 0
    for index in range(WARMUP_BATCHES + batches):
        if index == WARMUP_BATCHES:
            tally.clear()
            tally.on = True
            fast_before = hosts[LEADER].replica.metrics["commits.fast"]
        for name in clients:
            txn = workload.next()
            while txn.read_only:
                txn = workload.next()
            ready_box: list[Any] = []
            charged("client", "submit", lambda n=name, t=txn, box=ready_box, at=now_ms: box.append(sans_io[n].submit(t.op, t.args, at)))  # type: ignore[misc]
            for to, request in ready_box[0].to_replicas:
                data = encode(request)
                charged(f"n{to}", "Request", lambda d=data, n=name, h=hosts[to], at=now_ms: h.on_client_bytes(n, d, at))  # type: ignore[misc]
        pump()
        now_ms += 1.0
        pump()
        stuck = [c for c in clients if sans_io[c].busy]
        if stuck:
            raise RuntimeError(f"batch {index}: {len(stuck)} requests did not complete")
    tally.on = False
    for host in hosts.values():
        host.finish()
        if host.store is not None:
            host.store.close()
    if profiler is not None and profile is not None:
        profiler.dump_stats(str(profile))
    requests = batch * batches
    per_phase: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    backups = config.n - 1
    for (node, phase), ns in tally.total.items():
        role = "client" if node == "client" else "leader" if node == f"n{LEADER}" else "backup"
        share = 1.0 / backups if role == "backup" else 1.0
        per_phase[(role, phase)][0] += ns * share / 1000.0 / requests
        per_phase[(role, phase)][1] += tally.crypto[(node, phase)] * share / 1000.0 / requests
    order = {"client": 2, "leader": 0, "backup": 1}
    phases = [
        PhaseCost(role, phase, total, crypto)
        for (role, phase), (total, crypto) in sorted(per_phase.items(), key=lambda kv: (order[kv[0][0]], -kv[1][0]))
    ]
    return ReplicaCost(
        config,
        batch,
        batches,
        phases,
        fast_commits=hosts[LEADER].replica.metrics["commits.fast"] - fast_before,
        profile_path=profile,
    )


def _client_reply(client: Client, data: bytes, now_ms: float) -> None:
    """As the benchmark's client host does: a reply to a request already answered is skipped
    after reading its timestamp (`ClientHost.on_frames`)."""
    try:
        wire = unpack(data)
        if not awaited(client, wire):
            return
        reply = decode_unpacked(wire)
    except DecodeError:
        return
    if isinstance(reply, Reply):
        client.step(reply, now_ms)
