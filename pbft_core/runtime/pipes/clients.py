"""The driver's clients: many sans-I/O `Client`s over the workers' pipes (`ClientHost`).

A driver (`run_set`, `loadgen.run_load`) hosts many sans-I/O `Client`s. `ClientHost` performs
what they ask for (requests are queued and leave as one C frame per replica per `send`), hands
them their replies from the workers' C frames, and ticks them when their timers are due; the
driver decides what to submit and what a completion means (``on_complete``).

A closed-loop client has moved on once it holds f+1 matching replies, so most of the n replies
to each request are stale: `awaited` reads a reply's timestamp field from the unpacked array and
skips the field-by-field checks of those. Anything else goes on to them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import fields
from typing import Any

from ...client import Client, ClientReady, Completion
from ...messages import Arg, DecodeError, Reply, decode_unpacked, encode, unpack
from ..packing import pack
from ..packing import unpack as unpack_frame
from .cluster import Cluster
from .frames import K_CLIENT

OnComplete = Callable[[str, Completion, float], None]
# Where a reply's timestamp sits in its wire array (after the tag).
_REPLY_TIMESTAMP = 1 + [f.name for f in fields(Reply)].index("timestamp")


def awaited(client: Client, wire: list[Any]) -> bool:
    """Whether an unpacked reply may concern the client's outstanding request (see above)."""
    out = client.outstanding
    if out is None:
        return False
    return wire[0] != Reply.TAG or len(wire) <= _REPLY_TIMESTAMP or wire[_REPLY_TIMESTAMP] == out.request.timestamp


class ClientHost:
    def __init__(
        self, cluster: Cluster, clients: dict[str, Client], on_complete: OnComplete, reachable: Collection[int]
    ) -> None:
        self.cluster = cluster
        self.clients = clients
        self.on_complete = on_complete
        self.reachable = reachable  # replicas with a worker (others get nothing)
        self.wake: dict[str, float] = {}
        self._outgoing: dict[int, list[tuple[str, bytes]]] = {}

    def next_wake_ms(self, default: float) -> float:
        return min(self.wake.values(), default=default)

    def perform(self, name: str, ready: ClientReady, now_ms: float) -> None:
        encoded: bytes | None = None
        for to, request in ready.to_replicas:
            if to in self.reachable:
                encoded = encoded if encoded is not None else encode(request)
                self._outgoing.setdefault(to, []).append((name, encoded))
        if ready.wake_at_ms is None:
            self.wake.pop(name, None)
        else:
            self.wake[name] = ready.wake_at_ms
        if ready.completed is not None:
            self.on_complete(name, ready.completed, now_ms)

    def submit(self, name: str, op: str, args: tuple[Arg, ...], now_ms: float, *, read_only: bool) -> None:
        self.perform(name, self.clients[name].submit(op, args, now_ms, read_only=read_only), now_ms)

    def send(self) -> None:
        """What the clients asked to send since the last call: one frame per replica."""
        for r, items in self._outgoing.items():
            self.cluster.send_frame(r, K_CLIENT + pack(items))
        self._outgoing.clear()

    def on_frames(self, frames: list[tuple[int, bytes]], clock_ms: Callable[[], float]) -> None:
        for _replica, frame in frames:
            if frame[:1] != K_CLIENT:
                continue
            for name, data in unpack_frame(frame[1:]):
                client = self.clients.get(str(name))
                if client is None:
                    continue
                try:
                    wire = unpack(bytes(data))
                    if not awaited(client, wire):
                        continue
                    reply = decode_unpacked(wire)
                except DecodeError:
                    continue
                if isinstance(reply, Reply):
                    now_ms = clock_ms()
                    self.perform(client.name, client.step(reply, now_ms), now_ms)

    def tick(self, now_ms: float) -> None:
        for name, at_ms in list(self.wake.items()):
            if at_ms <= now_ms and name in self.wake:
                self.perform(name, self.clients[name].tick(now_ms), now_ms)

    def serve(self, timeout_s: float, clock_ms: Callable[[], float]) -> None:
        """One round: wait for frames (at most `timeout_s`, less if a client timer is due
        sooner), hand replies to the clients, tick the due ones, send what they asked."""
        now_ms = clock_ms()
        wake_ms = self.next_wake_ms(default=now_ms + timeout_s * 1000.0)
        self.on_frames(self.cluster.poll(max(0.0, min(wake_ms - now_ms, timeout_s * 1000.0)) / 1000.0), clock_ms)
        self.tick(clock_ms())
        self.send()
