"""Connections of the TCP shell: a bounded outbox, a token bucket, handshake slots per source,
one authenticated connection (`Connection`) and the replica-to-replica / client-to-replica
dialing link (`DialLink`, with reconnection and backoff)."""


import asyncio
import contextlib
import random
import socket
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ...clusterfile import Address
from ...config import replica_name
from ..framing import (
    FRAME_SIZE_MAX,
    HANDSHAKE_FRAME_MAX,
    ITEM_HEADER,
    ITEM_HEADER_SIZE,
    KIND_MESSAGE,
    KIND_MESSAGES,
    ROLE_REPLICA,
    SEAL_OVERHEAD,
    Dialer,
    FrameError,
    FrameSplitter,
    HandshakeError,
    PeerIdentity,
    Session,
    batch_messages,
    frame,
    join_messages,
    read_frame,
    read_frames,
)
from . import limits
from .limits import (
    CONNECT_TIMEOUT_S,
    FRAME_BODY_TIMEOUT_S,
    FRAMES_PER_YIELD,
    OUTBOUND_BYTES_MAX,
    OUTBOUND_FRAMES_MAX,
    RECONNECT_DELAY_MAX_S,
    RECONNECT_DELAY_MIN_S,
    TO_CLIENT_FRAME_BYTES_MAX,
    TO_REPLICA_DIALER_FRAME_BYTES_MAX,
)
from .log import NodeLog

# ---- connections -----------------------------------------------------------------------------


class Outbox:
    """Bounded FIFO of payloads for one link; when full the oldest are dropped (and counted)."""

    def __init__(self, counters: Counter[str], what: str, *, wake_writer: bool = True) -> None:
        self._items: deque[bytes] = deque()
        self._bytes = 0
        self._counters = counters
        self._what = what
        self.ready = asyncio.Event()
        # False when the owner writes what it queued itself (`Connection.write_now`, which wakes
        # the writer task only when it cannot write): a put then costs no task wake-up.
        self.wake_writer = wake_writer

    def put(self, payload: bytes) -> None:
        self._items.append(payload)
        self._bytes += len(payload)
        while len(self._items) > OUTBOUND_FRAMES_MAX or self._bytes > OUTBOUND_BYTES_MAX:
            self._bytes -= len(self._items.popleft())
            self._counters[f"{self._what}.dropped_queue_full"] += 1
        if self.wake_writer:
            self.ready.set()

    def take_all(self) -> list[bytes]:
        items, self._items, self._bytes = list(self._items), deque(), 0
        self.ready.clear()
        return items

    def __len__(self) -> int:
        return len(self._items)


class TokenBucket:
    """At most `rate_per_s` events per second on average, in bursts of up to `burst`."""

    def __init__(self, rate_per_s: float, burst: int, now_s: float) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._tokens = float(burst)
        self._at_s = now_s

    def take(self, now_s: float) -> bool:
        """Spend one token if there is one; whether there was."""
        self._tokens = min(float(self.burst), self._tokens + (now_s - self._at_s) * self.rate_per_s)
        self._at_s = now_s
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


class HandshakeSlots:
    """Which connections may be in their handshake at once (sans-I/O; see the constants).

    `admit` always makes room for the newcomer and returns whom to evict for it: the oldest
    pending connection of its own source if that source is at its cap, else, if the total is at
    its cap, the oldest of the source holding the most (sources that host no replica first, so
    a flood from client machines never evicts a replica's handshake while it has others to).
    """

    def __init__(
        self,
        total_max: int,
        per_source_max: int,
        replica_hosts: frozenset[str] = frozenset(),
    ) -> None:
        assert total_max >= 1 and per_source_max >= 1
        self.total_max = total_max
        self.per_source_max = per_source_max
        self.replica_hosts = replica_hosts
        self._by_source: dict[str, deque[object]] = {}
        self.source_of: dict[object, str] = {}

    def __len__(self) -> int:
        return len(self.source_of)

    def pending(self, source: str) -> int:
        return len(self._by_source.get(source, ()))

    def admit(self, source: str, item: object) -> list[tuple[object, str]]:
        """Admit `item` from `source`; returns [(evicted item, reason)] (already released)."""
        evicted: list[tuple[object, str]] = []
        queue = self._by_source.get(source)
        if queue is not None and len(queue) >= self.per_source_max:
            evicted.append((queue[0], "conn.evicted_source_busy"))
        elif len(self.source_of) >= self.total_max:
            def busiest(src: str) -> tuple[bool, int]:
                return (src not in self.replica_hosts, len(self._by_source[src]))

            victim_source = max(self._by_source, key=busiest)
            evicted.append((self._by_source[victim_source][0], "conn.evicted_busy"))
        for victim, _ in evicted:
            self.release(victim)
        self._by_source.setdefault(source, deque()).append(item)
        self.source_of[item] = source
        return evicted

    def release(self, item: object) -> None:
        """`item` finished its handshake (or failed it, or was evicted); idempotent."""
        source = self.source_of.pop(item, None)
        if source is None:
            return
        queue = self._by_source[source]
        queue.remove(item)
        if not queue:
            del self._by_source[source]


def source_of(peer_address: object) -> str:
    """The IP address part of a peername (the unit of the per-source handshake cap)."""
    if isinstance(peer_address, tuple) and peer_address:
        return str(peer_address[0])
    return "?"


_KIND_MESSAGE_BYTE = KIND_MESSAGE[0]


def coalesce(payloads: list[bytes], payload_bytes_max: int) -> list[bytes]:
    """`payloads` in order, with every run of consecutive ``M`` payloads (one protocol message
    each) joined into as few ``B`` payloads as fit in `payload_bytes_max` (framing's
    `join_messages`); status queries and answers stay as they are."""
    if len(payloads) > 1:
        # The usual turn: protocol messages only, within one frame. Joined in one pass and one
        # copy (this runs for every link on every turn of the pump).
        size = 1
        for payload in payloads:
            if payload[0] != _KIND_MESSAGE_BYTE:
                break
            size += len(payload) - 1 + ITEM_HEADER_SIZE
        else:
            if size <= payload_bytes_max:
                pack_header = ITEM_HEADER.pack
                parts = [KIND_MESSAGES]
                for payload in payloads:
                    parts.append(pack_header(len(payload) - 1))
                    parts.append(memoryview(payload)[1:])
                return [b"".join(parts)]
    out: list[bytes] = []
    run: list[bytes] = []

    def close_run() -> None:
        if len(run) == 1:
            out.append(run[0])
        elif run:
            messages = [memoryview(p)[1:] for p in run]
            out.extend(join_messages(part) for part in batch_messages(messages, payload_bytes_max))
        run.clear()

    for payload in payloads:
        if payload[:1] == KIND_MESSAGE:
            run.append(payload)
        else:
            close_run()
            out.append(payload)
    close_run()
    return out


@dataclass(eq=False)
class Connection:
    """An authenticated connection: its session, its identity, its writer task.

    The writer seals and writes, once per turn of the event loop, everything queued since its
    last turn: the protocol messages among it as few frames as the peer's frame limit
    (`frame_bytes_max`, what the other end reads) allows, so a broadcast step costs each link
    one seal, one write and one drain, however many messages it produced.
    """

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    session: Session
    identity: PeerIdentity
    outbox: Outbox
    closed: bool = False
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    status_queries: TokenBucket | None = None  # clients' connections: the status query limit
    frame_bytes_max: int = FRAME_SIZE_MAX  # the largest frame the peer reads from us

    def send(self, payload: bytes) -> None:
        if not self.closed:
            self.outbox.put(payload)

    def _write_queued(self) -> None:
        # Sealing and writing happen together, with no await between: frames reach the stream
        # in the order of their session counters, whichever of the two paths writes them.
        payloads = coalesce(self.outbox.take_all(), self.frame_bytes_max - SEAL_OVERHEAD)
        self.writer.write(b"".join([frame(self.session.seal(p)) for p in payloads]))

    def write_now(self) -> bool:
        """Write what is queued from the caller's turn of the loop (the node's pump, right
        after its commit), saving the hop to `write_loop`'s task; only while the transport
        holds less than `DIRECT_WRITE_BUFFERED_MAX` unsent bytes, so a slow peer is still
        paced by `write_loop`'s drain. Whether it wrote."""
        if self.closed or not len(self.outbox):
            return False
        transport = self.writer.transport
        if transport.is_closing() or transport.get_write_buffer_size() > limits.DIRECT_WRITE_BUFFERED_MAX:
            self.outbox.ready.set()  # the writer task takes over, paced by its drain
            return False
        self._write_queued()
        return True

    async def write_loop(self) -> None:
        """Seal and write whatever is queued, in order (the session counter depends on it)."""
        while True:
            await self.outbox.ready.wait()
            self._write_queued()
            await self.writer.drain()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            for task in self.tasks:
                task.cancel()
            with contextlib.suppress(Exception):
                self.writer.close()


def tune(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        # A peer host that vanished (power cut, partition) is noticed within ~20 s, not hours.
        if hasattr(socket, "TCP_KEEPIDLE"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 10)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 5)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 2)


class DialLink:
    """A connection this process keeps open to one replica, re-dialed with backoff.

    Payloads sent while it is down wait in its bounded outbox. Payloads the replica sends back
    (replies, status answers) go to `on_payload`.
    """

    def __init__(
        self,
        target: int,
        address: Address,
        make_dialer: Callable[[], Dialer],
        counters: Counter[str],
        log: NodeLog,
        on_payload: Callable[[bytes], None] | None = None,
        on_state: Callable[[bool], None] | None = None,
        reconnect_max_s: float = RECONNECT_DELAY_MAX_S,
        frame_bytes_max: int | None = None,
        send_frame_bytes_max: int = FRAME_SIZE_MAX,
        writes_direct: bool = False,
    ) -> None:
        self.target = target
        # What the replica reads in one frame from us: a peer's frame limit, or a client's.
        self.send_frame_bytes_max = send_frame_bytes_max
        self.reconnect_max_s = reconnect_max_s
        # A replica's link to a peer carries nothing back; a client's carries replies and
        # status answers. Either way far less than a replica's own frames.
        if frame_bytes_max is None:
            frame_bytes_max = TO_CLIENT_FRAME_BYTES_MAX if on_payload is not None else TO_REPLICA_DIALER_FRAME_BYTES_MAX
        self.frame_bytes_max = frame_bytes_max
        self.address = address
        self.make_dialer = make_dialer
        self.counters = counters
        self.log = log
        self.on_payload = on_payload
        self.on_state = on_state
        # A replica's pump writes its links itself (`write_now`); a client pool's writer tasks do.
        self.outbox = Outbox(counters, f"out.{replica_name(target)}", wake_writer=not writes_direct)
        self.connection: Connection | None = None
        self.connected = asyncio.Event()
        self.connects = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"dial-{replica_name(self.target)}"
        )

    def send(self, payload: bytes) -> None:
        self.outbox.put(payload)

    def write_now(self) -> bool:
        """`Connection.write_now` on the current connection; without one, what is queued waits
        for the writer task of the next connection."""
        connection = self.connection
        if connection is None:
            if len(self.outbox):
                self.outbox.ready.set()
            return False
        return connection.write_now()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self.connection is not None:
            self.connection.close()

    async def _run(self) -> None:
        delay = RECONNECT_DELAY_MIN_S
        failures = 0
        while True:
            try:
                connection = await self._connect()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # whoever answers at the address may be hostile: keep dialing
                failures += 1
                reason = exc.reason if isinstance(exc, FrameError) else type(exc).__name__
                self.counters["dial.failed"] += 1
                fields = {"peer": replica_name(self.target), "addr": self.address, "reason": reason, "detail": exc}
                if isinstance(exc, HandshakeError):
                    # The peer is up but we disagree on who is who: keys or addresses are wrong.
                    self.log.warning("dial.refused", **fields)
                elif not isinstance(exc, OSError | TimeoutError | asyncio.IncompleteReadError | FrameError):
                    self.log.warning("dial.crashed", **fields)  # a bug, not the network: say so
                elif failures == 1:  # once per outage, not once per retry
                    self.log.info("dial.failed", **fields)
            else:
                failures = 0
                delay = RECONNECT_DELAY_MIN_S
                self.connects += 1
                self.counters["dial.connected"] += 1
                self.log.info("link.up", peer=replica_name(self.target), addr=self.address)
                self.connection = connection
                self.connected.set()
                if self.on_state is not None:
                    self.on_state(True)
                try:
                    await self._serve(connection)
                finally:
                    connection.close()
                    self.connection = None
                    self.connected.clear()
                    if self.on_state is not None:
                        self.on_state(False)
                self.log.info("link.down", peer=replica_name(self.target))
            # Jitter keeps seven replicas restarted together from dialing in lockstep.
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, self.reconnect_max_s)

    async def _connect(self) -> Connection:
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            reader, writer = await asyncio.open_connection(self.address.host, self.address.port)
        try:
            tune(writer)
            async with asyncio.timeout(limits.HANDSHAKE_TIMEOUT_S):
                dialer = self.make_dialer()
                hello = await read_frame(reader, HANDSHAKE_FRAME_MAX, limits.HANDSHAKE_TIMEOUT_S)
                writer.write(frame(dialer.on_hello(hello)))
                accept = await read_frame(reader, HANDSHAKE_FRAME_MAX, limits.HANDSHAKE_TIMEOUT_S)
                session = dialer.on_accept(accept)
        except BaseException:
            writer.close()
            raise
        identity = PeerIdentity(ROLE_REPLICA, (replica_name(self.target),))
        return Connection(
            reader, writer, session, identity, self.outbox, frame_bytes_max=self.send_frame_bytes_max
        )

    async def _serve(self, connection: Connection) -> None:
        loop = asyncio.get_running_loop()
        writer_task = loop.create_task(connection.write_loop())
        reader_task = loop.create_task(self._read_loop(connection))
        connection.tasks.extend([writer_task, reader_task])
        done, _ = await asyncio.wait([writer_task, reader_task], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            exc = task.exception() if not task.cancelled() else None
            if isinstance(exc, FrameError):
                self.counters[exc.reason] += 1
                self.log.warning("link.broken", peer=replica_name(self.target), reason=exc.reason)
            elif exc is not None and not isinstance(
                exc, ConnectionError | OSError | asyncio.IncompleteReadError
            ):
                # A bug, not the network: say so loudly, then reconnect as after any failure.
                self.counters["link.crashed"] += 1
                self.log.warning("link.crashed", peer=replica_name(self.target), reason=type(exc).__name__, detail=exc)

    async def _read_loop(self, connection: Connection) -> None:
        handled = 0
        frames = FrameSplitter(self.frame_bytes_max)
        while True:
            for body in await read_frames(connection.reader, frames, FRAME_BODY_TIMEOUT_S):
                payload = connection.session.open(body)
                if self.on_payload is None:
                    self.counters["frame.unexpected"] += 1
                else:
                    self.on_payload(payload)
                handled += 1
                if handled % FRAMES_PER_YIELD == 0:
                    await asyncio.sleep(0)


# ---- the replica node ------------------------------------------------------------------------
