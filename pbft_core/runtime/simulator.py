"""Deterministic in-process simulator shell: every replica and client in one process.

Virtual time, one seeded RNG for everything, and a network that delivers each message after a
random delay and may drop, duplicate or partition. Messages cross the network as bytes (encoded
and decoded with the wire codec), exactly as in the process shells, so the simulator runs the
same protocol code on the same inputs. Used by the test suite to run many seeded fault
schedules fast and reproducibly.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import count
from typing import Any

from ..client import Client, ClientReady
from ..config import ACCOUNTS, ClusterConfig
from ..crypto import NodeCrypto, SimCrypto
from ..dispatch import Dispatcher, TransactionLike, TransactionOutcome
from ..faults import Attack, ByzantineReplica
from ..messages import DecodeError, Message, Reply, Request, decode, encode
from ..ready import Event, Executed, Ready
from ..replica import Replica


@dataclass
class NetworkConfig:
    delay_ms_min: float = 1.0
    delay_ms_max: float = 5.0
    drop_rate: float = 0.0
    duplicate_rate: float = 0.0
    # Links deliver in order (as TCP and pipes do); the scenario driver's clients share one
    # link per replica, so the leader sees requests in dispatch order. False allows reordering.
    fifo: bool = True


@dataclass
class SimNode:
    replica: Replica | ByzantineReplica
    honest: bool
    live: bool
    executed: dict[int, Executed] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)


def make_crypto(kind: str, seed: int, config: ClusterConfig, clients: Iterable[str]) -> tuple[
    Callable[[int], NodeCrypto], Callable[[str], NodeCrypto]
]:
    """Per-node crypto factories: "sim" keyed hashes, or "real" Ed25519 + BLS."""
    if kind == "sim":
        raw = seed.to_bytes(8, "big", signed=True)
        return (
            lambda r: SimCrypto(raw, f"n{r}", config.n, config.quorum),
            lambda c: SimCrypto(raw, f"client/{c}", config.n, config.quorum),
        )
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
    ) -> None:
        self.config = config or ClusterConfig()
        self.rng = random.Random(seed)
        self.network = network or NetworkConfig()
        self.now = 0.0
        self.keep_events = keep_events
        self._queue: list[tuple[float, int, str, Any, Any]] = []
        self._order = count()
        self.blocked: set[tuple[str, str]] = set()  # (source, target) links that are cut
        self._link_clock: dict[tuple[str, str], float] = {}
        self.delivered = 0
        self.decode_failures = 0
        self.observers: list[Callable[[Simulation], None]] = []

        live_set = set(self.config.replica_ids if live is None else live)
        byzantine = byzantine or {}
        client_names = list(clients)
        replica_crypto, client_crypto = make_crypto(crypto, seed, self.config, client_names)
        self.nodes: dict[int, SimNode] = {}
        for r in self.config.replica_ids:
            honest_replica = Replica(r, self.config, replica_crypto(r))
            node: Replica | ByzantineReplica = honest_replica
            if r in byzantine:
                node = ByzantineReplica(honest_replica, byzantine[r])
            self.nodes[r] = SimNode(node, r not in byzantine, r in live_set)
        self.clients = {c: Client(c, self.config, client_crypto(c)) for c in client_names}
        self.completions: list[tuple[str, Any]] = []
        self._on_completion: Callable[[str, Any], None] | None = None
        for r in self.config.replica_ids:
            self._schedule(0.0, "tick", r, None)

    # ---- scheduling ----------------------------------------------------------------------

    def _schedule(self, at: float, kind: str, target: Any, payload: Any) -> None:
        heapq.heappush(self._queue, (at, next(self._order), kind, target, payload))

    def _link_up(self, source: str, target: str) -> bool:
        return (source, target) not in self.blocked

    def _transmit(self, source: str, target: str, target_key: Any, data: bytes) -> None:
        net = self.network
        if not self._link_up(source, target) or self.rng.random() < net.drop_rate:
            return
        copies = 2 if self.rng.random() < net.duplicate_rate else 1
        for _ in range(copies):
            at = self.now + self.rng.uniform(net.delay_ms_min, net.delay_ms_max)
            if net.fifo:
                link = ("clients" if source in self.clients else source, target)
                at = max(at, self._link_clock.get(link, 0.0))
                self._link_clock[link] = at
            self._schedule(at, "deliver", target_key, (source, data))

    def _perform_replica(self, r: int, ready: Ready) -> None:
        node = self.nodes[r]
        for event in ready.events:
            if isinstance(event, Executed):
                node.executed[event.seq] = event
            if self.keep_events:
                node.events.append(event)
        if node.live:
            encoded: dict[int, bytes] = {}
            for to, message in ready.to_replicas:
                data = encoded.get(id(message)) or encoded.setdefault(id(message), encode(message))
                if self.nodes[to].live:
                    self._transmit(f"n{r}", f"n{to}", to, data)
            for client, message in ready.to_clients:
                if client in self.clients:
                    self._transmit(f"n{r}", client, client, encode(message))
        if ready.wake_at_ms is not None:
            self._schedule(max(ready.wake_at_ms, self.now), "tick", r, None)

    def _perform_client(self, name: str, ready: ClientReady) -> None:
        for to, request in ready.to_replicas:
            if self.nodes[to].live:
                self._transmit(name, f"n{to}", to, encode(request))
        if ready.wake_at_ms is not None:
            self._schedule(max(ready.wake_at_ms, self.now), "ctick", name, None)
        if ready.completed is not None:
            self.completions.append((name, ready.completed))
            if self._on_completion is not None:
                self._on_completion(name, ready.completed)

    # ---- running -------------------------------------------------------------------------

    def submit(self, client: str, op: str, args: tuple, *, read_only: bool = False) -> None:
        self._perform_client(client, self.clients[client].submit(op, args, self.now, read_only=read_only))

    def step_once(self) -> bool:
        if not self._queue:
            return False
        at, _, kind, target, payload = heapq.heappop(self._queue)
        self.now = max(self.now, at)
        if kind == "tick":
            self._perform_replica(target, self.nodes[target].replica.tick(self.now))
        elif kind == "ctick":
            self._perform_client(target, self.clients[target].tick(self.now))
        elif kind == "deliver":
            _source, data = payload
            try:
                message: Message = decode(data)
            except DecodeError:
                self.decode_failures += 1
                return True
            self.delivered += 1
            if isinstance(target, int):
                self._perform_replica(target, self.nodes[target].replica.step(message, self.now))
            elif isinstance(message, Reply):
                self._perform_client(target, self.clients[target].step(message, self.now))
        elif kind == "call":
            payload(self)
        for observer in self.observers:
            observer(self)
        return True

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
        """Play transactions with the scenario rules; stop when all have an outcome or when
        nothing completed for `stall_timeout_ms` (the rest are unavailable)."""
        dispatcher = Dispatcher(transactions)
        in_flight: dict[str, int] = {}
        last_progress = [self.now]

        def dispatch() -> None:
            for index in dispatcher.next_submissions(set(in_flight)):
                txn = transactions[index]
                in_flight[txn.client] = index
                self.submit(txn.client, "transfer" if txn.kind == "transfer" else "balance",
                            tuple(txn.args), read_only=txn.kind == "balance")

        def on_completion(client: str, completion: Any) -> None:
            dispatcher.complete(in_flight.pop(client), completion)
            last_progress[0] = self.now

        self._on_completion = on_completion
        dispatch()
        while not dispatcher.done:
            finished = dispatcher.finished_count
            self.run_until(
                lambda f=finished: dispatcher.finished_count > f,
                timeout_ms=max(0.0, last_progress[0] + stall_timeout_ms - self.now),
            )
            if dispatcher.finished_count == finished:
                break
            dispatch()
        self._on_completion = None
        self.run_for(settle_ms)
        return dispatcher.outcomes

    # ---- inspection ----------------------------------------------------------------------

    def honest_live(self) -> list[SimNode]:
        return [n for n in self.nodes.values() if n.honest and n.live]

    def replica(self, r: int) -> Replica:
        node = self.nodes[r].replica
        return node.honest if isinstance(node, ByzantineReplica) else node


__all__ = ["NetworkConfig", "Request", "SimNode", "Simulation", "make_crypto"]
