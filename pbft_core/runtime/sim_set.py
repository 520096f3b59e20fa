"""The simulator as a set driver transport, and a scenario set played on it.

`SimTransport` is the `set_run.ClientTransport` of a `Simulation`: submitting is the
simulation's ``submit``, polling runs virtual time until a client accepted an answer (or the
timeout), a replica's state is read straight from its instance, and waiting is ``run_for``.
So `Simulation.run_transactions` and `play_set` dispatch with the same `SetDriver` loop as the
pipes and TCP shells, deterministically: a seed fixes every outcome, balance and view, which
is what the golden table of ``tests/golden/`` pins.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..client import Completion
from ..config import ACCOUNTS, ClusterConfig
from ..messages import Arg
from ..scenario import ScenarioSet
from .set_run import ReplicaState, SetDriver, SetOptions, live_replicas

if TYPE_CHECKING:
    from .simulator import Simulation


class SimTransport:
    """A `ClientTransport` over a simulation (use it as a context manager: it collects the
    completions the simulation reports while it is open)."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self._completed: list[tuple[str, Completion]] = []

    def __enter__(self) -> SimTransport:
        self.sim._on_completion = self._collect
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.sim._on_completion = None

    def _collect(self, client: str, completion: Any) -> None:
        self._completed.append((client, completion))

    def now_ms(self) -> float:
        return self.sim.now

    def submit(self, client: str, op: str, args: tuple[Arg, ...], *, read_only: bool) -> None:
        self.sim.submit(client, op, args, read_only=read_only)

    def poll(self, timeout_ms: float) -> list[tuple[str, Completion]]:
        self.sim.run_until(lambda: bool(self._completed), timeout_ms=timeout_ms)
        completed, self._completed = self._completed, []
        return completed

    def replica_states(self, replicas: Sequence[int], timeout_ms: float) -> dict[int, ReplicaState]:
        del timeout_ms  # an instance answers at once
        states: dict[int, ReplicaState] = {}
        for r in replicas:
            replica = self.sim.replica(r)
            states[r] = {
                "replica": r,
                "view": replica.view,
                "view_active": replica.view_active,
                "last_executed": replica.last_executed,
                "stable_seq": replica.stable_seq,
                "balances": dict(replica.bank.balances),
            }
        return states

    def wait(self, duration_ms: float) -> None:
        self.sim.run_for(duration_ms)


def simulate_set(scenario_set: ScenarioSet, options: SetOptions, *, seed: int = 0) -> tuple[Simulation, SetDriver]:
    """Play `scenario_set` on a fresh simulation (deterministic for a seed): dispatch and
    settle with the set driver, as a process shell would. Returns the simulation (its
    replicas' final state) and the driver (outcomes, how the set ended, whether it settled)."""
    from .simulator import Simulation

    config: ClusterConfig = scenario_set.cluster_config(options.config)
    live = live_replicas(scenario_set, config)
    byzantine = {r: tuple(scenario_set.attacks) for r in scenario_set.byzantine}
    clients = sorted({t.client for t in scenario_set.transactions} | set(ACCOUNTS))
    sim = Simulation(config, seed=seed, live=live, byzantine=byzantine, clients=clients)
    with SimTransport(sim) as transport:
        driver = SetDriver(transport, scenario_set.transactions, stall_timeout_ms=options.stall_timeout_s * 1000.0)
        driver.play(
            [r for r in live if r not in scenario_set.byzantine], settle_timeout_ms=options.settle_timeout_s * 1000.0
        )
    return sim, driver
