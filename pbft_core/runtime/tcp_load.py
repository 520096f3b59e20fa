"""Closed-loop load on a running TCP cluster: what `pbft bench smallbank --cluster` measures.

Theory of operation
-------------------
The same measurement as `loadgen.run_load` (same `LoadOptions`, same `LoadResult`, so
``build_report`` turns either into the same table and JSON), but nothing is spawned: the
replicas are ``pbft node`` processes already serving the cluster file, on this host or on
seven others, and the load generator is one `ClientPool` in this process (one authenticated
connection per replica, every benchmark client multiplexed over it).

- **Clients** are the cluster's benchmark identities ``c0..c{clients-1}`` that
  ``pbft keygen --clients N`` dealt; their secrets are read from ``clients/cK/secrets.key``
  next to the cluster file. Each is closed-loop (one transaction outstanding; the next is
  submitted when the last completes), all drawing from one transaction stream, exactly as in
  `run_load`. Request timestamps start at the wall clock, so runs against the same cluster
  never reuse one.
- **The replicated state** must be the workload's: SmallBank with as many customers as the
  workload has accounts (``--state smallbank:N`` at keygen). `prepare` checks it before any
  connection is made, and the replica parameters of the report (batch size, pipelining depth,
  checkpoint interval, fast path, timers) are the cluster file's, since they are the replicas'.
- **Time** is split as in `run_load`: the load starts once every replica is connected (or,
  after a grace period, at least 2f+1 of them); completions during the warm-up are not
  counted; those inside the measured window are. At both edges of the window every replica is
  asked for its status (the query `pbft client status` uses, answered among the replies
  without pausing the load); its ``metrics`` (the replica's counters plus messages and bytes
  its shell sent) and ``cpu_ms`` (CPU time of its process) give the window's counters as the
  difference of the two answers. A replica that does not answer one of the two queries is left
  out of the counters, and the report shows what it cannot compute as missing.
- **After the window** clients stop submitting, and the generator waits briefly for the
  transactions still outstanding (so the cluster is idle for the next run), then disconnects.
  The replicas keep running.

Completions are counted by the same `WindowTally` as `run_load`'s.

`run_local_tcp_load` (``pbft bench smallbank --transport tcp``) brings its own cluster: it
deals keys for the run's configuration into a temporary directory (loopback addresses on free
ports, one benchmark client key per client), starts seven ``pbft node`` processes
(`tcp_local.LocalCluster`, data and logs under the run directory), waits until each listens,
runs `run_tcp_load` against them, and stops them (SIGTERM, then kill -9 after a timeout or a
second interruption), whatever happened: no node outlives the run.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..clusterfile import ClusterFile, ClusterFileError
from ..config import replica_name
from ..keys import NodeSecrets
from ..smallbank import customers_of
from .loadgen import (
    QUERY_TIMEOUT_S,
    Counters,
    LoadOptions,
    LoadResult,
    ProgressCallback,
    WindowTally,
    _transactions,
    benchmark_clients,
)
from .tcp import ClientPool, NodeLog, PoolCompletion
from .tcp.limits import DURABILITY_MODES, DURABILITY_POWER
from .tcp_local import LocalCluster, local_cluster_file

# How long to wait for every replica to accept the pool before starting with 2f+1 of them.
CONNECT_ALL_TIMEOUT_S = 10.0
# After the window, how long outstanding transactions may take to finish before disconnecting.
DRAIN_TIMEOUT_S = 5.0
PROGRESS_INTERVAL_S = 0.2
# `run_local_tcp_load`: how long seven fresh nodes may take to listen, and to stop cleanly.
LOCAL_START_TIMEOUT_S = 60.0
LOCAL_STOP_TIMEOUT_S = 15.0

NoticeCallback = Callable[[str], None]


class TcpLoadUsageError(ValueError):
    """The cluster cannot run this load as asked (wrong state, too few client keys, ...)."""


class ClusterUnavailable(RuntimeError):
    """The cluster could not be reached, or committed nothing."""


def _load_cluster(cluster_file: Path | ClusterFile) -> ClusterFile:
    if isinstance(cluster_file, ClusterFile):
        return cluster_file
    try:
        return ClusterFile.load(cluster_file)
    except ClusterFileError as exc:
        raise TcpLoadUsageError(str(exc)) from None


def prepare(
    options: LoadOptions,
    cluster_file: Path | ClusterFile,
    requested: Mapping[str, Any] | None = None,
) -> LoadOptions:
    """`options` with the cluster's configuration, after checking the cluster can run them.

    `requested` maps `ClusterConfig` fields the caller asked for explicitly (e.g. a
    ``--batch-size`` on the command line; ``timers.NAME`` for a timer) to their values; one the
    cluster file contradicts is an error, since the replicas run with the file's. Raises
    `TcpLoadUsageError`.
    """
    cluster = _load_cluster(cluster_file)
    config = cluster.config
    where = cluster.path if cluster.path is not None else "the cluster file"
    accounts = customers_of(config.state)
    if accounts is None:
        raise TcpLoadUsageError(
            f"the cluster's state is {config.state!r} ({where}), not SmallBank: deal the cluster "
            f"with `pbft keygen --state smallbank:{options.spec.accounts}`"
        )
    if accounts != options.spec.accounts:
        raise TcpLoadUsageError(
            f"the workload has {options.spec.accounts} accounts but the cluster's state is "
            f"smallbank:{accounts} ({where}): use --accounts {accounts}, or a cluster dealt with "
            f"`pbft keygen --state smallbank:{options.spec.accounts}`"
        )
    for name, value in (requested or {}).items():
        actual: Any = config
        for part in name.split("."):
            actual = getattr(actual, part)
        if actual != value:
            raise TcpLoadUsageError(
                f"{name} = {value!r} was asked for, but the replicas run with {name} = "
                f"{actual!r} ({where}); replica parameters come from the cluster file: leave "
                "the option out, or edit the file and restart the replicas"
            )
    names = benchmark_clients(options.clients)
    missing = [c for c in names if c not in cluster.public.clients]
    if missing:
        have = sum(1 for c in cluster.public.clients if c.startswith("c") and c[1:].isdigit())
        raise TcpLoadUsageError(
            f"--clients {options.clients} needs client keys c0..c{options.clients - 1}, but "
            f"{where} has {have} benchmark clients (no {missing[0]}): deal the cluster with "
            f"`pbft keygen --clients {options.clients}` or more, or use --clients {have}"
            if have
            else f"--clients {options.clients} needs client keys c0..c{options.clients - 1}, but "
            f"{where} has no benchmark clients: deal the cluster with "
            f"`pbft keygen --clients {options.clients}`"
        )
    _load_secrets(cluster, names)  # unreadable or foreign key files: an error now, not after the floor
    return replace(options, config=config)


def _load_secrets(cluster: ClusterFile, names: Sequence[str]) -> list[NodeSecrets]:
    try:
        return [cluster.load_secrets(name) for name in names]
    except ClusterFileError as exc:
        raise TcpLoadUsageError(f"{exc} (copy clients/cK/ next to the cluster file)") from None


def _stderr_notice(text: str) -> None:
    print(f"warning: {text}", file=sys.stderr, flush=True)


def run_tcp_load(
    options: LoadOptions,
    cluster_file: Path | ClusterFile,
    on_progress: ProgressCallback | None = None,
    *,
    on_notice: NoticeCallback | None = None,
) -> LoadResult:
    """Run closed-loop load for warm-up + duration against the running cluster of
    `cluster_file`; see the module docstring. Raises `TcpLoadUsageError` (the cluster cannot
    run this load) or `ClusterUnavailable` (it cannot be reached or committed nothing)."""
    cluster = _load_cluster(cluster_file)
    options = prepare(options, cluster)
    secrets = _load_secrets(cluster, benchmark_clients(options.clients))
    notice = on_notice or _stderr_notice
    return asyncio.run(_Load(options, cluster, secrets, on_progress, notice).run())


def run_local_tcp_load(
    options: LoadOptions,
    run_dir: Path,
    on_progress: ProgressCallback | None = None,
    *,
    durability: str = DURABILITY_POWER,
    on_notice: NoticeCallback | None = None,
) -> LoadResult:
    """Run the load on a fresh local TCP cluster of `options.config` (see the module
    docstring): node data and logs go to `run_dir`, keys to a temporary directory removed
    afterwards. Raises `ClusterUnavailable` when a node does not start, the cluster commits
    nothing, or a node does not stop cleanly."""
    assert durability in DURABILITY_MODES
    config = options.config
    replicas = list(config.replica_ids)
    run_dir.mkdir(parents=True, exist_ok=True)
    logs = run_dir / "logs"
    with tempfile.TemporaryDirectory(prefix="pbft-bench-keys-") as keys:
        cluster = local_cluster_file(Path(keys), config, benchmark_clients(options.clients), seed=options.seed)
        assert cluster.path is not None
        node_args = {r: ["--durability", durability] for r in replicas}
        local = LocalCluster(cluster.path, run_dir, logs, node_args)
        addresses = {r: (cluster.addresses[r].host, cluster.addresses[r].port) for r in replicas}
        try:
            local.start_all(replicas)
            failure = local.wait_listening(replicas, addresses, min(LOCAL_START_TIMEOUT_S, options.startup_timeout_s))
            if failure is not None:
                raise ClusterUnavailable(f"{failure} (logs in {logs})")
            result = run_tcp_load(options, cluster, on_progress, on_notice=on_notice)
        finally:
            codes = local.stop_or_kill(LOCAL_STOP_TIMEOUT_S)
    bad = {r: c for r, c in codes.items() if c != 0}
    if bad:
        raise ClusterUnavailable(
            "; ".join(
                f"{replica_name(r)} {'had to be killed' if c is None else f'exited with {c}'} "
                f"(see {logs / f'{replica_name(r)}.log'})"
                for r, c in sorted(bad.items())
            )
        )
    return result


class _Load:
    """The asyncio side of one run."""

    def __init__(
        self,
        options: LoadOptions,
        cluster: ClusterFile,
        secrets: list[NodeSecrets],
        on_progress: ProgressCallback | None,
        notice: NoticeCallback,
    ) -> None:
        self.options = options
        self.cluster = cluster
        self.config = options.config
        self.secrets = secrets
        self.on_progress = on_progress
        self.notice = notice
        self.replicas = list(self.config.replica_ids)
        self.stream = _transactions(options)
        self.tally = WindowTally(options)
        self.completed_total = 0
        self.busy = 0
        self.idle = asyncio.Event()
        self.epoch = 0.0
        self.pool: ClientPool | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def now_ms(self) -> float:
        assert self.loop is not None
        return (self.loop.time() - self.epoch) * 1000.0

    # ---- the closed loop -------------------------------------------------------------------

    def submit(self, name: str) -> None:
        assert self.pool is not None
        txn = next(self.stream)
        future = self.pool.submit(name, txn.op, txn.args, read_only=txn.read_only)
        self.busy += 1
        future.add_done_callback(lambda f, name=name, op=txn.op: self.done(name, op, f))

    def done(self, name: str, op: str, future: asyncio.Future[PoolCompletion]) -> None:
        self.busy -= 1
        if future.cancelled() or future.exception() is not None:
            if self.busy == 0:
                self.idle.set()
            return
        self.completed_total += 1
        if self.tally.record(op, future.result().completion, self.now_ms()):
            self.submit(name)
        elif self.busy == 0:
            self.idle.set()

    # ---- snapshots -------------------------------------------------------------------------

    async def snapshot(self) -> Counters:
        """Every replica's counters (and CPU time, as a counter), asked for without pausing
        the load; replicas that do not answer in time are left out."""
        assert self.pool is not None
        pool = self.pool
        answers = await asyncio.gather(*(pool.status(r, QUERY_TIMEOUT_S) for r in self.replicas))
        counters: Counters = {}
        for r, status in zip(self.replicas, answers, strict=True):
            if status is None:
                self.notice(f"{replica_name(r)} did not answer a status query: its counters are left out")
                continue
            counters[r] = {k: v for k, v in status.get("metrics", {}).items() if isinstance(v, int)}
            if isinstance(status.get("cpu_ms"), int):
                counters[r]["cpu_ms"] = status["cpu_ms"]
        return counters

    # ---- the run ---------------------------------------------------------------------------

    async def progress(self, total_s: float) -> None:
        assert self.on_progress is not None
        while True:
            now_s = self.now_ms() / 1000.0
            self.on_progress(min(max(now_s, 0.0), total_s), total_s, len(self.tally.latencies_ms))
            await asyncio.sleep(PROGRESS_INTERVAL_S)

    async def sleep_until(self, at_ms: float) -> None:
        delay = (at_ms - self.now_ms()) / 1000.0
        if delay > 0:
            await asyncio.sleep(delay)

    async def run(self) -> LoadResult:
        options, config = self.options, self.config
        t_start = time.monotonic()
        self.loop = asyncio.get_running_loop()
        self.pool = pool = ClientPool(self.cluster, self.secrets, log=NodeLog("bench", verbose=False))
        progress: asyncio.Task[None] | None = None
        try:
            await pool.start()
            connected = await pool.wait_connected(config.n, min(CONNECT_ALL_TIMEOUT_S, options.startup_timeout_s))
            if connected < config.quorum:
                connected = await pool.wait_connected(
                    config.quorum, max(0.0, options.startup_timeout_s - CONNECT_ALL_TIMEOUT_S)
                )
            if connected < config.quorum:
                raise ClusterUnavailable(
                    f"only {connected} of {config.n} replicas accepted a connection within "
                    f"{options.startup_timeout_s:g} s (need {config.quorum}): are they running? "
                    f"(pbft client --cluster {self.cluster.path} status)"
                )
            if connected < config.n:
                down = [replica_name(r) for r, link in pool.links.items() if link.connection is None]
                self.notice(f"running with {connected} of {config.n} replicas connected ({', '.join(down)} unreachable)")
            self.epoch = self.loop.time()
            startup_s = time.monotonic() - t_start
            total_s = options.warmup_s + options.duration_s
            if self.on_progress is not None:
                progress = self.loop.create_task(self.progress(total_s))
            for name in pool.names:
                self.submit(name)
            await self.sleep_until(self.tally.open_ms)
            before = await self.snapshot()
            generator_cpu = time.process_time()
            await self.sleep_until(self.tally.close_ms)
            after = await self.snapshot()
            generator_cpu = time.process_time() - generator_cpu
            if self.busy:
                self.idle.clear()
                try:
                    async with asyncio.timeout(DRAIN_TIMEOUT_S):
                        await self.idle.wait()
                except TimeoutError:
                    self.notice(f"{self.busy} transactions were still outstanding {DRAIN_TIMEOUT_S:g} s after the window")
        finally:
            if progress is not None:
                progress.cancel()
            await pool.close()
        if self.completed_total == 0:
            raise ClusterUnavailable(
                f"the cluster completed no transaction in {options.warmup_s + options.duration_s:g} s "
                f"(pbft client --cluster {self.cluster.path} status shows its replicas)"
            )
        return self.tally.result(before, after, generator_cpu, startup_s)


__all__ = [
    "ClusterUnavailable",
    "TcpLoadUsageError",
    "prepare",
    "run_local_tcp_load",
    "run_tcp_load",
]
