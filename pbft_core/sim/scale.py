"""Message cost per committed instance as n grows (``pbft bench scale``), against all-to-all PBFT.

Theory of operation. For each f, `run_scale` builds a fault-free cluster of n = 3f+1 replicas in
the deterministic simulator (`Simulation`: reliable, FIFO links with 1–5 ms delay, no loss, no
Byzantine replica), lets ``clients`` closed-loop clients play ``requests`` transfers between
them, and runs until every request is answered and every replica has executed every instance.
Two hooks watch the traffic without changing it:

- a ready hook sees every message a replica hands to the network (to a replica or to a client),
  and encodes it with the wire codec: the byte count is exactly what the simulator puts on the
  link, and the message is the decoded object, so its type is known;
- a deliver hook sees every request a client puts on the network (on a reliable network what is
  sent is what is delivered).

Replica-to-replica messages are split into **ordering** messages (the agreement of one instance:
PRE-PREPARE, prepare shares, the collector's certificates and fast commits, commit shares) and
**other** traffic (checkpoints every K instances, status gossip every 150 ms of virtual time,
catch-up, view change: none of that is per instance). Dividing the ordering counts by the number
of committed instances (sequence numbers executed) gives the per-instance cost, which for the
linear protocol is 3(n-1) with the fast path (PRE-PREPARE, n-1 shares, FAST-COMMIT) and 5(n-1)
on the slow path: O(n), so messages per instance per replica stay flat as n grows.

The all-to-all comparison is a model, not a run: classic PBFT (Castro–Liskov) sends one
PRE-PREPARE to n-1 backups, a PREPARE from each of the n-1 backups to the n-1 others, and a
COMMIT from each of the n replicas to the n-1 others:

    all-to-all messages per instance = (n-1) + (n-1)^2 + n(n-1) = 2n(n-1)

Its bytes are estimated from sizes measured in the same run, assuming Ed25519 signature
authenticators (64 B, as this codebase signs point-to-point messages) and this codebase's
msgpack framing: a PRE-PREPARE costs what ours measured (same fields: view, seq, digest, batch,
sender, signature), and a PREPARE or COMMIT ⟨v, s, d, i⟩σ costs what our certificate messages
measured minus their certificate field (the rest is exactly v, s, d, i and an Ed25519
signature). MAC authenticators (the PBFT paper's optimisation) would make each broadcast carry
n-1 MACs, i.e. more bytes, not fewer, at large n.

With BLS certificates (the default) a certificate stays 96 bytes (one BLS12-381 G2 point) for
every n; the matching all-to-all proof of a prepared instance is 2f+1 signed PREPAREs, which
grows with n. With ``certificates="ed25519"`` (`multisig`) a certificate is those 2f+1 (fast
path: n) signatures side by side, 65 bytes each, so the collector's broadcasts grow with n too
and bytes per instance grow as n²; the simulator's keyed hashes have the real sizes.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..client import Completion
from ..config import ACCOUNTS, ClusterConfig
from ..messages import (
    ORDERING,
    CommitCertificate,
    FastCommit,
    Message,
    PrepareCertificate,
    PrePrepare,
    Request,
    encode,
)
from ..ready import Ready
from ..runtime.simulator import NetworkConfig, SimNode, Simulation

# The collector's messages that carry a certificate next to view, seq, digest, sender and an
# Ed25519 signature: take the certificate out and what is left is a classic PREPARE.
CERTIFIED_TYPES: tuple[type[Message], ...] = (PrepareCertificate, CommitCertificate, FastCommit)


def bytes_field_size(length: int) -> int:
    """What msgpack spends on a bytes field of `length`: bin8, bin16 or bin32 header, then it."""
    return length + (2 if length < 2**8 else 3 if length < 2**16 else 5)

# Virtual time after which a run that has not finished is reported as stuck (a bug: the network
# is reliable and nobody is faulty, so everything should complete within milliseconds each).
RUN_TIMEOUT_MS = 600_000.0

ProgressCallback = Callable[[int, int], None]


def all_to_all_messages(n: int) -> int:
    """Classic PBFT per instance: PRE-PREPARE to n-1, PREPARE (n-1)→(n-1), COMMIT n→(n-1)."""
    return (n - 1) + (n - 1) ** 2 + n * (n - 1)


def all_to_all_bytes(n: int, preprepare_bytes: float, vote_bytes: float) -> float:
    """Bytes per instance of the all-to-all model, given one PRE-PREPARE's and one vote's size."""
    return (n - 1) * preprepare_bytes + ((n - 1) ** 2 + n * (n - 1)) * vote_bytes


def fit_exponent(ns: Sequence[int], values: Sequence[float]) -> float | None:
    """Least-squares slope of log(value) against log(n): value ∝ n^slope (None: < 2 points)."""
    points = [(math.log(n), math.log(v)) for n, v in zip(ns, values, strict=True) if v > 0]
    if len({x for x, _ in points}) < 2:
        return None
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    num = sum((x - mean_x) * (y - mean_y) for x, y in points)
    den = sum((x - mean_x) ** 2 for x, _ in points)
    return num / den


@dataclass
class Tally:
    messages: int = 0
    bytes: int = 0

    def add(self, size: int) -> None:
        self.messages += 1
        self.bytes += size


@dataclass
class ScaleResult:
    """One f's run: raw tallies by message type, and the derived per-instance figures."""

    f: int
    n: int
    crypto: str
    fast_path: bool
    requests: int
    clients: int
    seed: int
    certificates: str = "bls"
    instances: int = 0  # sequence numbers executed (by every replica)
    requests_committed: int = 0
    replica_by_type: dict[str, Tally] = field(default_factory=dict)
    client_by_type: dict[str, Tally] = field(default_factory=dict)
    certificate_sizes: set[int] = field(default_factory=set)
    # The certificate fields of CERTIFIED_TYPES messages as sent (one per recipient), headers in.
    certificate_fields: Tally = field(default_factory=Tally)
    virtual_ms: float = 0.0
    wall_s: float = 0.0

    # ---- linear protocol, measured -----------------------------------------------------------

    def _sum(self, *, ordering: bool) -> Tally:
        names = {t.__name__ for t in ORDERING}
        total = Tally()
        for name, tally in self.replica_by_type.items():
            if (name in names) == ordering:
                total.messages += tally.messages
                total.bytes += tally.bytes
        return total

    @property
    def ordering(self) -> Tally:
        return self._sum(ordering=True)

    @property
    def other(self) -> Tally:
        return self._sum(ordering=False)

    def _per_instance(self, value: float) -> float:
        return value / self.instances if self.instances else 0.0

    @property
    def mean_batch(self) -> float:
        return self._per_instance(self.requests_committed)

    @property
    def messages_per_instance(self) -> float:
        return self._per_instance(self.ordering.messages)

    @property
    def bytes_per_instance(self) -> float:
        return self._per_instance(self.ordering.bytes)

    @property
    def messages_per_instance_per_replica(self) -> float:
        return self.messages_per_instance / self.n

    @property
    def other_messages_per_instance(self) -> float:
        return self._per_instance(self.other.messages)

    @property
    def certificate_bytes(self) -> int:
        return max(self.certificate_sizes, default=0)

    # ---- all-to-all PBFT, modelled from measured sizes ---------------------------------------

    def _mean_size(self, types: Sequence[type[Message]]) -> float:
        tallies = [self.replica_by_type[t.__name__] for t in types if t.__name__ in self.replica_by_type]
        count = sum(t.messages for t in tallies)
        return sum(t.bytes for t in tallies) / count if count else 0.0

    @property
    def preprepare_bytes(self) -> float:
        return self._mean_size((PrePrepare,))

    @property
    def vote_bytes(self) -> float:
        """A classic PREPARE/COMMIT ⟨v, s, d, i⟩ with an Ed25519 signature (module docstring)."""
        certified = self._mean_size(CERTIFIED_TYPES)
        fields = self.certificate_fields
        return certified - fields.bytes / fields.messages if certified and fields.messages else 0.0

    @property
    def all_to_all_messages(self) -> int:
        return all_to_all_messages(self.n)

    @property
    def all_to_all_bytes(self) -> float:
        return all_to_all_bytes(self.n, self.preprepare_bytes, self.vote_bytes)

    @property
    def ratio_messages(self) -> float:
        return self.all_to_all_messages / self.messages_per_instance if self.messages_per_instance else 0.0

    @property
    def ratio_bytes(self) -> float:
        return self.all_to_all_bytes / self.bytes_per_instance if self.bytes_per_instance else 0.0

    def to_json(self) -> dict[str, Any]:
        def per_type(tallies: dict[str, Tally]) -> dict[str, dict[str, float]]:
            return {
                name: {
                    "messages": t.messages,
                    "bytes": t.bytes,
                    "messages_per_instance": self._per_instance(t.messages),
                    "bytes_per_instance": self._per_instance(t.bytes),
                }
                for name, t in sorted(tallies.items())
            }

        other = self.other
        clients = Tally(
            sum(t.messages for t in self.client_by_type.values()),
            sum(t.bytes for t in self.client_by_type.values()),
        )
        return {
            "f": self.f,
            "n": self.n,
            "certificates": self.certificates,
            "instances": self.instances,
            "requests_committed": self.requests_committed,
            "mean_batch": self.mean_batch,
            "messages_per_instance": self.messages_per_instance,
            "bytes_per_instance": self.bytes_per_instance,
            "messages_per_instance_per_replica": self.messages_per_instance_per_replica,
            "other_messages_per_instance": self.other_messages_per_instance,
            "other_bytes_per_instance": self._per_instance(other.bytes),
            "client_messages_per_instance": self._per_instance(clients.messages),
            "client_bytes_per_instance": self._per_instance(clients.bytes),
            "certificate_bytes": self.certificate_bytes,
            "replica_by_type": per_type(self.replica_by_type),
            "client_by_type": per_type(self.client_by_type),
            "all_to_all": {
                "messages_per_instance": self.all_to_all_messages,
                "bytes_per_instance": self.all_to_all_bytes,
                "messages_per_instance_per_replica": self.all_to_all_messages / self.n,
                "preprepare_bytes": self.preprepare_bytes,
                "vote_bytes": self.vote_bytes,
                "prepared_certificate_bytes": (2 * self.f + 1) * self.vote_bytes,
            },
            "ratio_messages": self.ratio_messages,
            "ratio_bytes": self.ratio_bytes,
            "virtual_ms": self.virtual_ms,
            "wall_s": self.wall_s,
        }


class _Workload:
    """Closed-loop clients sharing ``requests`` transfers round-robin, no think time."""

    def __init__(self, sim: Simulation, clients: list[str], requests: int, rng: random.Random) -> None:
        self.sim = sim
        self.queues: dict[str, list[tuple[str, str, int]]] = {c: [] for c in clients}
        for i in range(requests):
            source, target = rng.sample(ACCOUNTS, 2)
            # Amount 1: most transfers succeed; one that fails is still ordered and executed.
            self.queues[clients[i % len(clients)]].append((source, target, 1))
        self.total = requests
        self.completed = 0
        sim.completion_hooks.append(self._on_completion)
        for client in clients:
            self._next(client)

    def _next(self, client: str) -> None:
        queue = self.queues[client]
        if queue:
            args = queue.pop(0)
            # Through the event queue: a completion hook runs inside the client's step.
            self.sim.at(self.sim.now, lambda s, c=client, a=args: s.submit(c, "transfer", a))

    def _on_completion(self, client: str, completion: Completion) -> None:
        self.completed += 1
        self._next(client)


def run_scale(
    f: int,
    *,
    requests: int = 200,
    clients: int = 16,
    crypto: str = "sim",
    seed: int = 0,
    fast_path: bool = True,
    certificates: str = "bls",
    on_progress: ProgressCallback | None = None,
) -> ScaleResult:
    """Run one fault-free cluster of n = 3f+1 and tally its traffic (module docstring)."""
    if f < 1 or requests < 1 or clients < 1:
        raise ValueError("f, requests and clients must be at least 1")
    config = ClusterConfig(f=f, fast_path=fast_path, certificates=certificates)
    names = [f"c{i}" for i in range(1, clients + 1)]
    started = time.perf_counter()
    # Key dealing (real crypto) happens here; it is part of the wall time, not of the traffic.
    sim = Simulation(config, seed=seed, crypto=crypto, network=NetworkConfig(), clients=names, keep_events=False)
    result = ScaleResult(f, config.n, crypto, fast_path, requests, clients, seed, certificates)
    client_set = set(names)
    last: list[Any] = [None, b""]  # the last message encoded: a broadcast is one object n-1 times

    def size_of(message: Message) -> int:
        if last[0] is not message:
            last[0], last[1] = message, encode(message)
        return len(last[1])

    def on_ready(node: SimNode, ready: Ready) -> None:
        for _to, message in ready.to_replicas:
            result.replica_by_type.setdefault(type(message).__name__, Tally()).add(size_of(message))
            if isinstance(message, CERTIFIED_TYPES):
                cert = message.aggregate if isinstance(message, FastCommit) else message.certificate
                result.certificate_sizes.add(len(cert))
                result.certificate_fields.add(bytes_field_size(len(cert)))
        for client, message in ready.to_clients:
            if client in client_set:
                result.client_by_type.setdefault(type(message).__name__, Tally()).add(size_of(message))

    def on_deliver(source: str, target: str, message: Message) -> None:
        if source in client_set and isinstance(message, Request):
            result.client_by_type.setdefault("Request", Tally()).add(size_of(message))

    sim.ready_hooks.append(on_ready)
    sim.deliver_hooks.append(on_deliver)
    workload = _Workload(sim, names, requests, random.Random(seed))
    if on_progress is not None:
        sim.completion_hooks.append(lambda _c, _done: on_progress(workload.completed, requests))

    def finished() -> bool:
        if workload.completed < requests:
            return False
        target = sim.replica(1).last_executed
        return all(node.inner.last_executed >= target for node in sim.nodes.values())

    if not sim.run_until(finished, timeout_ms=RUN_TIMEOUT_MS):
        raise RuntimeError(
            f"f={f}: {workload.completed}/{requests} requests done after {sim.now:.0f} ms of virtual time"
        )
    executed = sim.nodes[1].executed
    result.instances = len(executed)
    result.requests_committed = sum(len(e.batch) for e in executed.values())
    result.virtual_ms = sim.now
    result.wall_s = time.perf_counter() - started
    return result


@dataclass
class ScaleReport:
    results: list[ScaleResult]

    def growth(self) -> dict[str, float | None]:
        """Fitted exponents: messages per instance ∝ n^k (linear ≈ 1, all-to-all ≈ 2)."""
        ns = [r.n for r in self.results]
        return {
            "linear_messages_exponent": fit_exponent(ns, [r.messages_per_instance for r in self.results]),
            "linear_bytes_exponent": fit_exponent(ns, [r.bytes_per_instance for r in self.results]),
            "all_to_all_messages_exponent": fit_exponent(ns, [r.all_to_all_messages for r in self.results]),
            "all_to_all_bytes_exponent": fit_exponent(ns, [r.all_to_all_bytes for r in self.results]),
        }

    def to_json(self) -> dict[str, Any]:
        first = self.results[0] if self.results else None
        return {
            "benchmark": "scale",
            "crypto": first.crypto if first else None,
            "certificates": first.certificates if first else None,
            "fast_path": first.fast_path if first else None,
            "requests": first.requests if first else None,
            "clients": first.clients if first else None,
            "seed": first.seed if first else None,
            "model": {
                "all_to_all_messages": "(n-1) + (n-1)^2 + n(n-1)",
                "all_to_all_bytes": "(n-1)*preprepare_bytes + ((n-1)^2 + n(n-1))*vote_bytes",
                "vote_bytes": "mean size of our certificate messages minus their certificate field (Ed25519-signed <v, s, d, i>)",
                "ordering_types": [t.__name__ for t in ORDERING],
            },
            "results": [r.to_json() for r in self.results],
            "growth": self.growth(),
        }


__all__ = [
    "ScaleReport",
    "ScaleResult",
    "Tally",
    "all_to_all_bytes",
    "all_to_all_messages",
    "fit_exponent",
    "run_scale",
]
