"""``pbft run --transport tcp``: one scenario set on `pbft node` processes over loopback TCP.

Theory of operation
-------------------
The same contract as the pipes shell's `pipes.run_set` (same `SetOptions`, same `SetResult`,
same databases and report), with the TCP shell underneath:

1. keys for the set are dealt into ``set-<k>/cluster/`` (a real cluster file on free loopback
   ports, secrets 0600), so every replica is exactly what an operator would start;
2. each *live* replica is a ``pbft node`` subprocess (`tcp_local.LocalCluster`) whose data
   directory is the set directory, so its inspection database lands at ``set-<k>/n<i>.sqlite``
   as in a pipes run (its write-ahead log and its log lines sit beside it, in
   ``n<i>.durable.sqlite`` and ``logs/n<i>.log``). A Byzantine replica is started with its
   attacks (``--attack``); a replica outside the Live column gets no process, and, as in the
   pipes shell, a database holding its initial state;
3. the driver hosts the clients in one `ClientPool` and dispatches the set's transactions with
   `Dispatcher` (file order, closed loop, reads after everything before them) until every
   transaction has an outcome or nothing completed for the stall timeout;
4. it settles (status queries until the honest live replicas agree on ``last_executed``), then
   stops every node with SIGTERM; each writes its final state before exiting.

``-v`` does not stream protocol events here: each node writes them to its own log file.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from ..clusterfile import ClusterFile
from ..config import ACCOUNTS, replica_name
from ..dispatch import Dispatcher
from ..replica import Replica
from ..scenario import ScenarioSet
from ..storage import ReplicaStore, replica_db_path, set_dir
from .host import NodeHost
from .pipes import EventCallback, ProgressCallback, SetOptions, SetResult, replica_meta
from .tcp import ClientPool, PoolCompletion
from .tcp_local import LocalCluster, local_cluster_file

POLL_INTERVAL_S = 0.05


def _nowhere(_to: Any, _data: bytes) -> None:
    """Send callback of a replica without a process: it has no links."""


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
    started_at, t_start = time.time(), time.monotonic()
    number = scenario_set.number
    directory = set_dir(run_dir, number)
    live = sorted(r for r in scenario_set.live if r in config.replica_ids)
    byzantine = set(scenario_set.byzantine)
    transactions = list(scenario_set.transactions)
    client_names = sorted(set(ACCOUNTS) | {t.client for t in transactions})
    cluster = local_cluster_file(directory / "cluster", config, client_names, seed=options.seed)
    assert cluster.path is not None

    def meta_for(r: int) -> dict[str, Any]:
        return replica_meta(scenario_set, r, run_meta)

    def initial_database(r: int) -> dict[str, Any]:
        """A database holding replica r's initial state (it had no process, or its process
        died before writing one), so the set can be reported and inspected like any other."""
        path = replica_db_path(run_dir, number, r)
        for stale in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm", "-journal"))):
            stale.unlink(missing_ok=True)
        store = ReplicaStore(path)
        store.set_meta(transport="tcp", **meta_for(r))
        crypto = cluster.load_secrets(replica_name(r)).crypto()
        host = NodeHost(Replica(r, config, crypto), store, _nowhere, _nowhere)
        state = host.finish()
        store.close()
        return state

    states = {r: initial_database(r) for r in config.replica_ids if r not in live}

    node_args: dict[int, list[str]] = {}
    for r in live:
        node_args[r] = ["--meta", json.dumps(meta_for(r))]
        if r in byzantine and scenario_set.attacks:
            node_args[r] += ["--attack", "; ".join(str(a) for a in scenario_set.attacks)]
    local = LocalCluster(cluster.path, directory, directory / "logs", node_args, verbose=options.verbose)
    driver = _Driver(cluster, local, scenario_set, options, live, byzantine, client_names, on_progress)
    try:
        asyncio.run(driver.run(t_start))
    finally:
        codes = local.stop_all(options.stop_timeout_s)
    if driver.failure is None:
        bad = {r: c for r, c in codes.items() if c != 0}
        if bad:
            driver.ended_by = "failure"
            driver.failure = "; ".join(
                f"n{r} {'had to be killed' if c is None else f'exited with {c}'}"
                f" (see {directory / 'logs' / f'n{r}.log'})"
                for r, c in sorted(bad.items())
            )
    states.update(driver.states)
    for r in live:
        if not _readable(replica_db_path(run_dir, number, r)):
            states[r] = initial_database(r)
    return SetResult(
        number=number,
        outcomes=driver.dispatcher.outcomes,
        ended_by=driver.ended_by,
        failure=driver.failure,
        started_at=started_at,
        duration_s=time.monotonic() - t_start,
        startup_s=driver.startup_s,
        run_ms=driver.run_ms,
        settle_ms=driver.settle_ms,
        first_submit_ms=driver.first_submit_ms,
        last_completion_ms=driver.last_completion_ms,
        settled=driver.settled,
        states=states,
        set_dir=directory,
    )


def _readable(path: Path) -> bool:
    try:
        with ReplicaStore(path, read_only=True) as store:
            store.meta()
    except (OSError, sqlite3.Error):
        return False
    return True


class _Driver:
    """The asyncio side of one set: start, dispatch, settle."""

    def __init__(
        self,
        cluster: ClusterFile,
        local: LocalCluster,
        scenario_set: ScenarioSet,
        options: SetOptions,
        live: list[int],
        byzantine: set[int],
        client_names: list[str],
        on_progress: ProgressCallback | None,
    ) -> None:
        self.cluster = cluster
        self.local = local
        self.options = options
        self.live = live
        self.honest_live = [r for r in live if r not in byzantine]
        self.client_names = client_names
        self.on_progress = on_progress
        self.transactions = list(scenario_set.transactions)
        self.dispatcher = Dispatcher(self.transactions)  # type: ignore[arg-type]
        self.ended_by = "completed"
        self.failure: str | None = None
        self.startup_s = self.run_ms = self.settle_ms = 0.0
        self.first_submit_ms: float | None = None
        self.last_completion_ms: float | None = None
        self.settled = False
        self.states: dict[int, dict[str, Any]] = {}
        self._epoch = 0.0

    def _now_ms(self) -> float:
        return (time.monotonic() - self._epoch) * 1000.0

    def _progress(self, phase: str) -> None:
        if self.on_progress is not None:
            self.on_progress(self.dispatcher.finished_count, len(self.transactions), phase)

    async def run(self, t_start: float) -> None:
        pool = ClientPool(self.cluster, [self.cluster.load_secrets(c) for c in self.client_names])
        try:
            self._progress("starting replicas")
            self.local.start_all(self.live)
            await pool.start()
            if not await self._wait_started(pool):
                return
            self._epoch = time.monotonic()
            self.startup_s = self._epoch - t_start
            self._progress("running")
            await self._dispatch(pool)
            self.run_ms = self._now_ms()
            self._progress("settling")
            await self._settle(pool)
            self.settle_ms = self._now_ms() - self.run_ms
            self._progress("stopping")
        finally:
            await pool.close()

    async def _wait_started(self, pool: ClientPool) -> bool:
        deadline = time.monotonic() + self.options.startup_timeout_s
        waiting = set(self.live)
        while waiting:
            dead = [r for r in waiting if not self.local.alive(r)]
            if dead:
                self.ended_by = "failure"
                self.failure = "; ".join(
                    f"n{r} exited during startup: {self.local.log_text(r).strip()[-400:]}" for r in dead
                )
                return False
            if time.monotonic() > deadline:
                self.ended_by = "failure"
                late = ", ".join(f"n{r}" for r in sorted(waiting))
                self.failure = f"{late} did not start within {self.options.startup_timeout_s:.0f} s"
                return False
            answers = await asyncio.gather(*(pool.status(r, 0.5) for r in sorted(waiting)))
            for r, answer in zip(sorted(waiting), answers, strict=True):
                if answer is not None:
                    waiting.discard(r)
        return True

    async def _dispatch(self, pool: ClientPool) -> None:
        stall_ms = self.options.stall_timeout_s * 1000.0
        last_progress_ms = 0.0
        in_flight: dict[asyncio.Future[PoolCompletion], int] = {}

        def submit() -> None:
            busy = {self.transactions[i].client for i in in_flight.values()}
            for index in self.dispatcher.next_submissions(busy):
                txn = self.transactions[index]
                if self.first_submit_ms is None:
                    self.first_submit_ms = self._now_ms()
                # A transaction's kind is its operation (transfer, balance, send_payment, ...).
                read = txn.read_only
                in_flight[pool.submit(txn.client, txn.kind, tuple(txn.args), read_only=read)] = index

        submit()
        while not self.dispatcher.done:
            if self._now_ms() - last_progress_ms >= stall_ms:
                self.ended_by = "stall"
                return
            if not in_flight:  # nothing can be submitted and nothing is pending: cannot happen
                self.ended_by = "stall"
                return
            done, _ = await asyncio.wait(list(in_flight), timeout=POLL_INTERVAL_S)
            for future in done:
                index = in_flight.pop(future)
                self.dispatcher.complete(index, future.result().completion)
                last_progress_ms = self.last_completion_ms = self._now_ms()
                self._progress("running")
            if done:
                submit()

    async def _settle(self, pool: ClientPool) -> None:
        deadline = time.monotonic() + self.options.settle_timeout_s
        while self.honest_live:
            left = max(0.05, deadline - time.monotonic())
            answers = await asyncio.gather(*(pool.status(r, min(left, 1.0)) for r in self.honest_live))
            for r, answer in zip(self.honest_live, answers, strict=True):
                if answer is not None:
                    self.states[r] = {
                        k: answer[k]
                        for k in ("replica", "view", "view_active", "last_executed", "stable_seq", "balances")
                    }
            executed = {a["last_executed"] for a in answers if a is not None}
            if all(a is not None for a in answers) and len(executed) == 1:
                self.settled = True
                return
            if time.monotonic() >= deadline:
                return
            await asyncio.sleep(POLL_INTERVAL_S)
