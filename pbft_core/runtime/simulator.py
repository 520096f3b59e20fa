"""Deterministic in-process simulator shell: every replica and client in one process.

Theory of operation. One priority queue of timed events (deliver a message, tick a node, call a
scheduled action) is drained in (time, insertion order); the virtual clock jumps to each event's
time. All randomness comes from ``self.rng`` (seeded), so a seed fully determines a run: the
same seed replays the same trace, byte for byte. Messages cross the network as **bytes**
(encoded and decoded with the wire codec), exactly as in the process shells, so the simulator
runs the same protocol code on the same inputs.

The network (`NetworkConfig`) delays each message by a uniform random amount, may drop or
duplicate it, may hold it for an extra "spike" (reordering), and honours cut links
(``blocked``) and partitions (``partition``: address → side; only same-side addresses talk).
Links are FIFO by default (as TCP and pipes are).

Nodes are addressed by name: ``n3`` is replica 3, ``n3'`` its **twin** (a second `Replica`
instance with the same identity and keys, see `add_twin`; Twins, DiemBFT), and clients by their
account name. A message sent *to replica 3* goes to every instance of replica 3 the links allow.

Node faults: `crash` stops a node (messages to it are lost, its timers stop) and `restart`
brings it back, by default rebuilt with `Replica.restore` from what its write-ahead log holds (a
restart from disk: volatile state such as collector shares and timers is lost, votes are not).
The log is the shells' own `durable.DurableLog` (in memory): each `Ready`'s durable events are
committed to it as a shell commits them, wire-encoded and compacted at stable checkpoints, and
read back, so restarts exercise the on-disk format and compaction too. Byzantine
behaviour is the `faults.ByzantineReplica` layer, optionally switched on at an onset time.

Hooks let a checker watch a run without the simulator knowing about invariants: ``ready_hooks``
see every `Ready` a replica instance produces, ``deliver_hooks`` every message delivered,
``completion_hooks`` every request a client accepts, ``send_hooks`` every replica-to-replica
send, and ``tracer`` (if set) receives one line per interesting step for ``--replay -v``.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import count
from typing import Any

from ..attacks import Attack
from ..client import Client, ClientReady, Completion
from ..config import ACCOUNTS, ClusterConfig
from ..crypto import NodeCrypto, SimCrypto
from ..dispatch import TransactionLike, TransactionOutcome
from ..durable import DurableLog
from ..faults import Node, make_node
from ..messages import DecodeError, Message, Reply, Request, decode, encode
from ..ready import (
    DURABLE_EVENTS,
    Event,
    Executed,
    Ready,
)
from ..replica import Replica
from .set_run import SetDriver
from .sim_set import SimTransport
from .summary import describe, describe_event

DECODE_CACHE_MAX = 4096
# A node ticked this often without virtual time moving is asking to be woken "now" forever.
TICKS_AT_ONE_TIME_MAX = 10_000


# Normal runs keep a few hundred events queued; this many means messages multiply faster than
# they are delivered (a forwarding loop, an amplification), and virtual time would crawl.
EVENTS_QUEUED_MAX = 100_000


# Links between two Byzantine instances carry at most this many messages per window: twins or
# colluders running honest code can bounce a forwarded request between themselves forever,
# doubling it at every twin; that costs the adversary nothing and would only stall the
# simulation. Honest replicas' links are never throttled (a storm through them is a finding).
BYZANTINE_LINK_WINDOW_MS = 100.0
BYZANTINE_LINK_MESSAGES_MAX = 500


class Livelock(RuntimeError):
    """A node keeps asking for a tick at the current virtual time: time can never advance."""


class MessageStorm(RuntimeError):
    """Messages multiply faster than the network delivers them: the run can never finish."""
# A replica instance's key in the event queue: r for replica r, -r for its twin.
NodeKey = int


@dataclass
class NetworkConfig:
    delay_ms_min: float = 1.0
    delay_ms_max: float = 5.0
    drop_rate: float = 0.0
    duplicate_rate: float = 0.0
    # Links deliver in order (as TCP and pipes do); the scenario driver's clients share one
    # link per replica, so the leader sees requests in dispatch order. False allows reordering.
    fifo: bool = True
    # With this probability a message is held an extra uniform(0, spike_delay_ms_max): a
    # latency spike, which reorders it against later messages on other (or non-FIFO) links.
    spike_rate: float = 0.0
    spike_delay_ms_max: float = 0.0


@dataclass
class SimNode:
    replica: Node
    honest: bool
    live: bool
    executed: dict[int, Executed] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    replica_id: int = 0
    address: str = ""  # "n3", or "n3'" for a twin
    up: bool = True  # False while crashed
    # Durable events per Ready, not yet written to `disk` (written when the node restarts).
    durable: list[list[Event]] = field(default_factory=list)
    disk: DurableLog | None = None  # the write-ahead log a restart from disk reads
    crypto: NodeCrypto | None = None
    attacks: tuple[Attack, ...] = ()
    onset_ms: float = 0.0
    tick_at: float | None = None  # earliest tick already queued (later requests are redundant)

    @property
    def inner(self) -> Replica:
        """The honest protocol state inside any Byzantine wrapper."""
        replica = self.replica
        return replica.honest


def make_crypto(kind: str, seed: int, config: ClusterConfig, clients: Iterable[str]) -> tuple[
    Callable[[int], NodeCrypto], Callable[[str], NodeCrypto]
]:
    """Per-node crypto factories: "sim" keyed hashes, or "real" Ed25519 + BLS (or, with
    ``config.certificates == "ed25519"``, Ed25519 only); certificates of the config's scheme."""
    if kind == "sim":
        raw = seed.to_bytes(8, "big", signed=True)
        scheme = config.certificates
        return (
            lambda r: SimCrypto(raw, f"n{r}", config.n, config.quorum, scheme),
            lambda c: SimCrypto(raw, f"client/{c}", config.n, config.quorum, scheme),
        )
    if kind != "real":
        raise ValueError(f"unknown crypto suite {kind!r} (expected 'sim' or 'real')")
    from ..keys import ClusterKeys

    keys = ClusterKeys.generate(config, list(clients), seed=seed.to_bytes(8, "big", signed=True))
    return (lambda r: keys.replica_secrets[r].crypto(), lambda c: keys.client_secrets[c].crypto())


class Simulation:
    def __init__(
        self,
        config: ClusterConfig | None = None,
        *,
        seed: int = 0,
        crypto: str = "sim",
        live: Iterable[int] | None = None,
        byzantine: dict[int, tuple[Attack, ...]] | None = None,
        network: NetworkConfig | None = None,
        clients: Iterable[str] = ACCOUNTS,
        keep_events: bool = True,
        keep_durable: bool = False,
    ) -> None:
        self.config = config or ClusterConfig()
        self.seed = seed
        self.rng = random.Random(seed)
        self.network = network or NetworkConfig()
        self.now = 0.0
        self.keep_events = keep_events
        self.keep_durable = keep_durable
        self._queue: list[tuple[float, int, str, Any, Any]] = []
        self._order = count()
        self.blocked: set[tuple[str, str]] = set()  # (source, target) links that are cut
        self.partition: dict[str, int] = {}  # address -> side; addresses absent talk to all
        self._link_clock: dict[tuple[str, str], float] = {}
        self._decoded: dict[bytes, Message] = {}
        self._tick_time = -1.0
        self._byzantine_links: dict[tuple[str, str], tuple[float, int]] = {}
        self._ticks_at_time: dict[str, int] = {}
        self.delivered = 0
        self.decode_failures = 0
        self.observers: list[Callable[[Simulation], None]] = []
        self.ready_hooks: list[Callable[[SimNode, Ready], None]] = []
        self.deliver_hooks: list[Callable[[str, str, Message], None]] = []
        self.completion_hooks: list[Callable[[str, Completion], None]] = []
        self.send_hooks: list[Callable[[str, int, Message], None]] = []
        self.tracer: Callable[[str], None] | None = None
        self.counters: dict[str, int] = {}

        live_set = set(self.config.replica_ids if live is None else live)
        byzantine = byzantine or {}
        client_names = list(clients)
        self.replica_crypto, self.client_crypto = make_crypto(crypto, seed, self.config, client_names)
        self.nodes: dict[int, SimNode] = {}
        self.twins: dict[int, SimNode] = {}
        for r in self.config.replica_ids:
            node_crypto = self.replica_crypto(r)
            attacks = byzantine.get(r, ())
            self.nodes[r] = SimNode(
                make_node(Replica(r, self.config, node_crypto), attacks),
                r not in byzantine,
                r in live_set,
                replica_id=r,
                address=f"n{r}",
                crypto=node_crypto,
                attacks=attacks,
            )
        self._by_address = {node.address: node for node in self.nodes.values()}
        self.clients = {c: Client(c, self.config, self.client_crypto(c)) for c in client_names}
        self.completions: list[tuple[str, Any]] = []
        self._on_completion: Callable[[str, Any], None] | None = None
        for r in self.config.replica_ids:
            self._schedule(0.0, "tick", r, None)

    # ---- topology and node faults --------------------------------------------------------

    def node(self, key: NodeKey) -> SimNode:
        return self.nodes[key] if key > 0 else self.twins[-key]

    def instances(self, r: int) -> list[tuple[NodeKey, SimNode]]:
        """Every instance of replica r: itself and, if it has one, its twin."""
        twin = self.twins.get(r)
        return [(r, self.nodes[r])] if twin is None else [(r, self.nodes[r]), (-r, twin)]

    def all_instances(self) -> list[tuple[NodeKey, SimNode]]:
        return [pair for r in self.config.replica_ids for pair in self.instances(r)]

    def make_byzantine(self, r: int, attacks: tuple[Attack, ...], *, onset_ms: float = 0.0) -> None:
        """Replica r (and its twin, if any) performs `attacks` from `onset_ms` on."""
        for _key, node in self.instances(r):
            node.honest = False
            node.attacks, node.onset_ms = attacks, onset_ms
            node.replica = make_node(node.inner, attacks, onset_ms)

    def add_twin(self, r: int) -> SimNode:
        """A second, honest-code instance of replica r with the same identity and keys.

        From now on both instances receive what is sent to r (as the links allow) and both
        send as r: put them on different sides of a partition and each runs a view of its own,
        which is equivocation and double voting without a line of Byzantine code. The identity
        counts as one Byzantine replica.
        """
        assert r not in self.twins
        original = self.nodes[r]
        node_crypto = self.replica_crypto(r)
        inner = Replica(r, self.config, node_crypto)
        twin = SimNode(
            make_node(inner, original.attacks, original.onset_ms),
            False,
            original.live,
            replica_id=r,
            address=f"n{r}'",
            crypto=node_crypto,
            attacks=original.attacks,
            onset_ms=original.onset_ms,
        )
        original.honest = False
        self.twins[r] = twin
        self._by_address[twin.address] = twin
        self._schedule(self.now, "tick", -r, None)
        return twin

    def crash(self, key: NodeKey) -> None:
        """The instance stops: messages to it are lost, its timers stop."""
        node = self.node(key)
        node.up = False
        self._trace(f"crash {node.address}")

    def restart(self, key: NodeKey, *, from_disk: bool = True) -> None:
        """Bring a crashed instance back: rebuilt from its durable events (`Replica.restore`),
        or, with ``from_disk=False``, as it was (a pause)."""
        node = self.node(key)
        if node.up:
            return
        if from_disk:
            assert self.keep_durable, "restart from disk needs keep_durable=True"
            assert node.crypto is not None
            restored = Replica.restore(node.replica_id, self.config, node.crypto, self._read_disk(node))
            node.replica = make_node(restored, node.attacks, node.onset_ms)
        node.up = True
        node.tick_at = None
        self._trace(f"restart {node.address}{' from disk' if from_disk else ''}")
        self._schedule(self.now, "tick", key, None)

    @staticmethod
    def _read_disk(node: SimNode) -> list[Event]:
        """What the node's write-ahead log holds after a crash: its durable events committed Ready
        by Ready, exactly as a shell commits them (so compacted at stable checkpoints)."""
        if node.disk is None:
            node.disk = DurableLog(":memory:")
        for batch in node.durable:
            node.disk.append(batch)
            node.disk.commit()
        node.durable = []
        return node.disk.load()

    def heal(self) -> None:
        """Reconnect everything: no cut links, no partition."""
        self.blocked.clear()
        self.partition.clear()
        self._trace("heal network")

    # ---- scheduling ----------------------------------------------------------------------

    def _schedule(self, at: float, kind: str, target: Any, payload: Any) -> None:
        if len(self._queue) >= EVENTS_QUEUED_MAX:
            raise MessageStorm(f"{len(self._queue)} events queued at {self.now:.3f} ms: {self._busiest_links()}")
        if kind == "tick" and isinstance(target, int):
            # One queued tick per node suffices: the tick's Ready asks for the next one.
            node = self.node(target)
            if node.tick_at is not None and node.tick_at <= at:
                return
            node.tick_at = at
        heapq.heappush(self._queue, (at, next(self._order), kind, target, payload))

    def _link_up(self, source: str, target: str) -> bool:
        if (source, target) in self.blocked:
            return False
        if self.partition:
            side = self.partition.get(source)
            other = self.partition.get(target)
            return side is None or other is None or side == other
        return True

    def _byzantine_link_full(self, source: str, target: str) -> bool:
        sender, receiver = self._by_address.get(source), self._by_address.get(target)
        if sender is None or receiver is None or sender.honest or receiver.honest:
            return False
        start, count = self._byzantine_links.get((source, target), (self.now, 0))
        if self.now - start >= BYZANTINE_LINK_WINDOW_MS:
            start, count = self.now, 0
        self._byzantine_links[(source, target)] = (start, count + 1)
        if count < BYZANTINE_LINK_MESSAGES_MAX:
            return False
        self._count("byzantine-throttled")
        return True

    def _transmit(self, source: str, target: str, target_key: Any, data: bytes) -> None:
        net = self.network
        if not self._link_up(source, target) or self._byzantine_link_full(source, target):
            return
        if self.rng.random() < net.drop_rate:
            self._count("loss")
            return
        copies = 1
        if self.rng.random() < net.duplicate_rate:
            copies = 2
            self._count("duplicate")
        for _ in range(copies):
            at = self.now + self.rng.uniform(net.delay_ms_min, net.delay_ms_max)
            if net.spike_rate and self.rng.random() < net.spike_rate:
                at += self.rng.uniform(0.0, net.spike_delay_ms_max)
                self._count("delay")
            if net.fifo:
                link = ("clients" if source in self.clients else source, target)
                at = max(at, self._link_clock.get(link, 0.0))
                self._link_clock[link] = at
            self._schedule(at, "deliver", target_key, (source, data))

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    def send_to_replica(self, source: str, to: int, data: bytes) -> None:
        """Put bytes on the wire from `source` to every instance of replica `to`."""
        for key, target in self.instances(to):
            if target.live:
                self._transmit(source, target.address, key, data)

    def _perform_replica(self, key: NodeKey, ready: Ready) -> None:
        node = self.node(key)
        for event in ready.events:
            if isinstance(event, Executed):
                node.executed[event.seq] = event
            if self.keep_events:
                node.events.append(event)
        if self.keep_durable:
            durable = [event for event in ready.events if isinstance(event, DURABLE_EVENTS)]
            if durable:
                node.durable.append(durable)
        if self.tracer is not None:
            for event in ready.events:
                line = describe_event(event)
                if line is not None:
                    self._trace(f"{node.address} {line}")
        for hook in self.ready_hooks:
            hook(node, ready)
        if node.live:
            encoded: dict[int, bytes] = {}
            for to, message in ready.to_replicas:
                for send_hook in self.send_hooks:
                    send_hook(node.address, to, message)
                data = encoded.get(id(message)) or encoded.setdefault(id(message), encode(message))
                self.send_to_replica(node.address, to, data)
            for client, message in ready.to_clients:
                if client in self.clients:
                    self._transmit(node.address, client, client, encode(message))
        if ready.wake_at_ms is not None:
            self._schedule(max(ready.wake_at_ms, self.now), "tick", key, None)

    def _perform_client(self, name: str, ready: ClientReady) -> None:
        for to, request in ready.to_replicas:
            self.send_to_replica(name, to, encode(request))
        if ready.wake_at_ms is not None:
            self._schedule(max(ready.wake_at_ms, self.now), "ctick", name, None)
        if ready.completed is not None:
            self.completions.append((name, ready.completed))
            if self.tracer is not None:
                c = ready.completed
                self._trace(f"{name} accepts ts={c.request.timestamp} {c.request.op}{c.request.args} -> {c.result!r}")
            for hook in self.completion_hooks:
                hook(name, ready.completed)
            if self._on_completion is not None:
                self._on_completion(name, ready.completed)

    def _trace(self, line: str) -> None:
        if self.tracer is not None:
            self.tracer(f"{self.now:10.3f} {line}")

    # ---- running -------------------------------------------------------------------------

    def submit(self, client: str, op: str, args: tuple, *, read_only: bool = False) -> None:
        self._trace(f"{client} submits {op}{args}{' (read-only)' if read_only else ''}")
        self._perform_client(client, self.clients[client].submit(op, args, self.now, read_only=read_only))

    def step_once(self) -> bool:
        if not self._queue:
            return False
        at, _, kind, target, payload = heapq.heappop(self._queue)
        self.now = max(self.now, at)
        if kind == "tick":
            node = self.node(target)
            if node.tick_at != at:
                # Superseded: a tick requested later for an earlier time already ran, and the
                # node's latest Ready named its next deadline (timers are all in every Ready).
                return True
            node.tick_at = None
            self._check_livelock(node)
            if node.up:
                self._perform_replica(target, node.replica.tick(self.now))
        elif kind == "ctick":
            self._perform_client(target, self.clients[target].tick(self.now))
        elif kind == "deliver":
            source, data = payload
            message = self._decode(data)
            if message is None:
                return True
            if isinstance(target, int):
                node = self.node(target)
                if not node.up:
                    return True
                self.delivered += 1
                if self.tracer is not None:
                    self._trace(f"{source} -> {node.address} {describe(message)}")
                for hook in self.deliver_hooks:
                    hook(source, node.address, message)
                self._perform_replica(target, node.replica.step(message, self.now))
            else:
                self.delivered += 1
                for hook in self.deliver_hooks:
                    hook(source, target, message)
                if isinstance(message, Reply):
                    self._perform_client(target, self.clients[target].step(message, self.now))
        elif kind == "call":
            payload(self)
        for observer in self.observers:
            observer(self)
        return True

    def _busiest_links(self) -> str:
        links: dict[tuple[str, str, str], int] = {}
        for _at, _order, kind, target, payload in self._queue:
            if kind == "deliver":
                message = self._decode(payload[1])
                name = type(message).__name__ if message is not None else "?"
                address = self.node(target).address if isinstance(target, int) else str(target)
                link = (payload[0], address, name)
                links[link] = links.get(link, 0) + 1
        top = sorted(links.items(), key=lambda item: -item[1])[:4]
        return ", ".join(f"{count} {name} {source}->{target}" for (source, target, name), count in top)

    def _check_livelock(self, node: SimNode) -> None:
        if self._tick_time != self.now:
            self._tick_time, self._ticks_at_time = self.now, {}
        ticks = self._ticks_at_time.get(node.address, 0) + 1
        self._ticks_at_time[node.address] = ticks
        if ticks > TICKS_AT_ONE_TIME_MAX:
            raise Livelock(f"{node.address} asked to be ticked at {self.now:.3f} ms {ticks} times: its timers never fire")

    def _decode(self, data: bytes) -> Message | None:
        # A broadcast reaches n-1 replicas as the same bytes; decoding is pure and messages
        # are frozen, so receivers may share one decoded object.
        message = self._decoded.get(data)
        if message is None:
            try:
                message = decode(data)
            except DecodeError:
                self.decode_failures += 1
                return None
            if len(self._decoded) >= DECODE_CACHE_MAX:
                self._decoded.clear()
            self._decoded[data] = message
        return message

    def run_until(self, predicate: Callable[[], bool], *, timeout_ms: float) -> bool:
        deadline = self.now + timeout_ms
        while not predicate():
            if not self._queue or self._queue[0][0] > deadline:
                self.now = max(self.now, min(deadline, self._queue[0][0] if self._queue else deadline))
                return predicate()
            self.step_once()
        return True

    def run_for(self, duration_ms: float) -> None:
        deadline = self.now + duration_ms
        while self._queue and self._queue[0][0] <= deadline:
            self.step_once()
        self.now = deadline

    def at(self, time_ms: float, action: Callable[[Simulation], None]) -> None:
        self._schedule(time_ms, "call", None, action)

    def run_transactions(
        self, transactions: list[TransactionLike], *, stall_timeout_ms: float = 5_000.0, settle_ms: float = 500.0
    ) -> list[TransactionOutcome]:
        """Play transactions with the scenario rules (the set driver's loop, `set_run.SetDriver`);
        stop when all have an outcome or when nothing completed for `stall_timeout_ms` (the rest
        are unavailable), then run `settle_ms` more."""
        with SimTransport(self) as transport:
            outcomes = SetDriver(transport, transactions, stall_timeout_ms=stall_timeout_ms).dispatch()
        self.run_for(settle_ms)
        return outcomes

    # ---- inspection ----------------------------------------------------------------------

    def honest_live(self) -> list[SimNode]:
        return [n for n in self.nodes.values() if n.honest and n.live]

    def replica(self, r: int) -> Replica:
        return self.nodes[r].inner


__all__ = [
    "Livelock",
    "MessageStorm",
    "NetworkConfig",
    "NodeKey",
    "Request",
    "SimNode",
    "Simulation",
    "describe",
    "describe_event",
    "make_crypto",
]
