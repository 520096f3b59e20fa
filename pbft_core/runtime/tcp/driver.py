"""``pbft run --transport tcp``: one scenario set on `pbft node` processes over loopback TCP.

Theory of operation
-------------------
The same contract as the pipes shell's `pipes.run_set` (same `SetOptions`, same `SetResult`,
same databases and report, the same `set_run.SetDriver` loop), with the TCP shell underneath:

1. keys for the set are dealt into ``set-<k>/cluster/`` (a real cluster file on free loopback
   ports, secrets 0600), so every replica is exactly what an operator would start;
2. each *live* replica is a ``pbft node`` subprocess (`tcp_local.LocalCluster`) whose data
   directory is the set directory, so its inspection database lands at ``set-<k>/n<i>.sqlite``
   as in a pipes run (its write-ahead log and its log lines sit beside it, in
   ``n<i>.durable.sqlite`` and ``logs/n<i>.log``). A Byzantine replica is started with its
   attacks (``--attack``); a replica outside the Live column gets no process, and, as in the
   pipes shell, a database holding its initial state;
3. the driver hosts the clients in one `ClientPool` on an event loop of its own, which
   `TcpTransport` runs only while the set driver waits (for a completion, a status answer or
   a settle pause); the set driver dispatches and settles exactly as over pipes;
4. it stops every node with SIGTERM; each writes its final state before exiting.

``-v`` does not stream protocol events here: each node writes them to its own log file.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ...client import Completion
from ...clusterfile import ClusterFile
from ...config import ACCOUNTS, replica_name
from ...messages import Arg
from ...replica import Replica
from ...scenario import ScenarioSet
from ...storage import ReplicaStore, replica_db_path, set_dir
from ..set_run import (
    STATE_KEYS,
    EventCallback,
    ProgressCallback,
    ReplicaState,
    SetDriver,
    SetOptions,
    SetResult,
    initial_database,
    live_replicas,
    replica_meta,
)
from ..tcp_local import LocalCluster, local_cluster_file
from .pool import ClientPool, PoolCompletion

STARTUP_QUERY_TIMEOUT_S = 0.5
# A settle round asks each replica with at most this timeout (a dead one must not eat the rest).
SETTLE_QUERY_TIMEOUT_S = 1.0
T = TypeVar("T")


class TcpTransport:
    """The set driver's `ClientTransport` over a `ClientPool`, on an event loop this object
    owns and runs only inside its calls (the driver's loop is synchronous)."""

    def __init__(self, cluster: ClusterFile, client_names: list[str]) -> None:
        self.loop = asyncio.new_event_loop()
        self.pool = ClientPool(cluster, [cluster.load_secrets(c) for c in client_names])
        self.epoch_s = time.monotonic()
        self._in_flight: dict[asyncio.Future[PoolCompletion], str] = {}

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)

    def start_clock(self) -> None:
        self.epoch_s = time.monotonic()

    def now_ms(self) -> float:
        return (time.monotonic() - self.epoch_s) * 1000.0

    def submit(self, client: str, op: str, args: tuple[Arg, ...], *, read_only: bool) -> None:
        self._in_flight[self.pool.submit(client, op, args, read_only=read_only)] = client

    def poll(self, timeout_ms: float) -> list[tuple[str, Completion]]:
        if not self._in_flight:  # nothing can complete: let the time pass
            self.wait(timeout_ms)
            return []
        done, _ = self.run(
            asyncio.wait(list(self._in_flight), timeout=timeout_ms / 1000.0, return_when=asyncio.FIRST_COMPLETED)
        )
        return [(self._in_flight.pop(future), future.result().completion) for future in done]

    def replica_states(self, replicas: Sequence[int], timeout_ms: float) -> dict[int, ReplicaState]:
        timeout_s = min(timeout_ms / 1000.0, SETTLE_QUERY_TIMEOUT_S)
        answers = self.run(self._statuses(replicas, timeout_s))
        return {r: {k: a[k] for k in STATE_KEYS} for r, a in zip(replicas, answers, strict=True) if a is not None}

    async def _statuses(self, replicas: Sequence[int], timeout_s: float) -> list[dict[str, Any] | None]:
        return await asyncio.gather(*(self.pool.status(r, timeout_s) for r in replicas))

    def wait(self, duration_ms: float) -> None:
        self.run(asyncio.sleep(max(0.0, duration_ms) / 1000.0))

    def close(self) -> None:
        """Close the pool, then the loop (as `asyncio.run` would: pending tasks cancelled)."""
        try:
            self.run(self.pool.close())
            pending = asyncio.all_tasks(self.loop)
            for task in pending:
                task.cancel()
            if pending:
                self.run(asyncio.gather(*pending, return_exceptions=True))
            self.run(self.loop.shutdown_asyncgens())
        finally:
            self.loop.close()


def run_set_tcp(
    scenario_set: ScenarioSet,
    options: SetOptions,
    run_dir: Path,
    *,
    run_meta: dict[str, Any] | None = None,
    on_event: EventCallback | None = None,
    on_progress: ProgressCallback | None = None,
) -> SetResult:
    """Play one scenario set on a fresh cluster of `pbft node` processes; see the docstring."""
    del on_event  # events stay in each node's log file (see the module docstring)
    config = scenario_set.cluster_config(options.config)
    started_at_s, started_monotonic_s = time.time(), time.monotonic()
    number = scenario_set.number
    directory = set_dir(run_dir, number)
    live = live_replicas(scenario_set, config)
    byzantine = set(scenario_set.byzantine)
    client_names = sorted(set(ACCOUNTS) | {t.client for t in scenario_set.transactions})
    cluster = local_cluster_file(directory / "cluster", config, client_names, seed=options.seed)
    assert cluster.path is not None

    def initial_state(r: int) -> ReplicaState:
        crypto = cluster.load_secrets(replica_name(r)).crypto()
        meta = {"transport": "tcp", **replica_meta(scenario_set, r, run_meta)}
        return initial_database(replica_db_path(run_dir, number, r), meta, Replica(r, config, crypto))

    states = {r: initial_state(r) for r in config.replica_ids if r not in live}
    node_args: dict[int, list[str]] = {}
    for r in live:
        node_args[r] = ["--meta", json.dumps(replica_meta(scenario_set, r, run_meta))]
        if r in byzantine and scenario_set.attacks:
            node_args[r] += ["--attack", "; ".join(str(a) for a in scenario_set.attacks)]
    local = LocalCluster(cluster.path, directory, directory / "logs", node_args, verbose=options.verbose)
    transport = TcpTransport(cluster, client_names)
    driver = SetDriver(
        transport, scenario_set.transactions, stall_timeout_ms=options.stall_timeout_s * 1000.0, on_progress=on_progress
    )
    startup_s, failure = 0.0, None
    try:
        if on_progress is not None:
            on_progress(0, len(scenario_set.transactions), "starting replicas")
        local.start_all(live)
        transport.run(transport.pool.start())
        failure = transport.run(_wait_started(transport.pool, local, live, options.startup_timeout_s))
        if failure is None:
            transport.start_clock()
            startup_s = transport.epoch_s - started_monotonic_s
            driver.play([r for r in live if r not in byzantine], settle_timeout_ms=options.settle_timeout_s * 1000.0)
    finally:
        try:
            transport.close()
        finally:
            codes = local.stop_all(options.stop_timeout_s)
    if failure is None:
        bad = {r: c for r, c in codes.items() if c != 0}
        if bad:
            failure = "; ".join(
                f"n{r} {'had to be killed' if c is None else f'exited with {c}'}"
                f" (see {directory / 'logs' / f'n{r}.log'})"
                for r, c in sorted(bad.items())
            )
    states.update(driver.states)
    for r in live:
        if not _readable(replica_db_path(run_dir, number, r)):
            states[r] = initial_state(r)
    return driver.result(
        scenario_set,
        directory,
        started_at_s=started_at_s,
        started_monotonic_s=started_monotonic_s,
        startup_s=startup_s,
        states=states,
        failure=failure,
    )


async def _wait_started(pool: ClientPool, local: LocalCluster, live: list[int], timeout_s: float) -> str | None:
    """Wait until every live node answers a status query; why it did not, or None."""
    deadline = time.monotonic() + timeout_s
    waiting = set(live)
    while waiting:
        dead = [r for r in waiting if not local.alive(r)]
        if dead:
            return "; ".join(f"n{r} exited during startup: {local.log_text(r).strip()[-400:]}" for r in dead)
        if time.monotonic() > deadline:
            late = ", ".join(f"n{r}" for r in sorted(waiting))
            return f"{late} did not start within {timeout_s:.0f} s"
        answers = await asyncio.gather(*(pool.status(r, STARTUP_QUERY_TIMEOUT_S) for r in sorted(waiting)))
        for r, answer in zip(sorted(waiting), answers, strict=True):
            if answer is not None:
                waiting.discard(r)
    return None


def _readable(path: Path) -> bool:
    try:
        with ReplicaStore(path, read_only=True) as store:
            store.meta()
    except (OSError, sqlite3.Error):
        return False
    return True
