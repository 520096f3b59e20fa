"""`ReplicaNode`: one replica served over TCP (see the package docstring), and `run_node`."""


import asyncio
import contextlib
import fcntl
import itertools
import os
import signal
import socket
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any, cast

from nacl.signing import SigningKey, VerifyKey

from ...attacks import Attack
from ...clusterfile import Address, ClusterFile
from ...config import replica_name
from ...durable import DurableLog
from ...faults import make_node
from ...keys import NodeSecrets
from ...messages import MESSAGE_TYPES, Request
from ...ready import Event
from ...replica import Replica
from ...storage import ReplicaStore
from ..framing import (
    FRAME_SIZE_MAX,
    HANDSHAKE_FRAME_MAX,
    KIND_MESSAGE,
    KIND_MESSAGES,
    KIND_QUERY,
    KIND_STATE,
    ROLE_CLIENT,
    ROLE_REPLICA,
    Acceptor,
    Dialer,
    FrameError,
    FrameSplitter,
    HandshakeError,
    PeerIdentity,
    PeerMisbehaved,
    Session,
    frame,
    peek_message_tag,
    read_frame,
    read_frames,
    split_messages,
)
from ..host import NodeHost
from ..packing import pack
from ..summary import event_summary
from . import limits
from .data import NodeStartError, cluster_fingerprint, data_paths
from .limits import (
    CONNECT_TIMEOUT_S,
    CONNECTIONS_PER_CLIENT_MAX,
    DURABILITY_MODES,
    DURABILITY_POWER,
    DURABILITY_PROCESS,
    FRAME_BODY_TIMEOUT_S,
    FRAMES_PER_YIELD,
    PENDING_HANDSHAKES_MAX,
    PENDING_HANDSHAKES_PER_SOURCE_MAX,
    STATUS_ANSWER_BYTES_MAX,
    STATUS_BALANCES_MAX,
    STATUS_CACHE_MS,
    client_connections_budget,
    client_frame_bytes_max,
    raise_fd_limit,
)
from .links import Connection, DialLink, HandshakeSlots, Outbox, TokenBucket, source_of, tune
from .log import NodeLog

# How many rounds the pump lets the readers hand over input that already arrived before it ticks
# the replica (see `_pump`). Two turns of the event loop per round: one polls the sockets, the
# next runs the readers it woke. Measured with SmallBank at 64 clients on two cores: 0 rounds
# gave batches of 9-10 and 87-94% fast path, 1 round 14, 2 to 4 rounds 19-21 and 98-99%.
SETTLE_ROUNDS_MAX = 4
# How long the inspection database may trail the replica while the write-ahead log has nothing
# to commit (it is committed before every write-ahead commit, see `_commit`). Committing it on
# every turn of the pump as well was about 2% of a node's CPU under load; the pipes workers'
# trails by the same 50 ms.
STORE_COMMIT_INTERVAL_MS = 50.0


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
        # Links and client connections the current flush queued frames on (insertion-ordered).
        self._dirty: dict[DialLink | Connection, None] = {}
        self.inbound: dict[int, Connection] = {}
        self.client_routes: dict[str, Connection] = {}
        self.client_connections: set[Connection] = set()
        # Each client identity's open connections, oldest first (at most CONNECTIONS_PER_CLIENT_MAX).
        self._connections_of: dict[str, deque[Connection]] = {}
        self.client_connections_max = limits.CLIENT_CONNECTIONS_MAX  # lowered at start if descriptors are short
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
        node = make_node(replica, self.attacks)
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
            store_commit_interval_ms=STORE_COMMIT_INTERVAL_MS,
            clock_ms=self.now_ms,
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
        self.client_connections_max = client_connections_budget(raise_fd_limit())
        if self.client_connections_max < limits.CLIENT_CONNECTIONS_MAX:
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
                writes_direct=True,  # `_write_out`
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
        if self.durable.pending:
            # Inspection rows first: after a crash the inspection database holds at least what
            # the write-ahead log holds (replay re-inserts; it never misses an executed batch).
            # Between write-ahead commits the host lets it trail (STORE_COMMIT_INTERVAL_MS).
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
            self._write_out()
            # Before the replica's own work runs (a leader's proposal is due at once with
            # batch_wait_ms = 0), let the readers hand over what has already arrived, as the
            # pipes worker reads every ready link before it ticks: a proposal then takes every
            # request at hand instead of the first few, and one more instance in flight does
            # not split the load into ever smaller batches. A round is two turns (the first
            # polls the sockets, the second runs the readers it woke); another round only
            # while they keep finding input, at most SETTLE_ROUNDS_MAX. What the inputs caused
            # is committed and sent after every round, so votes never wait for the proposal.
            for _ in range(SETTLE_ROUNDS_MAX):
                await asyncio.sleep(0)
                await asyncio.sleep(0)
                if not self._kick.is_set():
                    break
                self._kick.clear()
                self._commit()
                host.flush()
                self._write_out()
            if host.tick_if_due(self.now_ms()):
                self._commit()
                host.flush()
                self._write_out()
            # Let readers run before the next commit, even when a timer is already due.
            await asyncio.sleep(0)

    def _on_event(self, _t_ms: float, event: Event) -> None:
        assert self.durable is not None
        self.durable.append((event,))
        if self.log.verbose:
            summary = event_summary(event)
            if summary is not None:
                kind, detail = summary
                self.log.info(f"protocol.{kind}", **detail)

    def _write_out(self) -> None:
        """Write what this flush queued, one frame run per link, from the pump's own turn (a
        link whose peer is slow or down leaves it to its writer task; see `Connection.write_now`:
        the outboxes the pump fills do not wake their writer tasks on every message)."""
        written = 0
        for target in self._dirty:
            written += target.write_now()
        self._dirty.clear()
        self.counters["out.direct_writes"] += written

    def _send_to_replica(self, replica: int, data: bytes) -> None:
        link = self.links.get(replica)
        if link is not None:
            link.send(KIND_MESSAGE + data)
            self._dirty[link] = None

    def _send_to_client(self, client: str, data: bytes) -> None:
        connection = self.client_routes.get(client)
        if connection is None or connection.closed:
            self.counters["out.client_unreachable"] += 1
            return
        connection.send(KIND_MESSAGE + data)
        self._dirty[connection] = None

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
        for victim, reason in self._handshakes.admit(source_of(peer_address), task):
            self.counters[reason] += 1
            self.log.warning("conn.refused", addr=peer_address, reason=reason)
            cast(asyncio.Task[Any], victim).cancel()  # its handler closes its socket
        tune(writer)
        try:
            established = await self._handshake(reader, writer, peer_address)
        finally:
            self._handshakes.release(task)
        if established is None:
            with contextlib.suppress(Exception):
                writer.close()
            return
        session, identity = established
        # Replies and status answers go to a client pool, which reads frames of at most this.
        connection = Connection(
            reader, writer, session, identity, Outbox(self.counters, "out.client", wake_writer=False),
            frame_bytes_max=limits.TO_CLIENT_FRAME_BYTES_MAX,
        )  # fmt: skip
        if identity.role == ROLE_CLIENT and not self._admit_client(connection):
            self.counters["conn.refused_clients_max"] += 1
            writer.close()
            return
        await self._serve_connection(connection)

    def _admit_client(self, connection: Connection) -> bool:
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
        connection.status_queries = TokenBucket(limits.STATUS_QUERIES_PER_S, limits.STATUS_QUERY_BURST, time.monotonic())
        self.client_connections.add(connection)
        for name in connection.identity.names:
            self._connections_of.setdefault(name, deque()).append(connection)
            self.client_routes[name] = connection
        return True

    def _forget_client(self, connection: Connection) -> None:
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
            async with asyncio.timeout(limits.HANDSHAKE_TIMEOUT_S):
                writer.write(frame(acceptor.hello()))
                auth = await read_frame(reader, HANDSHAKE_FRAME_MAX, limits.HANDSHAKE_TIMEOUT_S)
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

    async def _serve_connection(self, connection: Connection) -> None:
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

    async def _read_loop(self, connection: Connection) -> None:
        assert self.host is not None and self._kick is not None
        host, kick = self.host, self._kick
        identity = connection.identity
        replica = identity.replica
        # A client only ever sends small requests and status queries (see CLIENT_FRAME_BYTES_MAX).
        size_max = FRAME_SIZE_MAX if replica is not None else self.client_frame_bytes_max
        handled = 0
        frames = FrameSplitter(size_max)
        pending: deque[bytes] = deque()
        while not connection.closed:
            if not pending:
                # Every frame already received is split off in one go (see `read_frames`).
                pending.extend(await read_frames(connection.reader, frames, FRAME_BODY_TIMEOUT_S))
            payload = connection.session.open(pending.popleft())
            kind = payload[:1]
            if kind in (KIND_MESSAGE, KIND_MESSAGES):
                # A B payload is split (and refused whole if it does not parse) before any of its
                # messages is used; each is then handled as if it had come in its own M frame.
                messages = (memoryview(payload)[1:],) if kind == KIND_MESSAGE else split_messages(payload)
                if replica is None:
                    # A client's frame holds REQUESTs only, all of them, or none is used.
                    for message in messages:
                        tag = peek_message_tag(message)
                        if tag != Request.TAG:
                            raise PeerMisbehaved("client.not_request", f"a client sent a message with tag {tag}")
                for message in messages:
                    if replica is not None:
                        # The tag is read from the first bytes: a message of no known type is
                        # dropped before the codec decodes it.
                        if peek_message_tag(message) in MESSAGE_TYPES:
                            host.on_peer_bytes(replica, bytes(message), self.now_ms())
                            kick.set()
                        else:
                            self.counters["frame.unknown_tag"] += 1
                    else:
                        host.on_client_bytes(identity.label, bytes(message), self.now_ms())
                        kick.set()
                    handled += 1
                    if handled % FRAMES_PER_YIELD == 0:
                        await asyncio.sleep(0)
                continue
            elif kind == KIND_QUERY and replica is None:
                assert connection.status_queries is not None
                if connection.status_queries.take(time.monotonic()):
                    self.counters["status.queries"] += 1
                    connection.send(self._status_payload())
                    connection.outbox.ready.set()  # not the pump's: its writer task sends it
                else:
                    self.counters["status.rate_limited"] += 1
            elif replica is None:
                # An honest client sends nothing else: whatever it is, it is not worth reading on.
                raise PeerMisbehaved("frame.unexpected_kind", f"a client sent a payload of kind {kind!r}")
            else:
                self.counters["frame.unexpected_kind"] += 1
            handled += 1
            if handled % FRAMES_PER_YIELD == 0:
                await asyncio.sleep(0)

    # ---- status ----------------------------------------------------------------------------

    def _status_payload(self) -> bytes:
        """The status answer to send (KIND_STATE + msgpack), at most STATUS_ANSWER_BYTES_MAX."""
        status = self.status()
        answer = pack(status)
        if len(answer) > STATUS_ANSWER_BYTES_MAX:
            # Counters and metrics have bounded key sets, so this is a safety net, not a path.
            kept = ("replica", "view", "view_active", "last_executed", "stable_seq", "state_digest", "accounts")
            answer = pack({**{k: status[k] for k in kept}, "balances": {}, "truncated": True})
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
