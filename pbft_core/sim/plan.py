"""A seed's fault plan: everything the adversary will do, decided before the run starts.

Theory of operation. `generate_plan(seed, ...)` draws, from one `random.Random(seed)`, a
complete description of a run: the workload (which client asks what, released when), the network
behaviour during the safety phase (loss, duplication, delay spikes, FIFO or not), the Byzantine
identities (at most f: attack lists with targets and onset times, twins, random-message
adversaries) and a list of timed fault events (partitions that come and go, replicas that crash
and restart from disk). The plan also carries the seeds of the run's random streams (network,
workload think times, adversaries), drawn from the same generator, so the seed alone reproduces
the run.

A plan is plain data: it round-trips through JSON (`to_json`/`from_json`), so a shrunk failing
plan can be saved in a trace file and replayed, and shrinking is editing a list (drop a fault
event, a Byzantine identity, a request) and re-running.

The fault menu (names used by ``--faults`` and in the per-fault counts):

====================  =======================================================================
``loss``              messages dropped at random (rate per seed, up to 8%)
``duplicate``         messages delivered twice (up to 8%)
``delay``             latency spikes: a message held up to 300 ms extra (up to 5%)
``reorder``           links are not FIFO: any two messages may overtake each other
``partition``         the addresses split into 2–3 sides for 50–2000 ms, then heal (clients
                      may sit on a side too)
``crash-restart``     a replica instance stops for 20–2000 ms, then restarts from its durable
                      events (`Replica.restore`)
``sign``/``crash``/   DESIGN §4 attacks by a Byzantine replica, with random targets for
``dark``/``time``/    ``dark`` and ``equivocation`` and a random onset time
``equivocation``
``twins``             a second instance of a Byzantine replica (same id and keys), placed on
                      the other side of partitions
``adversary``         a Byzantine replica injects well-typed messages with arbitrary fields
                      (fresh or mutated from observed traffic), signed with its real key
====================  =======================================================================
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ..attacks import ATTACK_KINDS
from ..config import ACCOUNTS

NETWORK_FAULTS = ("loss", "duplicate", "delay", "reorder", "partition")
NODE_FAULTS = ("crash-restart",)
BYZANTINE_FAULTS = (*ATTACK_KINDS, "twins", "adversary")
ALL_FAULTS = (*NETWORK_FAULTS, *NODE_FAULTS, *BYZANTINE_FAULTS)

SAFETY_MS_MIN = 1_500.0
SAFETY_MS_MAX = 4_000.0
READ_FRACTION = 0.2


@dataclass(frozen=True)
class RequestSpec:
    client: str
    op: str
    args: tuple[Any, ...]
    read_only: bool
    release_ms: float  # the client submits it at or after this time (closed loop)


@dataclass(frozen=True)
class ByzantineRole:
    replica: int
    attacks: tuple[tuple[str, tuple[int, ...]], ...] = ()  # (kind, targets)
    onset_ms: float = 0.0
    twin: bool = False
    adversary_rate_per_s: float = 0.0  # random messages per second of virtual time

    @property
    def fault_names(self) -> list[str]:
        names = [kind for kind, _ in self.attacks]
        if self.twin:
            names.append("twins")
        if self.adversary_rate_per_s > 0:
            names.append("adversary")
        return names


@dataclass(frozen=True)
class FaultEvent:
    """A timed fault: ``partition`` (args: sides as lists of addresses; lasts duration_ms) or
    ``crash-restart`` (args: the instance address; down for duration_ms)."""

    at_ms: float
    kind: str
    duration_ms: float
    args: tuple[Any, ...] = ()


@dataclass(frozen=True)
class NetworkPlan:
    delay_ms_min: float = 1.0
    delay_ms_max: float = 5.0
    drop_rate: float = 0.0
    duplicate_rate: float = 0.0
    spike_rate: float = 0.0
    spike_delay_ms_max: float = 0.0
    fifo: bool = True


@dataclass(frozen=True)
class ConfigPlan:
    """Protocol knobs varied per seed, so checkpoints, watermarks, garbage collection, state
    transfer, batching and both commit paths are exercised, not only the defaults."""

    checkpoint_interval: int = 10
    log_window: int = 400
    batch_size_max: int = 64
    inflight_max: int = 8
    fast_path: bool = True


@dataclass(frozen=True)
class Plan:
    seed: int
    f: int
    safety_ms: float
    requests: tuple[RequestSpec, ...]
    network: NetworkPlan
    byzantine: tuple[ByzantineRole, ...]
    events: tuple[FaultEvent, ...]
    streams: dict[str, int] = field(default_factory=dict)  # seeds of the run's random streams
    config: ConfigPlan = field(default_factory=ConfigPlan)
    # A targeted attack of `strategies` ("" for none): it owns the Byzantine identities.
    adversary: str = ""

    @property
    def n(self) -> int:
        return 3 * self.f + 1

    def fault_names(self) -> set[str]:
        """Which faults of the menu this plan injects at all."""
        names = {e.kind for e in self.events}
        net = self.network
        if net.drop_rate > 0:
            names.add("loss")
        if net.duplicate_rate > 0:
            names.add("duplicate")
        if net.spike_rate > 0:
            names.add("delay")
        if not net.fifo:
            names.add("reorder")
        for role in self.byzantine:
            names.update(role.fault_names)
        return names

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        return cls(
            seed=int(data["seed"]),
            f=int(data["f"]),
            safety_ms=float(data["safety_ms"]),
            requests=tuple(
                RequestSpec(r["client"], r["op"], tuple(r["args"]), bool(r["read_only"]), float(r["release_ms"]))
                for r in data["requests"]
            ),
            network=NetworkPlan(**data["network"]),
            byzantine=tuple(
                ByzantineRole(
                    int(b["replica"]),
                    tuple((str(k), tuple(int(t) for t in ts)) for k, ts in b["attacks"]),
                    float(b["onset_ms"]),
                    bool(b["twin"]),
                    float(b["adversary_rate_per_s"]),
                )
                for b in data["byzantine"]
            ),
            events=tuple(
                FaultEvent(float(e["at_ms"]), str(e["kind"]), float(e["duration_ms"]), _tuples(e["args"]))
                for e in data["events"]
            ),
            streams={str(k): int(v) for k, v in data.get("streams", {}).items()},
            config=ConfigPlan(**data.get("config", {})),
            adversary=str(data.get("adversary", "")),
        )

    def dumps(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True)

    def without(self, **changes: Any) -> Plan:
        return replace(self, **changes)


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list | tuple) else value


# ---- generation ---------------------------------------------------------------------------


def generate_plan(
    seed: int,
    *,
    f: int = 2,
    requests: int = 20,
    faults: tuple[str, ...] | frozenset[str] = ALL_FAULTS,
    clients: tuple[str, ...] = ACCOUNTS,
    adversary: str | None = None,
) -> Plan:
    """The plan for `seed`: same arguments, same plan, on every machine.

    With an `adversary` (a name from `strategies`), the strategy decides the Byzantine
    identities (no random attacks, twins or random messages), which of the network and
    crash-restart faults stay on, and any protocol knobs it needs; its malicious clients issue
    nothing of the honest workload, and its Byzantine replicas never crash.
    """
    unknown = set(faults) - set(ALL_FAULTS)
    if unknown:
        raise ValueError(f"unknown faults {sorted(unknown)}; the menu is {', '.join(ALL_FAULTS)}")
    enabled = set(faults)
    if adversary:
        from . import strategies

        attack = strategies.get(adversary)
        if f < attack.f_min:
            raise ValueError(f"adversary {adversary!r} needs f >= {attack.f_min}")
        enabled &= set(attack.faults)
        clients = tuple(c for c in clients if c not in attack.malicious_clients)
    rng = random.Random(f"pbft-sim/{seed}")
    n = 3 * f + 1
    safety_ms = round(rng.uniform(SAFETY_MS_MIN, SAFETY_MS_MAX), 3)

    network = _network(rng, enabled)
    byzantine = _byzantine(rng, f, n, safety_ms, enabled)
    twins = [b.replica for b in byzantine if b.twin]
    events = _events(rng, n, safety_ms, enabled, twins, clients)
    workload = _workload(rng, requests, safety_ms, clients)
    streams = {name: rng.getrandbits(63) for name in ("network", "workload", "adversary")}
    config = _config(rng)
    if adversary:
        chosen = attack.byzantine(f, n)
        byzantine = tuple(ByzantineRole(r) for r in chosen)
        addresses = {f"n{r}" for r in chosen}
        events = tuple(e for e in events if not (e.kind == "crash-restart" and e.args[0] in addresses))
        config = attack.configure(config)
        return Plan(seed, f, safety_ms, workload, network, byzantine, events, streams, config, adversary)
    return Plan(seed, f, safety_ms, workload, network, byzantine, events, streams, config)


def _config(rng: random.Random) -> ConfigPlan:
    if rng.random() < 0.3:
        return ConfigPlan()
    interval = rng.choice([2, 3, 5, 10])
    # The window must hold at least one checkpoint interval, or the leader could never reach
    # the checkpoint that moves it.
    return ConfigPlan(
        checkpoint_interval=interval,
        log_window=rng.choice([2 * interval, 3 * interval, 400]),
        batch_size_max=rng.choice([1, 2, 4, 64]),
        inflight_max=rng.choice([1, 2, 8]),
        fast_path=rng.random() < 0.8,
    )


def _network(rng: random.Random, enabled: set[str]) -> NetworkPlan:
    delay_min = rng.uniform(0.2, 2.0)
    return NetworkPlan(
        delay_ms_min=round(delay_min, 3),
        delay_ms_max=round(delay_min + rng.uniform(0.5, 15.0), 3),
        drop_rate=round(rng.uniform(0.0, 0.08), 4) if "loss" in enabled and rng.random() < 0.7 else 0.0,
        duplicate_rate=round(rng.uniform(0.0, 0.08), 4) if "duplicate" in enabled and rng.random() < 0.5 else 0.0,
        spike_rate=round(rng.uniform(0.0, 0.05), 4) if "delay" in enabled and rng.random() < 0.5 else 0.0,
        spike_delay_ms_max=round(rng.uniform(20.0, 300.0), 3),
        fifo=not ("reorder" in enabled and rng.random() < 0.5),
    )


def _byzantine(rng: random.Random, f: int, n: int, safety_ms: float, enabled: set[str]) -> tuple[ByzantineRole, ...]:
    kinds = [k for k in ATTACK_KINDS if k in enabled]
    can_twin, can_adversary = "twins" in enabled, "adversary" in enabled
    if not (kinds or can_twin or can_adversary):
        return ()
    count = rng.choice([0, *range(1, f + 1), f])  # weighted towards the full budget
    # The first leaders (n1, n2, ...) are where attacks bite; favour them.
    candidates = list(range(1, n + 1))
    weights = [4.0 if r <= f + 1 else 1.0 for r in candidates]
    chosen: list[int] = []
    while len(chosen) < count:
        r = rng.choices(candidates, weights)[0]
        if r not in chosen:
            chosen.append(r)
    roles = []
    for r in sorted(chosen):
        others = [x for x in range(1, n + 1) if x != r]
        attacks: list[tuple[str, tuple[int, ...]]] = []
        twin = can_twin and rng.random() < 0.3
        adversary = can_adversary and rng.random() < 0.35
        if kinds and (rng.random() < 0.7 or not (twin or adversary)):
            for kind in rng.sample(kinds, rng.randint(1, min(3, len(kinds)))):
                targets: tuple[int, ...] = ()
                if kind in ("dark", "equivocation"):
                    targets = tuple(sorted(rng.sample(others, rng.randint(1, max(1, len(others) // 2)))))
                attacks.append((kind, targets))
        if not (attacks or twin or adversary):
            adversary = can_adversary
            twin = not adversary and can_twin
        onset = 0.0 if rng.random() < 0.5 else round(rng.uniform(0.0, safety_ms / 2), 3)
        rate = round(rng.uniform(10.0, 150.0), 3) if adversary else 0.0
        roles.append(ByzantineRole(r, tuple(attacks), onset, twin, rate))
    return tuple(roles)


def _events(
    rng: random.Random, n: int, safety_ms: float, enabled: set[str], twins: list[int], clients: tuple[str, ...]
) -> tuple[FaultEvent, ...]:
    events: list[FaultEvent] = []
    addresses = [f"n{r}" for r in range(1, n + 1)] + [f"n{r}'" for r in twins]
    if "partition" in enabled or twins:
        episodes = rng.randint(0, 3) if "partition" in enabled else 0
        if twins and rng.random() < 0.8:
            episodes += 1  # twins are only interesting on different sides
        for i in range(episodes):
            start = 0.0 if i == 0 and twins and rng.random() < 0.5 else rng.uniform(0.0, safety_ms * 0.9)
            duration = rng.uniform(50.0, 2_000.0)
            sides = rng.choice([2, 2, 2, 3])
            assignment: dict[str, int] = {a: rng.randrange(sides) for a in addresses}
            if twins and rng.random() < 0.5:
                # Twins' favourite: two halves as equal as possible, one instance in each, so
                # each side may believe it holds a quorum.
                others = [a for a in addresses if a.rstrip("'") not in {f"n{r}" for r in twins}]
                rng.shuffle(others)
                assignment = {a: i % 2 for i, a in enumerate(others)}
            for r in twins:  # the two instances of a twin on different sides
                assignment[f"n{r}"] = 0
                assignment[f"n{r}'"] = 1
            for c in clients:
                if rng.random() < 0.5:
                    assignment[c] = rng.randrange(sides)
            groups = tuple(
                tuple(sorted(a for a, s in assignment.items() if s == side)) for side in range(sides)
            )
            events.append(FaultEvent(round(start, 3), "partition", round(duration, 3), groups))
    if "crash-restart" in enabled:
        for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
            start = rng.uniform(0.0, safety_ms * 0.9)
            events.append(
                FaultEvent(round(start, 3), "crash-restart", round(rng.uniform(20.0, 2_000.0), 3), (rng.choice(addresses),))
            )
    return tuple(sorted(events, key=lambda e: (e.at_ms, e.kind)))


def _workload(rng: random.Random, count: int, safety_ms: float, clients: tuple[str, ...]) -> tuple[RequestSpec, ...]:
    """`count` requests; about 70% released during the safety phase, the rest at the heal."""
    out = []
    for i in range(count):
        client = rng.choice(clients)
        in_safety = i < round(count * 0.7)
        release = round(rng.uniform(0.0, safety_ms * 0.8), 3) if in_safety else safety_ms
        if rng.random() < READ_FRACTION:
            out.append(RequestSpec(client, "balance", (rng.choice(clients),), rng.random() < 0.8, release))
        else:
            target = rng.choice([c for c in clients if c != client])
            amount = rng.choice([1, 1, 2, 3, 5, 8, 13])  # 13 > 10: some transfers fail
            out.append(RequestSpec(client, "transfer", (client, target, amount), False, release))
    return tuple(sorted(out, key=lambda r: r.release_ms))


__all__ = [
    "ALL_FAULTS",
    "BYZANTINE_FAULTS",
    "NETWORK_FAULTS",
    "NODE_FAULTS",
    "ByzantineRole",
    "ConfigPlan",
    "FaultEvent",
    "NetworkPlan",
    "Plan",
    "RequestSpec",
    "generate_plan",
]
