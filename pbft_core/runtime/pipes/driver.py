"""`run_set` over pipes: spawn the set's workers, play it with the set driver, stop them."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ...client import Client, Completion
from ...config import ACCOUNTS, ClusterConfig
from ...keys import ClusterKeys
from ...messages import Arg
from ...replica import Replica
from ...scenario import ScenarioSet
from ...storage import replica_db_path, set_dir
from ..host import config_to_bytes
from ..set_run import (
    EventCallback,
    ProgressCallback,
    ReplicaState,
    SetDriver,
    SetOptions,
    SetResult,
    initial_database,
    live_replicas,
    pack,
    replica_meta,
)
from .clients import ClientHost
from .cluster import Cluster, WorkerFailure
from .frames import K_GO, POLL_INTERVAL_S, SETTLE_POLL_INTERVAL_S
from .worker import WorkerSpec


class PipesTransport:
    """The set driver's `ClientTransport` over a `Cluster` of workers: the clients live in
    this process (`ClientHost`), time counts from the GO epoch on the monotonic clock."""

    def __init__(self, cluster: Cluster, clients: dict[str, Client], live: list[int]) -> None:
        self.cluster = cluster
        self.live = live
        self.epoch_s = 0.0
        self._completed: list[tuple[str, Completion]] = []
        self.host = ClientHost(cluster, clients, self._on_complete, live)

    def start(self) -> None:
        """Start every worker's clock at one shared epoch (GO)."""
        self.epoch_s = time.monotonic()
        for r in self.live:
            self.cluster.send_frame(r, K_GO + pack([self.epoch_s]))

    def now_ms(self) -> float:
        return (time.monotonic() - self.epoch_s) * 1000.0

    def _on_complete(self, name: str, completion: Completion, _now: float) -> None:
        self._completed.append((name, completion))

    def submit(self, client: str, op: str, args: tuple[Arg, ...], *, read_only: bool) -> None:
        self.host.submit(client, op, args, self.now_ms(), read_only=read_only)

    def poll(self, timeout_ms: float) -> list[tuple[str, Completion]]:
        deadline_ms = self.now_ms() + timeout_ms
        self.host.send()
        while not self._completed and (left_ms := deadline_ms - self.now_ms()) > 0:
            self.host.serve(min(left_ms / 1000.0, POLL_INTERVAL_S), self.now_ms)
        completed, self._completed = self._completed, []
        return completed

    def replica_states(self, replicas: Sequence[int], timeout_ms: float) -> dict[int, ReplicaState]:
        self.cluster.ask_states(list(replicas))
        deadline_ms = self.now_ms() + timeout_ms
        while not all(r in self.cluster.states for r in replicas) and (left_ms := deadline_ms - self.now_ms()) > 0:
            self.host.serve(min(left_ms / 1000.0, POLL_INTERVAL_S), self.now_ms)
        return dict(self.cluster.states)

    def wait(self, duration_ms: float) -> None:
        deadline_ms = self.now_ms() + duration_ms
        while (left_ms := deadline_ms - self.now_ms()) > 0:
            self.host.serve(min(left_ms / 1000.0, POLL_INTERVAL_S), self.now_ms)


def run_set(
    scenario_set: ScenarioSet,
    options: SetOptions,
    run_dir: Path,
    *,
    run_meta: dict[str, Any] | None = None,
    on_event: EventCallback | None = None,
    on_progress: ProgressCallback | None = None,
) -> SetResult:
    """Play one scenario set on a fresh cluster of worker processes; see the package docstring."""
    config = scenario_set.cluster_config(options.config)
    started_at_s, started_monotonic_s = time.time(), time.monotonic()
    number = scenario_set.number
    live = live_replicas(scenario_set, config)
    byzantine = set(scenario_set.byzantine)
    client_names = sorted(set(ACCOUNTS) | {t.client for t in scenario_set.transactions})
    keys = ClusterKeys.generate(config, client_names, options.seed)

    # Disconnected replicas: no process, no links; their database holds their initial state.
    states: dict[int, ReplicaState] = {
        r: initial_database(
            replica_db_path(run_dir, number, r),
            replica_meta(scenario_set, r, run_meta),
            Replica(r, config, keys.replica_secrets[r].crypto()),
        )
        for r in config.replica_ids
        if r not in live
    }
    spec_for = _worker_specs(scenario_set, config, keys, run_dir, run_meta, verbose=options.verbose)
    cluster = Cluster(on_event)
    verified: dict[tuple[int, bytes, bytes], None] = {}
    clients = {c: Client(c, config, keys.client_secrets[c].crypto(), verified=verified) for c in client_names}
    transport = PipesTransport(cluster, clients, live)
    driver = SetDriver(
        transport,
        scenario_set.transactions,
        stall_timeout_ms=options.stall_timeout_s * 1000.0,
        on_progress=on_progress,
    )
    startup_s, failure = 0.0, None
    try:
        if on_progress is not None:
            on_progress(0, len(scenario_set.transactions), "starting replicas")
        cluster.spawn(live, spec_for)
        cluster.wait_hello(options.startup_timeout_s)
        transport.start()
        startup_s = transport.epoch_s - started_monotonic_s
        driver.play(
            [r for r in live if r not in byzantine],
            settle_timeout_ms=options.settle_timeout_s * 1000.0,
            settle_poll_interval_ms=SETTLE_POLL_INTERVAL_S * 1000.0,
        )
        states.update(cluster.stop(options.stop_timeout_s))
    except WorkerFailure as exc:
        failure = str(exc)
        # Let the survivors write their final state, so the failed set can still be inspected.
        with contextlib.suppress(WorkerFailure):
            states.update(cluster.stop(min(options.stop_timeout_s, 3.0)))
    finally:
        cluster.kill()
    return driver.result(
        scenario_set,
        set_dir(run_dir, number),
        started_at_s=started_at_s,
        started_monotonic_s=started_monotonic_s,
        startup_s=startup_s,
        states=states,
        failure=failure,
    )


def _worker_specs(
    scenario_set: ScenarioSet,
    config: ClusterConfig,
    keys: ClusterKeys,
    run_dir: Path,
    run_meta: dict[str, Any] | None,
    *,
    verbose: bool,
) -> Callable[[int], WorkerSpec]:
    """What each live replica's worker is given for this set."""
    config_bytes = config_to_bytes(config)
    attacks_bytes = pack([[a.kind, list(a.targets)] for a in scenario_set.attacks])

    def spec_for(r: int) -> WorkerSpec:
        return WorkerSpec(
            replica_id=r,
            config_bytes=config_bytes,
            secrets_bytes=keys.replica_secrets[r].to_bytes(),
            honest=r not in scenario_set.byzantine,
            attacks_bytes=attacks_bytes,
            db_path=str(replica_db_path(run_dir, scenario_set.number, r)),
            meta_json=json.dumps(replica_meta(scenario_set, r, run_meta)),
            verbose=verbose,
        )

    return spec_for
