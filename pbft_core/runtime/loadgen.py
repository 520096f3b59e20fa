"""Closed-loop load on a pipes cluster: what `pbft bench smallbank` measures.

Theory of operation
-------------------
The cluster is the pipes runtime's (`pipes.Cluster` and `pipes.worker_main`): one spawned
process per replica, real Ed25519 and BLS, every replica with its SQLite file, no faults. The
calling process is the load generator: it hosts `clients` sans-I/O `Client`s, each closed-loop
(one request outstanding; the next is submitted the moment the last completes), all drawing
from one transaction stream (a `WorkloadGenerator`, or a workload file cycled).

Clients in one process share the table of verified reply roots: a replica signs one Merkle root
per executed batch, so its signature is checked once for the whole batch, not once per client.

Time is split into a warm-up (completions are not counted) and the measured window. At both
edges the generator asks every replica for its counters (without pausing the load: answers
arrive among the replies), so per-window figures — fast-path share, batch sizes, messages and
bytes — are differences of two snapshots. Afterwards the workers stop cleanly and report their
CPU time.
"""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..client import Client, Completion
from ..config import ClusterConfig, replica_name
from ..keys import ClusterKeys
from ..smallbank_workload import Transaction, WorkloadGenerator, WorkloadSpec
from ..storage import replica_db_file
from .host import config_to_bytes
from .packing import pack
from .pipes import K_GO, POLL_INTERVAL_S, ClientHost, Cluster, WorkerFailure, WorkerSpec

# Throughput over time is counted in buckets of this width.
BUCKET_S = 0.5
# How long the generator waits for the counters it asked for once the window closed.
QUERY_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class LoadOptions:
    config: ClusterConfig
    spec: WorkloadSpec
    clients: int = 64
    duration_s: float = 30.0
    warmup_s: float = 3.0
    workload: tuple[Transaction, ...] = ()  # empty: an endless stream generated from `spec`
    seed: bytes | None = None  # cluster keys (None: fresh random keys)
    startup_timeout_s: float = 60.0
    stop_timeout_s: float = 15.0


@dataclass
class LoadResult:
    options: LoadOptions
    latencies_ms: list[float]  # completions inside the measured window
    completed_at_s: list[float]  # their completion times, seconds since the window opened
    results: Counter[str]  # "ok" / "failed" / numeric reads, by kind
    by_op: Counter[str]
    reads_fell_back: int
    replica_counters: dict[int, dict[str, int]]  # per replica: window difference of its counters
    cpu_s: dict[str, float]  # per process in the measured window ("n1".., "load generator")
    final_states: dict[int, dict[str, Any]] = field(default_factory=dict)
    startup_s: float = 0.0


ProgressCallback = Callable[[float, float, int], None]  # (elapsed s, total s, completed)
Counters = dict[int, dict[str, int]]  # per replica: its counters, CPU time as ``cpu_ms``


def benchmark_clients(count: int) -> list[str]:
    """The client identities a load of `count` clients uses (``pbft keygen --clients``)."""
    return [f"c{i}" for i in range(count)]


class WindowTally:
    """What a load generator counts: the completions inside the measured window (both shells,
    pipes and TCP, feed it the same way), then the result from the replicas' counters asked
    for at the two edges of the window."""

    def __init__(self, options: LoadOptions) -> None:
        self.options = options
        self.open_ms = options.warmup_s * 1000.0
        self.close_ms = self.open_ms + options.duration_s * 1000.0
        self.latencies_ms: list[float] = []
        self.completed_at_s: list[float] = []
        self.results: Counter[str] = Counter()
        self.by_op: Counter[str] = Counter()
        self.fell_back = 0

    def record(self, op: str, completion: Completion, now_ms: float) -> bool:
        """Count a completion if it falls inside the window; False once the window closed
        (the client submits nothing more)."""
        if self.open_ms <= now_ms < self.close_ms:
            self.latencies_ms.append(completion.latency_ms)
            self.completed_at_s.append((now_ms - self.open_ms) / 1000.0)
            result = completion.result
            self.results["read" if isinstance(result, int) else str(result)] += 1
            self.by_op[op] += 1
            self.fell_back += completion.fell_back
        return now_ms < self.close_ms

    def result(
        self,
        before: Counters,
        after: Counters,
        generator_cpu_s: float,
        startup_s: float,
        final_states: dict[int, dict[str, Any]] | None = None,
    ) -> LoadResult:
        """The window's counters are differences of the two snapshots (a replica missing from
        either is left out)."""
        counters = {
            r: {k: v - before[r].get(k, 0) for k, v in after[r].items()} for r in after if r in before
        }
        cpu = {replica_name(r): c["cpu_ms"] / 1000.0 for r, c in counters.items() if "cpu_ms" in c}
        cpu["load generator"] = generator_cpu_s
        return LoadResult(
            options=self.options,
            latencies_ms=self.latencies_ms,
            completed_at_s=self.completed_at_s,
            results=self.results,
            by_op=self.by_op,
            reads_fell_back=self.fell_back,
            replica_counters=counters,
            cpu_s=cpu,
            final_states=final_states or {},
            startup_s=startup_s,
        )


def _worker_spec(config_bytes: bytes, keys: ClusterKeys, db_dir: Path) -> Callable[[int], WorkerSpec]:
    def spec_for(r: int) -> WorkerSpec:
        meta = {"replica": replica_name(r), "honest": True, "live": True, "attacks": [], "set": 1}
        return WorkerSpec(
            replica_id=r,
            config_bytes=config_bytes,
            secrets_bytes=keys.replica_secrets[r].to_bytes(),
            honest=True,
            attacks_bytes=pack([]),
            db_path=str(replica_db_file(db_dir, r)),
            meta_json=json.dumps(meta),
        )

    return spec_for


def _transactions(options: LoadOptions) -> Iterator[Transaction]:
    if options.workload:
        return itertools.cycle(options.workload)
    generator = WorkloadGenerator(options.spec)
    return iter(generator.next, None)  # type: ignore[arg-type]  # never returns None: endless


def run_load(options: LoadOptions, db_dir: Path, on_progress: ProgressCallback | None = None) -> LoadResult:
    """Run the cluster under closed-loop load for warm-up + duration; see the module docstring."""
    config = options.config
    db_dir.mkdir(parents=True, exist_ok=True)
    replicas = list(config.replica_ids)
    names = benchmark_clients(options.clients)
    t_start = time.monotonic()
    keys = ClusterKeys.generate(config, names, options.seed)
    verified: dict[tuple[int, bytes, bytes], None] = {}
    clients = {c: Client(c, config, keys.client_secrets[c].crypto(), verified=verified) for c in names}
    stream = _transactions(options)
    ops: dict[str, str] = {}
    tally = WindowTally(options)
    epoch = 0.0

    def now_ms() -> float:
        return (time.monotonic() - epoch) * 1000.0

    cluster = Cluster(None)

    def complete(name: str, completion: Completion, now: float) -> None:
        if tally.record(ops[name], completion, now):
            submit(name, now)

    def submit(name: str, now: float) -> None:
        txn = next(stream)
        ops[name] = txn.op
        host.submit(name, txn.op, txn.args, now, read_only=txn.read_only)

    host = ClientHost(cluster, clients, complete, frozenset(replicas))

    def snapshot() -> Counters:
        """Ask every replica for its counters and keep serving clients until all answered."""
        cluster.ask_states(replicas)
        deadline = time.monotonic() + QUERY_TIMEOUT_S
        while len(cluster.states) < len(replicas) and time.monotonic() < deadline:
            serve(POLL_INTERVAL_S)
        # CPU time rides along as a counter, so the window's CPU is a difference like the rest.
        return {
            r: {**s.get("metrics", {}), "cpu_ms": s.get("cpu_ms", 0)} for r, s in cluster.states.items()
        }

    def serve(timeout_s: float) -> None:
        host.serve(timeout_s, now_ms)

    total_s = options.warmup_s + options.duration_s

    def run_until(end_ms: float) -> Counters:
        last_report = 0.0
        while (now := now_ms()) < end_ms:
            serve(0.05)
            if on_progress is not None and now - last_report >= 200.0:
                on_progress(min(now / 1000.0, total_s), total_s, len(tally.latencies_ms))
                last_report = now
        return snapshot()

    states: dict[int, dict[str, Any]] = {}
    try:
        cluster.spawn(replicas, _worker_spec(config_to_bytes(config), keys, db_dir))
        cluster.wait_hello(options.startup_timeout_s)
        epoch = time.monotonic()
        startup_s = epoch - t_start
        for r in replicas:
            cluster.send_frame(r, K_GO + pack([epoch]))
        for name in names:
            submit(name, now_ms())
        host.send()
        before = run_until(tally.open_ms)
        generator_cpu = time.process_time()
        after = run_until(tally.close_ms)
        generator_cpu = time.process_time() - generator_cpu
        states = cluster.stop(options.stop_timeout_s)
    finally:
        cluster.kill()

    return tally.result(before, after, generator_cpu, startup_s, states)


__all__ = [
    "BUCKET_S",
    "LoadOptions",
    "LoadResult",
    "WindowTally",
    "WorkerFailure",
    "benchmark_clients",
    "run_load",
]
