"""Run one seed's plan on the simulator, judge it, and shrink it if it fails (the VOPR).

Theory of operation. `run_plan` builds a `Simulation` from a `Plan`, attaches an
`InvariantChecker` (checked after every delivered message and every tick), and plays two phases:

1. **Safety phase** (``plan.safety_ms`` of virtual time): every fault of the plan is on —
   lossy, duplicating, spiking, maybe reordering links; partitions that come and go; replica
   instances that crash and restart from their durable events; Byzantine replicas attacking
   from their onset; twins; the random-message adversary. Clients submit the requests released
   in this phase. Nothing has to complete; nothing may break an invariant.
2. **Liveness phase**: the network heals (no loss, duplication, spikes, partitions; crashed
   instances restart), the Byzantine set stays as it is (≤ f identities, still misbehaving),
   and the rest of the workload is released. Every request must then complete within
   ``liveness_bound_ms`` of the heal (or of its release), and afterwards every honest replica
   must catch up with the most advanced one within ``convergence_ms``.

An exception escaping protocol code is a violation too (invariant ``exception``). At the end
of every run the honest clients' history (what they invoked and when, what they accepted and
when) must be linearizable against the sequential bank (invariant ``linearizable``, see
`linearizability`).

A plan with an ``adversary`` runs a targeted attack of `strategies` on top: the strategy
installs its Byzantine filters and injections before the first step, its own bound is judged at
the end (a liveness failure if it does not hold), and the deep size of every replica's buffers
is sampled throughout (`memory`) so the summary can report peak memory per replica.

`shrink` takes a failing plan and greedily removes Byzantine identities, fault events and
requests, and zeroes network faults, keeping each change only if the run still fails the same
way; the result is a (much) smaller plan for the same seed, saved with its trace by
`write_failure` and replayable from the file.

Why the bounds are what they are: after the heal a client may be waiting out a doubled
retransmission timer (at most ``client_timeout_ms * 2**4`` = 6.4 s by default), then backups
need an execution timeout (0.6 s) to suspect a bad leader, and with f Byzantine leaders in a
row up to f+1 view changes whose timers double (0.6 + 1.2 + 2.4 s for f = 2), plus catch-up by
status gossip. 30 s of virtual time covers that sum with a wide margin while still catching a
cluster that is stuck for good (the default `liveness_bound_ms`).
"""

from __future__ import annotations

import json
import random
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..attacks import Attack
from ..client import Completion
from ..config import ClusterConfig
from ..invariants import InvariantChecker, InvariantViolation
from ..linearizability import History
from ..runtime.simulator import Livelock, MessageStorm, NetworkConfig, Simulation
from . import strategies
from .adversary import RandomMessageAdversary
from .memory import MEMORY_INTERVAL_MS, MemoryProbe
from .plan import ALL_FAULTS, ConfigPlan, FaultEvent, NetworkPlan, Plan, generate_plan

LIVENESS_BOUND_MS = 30_000.0
CONVERGENCE_MS = 5_000.0
THINK_MS_MAX = 20.0


@dataclass
class SeedResult:
    seed: int
    invariant: str | None = None  # the violated invariant, or None
    detail: str = ""
    liveness: str | None = None  # why the liveness phase failed, or None
    at_ms: float = 0.0  # virtual time of the failure (or of the end)
    completed: int = 0
    requests: int = 0
    delivered: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # faults injected
    faults: list[str] = field(default_factory=list)  # which faults the plan used
    wall_s: float = 0.0
    trace_file: str | None = None
    shrunk: dict[str, Any] | None = None
    adversary: str = ""
    # Honest replica address -> peak estimated bytes of its buffers (sampled; see `memory`).
    peak_memory: dict[str, int] = field(default_factory=dict)
    peak_buffer: str = ""  # the largest buffer at the highest peak, e.g. "n4 view_changes"

    @property
    def ok(self) -> bool:
        return self.invariant is None and self.liveness is None

    def failure_key(self) -> tuple[str, str] | None:
        if self.invariant is not None:
            return ("violation", self.invariant)
        if self.liveness is not None:
            return ("liveness", self.liveness.split(":", 1)[0])
        return None


@dataclass
class RunOptions:
    crypto: str = "sim"
    liveness_bound_ms: float = LIVENESS_BOUND_MS
    convergence_ms: float = CONVERGENCE_MS
    config: ClusterConfig | None = None  # default: ClusterConfig(f=plan.f)
    certificates: str = "bls"  # the certificate scheme of the default config (`ClusterConfig.certificates`)
    # Sample replica memory this often (virtual ms); None: only for plans with an adversary.
    memory_interval_ms: float | None = None


class _Workload:
    """Closed-loop clients: each submits its released requests one at a time, in order."""

    def __init__(self, sim: Simulation, plan: Plan, rng: random.Random) -> None:
        self.sim = sim
        self.rng = rng
        self.history = History()
        self.queues: dict[str, list[int]] = {}
        self.plan = plan
        for i, spec in enumerate(plan.requests):
            self.queues.setdefault(spec.client, []).append(i)
        self.busy: dict[str, int] = {}
        self.submitted_ms: dict[int, float] = {}
        self.completed_ms: dict[int, float] = {}
        sim.completion_hooks.append(self._on_completion)
        for client in sorted(self.queues):
            self._schedule_next(client, 0.0)

    def _schedule_next(self, client: str, after_ms: float) -> None:
        queue = self.queues.get(client)
        if not queue:
            return
        spec = self.plan.requests[queue[0]]
        at = max(after_ms, spec.release_ms)
        self.sim.at(at, lambda s, c=client: self._submit(c))

    def _submit(self, client: str) -> None:
        index = self.queues[client].pop(0)
        spec = self.plan.requests[index]
        self.busy[client] = index
        self.submitted_ms[index] = self.sim.now
        self.sim.submit(client, spec.op, spec.args, read_only=spec.read_only)
        outstanding = self.sim.clients[client].outstanding
        assert outstanding is not None
        self.history.invoke(client, outstanding.request.timestamp, spec.op, spec.args, self.sim.now)

    def _on_completion(self, client: str, completion: Completion) -> None:
        self.history.complete(client, completion.request.timestamp, completion.result, self.sim.now)
        index = self.busy.pop(client)
        self.completed_ms[index] = self.sim.now
        self._schedule_next(client, self.sim.now + self.rng.uniform(0.0, THINK_MS_MAX))

    @property
    def done(self) -> bool:
        return len(self.completed_ms) == len(self.plan.requests)


def build_simulation(plan: Plan, options: RunOptions) -> Simulation:
    knobs = plan.config
    config = options.config or ClusterConfig(
        f=plan.f,
        checkpoint_interval=knobs.checkpoint_interval,
        log_window=knobs.log_window,
        batch_size_max=knobs.batch_size_max,
        inflight_max=knobs.inflight_max,
        fast_path=knobs.fast_path,
        certificates=options.certificates,
    )
    assert config.f == plan.f
    net = plan.network
    network = NetworkConfig(
        delay_ms_min=net.delay_ms_min,
        delay_ms_max=net.delay_ms_max,
        drop_rate=net.drop_rate,
        duplicate_rate=net.duplicate_rate,
        fifo=net.fifo,
        spike_rate=net.spike_rate,
        spike_delay_ms_max=net.spike_delay_ms_max,
    )
    sim = Simulation(
        config,
        seed=plan.streams.get("network", plan.seed),
        crypto=options.crypto,
        network=network,
        keep_events=False,
        keep_durable=True,
    )
    for role in plan.byzantine:
        attacks = tuple(Attack(kind, targets) for kind, targets in role.attacks)
        if attacks:
            sim.make_byzantine(role.replica, attacks, onset_ms=role.onset_ms)
        else:
            for _key, node in sim.instances(role.replica):
                node.honest = False
        if role.twin:
            sim.add_twin(role.replica)
    return sim


def _address_key(sim: Simulation, address: str) -> int:
    twin = address.endswith("'")
    r = int(address.strip("n'"))
    return -r if twin else r


def _schedule_events(sim: Simulation, plan: Plan, healed: list[bool], checker: InvariantChecker) -> None:
    def start_partition(event: FaultEvent) -> Callable[[Simulation], None]:
        def act(s: Simulation) -> None:
            if healed[0]:
                return
            s.partition = {a: side for side, group in enumerate(event.args) for a in group}
            s.counters["partition"] = s.counters.get("partition", 0) + 1
            s._trace(f"partition {' | '.join(','.join(g) for g in event.args)}")

        return act

    def end_partition(s: Simulation) -> None:
        if not healed[0] and s.partition:
            s.partition = {}
            s._trace("partition heals")

    for event in plan.events:
        if event.kind == "partition":
            sim.at(event.at_ms, start_partition(event))
            sim.at(min(event.at_ms + event.duration_ms, plan.safety_ms), end_partition)
        elif event.kind == "crash-restart":
            address = event.args[0]
            key = _address_key(sim, address)
            if key < 0 and -key not in sim.twins:
                continue  # the twin was shrunk away

            def crash(s: Simulation, k: int = key) -> None:
                if not healed[0] and s.node(k).up:
                    s.counters["crash-restart"] = s.counters.get("crash-restart", 0) + 1
                    s.crash(k)

            def restart(s: Simulation, k: int = key) -> None:
                s.restart(k)
                checker.check_state(s.node(k))  # restored from disk = the state it had

            sim.at(event.at_ms, crash)
            sim.at(min(event.at_ms + event.duration_ms, plan.safety_ms), restart)


def run_plan(plan: Plan, options: RunOptions | None = None, *, tracer: Callable[[str], None] | None = None) -> SeedResult:
    options = options or RunOptions()
    started = time.perf_counter()
    result = SeedResult(plan.seed, requests=len(plan.requests), faults=sorted(plan.fault_names()))
    sim = build_simulation(plan, options)
    sim.tracer = tracer
    checker = InvariantChecker.attach(sim)
    healed = [False]
    _schedule_events(sim, plan, healed, checker)
    adversaries = []
    adversary_rng = random.Random(plan.streams.get("adversary", plan.seed))
    plot: dict[int, Any] = {}  # what colluding adversaries agreed to claim
    for role in plan.byzantine:
        if role.adversary_rate_per_s > 0:
            adversary = RandomMessageAdversary(
                sim, role.replica, random.Random(adversary_rng.getrandbits(63)), role.adversary_rate_per_s, plot
            )
            adversary.start(0.0)
            adversaries.append(adversary)
    arena = strategy = probe = None
    if plan.adversary:
        strategy = strategies.get(plan.adversary)
        arena = strategies.Arena(
            sim, plan, random.Random(adversary_rng.getrandbits(63)),
            tuple(role.replica for role in plan.byzantine), strategy.malicious_clients,
        )
        strategy.install(arena)
    if plan.adversary or options.memory_interval_ms is not None:
        probe = MemoryProbe(sim, options.memory_interval_ms or MEMORY_INTERVAL_MS)
        probe.start()
    workload = _Workload(sim, plan, random.Random(plan.streams.get("workload", plan.seed)))
    if tracer is not None:
        tracer(f"plan: f={plan.f} safety_ms={plan.safety_ms} faults={','.join(result.faults) or 'none'}")
        for role in plan.byzantine:
            tracer(f"plan: byzantine {role}")
        for event in plan.events:
            tracer(f"plan: {event}")
        tracer(f"plan: network {plan.network}")
        tracer(f"plan: config {plan.config}")
        if plan.adversary:
            tracer(f"plan: adversary {plan.adversary} (byzantine {', '.join(f'n{r}' for r in arena.byzantine)})")  # type: ignore[union-attr]
    try:
        # Safety phase.
        sim.run_for(plan.safety_ms)
        # Liveness phase: heal, keep the Byzantine set.
        healed[0] = True
        heal_ms = sim.now
        sim.heal()
        sim.network.drop_rate = sim.network.duplicate_rate = sim.network.spike_rate = 0.0
        for key, node in sim.all_instances():
            if not node.up:
                sim.restart(key)
                checker.check_state(node)
        sim.run_until(lambda: workload.done, timeout_ms=options.liveness_bound_ms)
        late = _late_requests(plan, workload, heal_ms, options.liveness_bound_ms)
        if not workload.done or late:
            missing = [i for i in range(len(plan.requests)) if i not in workload.completed_ms]
            result.liveness = (
                f"requests: {len(missing)} of {len(plan.requests)} requests incomplete "
                f"{options.liveness_bound_ms:.0f} ms after the network healed"
                + (f" (first: #{missing[0]} {_describe_request(plan, missing[0])})" if missing else "")
                + (f"; {len(late)} completed late" if late else "")
            )
        else:
            converged = sim.run_until(lambda: _converged(sim), timeout_ms=options.convergence_ms)
            if not converged:
                progress = {node.address: node.inner.last_executed for _k, node in sim.all_instances() if node.honest}
                result.liveness = (
                    f"convergence: honest replicas did not catch up within {options.convergence_ms:.0f} ms "
                    f"after the last request completed (last executed: {progress})"
                )
        # Unfinished operations may or may not have taken effect; the check allows both.
        checker.check_history(workload.history.all())
        if strategy is not None and arena is not None and result.liveness is None:
            result.liveness = strategy.judge(arena)
    except InvariantViolation as violation:
        result.invariant, result.detail = violation.invariant, violation.detail
    except Livelock as livelock:
        result.liveness = f"livelock: {livelock}"
    except MessageStorm as storm:
        result.liveness = f"message-storm: {storm}"
    except Exception as exc:  # protocol code must never raise, whatever it is fed
        result.invariant = "exception"
        frames = traceback.extract_tb(exc.__traceback__)
        where = next((f for f in reversed(frames) if "/pbft_core/" in f.filename and "/sim/" not in f.filename), frames[-1])
        result.detail = f"{type(exc).__name__}: {exc} at {Path(where.filename).name}:{where.lineno} ({where.name})"
    result.at_ms = sim.now
    result.adversary = plan.adversary
    if probe is not None:
        probe.sample()
        result.peak_memory = probe.peaks()
        if result.peak_memory:
            top = max(result.peak_memory, key=lambda a: result.peak_memory[a])
            result.peak_buffer = f"{top} {probe.replicas[top].largest}"
    result.completed = len(workload.completed_ms)
    result.delivered = sim.delivered
    result.counts = _counts(sim, plan)
    result.wall_s = time.perf_counter() - started
    if tracer is not None:
        for _key, node in sim.all_instances():
            replica = node.inner
            tracer(
                f"end: {node.address} {'honest' if node.honest else 'byzantine'}{'' if node.up else ' down'} "
                f"view={replica.view}{'' if replica.view_active else ' (changing)'} "
                f"last_executed={replica.last_executed} stable={replica.stable_seq} pending={len(replica.pending)}"
            )
        if result.invariant:
            tracer(f"VIOLATION {result.invariant}: {result.detail}")
        elif result.liveness:
            tracer(f"LIVENESS FAILURE {result.liveness}")
        else:
            tracer(f"ok: {result.completed}/{result.requests} requests, {sim.delivered} messages delivered")
    return result


def _converged(sim: Simulation) -> bool:
    honest = [node.inner.last_executed for _k, node in sim.all_instances() if node.honest]
    return not honest or min(honest) == max(honest)


def _late_requests(plan: Plan, workload: _Workload, heal_ms: float, bound_ms: float) -> list[int]:
    return [
        i for i, done in workload.completed_ms.items()
        if done - max(heal_ms, workload.submitted_ms[i]) > bound_ms
    ]


def _describe_request(plan: Plan, index: int) -> str:
    spec = plan.requests[index]
    return f"{spec.client} {spec.op}{spec.args}{' read-only' if spec.read_only else ''}"


def _counts(sim: Simulation, plan: Plan) -> dict[str, int]:
    """Injections per fault: messages affected for network faults, occurrences otherwise."""
    counts = {name: 0 for name in ALL_FAULTS}
    for name, value in sim.counters.items():
        counts[name] = counts.get(name, 0) + value
    if not plan.network.fifo:
        counts["reorder"] += 1
    for role in plan.byzantine:
        for name in role.fault_names:
            if name != "adversary":
                counts[name] += 1
    return counts


def run_seed(
    seed: int, *, f: int = 2, requests: int = 20, faults: tuple[str, ...] = ALL_FAULTS,
    options: RunOptions | None = None, tracer: Callable[[str], None] | None = None,
) -> SeedResult:
    return run_plan(generate_plan(seed, f=f, requests=requests, faults=faults), options, tracer=tracer)


# ---- shrinking ----------------------------------------------------------------------------


def shrink(plan: Plan, failure: SeedResult, options: RunOptions | None = None, *, budget_s: float = 60.0) -> tuple[Plan, SeedResult]:
    """Greedily simplify `plan` while it still fails the way `failure` did."""
    options = options or RunOptions()
    target = failure.failure_key()
    assert target is not None, "shrink needs a failing run"
    deadline = time.perf_counter() + budget_s
    best, best_result = plan, failure

    def attempt(candidate: Plan) -> bool:
        nonlocal best, best_result
        if time.perf_counter() > deadline:
            return False
        result = run_plan(candidate, options)
        if result.failure_key() == target:
            best, best_result = candidate, result
            return True
        return False

    def drop_items(name: str) -> None:
        # Try removing halves, then quarters, ..., then single items (ddmin-style).
        chunk = max(1, len(getattr(best, name)) // 2)
        while chunk >= 1:
            i = 0
            while i < len(getattr(best, name)):
                items = getattr(best, name)
                if not attempt(best.without(**{name: items[:i] + items[i + chunk:]})):
                    i += chunk
            if chunk == 1:
                break
            chunk //= 2

    # A strategy's Byzantine identities are part of its attack, not a fault to shrink away.
    for name in ("events", "requests") if plan.adversary else ("byzantine", "events", "requests"):
        drop_items(name)
    for knob, value in (("drop_rate", 0.0), ("duplicate_rate", 0.0), ("spike_rate", 0.0), ("fifo", True)):
        if getattr(best.network, knob) != value:
            attempt(best.without(network=_network_with(best.network, **{knob: value})))
    if best.config != ConfigPlan():
        attempt(best.without(config=ConfigPlan()))
    # Simpler Byzantine roles: fewer attacks, no adversary, no twin, onset at 0.
    for i in range(len(best.byzantine)):
        role = best.byzantine[i]
        for j in range(len(role.attacks) - 1, -1, -1):
            role = best.byzantine[i]
            smaller = _role_with(role, attacks=role.attacks[:j] + role.attacks[j + 1:])
            if smaller.attacks or smaller.twin or smaller.adversary_rate_per_s:
                attempt(best.without(byzantine=_replace_at(best.byzantine, i, smaller)))
        for change in ({"adversary_rate_per_s": 0.0}, {"twin": False}, {"onset_ms": 0.0}):
            role = best.byzantine[i]
            smaller = _role_with(role, **change)
            if smaller != role and (smaller.attacks or smaller.twin or smaller.adversary_rate_per_s):
                attempt(best.without(byzantine=_replace_at(best.byzantine, i, smaller)))
    return best, best_result


def _network_with(net: NetworkPlan, **changes: Any) -> NetworkPlan:
    from dataclasses import replace

    return replace(net, **changes)


def _role_with(role: Any, **changes: Any) -> Any:
    from dataclasses import replace

    return replace(role, **changes)


def _replace_at(items: tuple[Any, ...], index: int, value: Any) -> tuple[Any, ...]:
    return (*items[:index], value, *items[index + 1:])


def write_failure(
    directory: Path, plan: Plan, result: SeedResult, options: RunOptions, *, original: Plan | None = None
) -> Path:
    """Save a failing (shrunk) plan and its full trace; `load_failure` replays it."""
    directory.mkdir(parents=True, exist_ok=True)
    kind = result.invariant or "liveness"
    attack = f"{plan.adversary}-" if plan.adversary else ""
    path = directory / f"seed-{plan.seed}-{attack}{kind}.json"
    lines: list[str] = []
    replayed = run_plan(plan, options, tracer=lines.append)
    document = {
        "seed": plan.seed,
        "invariant": result.invariant,
        "liveness": result.liveness,
        "detail": result.detail,
        "crypto": options.crypto,
        "certificates": options.certificates,
        "replay": f"pbft simulate --replay-file {path}",
        "plan": plan.to_json(),
        "original_plan_summary": None if original is None else {
            "byzantine": len(original.byzantine), "events": len(original.events), "requests": len(original.requests),
        },
        "reproduced": replayed.failure_key() == result.failure_key(),
        "trace": lines,
    }
    path.write_text(json.dumps(document, indent=1, default=str))
    return path


def load_failure(path: Path) -> tuple[Plan, dict[str, Any]]:
    document = json.loads(Path(path).read_text())
    return Plan.from_json(document["plan"]), document


__all__ = [
    "CONVERGENCE_MS",
    "LIVENESS_BOUND_MS",
    "RunOptions",
    "SeedResult",
    "build_simulation",
    "load_failure",
    "run_plan",
    "run_seed",
    "shrink",
    "write_failure",
]
