"""Playing one scenario set, whatever carries the messages: the set driver.

Theory of operation
-------------------
Every shell plays a set the same way (DESIGN §5), and this module is the only place that says
how. A shell (pipes, TCP, the simulator) builds a fresh cluster for the set, then hands the
driver a `ClientTransport`: something that hosts the set's clients and can

- ``submit`` a transaction for a client (the shell decides when its bytes leave),
- ``poll`` until at least one client accepted an answer or the timeout passed,
- ask the replicas for their ``replica_states`` (the state map `NodeHost.state` builds),
- ``wait`` a while, still serving the clients (used while settling),

all against the transport's own clock, ``now_ms`` (milliseconds since the set's epoch; virtual
time in the simulator). `SetDriver.play` then runs the one loop:

1. **dispatch** (`SetDriver.dispatch`): submit what the `Dispatcher` allows (file order, closed loop,
   reads after everything before them), poll, record each completion, submit again. The set
   ends when every transaction has an outcome, or when a poll of ``stall_timeout`` since the
   last completion returned nothing (the rest stay ``unavailable``);
2. **settle** (`SetDriver.settle`): ask the honest live replicas for their state until their
   ``last_executed`` agree or the settle timeout passed (a replica left in the dark catches up
   by gossip meanwhile).

What the shells share around the loop lives here too: `SetOptions`, `SetResult`, the per-set
key seed (`set_seed`), what a replica's database records about its role (`replica_meta`), and
the database of a replica outside the Live column (`initial_database`: it has no process, so
its database holds its initial state).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..client import Completion
from ..config import ClusterConfig, replica_name
from ..dispatch import READ_KINDS, Dispatcher, TransactionLike, TransactionOutcome
from ..messages import Arg
from ..replica import Replica
from ..scenario import ScenarioSet
from ..storage import ReplicaStore
from .host import NodeHost
from .packing import pack, unpack

__all__ = ["pack", "unpack"]  # re-exported: the shells' msgpack (see packing)

# What a replica's state map holds (`NodeHost.state`); a driver keeps these from a settle answer.
STATE_KEYS = ("replica", "view", "view_active", "last_executed", "stable_seq", "balances")

EventCallback = Callable[[int, float, str, dict[str, Any]], None]  # (replica, t_ms, kind, detail)
ProgressCallback = Callable[[int, int, str], None]  # (finished, total, phase)
ReplicaState = dict[str, Any]


@dataclass(frozen=True)
class SetOptions:
    config: ClusterConfig = field(default_factory=ClusterConfig)
    stall_timeout_s: float = 3.0
    settle_timeout_s: float = 1.5
    startup_timeout_s: float = 60.0
    stop_timeout_s: float = 10.0
    seed: bytes | None = None  # None: fresh random keys
    verbose: bool = False


@dataclass
class SetResult:
    number: int
    outcomes: list[TransactionOutcome]
    ended_by: str  # "completed" | "stall" | "failure"
    failure: str | None
    started_at_s: float  # wall clock (time.time())
    duration_s: float
    startup_s: float
    run_ms: float  # from the first submission to the end of dispatching
    settle_ms: float
    first_submit_ms: float | None
    last_completion_ms: float | None
    settled: bool  # honest live replicas agreed on last_executed before the settle timeout
    states: dict[int, ReplicaState]  # final state per replica (live ones from their process)
    set_dir: Path


class ClientTransport(Protocol):
    """What the driver needs from a shell: its clients, its replicas' state, its clock."""

    def now_ms(self) -> float: ...

    def submit(self, client: str, op: str, args: tuple[Arg, ...], *, read_only: bool) -> None: ...

    def poll(self, timeout_ms: float) -> list[tuple[str, Completion]]:
        """Serve the clients until one accepted an answer or `timeout_ms` passed; the
        (client, completion) pairs accepted meanwhile (empty: the timeout passed)."""
        ...

    def replica_states(self, replicas: Sequence[int], timeout_ms: float) -> dict[int, ReplicaState]:
        """The current state of `replicas` (those that answered within the timeout)."""
        ...

    def wait(self, duration_ms: float) -> None:
        """Let `duration_ms` pass, still serving the clients."""
        ...


class SetDriver:
    """The one dispatch-and-settle loop (module docstring), over any `ClientTransport`.

    Its fields are what the driver saw so far, so a shell whose cluster failed half-way still
    reports the outcomes it has.
    """

    def __init__(
        self,
        transport: ClientTransport,
        transactions: Sequence[TransactionLike],
        *,
        stall_timeout_ms: float,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        self.transport = transport
        self.transactions = list(transactions)
        self.stall_timeout_ms = stall_timeout_ms
        self.on_progress = on_progress
        self.dispatcher = Dispatcher(self.transactions)
        self.ended_by = "completed"  # or "stall"
        self.first_submit_ms: float | None = None
        self.last_completion_ms: float | None = None
        self.run_ms = 0.0
        self.settle_ms = 0.0
        self.settled = False
        self.states: dict[int, ReplicaState] = {}  # the last settle answer of each replica

    @property
    def outcomes(self) -> list[TransactionOutcome]:
        return self.dispatcher.outcomes

    def _progress(self, phase: str) -> None:
        if self.on_progress is not None:
            self.on_progress(self.dispatcher.finished_count, len(self.transactions), phase)

    def play(self, honest_live: Sequence[int], *, settle_timeout_ms: float, settle_poll_interval_ms: float = 50.0) -> None:
        """Dispatch every transaction, then settle the honest live replicas."""
        self._progress("running")
        self.dispatch()
        self.run_ms = self.transport.now_ms()
        self._progress("settling")
        self.settle(honest_live, timeout_ms=settle_timeout_ms, poll_interval_ms=settle_poll_interval_ms)
        self.settle_ms = self.transport.now_ms() - self.run_ms
        self._progress("stopping")

    def dispatch(self) -> list[TransactionOutcome]:
        """Play the transactions with the scenario rules (see the module docstring)."""
        transport, dispatcher = self.transport, self.dispatcher
        in_flight: dict[str, int] = {}  # client -> index of its outstanding transaction
        last_progress_ms = transport.now_ms()
        while True:
            for index in dispatcher.next_submissions(set(in_flight)):
                txn = self.transactions[index]
                in_flight[txn.client] = index
                if self.first_submit_ms is None:
                    self.first_submit_ms = transport.now_ms()
                # A transaction's kind is its operation (transfer, balance, send_payment, ...).
                transport.submit(txn.client, txn.kind, tuple(txn.args), read_only=txn.kind in READ_KINDS)
            if dispatcher.done:
                break
            completions = transport.poll(max(0.0, last_progress_ms + self.stall_timeout_ms - transport.now_ms()))
            if not completions:
                self.ended_by = "stall"
                break
            for client, completion in completions:
                dispatcher.complete(in_flight.pop(client), completion)
                last_progress_ms = self.last_completion_ms = transport.now_ms()
                self._progress("running")
        return dispatcher.outcomes

    def settle(self, replicas: Sequence[int], *, timeout_ms: float, poll_interval_ms: float) -> bool:
        """Ask `replicas` for their state until their ``last_executed`` agree (True) or the
        timeout passed (False)."""
        transport = self.transport
        deadline_ms = transport.now_ms() + timeout_ms
        while replicas:
            answers = transport.replica_states(replicas, max(poll_interval_ms, deadline_ms - transport.now_ms()))
            self.states.update(answers)
            if len(answers) == len(replicas) and len({a["last_executed"] for a in answers.values()}) == 1:
                self.settled = True
                break
            left_ms = deadline_ms - transport.now_ms()
            if left_ms <= 0:
                break
            transport.wait(min(left_ms, poll_interval_ms))
        return self.settled

    def result(
        self,
        scenario_set: ScenarioSet,
        set_dir: Path,
        *,
        started_at_s: float,
        started_monotonic_s: float,
        startup_s: float,
        states: dict[int, ReplicaState],
        failure: str | None = None,
    ) -> SetResult:
        """The `SetResult` of the set (a `failure` ends it by failure whatever was played)."""
        return SetResult(
            number=scenario_set.number,
            outcomes=self.outcomes,
            ended_by="failure" if failure is not None else self.ended_by,
            failure=failure,
            started_at_s=started_at_s,
            duration_s=time.monotonic() - started_monotonic_s,
            startup_s=startup_s,
            run_ms=self.run_ms,
            settle_ms=self.settle_ms,
            first_submit_ms=self.first_submit_ms,
            last_completion_ms=self.last_completion_ms,
            settled=self.settled,
            states=states,
            set_dir=set_dir,
        )


# ---- what every shell writes about a set ----------------------------------------------------


def live_replicas(scenario_set: ScenarioSet, config: ClusterConfig) -> list[int]:
    return sorted(r for r in scenario_set.live if r in config.replica_ids)


def replica_meta(scenario_set: ScenarioSet, r: int, run_meta: dict[str, Any] | None) -> dict[str, Any]:
    """What a replica's database records about its role in a set (every shell writes this)."""
    byzantine = set(scenario_set.byzantine)
    return {
        **(run_meta or {}),
        "set": scenario_set.number,
        "replica": replica_name(r),
        "honest": r not in byzantine,
        "live": r in scenario_set.live,
        "attacks": [str(a) for a in scenario_set.attacks] if r in byzantine else [],
        "live_set": [replica_name(x) for x in sorted(scenario_set.live)],
        "byzantine_set": [replica_name(x) for x in sorted(byzantine)],
    }


def set_seed(seed: int | None, set_number: int) -> bytes | None:
    """Per-set key seed derived from the run's ``--seed`` (None: random keys)."""
    return None if seed is None else f"pbft/run-seed/{seed}/set/{set_number}".encode()


def initial_database(path: Path, meta: dict[str, Any], replica: Replica) -> ReplicaState:
    """A database at `path` holding `replica`'s initial state (it had no process, or its
    process died before writing one), so the set is reported and inspected like any other."""
    for stale in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm", "-journal"))):
        stale.unlink(missing_ok=True)
    store = ReplicaStore(path)
    try:
        store.set_meta(**meta)
        host = NodeHost(replica, store, _nowhere, _nowhere)
        return host.finish()
    finally:
        store.close()


def _nowhere(_to: Any, _data: bytes) -> None:
    """Send callback of a replica without a process: it has no links."""
