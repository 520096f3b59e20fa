"""The TCP shell: one replica per process (`ReplicaNode`), and an async client pool (`ClientPool`).

Theory of operation
-------------------
**Connections.** Every replica listens on its address from the cluster file and *dials* every
other replica. A link is one-directional: replica i sends to j only on the connection i dialed,
and receives from j only on the connection j dialed. So there is no race over which of two
simultaneous connections wins, and a restarted peer simply dials again (the newest inbound
connection from a replica replaces the older one). Clients dial replicas too; replies go back
on the client's own connection. Every connection starts with the mutual handshake of `framing`
(replicas prove replica identities, clients prove client identities, with the Ed25519 keys of
the cluster file) and then carries encrypted, counter-authenticated frames.

**The node loop.** Reader tasks hand each decrypted protocol message straight to the
`NodeHost` (decode, step the replica, perform its `Ready` into the host's outbox) and wake the
*pump*. The pump runs once per event-loop iteration at most: it **commits** — the inspection
database (`ReplicaStore`) and the write-ahead log (`DurableLog`, ``synchronous=FULL``) — and
only then lets the host hand its queued bytes to the links; then it ticks the replica when its
``wake_at_ms`` is due (timers, and the work a replica defers until its messages are out) and
commits and sends again. So a vote is on disk before any peer can see it, and one commit (one
fsync) covers everything that arrived in that iteration: group commit for free, and the
leader's adaptive batching sees every request that arrived meanwhile.

**Durability across kill -9.** At start the node loads its `DurableLog` and rebuilds the
replica with `Replica.restore` (view, accepted pre-prepares, certificates, executed state,
stable checkpoints, client reply table). It then rejoins like any replica that fell behind:
status gossip tells it peers are ahead, it fetches certified batches or a certified snapshot.
It never signs anything that conflicts with what it signed before the crash, because every
such signature was caused by a durable event committed before the signature left the process.

**Bad input** never stops the node; it is dropped and counted (`ReplicaNode.counters`, shown by
``pbft client status`` and stored in the replica's metrics on shutdown): oversized frames,
frames whose body does not arrive in time, connections that do not finish the handshake in
time or fail it (garbage, unknown or forged identity), frames that do not authenticate
(altered, injected, replayed: the connection is closed, the peer reconnects), undecodable
protocol messages (counted by the host), and too many concurrent handshakes. Every queue is
bounded: an outbound link keeps at most `OUTBOUND_FRAMES_MAX` frames and drops the oldest (the
protocol recovers lost messages by retransmission, gossip and view change).

**Hostile peers** are bounded before they cost anything (docs/deploy.md, "Threat model: TCP
bounds", lists every bound and why). Strangers: pending handshakes are capped per source IP and
in total, and a newcomer evicts the oldest pending connection of the busiest source rather than
being refused (`HandshakeSlots`), so idle sockets cannot lock anyone out. Authenticated clients:
frames of at most `CLIENT_FRAME_BYTES_MAX`; the message tag is peeked before decoding and a
client sending anything but a REQUEST or a status query is disconnected; connections are capped
per identity (newest wins) and in total, and replica links never count against the client caps
(nor against the file descriptors kept for them); status queries are rate-limited per
connection, the answer's state-derived part is cached briefly, and the answer is bounded in
size. A client pool keeps only authentic replies to its outstanding requests.

**Client pool.** `ClientPool` hosts many closed-loop sans-I/O `Client`s in one process over one
connection per replica (the handshake proves every identity of the pool), with their timers on
the event loop. `pbft client` is a pool of one; a benchmark is a pool of many.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import itertools
import json
import os
import random
import signal
import socket
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TextIO, cast

import msgpack
from nacl.signing import SigningKey, VerifyKey

from ..client import Client, ClientReady, Completion
from ..clusterfile import Address, ClusterFile
from ..config import ClusterConfig, replica_name
from ..crypto import ED25519_SIG_SIZE, NodeCrypto
from ..durable import DurableLog
from ..faults import Attack, ByzantineReplica
from ..keys import NodeSecrets
from ..messages import MESSAGE_TYPES, Arg, DecodeError, Reply, Request, decode, encode
from ..ready import Event
from ..replica import Replica
from ..storage import ReplicaStore
from .framing import (
    CLIENT_FRAME_BYTES_MAX,
    FRAME_SIZE_MAX,
    HANDSHAKE_FRAME_MAX,
    KIND_MESSAGE,
    KIND_QUERY,
    KIND_STATE,
    ROLE_CLIENT,
    ROLE_REPLICA,
    SEAL_OVERHEAD,
    Acceptor,
    Dialer,
    FrameError,
    HandshakeError,
    PeerIdentity,
    PeerMisbehaved,
    Session,
    frame,
    peek_message_tag,
    read_frame,
)
from .host import NodeHost

HANDSHAKE_TIMEOUT_S = 5.0
FRAME_BODY_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 3.0
RECONNECT_DELAY_MIN_S = 0.05
RECONNECT_DELAY_MAX_S = 2.0
# Clients retry sooner: a replica that comes back is used again within half a second.
CLIENT_RECONNECT_DELAY_MAX_S = 0.5
# An outbound link queues at most this much while its peer is slow or away (oldest dropped).
OUTBOUND_FRAMES_MAX = 4096
OUTBOUND_BYTES_MAX = 64 * 1024 * 1024
# Connections still in their handshake (not yet authenticated), in total and per source IP.
# A handshake takes one round trip and a signature check (milliseconds), so honest ones are
# rarely pending at once: a host running a whole local cluster has 6 peers dialing each replica,
# plus a client pool or two. When a source is at its cap, its own oldest pending connection is
# closed to make room; when the total is, the oldest pending connection of the source holding the
# most (sources that are not replica hosts first) is. So idle sockets never lock anyone out (the
# newcomer always gets a slot, finding 8), and one source evicts only its own.
PENDING_HANDSHAKES_MAX = 64
PENDING_HANDSHAKES_PER_SOURCE_MAX = 16
# Authenticated client connections, in total (replica links never count against it, so clients
# cannot starve them) and per client identity. A pool holds one connection per replica; a client
# restarted before the keepalive noticed its old socket die briefly holds two. A new connection
# for an identity at its cap closes that identity's oldest (newest wins, as for replicas): the
# newest is the one its owner is using, and only the holder of that identity's key can open it,
# so eviction hurts no one else, whereas refusing would lock a restarted client out for as long
# as its stale sockets live.
CLIENT_CONNECTIONS_MAX = 1024
CONNECTIONS_PER_CLIENT_MAX = 4
# File descriptors kept for what is not a client connection: the listening socket, a link to and
# from every peer replica, the two SQLite databases (and their WAL and journal files), the lock
# file, and slack. The node raises its soft RLIMIT_NOFILE to fit its caps if it may, and
# otherwise admits fewer clients, so client sockets can never use up the descriptors that replica
# links need (accept() failing with EMFILE refuses everyone alike).
FILE_DESCRIPTORS_RESERVED = 128
# Status queries: each connection may ask STATUS_QUERIES_PER_S on average, in bursts of up to
# STATUS_QUERY_BURST (more are dropped and counted); tools poll at most every 50 ms. The part of
# the answer derived from the state is rebuilt only when the state changed and then at most once
# per STATUS_CACHE_MS (the state digest hashes the whole state: 46 ms for a large SmallBank),
# shared by every query meanwhile; counters are always current. An answer is at most
# STATUS_ANSWER_BYTES_MAX: balances beyond STATUS_BALANCES_MAX accounts are left out (the state
# digest covers them all).
STATUS_QUERIES_PER_S = 20.0
STATUS_QUERY_BURST = 40
STATUS_CACHE_MS = 100.0
STATUS_BALANCES_MAX = 64
STATUS_ANSWER_BYTES_MAX = 64 * 1024
# What a client reads from a replica in one frame: a reply (a few hundred bytes) or a status
# answer. A replica dialing a peer reads nothing back (links are one-directional).
TO_CLIENT_FRAME_BYTES_MAX = max(STATUS_ANSWER_BYTES_MAX, CLIENT_FRAME_BYTES_MAX) + 1 + SEAL_OVERHEAD
TO_REPLICA_DIALER_FRAME_BYTES_MAX = 1024
# `request_bytes` measures a request without its tag and array header; a few bytes cover them.
CLIENT_FRAME_TAG_SLACK_BYTES = 16
# A reader yields to the event loop after this many frames, so one busy peer cannot starve
# the others (or the pump) of attention.
FRAMES_PER_YIELD = 32
STATUS_TIMEOUT_S = 5.0
# What a commit of the write-ahead log survives: "power" fsyncs every commit (SQLite
# synchronous=FULL), "process" only survives the process dying (synchronous=NORMAL).
DURABILITY_POWER = "power"
DURABILITY_PROCESS = "process"
DURABILITY_MODES = (DURABILITY_POWER, DURABILITY_PROCESS)
STOP_TIMEOUT_S = 5.0

# At most one warning line per (event, reason) per interval; the rest are counted.
WARNING_INTERVAL_S = 1.0
WARNING_KEYS_MAX = 1024


def _pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


# ---- structured logging ----------------------------------------------------------------------


class NodeLog:
    """logfmt lines on stderr: ``t=... node=n3 level=info event=peer.up peer=n2``.

    Warnings always; info (connections, view changes, checkpoints, drops) with ``-v``.
    """

    def __init__(self, node: str, *, verbose: bool, stream: TextIO | None = None) -> None:
        self.node = node
        self.verbose = verbose
        self.stream = stream if stream is not None else sys.stderr
        # Warnings are rate-limited per (event, reason): a flood of bad connections must not
        # turn into a flood of log lines. Key -> (last written, lines suppressed since).
        self._recent: dict[tuple[str, object], tuple[float, int]] = {}

    @staticmethod
    def _value(value: object) -> str:
        text = str(value)
        if not text or any(c in text for c in ' ="'):
            return json.dumps(text)
        return text

    def _write(self, level: str, event: str, fields: dict[str, object]) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1000) % 1000:03d}Z"
        parts = [f"t={stamp}", f"node={self.node}", f"level={level}", f"event={event}"]
        parts.extend(f"{k}={self._value(v)}" for k, v in fields.items())
        with contextlib.suppress(OSError, ValueError):
            print(" ".join(parts), file=self.stream, flush=True)

    def info(self, event: str, **fields: object) -> None:
        if self.verbose:
            self._write("info", event, fields)

    def notice(self, event: str, **fields: object) -> None:
        """Always shown: start, stop, recovery."""
        self._write("info", event, fields)

    def warning(self, event: str, **fields: object) -> None:
        key = (event, fields.get("reason"))
        now = time.monotonic()
        last, suppressed = self._recent.get(key, (-WARNING_INTERVAL_S, 0))
        if now - last < WARNING_INTERVAL_S:
            self._recent[key] = (last, suppressed + 1)
            return
        if len(self._recent) > WARNING_KEYS_MAX:
            self._recent.clear()
        self._recent[key] = (now, 0)
        if suppressed:
            fields = {**fields, "suppressed": suppressed}
        self._write("warning", event, fields)


# ---- connections -----------------------------------------------------------------------------


class _Outbox:
    """Bounded FIFO of payloads for one link; when full the oldest are dropped (and counted)."""

    def __init__(self, counters: Counter[str], what: str) -> None:
        self._items: deque[bytes] = deque()
        self._bytes = 0
        self._counters = counters
        self._what = what
        self.ready = asyncio.Event()

    def put(self, payload: bytes) -> None:
        self._items.append(payload)
        self._bytes += len(payload)
        while len(self._items) > OUTBOUND_FRAMES_MAX or self._bytes > OUTBOUND_BYTES_MAX:
            self._bytes -= len(self._items.popleft())
            self._counters[f"{self._what}.dropped_queue_full"] += 1
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
        self._source_of: dict[object, str] = {}

    def __len__(self) -> int:
        return len(self._source_of)

    def pending(self, source: str) -> int:
        return len(self._by_source.get(source, ()))

    def admit(self, source: str, item: object) -> list[tuple[object, str]]:
        """Admit `item` from `source`; returns [(evicted item, reason)] (already released)."""
        evicted: list[tuple[object, str]] = []
        queue = self._by_source.get(source)
        if queue is not None and len(queue) >= self.per_source_max:
            evicted.append((queue[0], "conn.evicted_source_busy"))
        elif len(self._source_of) >= self.total_max:
            def busiest(src: str) -> tuple[bool, int]:
                return (src not in self.replica_hosts, len(self._by_source[src]))

            victim_source = max(self._by_source, key=busiest)
            evicted.append((self._by_source[victim_source][0], "conn.evicted_busy"))
        for victim, _ in evicted:
            self.release(victim)
        self._by_source.setdefault(source, deque()).append(item)
        self._source_of[item] = source
        return evicted

    def release(self, item: object) -> None:
        """`item` finished its handshake (or failed it, or was evicted); idempotent."""
        source = self._source_of.pop(item, None)
        if source is None:
            return
        queue = self._by_source[source]
        queue.remove(item)
        if not queue:
            del self._by_source[source]


def client_frame_bytes_max(config: ClusterConfig) -> int:
    """The frame limit of a client connection: `CLIENT_FRAME_BYTES_MAX`, or less when the
    replica refuses smaller requests anyway (a request larger than `batch_bytes_max` can never
    be ordered, so reading one is wasted work). Room for the kind byte, the message tag and the
    session's MAC on top of the request."""
    request_max = max(0, config.batch_bytes_max) + CLIENT_FRAME_TAG_SLACK_BYTES
    return min(CLIENT_FRAME_BYTES_MAX, request_max + 1 + SEAL_OVERHEAD)


def client_connections_budget(fd_soft_max: int) -> int:
    """How many client connections fit in `fd_soft_max` file descriptors next to the pending
    handshakes and what `FILE_DESCRIPTORS_RESERVED` keeps for replica links and storage."""
    spare = fd_soft_max - PENDING_HANDSHAKES_MAX - FILE_DESCRIPTORS_RESERVED
    return max(0, min(CLIENT_CONNECTIONS_MAX, spare))


def _raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE towards what the caps need (never above the hard limit);
    returns the soft limit in force."""
    import resource

    needed = CLIENT_CONNECTIONS_MAX + PENDING_HANDSHAKES_MAX + FILE_DESCRIPTORS_RESERVED
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    return needed if soft == resource.RLIM_INFINITY else soft


def _source_of(peer_address: object) -> str:
    """The IP address part of a peername (the unit of the per-source handshake cap)."""
    if isinstance(peer_address, tuple) and peer_address:
        return str(peer_address[0])
    return "?"


@dataclass(eq=False)
class _Connection:
    """An authenticated connection: its session, its identity, its writer task."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    session: Session
    identity: PeerIdentity
    outbox: _Outbox
    closed: bool = False
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    status_queries: TokenBucket | None = None  # clients' connections: the status query limit

    def send(self, payload: bytes) -> None:
        if not self.closed:
            self.outbox.put(payload)

    async def write_loop(self) -> None:
        """Seal and write whatever is queued, in order (the session counter depends on it)."""
        while True:
            await self.outbox.ready.wait()
            payloads = self.outbox.take_all()
            self.writer.write(b"".join(frame(self.session.seal(p)) for p in payloads))
            await self.writer.drain()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            for task in self.tasks:
                task.cancel()
            with contextlib.suppress(Exception):
                self.writer.close()


def _tune(writer: asyncio.StreamWriter) -> None:
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
    ) -> None:
        self.target = target
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
        self.outbox = _Outbox(counters, f"out.{replica_name(target)}")
        self.connection: _Connection | None = None
        self.connected = asyncio.Event()
        self.connects = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"dial-{replica_name(self.target)}"
        )

    def send(self, payload: bytes) -> None:
        self.outbox.put(payload)

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

    async def _connect(self) -> _Connection:
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            reader, writer = await asyncio.open_connection(self.address.host, self.address.port)
        try:
            _tune(writer)
            async with asyncio.timeout(HANDSHAKE_TIMEOUT_S):
                dialer = self.make_dialer()
                hello = await read_frame(reader, HANDSHAKE_FRAME_MAX, HANDSHAKE_TIMEOUT_S)
                writer.write(frame(dialer.on_hello(hello)))
                accept = await read_frame(reader, HANDSHAKE_FRAME_MAX, HANDSHAKE_TIMEOUT_S)
                session = dialer.on_accept(accept)
        except BaseException:
            writer.close()
            raise
        identity = PeerIdentity(ROLE_REPLICA, (replica_name(self.target),))
        return _Connection(reader, writer, session, identity, self.outbox)

    async def _serve(self, connection: _Connection) -> None:
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

    async def _read_loop(self, connection: _Connection) -> None:
        frames = 0
        while True:
            body = await read_frame(connection.reader, self.frame_bytes_max, FRAME_BODY_TIMEOUT_S)
            payload = connection.session.open(body)
            if self.on_payload is None:
                self.counters["frame.unexpected"] += 1
            else:
                self.on_payload(payload)
            frames += 1
            if frames % FRAMES_PER_YIELD == 0:
                await asyncio.sleep(0)


# ---- the replica node ------------------------------------------------------------------------


def data_paths(data_dir: Path, replica_id: int) -> tuple[Path, Path, Path]:
    """(inspection database, write-ahead log, lock file) of replica `replica_id` in `data_dir`.

    The inspection database has the same schema as a pipes run's, so ``pbft inspect`` reads it.
    """
    name = replica_name(replica_id)
    return data_dir / f"{name}.sqlite", data_dir / f"{name}.durable.sqlite", data_dir / f"{name}.lock"


def cluster_fingerprint(cluster: ClusterFile) -> str:
    """A short hash of a cluster's replica keys (identities and threshold keys): equal iff they
    are. Client keys are left out, so clients can be added without invalidating replicas' data."""
    public = cluster.public
    threshold = [(f.name, getattr(public, f.name)) for f in fields(public) if f.name not in ("replicas", "clients")]
    body = _pack([sorted(public.replicas.items()), sorted(threshold)])
    return hashlib.sha256(b"pbft/v1/cluster/" + body).hexdigest()[:32]


class NodeStartError(RuntimeError):
    """The node cannot start (address in use, data directory locked, ...)."""


class ReplicaNode:
    """One replica served over TCP; see the module docstring."""

    def __init__(
        self,
        cluster: ClusterFile,
        replica_id: int,
        secrets: NodeSecrets,
        data_dir: Path,
        *,
        listen: Address | None = None,
        attacks: tuple[Attack, ...] = (),
        meta: Mapping[str, Any] | None = None,
        log: NodeLog | None = None,
        durability: str = DURABILITY_POWER,
    ) -> None:
        assert replica_id in cluster.config.replica_ids
        assert durability in DURABILITY_MODES
        self.cluster = cluster
        self.config = cluster.config
        self.id = replica_id
        self.name = replica_name(replica_id)
        self.secrets = secrets
        self.data_dir = data_dir
        self.listen = listen or cluster.addresses[replica_id]
        self.attacks = attacks
        self.durability = durability
        self.meta = dict(meta or {})
        self.log = log or NodeLog(self.name, verbose=False)
        self.counters: Counter[str] = Counter()
        self.peers = [r for r in self.config.replica_ids if r != replica_id]
        self.links: dict[int, DialLink] = {}
        self.inbound: dict[int, _Connection] = {}
        self.client_routes: dict[str, _Connection] = {}
        self.client_connections: set[_Connection] = set()
        # Each client identity's open connections, oldest first (at most CONNECTIONS_PER_CLIENT_MAX).
        self._connections_of: dict[str, deque[_Connection]] = {}
        self.client_connections_max = CLIENT_CONNECTIONS_MAX  # lowered at start if descriptors are short
        self.client_frame_bytes_max = client_frame_bytes_max(self.config)
        self._handshakes = HandshakeSlots(PENDING_HANDSHAKES_MAX, PENDING_HANDSHAKES_PER_SOURCE_MAX)
        # (built at ms, (last_executed, stable_seq, bank), the state-derived status fields)
        self._state_cache: tuple[float, tuple[int, int, int], dict[str, Any]] | None = None
        self.restored_events = 0
        self._epoch = time.monotonic()
        self._kick: asyncio.Event | None = None
        self._fatal: BaseException | None = None
        self._stop: asyncio.Event | None = None
        self._server: asyncio.Server | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._handlers: set[asyncio.Task[Any]] = set()  # one per inbound connection
        self._lock_fd: int | None = None
        self._verify_keys: dict[str, VerifyKey] = {}
        self._signing_key = SigningKey(secrets.signing_seed)
        self.host: NodeHost | None = None
        self.store: ReplicaStore | None = None
        self.durable: DurableLog | None = None

    # ---- lifecycle -------------------------------------------------------------------------

    def now_ms(self) -> float:
        return (time.monotonic() - self._epoch) * 1000.0

    def _open_storage(self) -> NodeHost:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        store_path, durable_path, lock_path = data_paths(self.data_dir, self.id)
        self._lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise NodeStartError(f"{lock_path} is locked: is {self.name} already running here?") from None
        self._check_cluster(store_path)
        self.durable = DurableLog(durable_path)
        if self.durability == DURABILITY_PROCESS:
            # WAL + synchronous=NORMAL: a commit survives the process dying (kill -9, OOM,
            # a bug), not the machine losing power; no fsync per commit.
            self.durable.db.execute("PRAGMA synchronous=NORMAL")
        events = self.durable.load()
        crypto = self.secrets.crypto()
        if events:
            replica = Replica.restore(self.id, self.config, crypto, events)
        else:
            replica = Replica(self.id, self.config, crypto)
        self.restored_events = len(events)
        node: Replica | ByzantineReplica = replica
        if self.attacks:
            node = ByzantineReplica(replica, self.attacks)
        self.store = ReplicaStore(store_path)
        defaults: dict[str, Any] = {
            "replica": self.name,
            "honest": not self.attacks,
            "live": True,
            "attacks": [str(a) for a in self.attacks],
            "transport": "tcp",
            "durability": self.durability,
            "config": asdict(self.config),
            "cluster": cluster_fingerprint(self.cluster),
        }
        self.store.set_meta(**{**defaults, **self.meta})
        self.store.commit()
        return NodeHost(
            node,
            self.store,
            self._send_to_replica,
            self._send_to_client,
            links=frozenset(self.peers),
            on_event=self._on_event,
        )

    def _check_cluster(self, store_path: Path) -> None:
        """Refuse a data directory written for another cluster (other keys): restoring votes
        certified under other keys would give a replica that can neither prove nor verify."""
        if not store_path.exists():
            return
        try:
            with ReplicaStore(store_path, read_only=True) as store:
                recorded = store.meta().get("cluster")
        except Exception:  # not (yet) a readable store: nothing to compare against
            return
        if recorded is not None and recorded != cluster_fingerprint(self.cluster):
            self._release_lock()
            raise NodeStartError(
                f"{self.data_dir} holds {self.name}'s state for another cluster (keys differ from "
                f"{self.cluster.path}); use another --data-dir"
            )

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._kick = asyncio.Event()
        self._stop = asyncio.Event()
        self.host = self._open_storage()
        replica = self.host.replica
        if self.restored_events:
            self.log.notice(
                "recovered",
                events=self.restored_events,
                view=replica.view,
                last_executed=replica.last_executed,
                stable=replica.stable_seq,
            )
        self.client_connections_max = client_connections_budget(_raise_fd_limit())
        if self.client_connections_max < CLIENT_CONNECTIONS_MAX:
            self.log.notice("clients.capped", clients_max=self.client_connections_max, reason="RLIMIT_NOFILE")
        self._handshakes = HandshakeSlots(
            PENDING_HANDSHAKES_MAX, PENDING_HANDSHAKES_PER_SOURCE_MAX, await self._replica_hosts()
        )
        try:
            self._server = await asyncio.start_server(
                self._on_connection, self.listen.host, self.listen.port, reuse_address=True
            )
        except OSError as exc:
            self._close_storage()
            raise NodeStartError(f"cannot listen on {self.listen}: {exc.strerror or exc}") from None
        for peer in self.peers:
            link = DialLink(
                peer,
                self.cluster.addresses[peer],
                self._replica_dialer(peer),
                self.counters,
                self.log,
            )
            self.links[peer] = link
            link.start()
        self._tasks.append(loop.create_task(self._pump(), name="pump"))
        self.log.notice("listening", addr=self.listen, view=replica.view, last_executed=replica.last_executed)

    async def _replica_hosts(self) -> frozenset[str]:
        """The IP addresses the peer replicas' hosts have in the cluster file (best effort: a
        name that does not resolve now is left out; it only loses its preference)."""
        loop = asyncio.get_running_loop()
        hosts: set[str] = set()
        for peer in self.peers:
            host = self.cluster.addresses[peer].host
            hosts.add(host)
            with contextlib.suppress(OSError, UnicodeError):
                async with asyncio.timeout(CONNECT_TIMEOUT_S):
                    for info in await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM):
                        hosts.add(str(info[4][0]))
        return frozenset(hosts)

    def _replica_dialer(self, peer: int) -> Callable[[], Dialer]:
        keys = {self.name: self.secrets.signing_seed}
        signing = {self.name: self._signing_key}
        public = self.cluster.public.replicas[peer]
        return lambda: Dialer(ROLE_REPLICA, keys, peer, public, signing_keys=signing)

    def request_stop(self) -> None:
        if self._stop is not None:
            self._stop.set()

    async def serve(self) -> dict[str, Any]:
        """Run until `request_stop` (SIGTERM) or a fatal error; returns the final state."""
        assert self._stop is not None, "start first"
        stop_task = asyncio.get_running_loop().create_task(self._stop.wait())
        try:
            await asyncio.wait([stop_task, *self._tasks], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop_task.cancel()
        for task in self._tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                self._fatal = self._fatal or task.exception()
        return await self.shutdown()

    async def shutdown(self) -> dict[str, Any]:
        if self._server is not None:
            self._server.close()
        for task in self._tasks:
            task.cancel()
        for link in self.links.values():
            await link.close()
        for connection in [*self.inbound.values(), *self.client_connections]:
            connection.close()
        handlers = list(self._handlers)
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        state: dict[str, Any] = {}
        if self.host is not None:
            # What was decided is already durable; messages still queued are simply not sent.
            self._commit()
            shell_metrics = {f"tcp.{k}": v for k, v in self.counters.items()}
            # Same name as the pipes shell's, so `pbft inspect perf` compares them directly.
            shell_metrics["host.cpu_ms"] = int(time.process_time() * 1000)
            state = self.host.finish(shell_metrics)
        self._close_storage()
        if self._fatal is not None:
            raise self._fatal
        self.log.notice("stopped", view=state.get("view"), last_executed=state.get("last_executed"))
        return state

    def _close_storage(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None
        if self.durable is not None:
            self.durable.close()
            self.durable = None
        self._release_lock()

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # ---- the pump: tick, commit, send ------------------------------------------------------

    def _commit(self) -> None:
        assert self.store is not None and self.durable is not None
        # Inspection rows first: after a crash the inspection database holds at least what the
        # write-ahead log holds (replay re-inserts; it never misses an executed batch).
        self.store.commit()
        self.durable.commit()

    async def _pump(self) -> None:
        assert self._kick is not None and self.host is not None
        host = self.host
        while True:
            if not self._kick.is_set():
                wake = host.wake_at_ms
                delay = None if wake is None else max(0.0, (wake - self.now_ms()) / 1000.0)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._kick.wait()
            self._kick.clear()
            # What the readers' steps produced goes out before the replica's deferred work and
            # timers run (the leader's own shares and aggregate check wait for its messages).
            self._commit()
            host.flush()
            if host.tick_if_due(self.now_ms()):
                self._commit()
                host.flush()
            # Let readers run before the next commit, even when a timer is already due.
            await asyncio.sleep(0)

    def _on_event(self, _t_ms: float, event: Event) -> None:
        assert self.durable is not None
        self.durable.append((event,))
        if self.log.verbose:
            from .pipes import event_summary

            summary = event_summary(event)
            if summary is not None:
                kind, detail = summary
                self.log.info(f"protocol.{kind}", **detail)

    def _send_to_replica(self, replica: int, data: bytes) -> None:
        link = self.links.get(replica)
        if link is not None:
            link.send(KIND_MESSAGE + data)

    def _send_to_client(self, client: str, data: bytes) -> None:
        connection = self.client_routes.get(client)
        if connection is None or connection.closed:
            self.counters["out.client_unreachable"] += 1
            return
        connection.send(KIND_MESSAGE + data)

    # ---- inbound connections ---------------------------------------------------------------

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._accept(reader, writer)
        except asyncio.CancelledError:
            # Shutdown cancels connection handlers; ending quietly here keeps asyncio's stream
            # machinery from logging every cancelled connection as an error.
            with contextlib.suppress(Exception):
                writer.close()
        finally:
            self._handlers.discard(task)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer_address = writer.get_extra_info("peername")
        task = asyncio.current_task()
        assert task is not None
        self.counters["conn.accepted"] += 1
        # The newcomer always gets a slot; the slots say whose pending handshake makes room.
        for victim, reason in self._handshakes.admit(_source_of(peer_address), task):
            self.counters[reason] += 1
            self.log.warning("conn.refused", addr=peer_address, reason=reason)
            cast(asyncio.Task[Any], victim).cancel()  # its handler closes its socket
        _tune(writer)
        try:
            established = await self._handshake(reader, writer, peer_address)
        finally:
            self._handshakes.release(task)
        if established is None:
            with contextlib.suppress(Exception):
                writer.close()
            return
        session, identity = established
        connection = _Connection(reader, writer, session, identity, _Outbox(self.counters, "out.client"))
        if identity.role == ROLE_CLIENT and not self._admit_client(connection):
            self.counters["conn.refused_clients_max"] += 1
            writer.close()
            return
        await self._serve_connection(connection)

    def _admit_client(self, connection: _Connection) -> bool:
        """Make room for a new client connection: each of its identities at its cap loses its
        oldest connection (newest wins); then it is refused only if the total is full."""
        for name in connection.identity.names:
            held = self._connections_of.get(name)
            while held and len(held) >= CONNECTIONS_PER_CLIENT_MAX:
                old = held[0]
                self.counters["conn.evicted_client_identity"] += 1
                self.log.info("conn.evicted", peer=old.identity.label, reason="conn.evicted_client_identity")
                self._forget_client(old)
                old.close()
        if len(self.client_connections) >= self.client_connections_max:
            return False
        connection.status_queries = TokenBucket(STATUS_QUERIES_PER_S, STATUS_QUERY_BURST, time.monotonic())
        self.client_connections.add(connection)
        for name in connection.identity.names:
            self._connections_of.setdefault(name, deque()).append(connection)
            self.client_routes[name] = connection
        return True

    def _forget_client(self, connection: _Connection) -> None:
        """Drop a client connection from the tables (idempotent); replies to its identities
        go to their newest remaining connection, if any."""
        self.client_connections.discard(connection)
        for name in connection.identity.names:
            held = self._connections_of.get(name)
            if held is not None and connection in held:
                held.remove(connection)
            if self.client_routes.get(name) is connection:
                if held:
                    self.client_routes[name] = held[-1]
                else:
                    del self.client_routes[name]
            if held is not None and not held:
                del self._connections_of[name]

    async def _handshake(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer_address: object
    ) -> tuple[Session, PeerIdentity] | None:
        acceptor = Acceptor(
            self.id,
            self.secrets.signing_seed,
            self.cluster.public.replicas,
            self.cluster.public.clients,
            verify_keys=self._verify_keys,
        )
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT_S):
                writer.write(frame(acceptor.hello()))
                auth = await read_frame(reader, HANDSHAKE_FRAME_MAX, HANDSHAKE_TIMEOUT_S)
                try:
                    accept, identity, session = acceptor.on_auth(auth)
                except HandshakeError as exc:
                    writer.write(frame(Acceptor.refusal(exc)))
                    with contextlib.suppress(Exception):
                        await writer.drain()
                    raise
                writer.write(frame(accept))
                await writer.drain()
        except TimeoutError:
            self.counters["handshake.timeout"] += 1
            self.log.info("conn.refused", addr=peer_address, reason="handshake.timeout")
            return None
        except FrameError as exc:
            self.counters[exc.reason] += 1
            self.log.warning("conn.refused", addr=peer_address, reason=exc.reason, detail=exc)
            return None
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            self.counters["handshake.eof"] += 1
            return None
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # framing promises HandshakeError only; a stranger gets no traceback
            self.counters["handshake.error"] += 1
            self.log.warning("conn.refused", addr=peer_address, reason="handshake.error", detail=repr(exc))
            return None
        self.counters[f"conn.authenticated.{identity.role}"] += 1
        return session, identity

    async def _serve_connection(self, connection: _Connection) -> None:
        identity = connection.identity
        loop = asyncio.get_running_loop()
        replica = identity.replica
        if replica is not None:
            old = self.inbound.get(replica)
            if old is not None:
                old.close()  # the peer restarted or re-dialed: the newest connection wins
            self.inbound[replica] = connection
        self.log.info("conn.up", peer=identity.label, role=identity.role)
        writer_task = loop.create_task(connection.write_loop())
        reader_task = asyncio.current_task()
        assert reader_task is not None
        connection.tasks.append(writer_task)
        try:
            await self._read_loop(connection)
        except FrameError as exc:
            self.counters[exc.reason] += 1
            self.log.warning("conn.dropped", peer=identity.label, reason=exc.reason, detail=exc)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug in the protocol or the host: stop the node, loudly
            self._fatal = exc
            self.request_stop()
        finally:
            connection.close()
            if replica is not None and self.inbound.get(replica) is connection:
                del self.inbound[replica]
            if replica is None:
                self._forget_client(connection)
            self.log.info("conn.down", peer=identity.label)

    async def _read_loop(self, connection: _Connection) -> None:
        assert self.host is not None and self._kick is not None
        host, kick = self.host, self._kick
        identity = connection.identity
        replica = identity.replica
        # A client only ever sends small requests and status queries (see CLIENT_FRAME_BYTES_MAX).
        size_max = FRAME_SIZE_MAX if replica is not None else self.client_frame_bytes_max
        frames = 0
        while not connection.closed:
            body = await read_frame(connection.reader, size_max, FRAME_BODY_TIMEOUT_S)
            payload = connection.session.open(body)
            kind = payload[:1]
            if kind == KIND_MESSAGE:
                # The tag is read from the first bytes: a message of no known type (or, from a
                # client, of any type but REQUEST) is refused before the codec decodes its body.
                tag = peek_message_tag(memoryview(payload)[1:])
                if replica is not None:
                    if tag in MESSAGE_TYPES:
                        host.on_peer_bytes(replica, payload[1:], self.now_ms())
                        kick.set()
                    else:
                        self.counters["frame.unknown_tag"] += 1
                elif tag == Request.TAG:
                    host.on_client_bytes(identity.label, payload[1:], self.now_ms())
                    kick.set()
                else:
                    raise PeerMisbehaved("client.not_request", f"a client sent a message with tag {tag}")
            elif kind == KIND_QUERY and replica is None:
                assert connection.status_queries is not None
                if connection.status_queries.take(time.monotonic()):
                    self.counters["status.queries"] += 1
                    connection.send(self._status_payload())
                else:
                    self.counters["status.rate_limited"] += 1
            elif replica is None:
                # An honest client sends nothing else: whatever it is, it is not worth reading on.
                raise PeerMisbehaved("frame.unexpected_kind", f"a client sent a payload of kind {kind!r}")
            else:
                self.counters["frame.unexpected_kind"] += 1
            frames += 1
            if frames % FRAMES_PER_YIELD == 0:
                await asyncio.sleep(0)

    # ---- status ----------------------------------------------------------------------------

    def _status_payload(self) -> bytes:
        """The status answer to send (KIND_STATE + msgpack), at most STATUS_ANSWER_BYTES_MAX."""
        status = self.status()
        answer = _pack(status)
        if len(answer) > STATUS_ANSWER_BYTES_MAX:
            # Counters and metrics have bounded key sets, so this is a safety net, not a path.
            kept = ("replica", "view", "view_active", "last_executed", "stable_seq", "state_digest", "accounts")
            answer = _pack({**{k: status[k] for k in kept}, "balances": {}, "truncated": True})
        return KIND_STATE + answer

    def _state_summary(self) -> dict[str, Any]:
        """The state-derived part of a status (progress, a bounded view of the balances, the
        state digest, which hashes the whole state). Rebuilt only when the state changed, and
        then at most once per STATUS_CACHE_MS, so its fields always describe one state, at most
        that much behind, however many clients ask."""
        assert self.host is not None
        replica = self.host.replica
        key = (replica.last_executed, replica.stable_seq, id(replica.bank))
        now = self.now_ms()
        cached = self._state_cache
        if cached is not None and (cached[1] == key or now - cached[0] < STATUS_CACHE_MS):
            return cached[2]
        self.counters["status.built"] += 1
        balances = replica.bank.balances
        if len(balances) <= STATUS_BALANCES_MAX:
            shown = dict(balances)
        else:
            shown = dict(itertools.islice(balances.items(), STATUS_BALANCES_MAX))
        summary = {
            "last_executed": replica.last_executed,
            "stable_seq": replica.stable_seq,
            "balances": shown,
            "accounts": len(balances),
            "balances_truncated": len(shown) < len(balances),
            "state_digest": replica.bank.digest().hex(),
        }
        self._state_cache = (now, key, summary)
        return summary

    def status(self) -> dict[str, Any]:
        """What `pbft client status` shows: progress, balances, links and counters.

        The fields of `NodeHost.state`, except that ``balances`` holds at most
        STATUS_BALANCES_MAX accounts (``accounts`` says how many there are, and
        ``balances_truncated`` whether some were left out: a SmallBank state is megabytes),
        and that the state-derived fields may be up to STATUS_CACHE_MS old (`_state_summary`)."""
        assert self.host is not None
        host = self.host
        replica = host.replica
        return {
            "replica": replica.id,
            "view": replica.view,
            "view_active": replica.view_active,
            **self._state_summary(),
            "metrics": {**replica.metrics, **host.sent},
            "cpu_ms": int(time.process_time() * 1000),
            "uptime_s": round(time.monotonic() - self._epoch, 3),
            "recovered_events": self.restored_events,
            "links_out": {replica_name(p): link.connection is not None for p, link in self.links.items()},
            "links_in": sorted(replica_name(r) for r in self.inbound),
            "clients_connected": len(self.client_connections),
            "counters": dict(self.counters),
            "host.decode_failures": self.host.decode_failures,
        }


def run_node(node: ReplicaNode) -> dict[str, Any]:
    """Serve `node` until SIGTERM / SIGINT; returns its final state (the CLI's entry point)."""

    async def main() -> dict[str, Any]:
        await node.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, node.request_stop)
        return await node.serve()

    state = asyncio.run(main())
    # The final state is written; a second signal during interpreter teardown (closing the
    # loop restored the default handlers) must not turn a clean exit into "killed by SIGTERM".
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    return state


# ---- the client pool -------------------------------------------------------------------------


class ClientCrypto:
    """What a client needs of `NodeCrypto`: sign as itself, verify replicas' signatures.

    Lighter than `RealCrypto` (no threshold key, no table of every client's key), and the
    replicas' verify keys are shared by every client of a pool.
    """

    def __init__(self, signing_key: SigningKey, replica_keys: Mapping[int, VerifyKey]) -> None:
        self._signing = signing_key
        self._replica_keys = replica_keys

    def sign(self, payload: bytes) -> bytes:
        return self._signing.sign(payload).signature

    def verify_replica(self, replica: int, payload: bytes, sig: bytes) -> bool:
        key = self._replica_keys.get(replica)
        if key is None or len(sig) != ED25519_SIG_SIZE:
            return False
        try:
            key.verify(payload, sig)
        except Exception:
            return False
        return True


@dataclass(frozen=True)
class PoolCompletion:
    """A certified result: the client's `Completion` and the replicas whose matching, signed
    replies certified it (f+1 for an ordered request, 2f+1 for a read)."""

    completion: Completion
    certified_by: tuple[int, ...]

    @property
    def result(self) -> Any:
        return self.completion.result


@dataclass
class _Outstanding:
    future: asyncio.Future[PoolCompletion]
    # Authentic replies to this request, one per (replica, read-only): at most 2n, however
    # many a replica sends (they are kept only to say who certified the result).
    replies: dict[tuple[int, bool], Reply] = field(default_factory=dict)


def wall_clock_timestamp() -> int:
    """A first request timestamp no earlier invocation of the same client can have used:
    microseconds of wall time (the reply table only executes increasing timestamps)."""
    return time.time_ns() // 1000


class ClientPool:
    """Many closed-loop clients over one connection per replica; see the module docstring.

    ::

        cluster = ClusterFile.load("cluster/cluster.toml")
        pool = ClientPool(cluster, [cluster.load_secrets(n) for n in ("c0", "c1", "c2")])
        await pool.start()
        await pool.wait_connected(cluster.config.n, timeout_s=10.0)
        done = await asyncio.wait_for(pool.submit("c0", "transfer", ("A", "B", 1)), 30.0)
        done.result, done.certified_by, done.completion.latency_ms
        await pool.close()

    Each client has at most one request outstanding (`busy`); a benchmark keeps every client
    busy by submitting its next request when the previous future resolves. The handshake signs
    once per identity per replica, so a pool of thousands of clients takes a moment to connect;
    all its traffic shares one connection (and one event loop) per replica, so for loads beyond
    one core split the clients over several pools in several processes.
    """

    def __init__(
        self,
        cluster: ClusterFile,
        secrets: Sequence[NodeSecrets],
        *,
        first_timestamp: int | None = None,
        log: NodeLog | None = None,
    ) -> None:
        assert secrets, "a pool needs at least one client identity"
        self.cluster = cluster
        self.config = cluster.config
        self.log = log or NodeLog("client", verbose=False)
        self.counters: Counter[str] = Counter()
        replica_keys = {r: VerifyKey(k) for r, k in cluster.public.replicas.items()}
        self._signing = {s.name: SigningKey(s.signing_seed) for s in secrets}
        self._seeds = {s.name: s.signing_seed for s in secrets}
        self.verified: dict[tuple[int, bytes, bytes], None] = {}
        first = first_timestamp if first_timestamp is not None else wall_clock_timestamp()
        self.clients = {
            name: Client(
                name,
                self.config,
                cast(NodeCrypto, ClientCrypto(key, replica_keys)),
                first_timestamp=first,
                verified=self.verified,
            )
            for name, key in self._signing.items()
        }
        self.links: dict[int, DialLink] = {}
        self._outstanding: dict[str, _Outstanding] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._status_waiters: dict[int, deque[asyncio.Future[dict[str, Any]]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._epoch = 0.0

    @property
    def names(self) -> list[str]:
        return sorted(self.clients)

    def now_ms(self) -> float:
        assert self._loop is not None
        return (self._loop.time() - self._epoch) * 1000.0

    async def start(self) -> None:
        """Start dialing every replica (in the background; see `wait_connected`)."""
        self._loop = asyncio.get_running_loop()
        self._epoch = self._loop.time()
        for r in self.config.replica_ids:
            public = self.cluster.public.replicas[r]

            def make_dialer(r: int = r, public: bytes = public) -> Dialer:
                return Dialer(ROLE_CLIENT, self._seeds, r, public, signing_keys=self._signing)

            link = DialLink(
                r,
                self.cluster.addresses[r],
                make_dialer,
                self.counters,
                self.log,
                on_payload=lambda payload, r=r: self._on_payload(r, payload),
                reconnect_max_s=CLIENT_RECONNECT_DELAY_MAX_S,
            )
            self.links[r] = link
            self._status_waiters[r] = deque()
            link.start()

    async def wait_connected(self, count: int, timeout_s: float) -> int:
        """Wait until `count` replicas are connected (or the timeout); returns how many are."""
        deadline = time.monotonic() + timeout_s
        while True:
            connected = sum(1 for link in self.links.values() if link.connection is not None)
            if connected >= count or time.monotonic() >= deadline:
                return connected
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        for link in self.links.values():
            await link.close()
        for outstanding in self._outstanding.values():
            if not outstanding.future.done():
                outstanding.future.cancel()

    def busy(self, name: str) -> bool:
        return self.clients[name].busy

    def submit(
        self, name: str, op: str, args: tuple[Arg, ...], *, read_only: bool = False
    ) -> asyncio.Future[PoolCompletion]:
        """Send one request as client `name` (closed loop: it must not be busy). The future
        resolves with the certified result; wrap it in `asyncio.wait_for` for a deadline (the
        client keeps retrying after a timeout and stays busy until it gets an answer)."""
        assert self._loop is not None, "start first"
        client = self.clients[name]
        future: asyncio.Future[PoolCompletion] = self._loop.create_future()
        self._outstanding[name] = _Outstanding(future)
        now = self.now_ms()
        self._perform(name, client.submit(op, args, now, read_only=read_only))
        return future

    async def status(self, replica: int, timeout_s: float = STATUS_TIMEOUT_S) -> dict[str, Any] | None:
        """Ask one replica for its status; None if it does not answer in time."""
        assert self._loop is not None, "start first"
        link = self.links[replica]
        try:
            async with asyncio.timeout(timeout_s):
                await link.connected.wait()
                future: asyncio.Future[dict[str, Any]] = self._loop.create_future()
                self._status_waiters[replica].append(future)
                link.send(KIND_QUERY)
                return await future
        except TimeoutError:
            return None

    # ---- internals -------------------------------------------------------------------------

    def _perform(self, name: str, ready: ClientReady) -> None:
        encoded: dict[int, bytes] = {}
        for to, request in ready.to_replicas:
            data = encoded.get(id(request))
            if data is None:
                data = encoded[id(request)] = KIND_MESSAGE + encode(request)
            link = self.links.get(to)
            if link is not None:
                link.send(data)
        handle = self._timers.pop(name, None)
        if handle is not None:
            handle.cancel()
        if ready.wake_at_ms is not None:
            assert self._loop is not None
            when = self._epoch + ready.wake_at_ms / 1000.0
            self._timers[name] = self._loop.call_at(when, self._tick, name)
        if ready.completed is not None:
            self._complete(name, ready.completed)

    def _tick(self, name: str) -> None:
        self._timers.pop(name, None)
        self._perform(name, self.clients[name].tick(self.now_ms()))

    def _complete(self, name: str, completion: Completion) -> None:
        outstanding = self._outstanding.pop(name, None)
        if outstanding is None or outstanding.future.done():
            return
        request: Request = completion.request
        certified = sorted(
            {
                reply.replica
                for reply in outstanding.replies.values()
                if reply.timestamp == request.timestamp
                and reply.read_only == request.read_only
                and reply.result == completion.result
                and (reply.replica, reply.signed_root(), reply.sig) in self.verified
            }
        )
        outstanding.future.set_result(PoolCompletion(completion, tuple(certified)))

    def _on_payload(self, replica: int, payload: bytes) -> None:
        kind = payload[:1]
        if kind == KIND_STATE:
            waiters = self._status_waiters.get(replica)
            # Waiters that gave up (timed out: their query may have been dropped by the
            # replica's rate limit) must not swallow the answer meant for a live one.
            while waiters and waiters[0].done():
                waiters.popleft()
            if waiters:
                future = waiters.popleft()
                try:
                    future.set_result(dict(msgpack.unpackb(payload[1:], raw=False)))
                except Exception as exc:
                    future.set_exception(exc)
            else:
                self.counters["status.unsolicited"] += 1
            return
        if kind != KIND_MESSAGE:
            self.counters["frame.unexpected_kind"] += 1
            return
        try:
            reply = decode(payload[1:])
        except DecodeError:
            self.counters["replies.undecodable"] += 1
            return
        if not isinstance(reply, Reply) or reply.replica != replica:
            # Replies travel on the replica's own authenticated connection; anything else is noise.
            self.counters["replies.misrouted"] += 1
            return
        client = self.clients.get(reply.client)
        if client is None:
            self.counters["replies.unknown_client"] += 1
            return
        pending = client.outstanding
        ready = client.step(reply, self.now_ms())
        # Kept only once the client has checked it: it answers the outstanding request and its
        # signature verified (the client records every root it verified in `self.verified`).
        outstanding = self._outstanding.get(reply.client)
        if (
            outstanding is not None
            and pending is not None
            and reply.timestamp == pending.request.timestamp
            and (reply.replica, reply.read_only) not in outstanding.replies
            and (reply.replica, reply.signed_root(), reply.sig) in self.verified
        ):
            outstanding.replies[(reply.replica, reply.read_only)] = reply
        self._perform(reply.client, ready)
