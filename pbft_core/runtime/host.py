"""The node host: everything a process shell does around one sans-I/O replica.

Theory of operation
-------------------
A shell (one pipes worker, or one TCP node) owns a `NodeHost`. It hands the host what
arrives — bytes from a peer replica, bytes from a client, or "time passed" — together with the
current time, and the host:

1. decodes the bytes with the strict wire codec (an undecodable frame is logged and dropped;
   it never reaches the replica and never raises),
2. logs the message in the replica's `ReplicaStore` and steps the replica (or ticks it when
   its ``wake_at_ms`` is due),
3. *performs* the returned `Ready`: every event is written to the store, every outgoing
   message is encoded once, logged once (with all its destinations) and queued,
4. on `flush` — which the shell calls once per loop iteration — commits the store and only
   then hands the queued bytes to the shell's send callbacks. So what a replica voted is on disk
   before any peer can see the vote, and one SQLite commit covers a whole iteration.

The store is the *inspection* database (what `pbft inspect` reads); nothing recovers a replica
from it (a TCP node recovers from its write-ahead log, `durable.py`, which that shell commits
every iteration before sending). A shell may therefore let the store trail by up to
``store_commit_interval_ms`` (the pipes workers do: committing every iteration was 15% of the
cluster's CPU under load), measured on the clock the shell hands it (``clock_ms``; the host
reads no clock itself); `finish` always commits. 0 keeps the commit-before-send order.

The host knows nothing about pipes or sockets: the shell supplies ``send_to_replica(id, bytes)``
and ``send_to_client(name, bytes)`` callbacks and the set of replicas it has links to. Messages
for replicas without a link are not sent (a disconnected replica neither sends nor receives).

`config_to_bytes` / `config_from_bytes` carry a `ClusterConfig` to another process as msgpack.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import msgpack

from ..config import ClusterConfig, Timers, replica_name
from ..faults import Node
from ..messages import DecodeError, Message, Reply, Request, decode, encode
from ..ready import Event, Ready
from ..replica import Replica
from ..storage import ReplicaStore

SendToReplica = Callable[[int, bytes], None]
SendToClient = Callable[[str, bytes], None]
EventSink = Callable[[float, Event], None]


def config_to_bytes(config: ClusterConfig) -> bytes:
    return msgpack.packb(asdict(config), use_bin_type=True)


def config_from_bytes(data: bytes) -> ClusterConfig:
    raw = msgpack.unpackb(data, raw=False)
    timers = Timers(**raw.pop("timers"))
    return ClusterConfig(timers=timers, **raw)


def peers_text(replicas: Iterable[int]) -> str:
    return ",".join(replica_name(r) for r in replicas)


@dataclass
class _Outgoing:
    replica: int | None
    client: str | None
    data: bytes


@dataclass
class NodeHost:
    node: Node
    store: ReplicaStore | None
    send_to_replica: SendToReplica
    send_to_client: SendToClient
    links: frozenset[int] = frozenset()
    on_event: EventSink | None = None
    wake_at_ms: float | None = 0.0  # tick once at start so the replica arms its timers
    store_commit_interval_ms: float = 0.0
    # The shell's clock, in milliseconds; only a store that may trail (interval > 0) needs one.
    clock_ms: Callable[[], float] | None = None
    _outbox: list[_Outgoing] = field(default_factory=list)
    _committed_at_ms: float = float("-inf")  # `clock_ms` of the last store commit
    decode_failures: int = 0
    # What left this host (a message to k replicas counts k times, as on the wire).
    sent: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        assert self.store_commit_interval_ms <= 0 or self.clock_ms is not None, "a trailing store needs a clock"

    @property
    def replica(self) -> Replica:
        """The honest replica's state (a Byzantine wrapper exposes its honest core)."""
        return self.node.honest

    # ---- inputs ----------------------------------------------------------------------------

    def _decode(self, data: bytes, direction_peer: str, now_ms: float) -> Message | None:
        try:
            return decode(data)
        except DecodeError as exc:
            self.decode_failures += 1
            if self.store is not None:
                self.store.log_message(
                    now_ms, "in", direction_peer, None, len(data), f"undecodable: {exc}"
                )
            return None

    def on_peer_bytes(self, peer: int, data: bytes, now_ms: float) -> None:
        """Bytes from the link to replica `peer`."""
        message = self._decode(data, replica_name(peer), now_ms)
        if message is None:
            return
        if self.store is not None:
            self.store.log_message(now_ms, "in", replica_name(peer), message, len(data))
        self._perform(self.node.step(message, now_ms), now_ms)

    def on_client_bytes(self, client: str, data: bytes, now_ms: float) -> None:
        """Bytes from client `client` (the only thing a client may send is a request)."""
        message = self._decode(data, client, now_ms)
        if message is None:
            return
        if not isinstance(message, Request):
            if self.store is not None:
                self.store.log_message(
                    now_ms, "in", client, message, len(data), "not a request: dropped"
                )
            return
        if self.store is not None:
            self.store.log_message(now_ms, "in", client, message, len(data))
        self._perform(self.node.step(message, now_ms), now_ms)

    def tick_if_due(self, now_ms: float) -> bool:
        """Tick the replica if its wake-up time has come; whether it did."""
        if self.wake_at_ms is None or now_ms < self.wake_at_ms:
            return False
        self._perform(self.node.tick(now_ms), now_ms)
        return True

    # ---- outputs ---------------------------------------------------------------------------

    def _perform(self, ready: Ready, now_ms: float) -> None:
        for event in ready.events:
            if self.store is not None:
                self.store.record_event(now_ms, event)
            if self.on_event is not None:
                self.on_event(now_ms, event)
        # One encoding and one log row per message object, however many destinations it has.
        grouped: dict[int, tuple[Message, list[int]]] = {}
        for to, message in ready.to_replicas:
            grouped.setdefault(id(message), (message, []))[1].append(to)
        for message, destinations in grouped.values():
            reachable = [to for to in destinations if to in self.links]
            if not reachable:
                continue
            data = encode(message)
            if self.store is not None:
                self.store.log_message(now_ms, "out", peers_text(reachable), message, len(data))
            self._outbox.extend(_Outgoing(to, None, data) for to in reachable)
        if ready.to_clients:
            self._send_replies(ready.to_clients, now_ms)
        self.wake_at_ms = ready.wake_at_ms

    def _send_replies(self, replies: list[tuple[str, Reply]], now_ms: float) -> None:
        # Replies under one signed Merkle root are one log row, as a broadcast is: a batch's
        # replies were a row each, the largest share of the inspection log's cost under load.
        signed: dict[bytes, list[tuple[str, Reply, bytes]]] = {}
        for client, reply in replies:
            signed.setdefault(reply.sig, []).append((client, reply, encode(reply)))
        for group in signed.values():
            if self.store is not None:
                self.store.log_replies(now_ms, group)
            self._outbox.extend(_Outgoing(None, client, data) for client, _, data in group)

    def flush(self) -> None:
        """Commit what happened (when due, see the module docstring), then send."""
        if self.store is not None:
            if self.clock_ms is None:
                self.store.commit()
            else:
                now_ms = self.clock_ms()
                if now_ms - self._committed_at_ms >= self.store_commit_interval_ms:
                    self.store.commit()
                    self._committed_at_ms = now_ms
        outbox, self._outbox = self._outbox, []
        sent = self.sent
        for item in outbox:
            if item.replica is not None:
                sent["sent.replica.messages"] += 1
                sent["sent.replica.bytes"] += len(item.data)
                self.send_to_replica(item.replica, item.data)
            elif item.client is not None:
                sent["sent.client.messages"] += 1
                sent["sent.client.bytes"] += len(item.data)
                self.send_to_client(item.client, item.data)

    # ---- state -----------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """What the driver asks for while settling and at the end (msgpack-friendly)."""
        r = self.replica
        return {
            "replica": r.id,
            "view": r.view,
            "view_active": r.view_active,
            "last_executed": r.last_executed,
            "stable_seq": r.stable_seq,
            "balances": dict(r.bank.balances),
            "metrics": {**r.metrics, **self.sent},
            "cpu_ms": int(time.process_time() * 1000),
        }

    def finish(self, shell_metrics: dict[str, int] | None = None) -> dict[str, Any]:
        """Write the final state and metrics (the replica's, plus the shell's own, e.g. CPU
        time) and commit; returns `state`."""
        state = self.state()
        if self.store is not None:
            r = self.replica
            self.store.record_final(
                view=r.view,
                view_active=r.view_active,
                last_executed=r.last_executed,
                stable_seq=r.stable_seq,
                balances=dict(r.bank.balances),
                metrics={
                    **dict(r.metrics),
                    "host.decode_failures": self.decode_failures,
                    **self.sent,
                    **(shell_metrics or {}),
                },
            )
            self.store.commit()
        return state
