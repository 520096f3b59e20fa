"""The pipes shell: one spawned process per replica, linked by `multiprocessing.Pipe`s.

Theory of operation
-------------------
`run_set` plays one scenario set on a fresh cluster: fresh keys (`ClusterKeys.generate`), fresh
processes, fresh databases. The calling process is the **driver**; it

1. spawns one worker per *live* replica (``spawn`` start method, so a worker inherits nothing
   but what it is given) with a full mesh of pipes between live replicas and one driver pipe per
   worker. Keys reach a worker as `NodeSecrets.to_bytes()`, its config as msgpack; a Byzantine
   replica is wrapped in `ByzantineReplica` with the set's attacks. A replica outside the Live
   column gets no process and no links at all (it would neither send nor receive); the driver
   still writes its database, holding its initial state.
2. waits until every worker said hello, then sends GO with a shared epoch: all clocks (workers'
   and clients') count milliseconds since that instant on the host's monotonic clock.
3. hosts the ten clients (`Client`, with their timers) and dispatches the set's transactions
   with `Dispatcher`, exactly as `Simulation.run_transactions` does: file order, closed loop,
   reads wait for everything before them. The set ends when every transaction has an outcome,
   or when nothing completed for the stall timeout (the rest stay ``unavailable``).
4. **settles**: asks the honest live replicas for their state until their ``last_executed``
   agree or the settle timeout passed (a replica left in the dark catches up by gossip), then
   sends STOP; each worker writes its final state, closes its database and answers DONE.

Only bytes cross a pipe (`send_bytes` / `recv_bytes`); nothing is ever pickled or unpickled
by this module's protocol. A frame is one kind byte and a payload:

====  ===================  ============================================================
kind  direction            payload
====  ===================  ============================================================
M     replica ↔ replica    msgpack list of protocol messages (wire codec)
C     driver ↔ worker      msgpack list of ``[client, message]``: requests in, replies out
H     worker → driver      hello: the replica is built and its database open
G     driver → worker      msgpack ``[epoch]`` (monotonic seconds): start the clock
Q/S   driver ↔ worker      state query / msgpack state map
E     worker → driver      msgpack ``[t_ms, kind, detail]``: a protocol event (``-v`` only)
X/D   driver ↔ worker      stop / done, with the final state
!     worker → driver      a crash report (traceback text) just before the worker dies
====  ===================  ============================================================

A worker batches: what the inputs of one iteration of its loop send to a link leave as one M or
C frame (after the SQLite commit, when one is due), which saves a thread hand-off and a pipe write
per message; then the replica's due timers and deferred work run, and what they send leaves as
one more frame per link (see "Work after sending" in `replica.py`).

Deadlock freedom: a worker's main loop only ever *reads*; every outgoing link has its own writer
thread with an unbounded queue, so two workers that send each other a lot at once can never both
block on a full pipe. The driver writes directly: the workers always drain it.

Timeouts everywhere: startup, every wait, settle, stop. A worker that dies is seen through its
process sentinel (or its pipe's EOF) and reported as `WorkerFailure`; the driver never hangs.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import os
import queue
import select
import selectors
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, fields
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import msgpack

from ..client import Client, ClientReady, Completion
from ..config import ACCOUNTS, ClusterConfig, replica_name
from ..dispatch import Dispatcher, TransactionOutcome
from ..faults import Attack, ByzantineReplica
from ..keys import ClusterKeys, NodeSecrets
from ..messages import Arg, DecodeError, Reply, decode_unpacked, encode, unpack
from ..ready import (
    CheckpointStable,
    Dropped,
    Event,
    NewViewInstalled,
    StateTransferred,
    ViewChangeStarted,
)
from ..replica import Replica
from ..scenario import ScenarioSet
from ..storage import ReplicaStore, replica_db_path, set_dir
from .host import NodeHost, config_from_bytes, config_to_bytes

K_MESSAGE = b"M"
K_CLIENT = b"C"
K_HELLO = b"H"
K_GO = b"G"
K_QUERY = b"Q"
K_STATE = b"S"
K_EVENT = b"E"
K_STOP = b"X"
K_DONE = b"D"
K_ERROR = b"!"

# A worker reads at most this many frames from one link per wakeup, so a chatty peer cannot
# starve the others (or the timers) of attention.
FRAMES_PER_WAKEUP = 64
# Upper bound on any single blocking wait, so loops re-check their deadlines and liveness.
POLL_INTERVAL_S = 0.25
# Direct writes from the loop thread (see `_LinkWriter`) rely on Linux's Unix-socket semantics.
DIRECT_WRITES = sys.platform.startswith("linux")
DIRECT_WRITE_MAX = 32 * 1024
# A worker's database is for inspection only (no worker is ever restarted from it), so it may
# trail the replica by this much; see `NodeHost`.
STORE_COMMIT_INTERVAL_MS = 50.0
# When set (to a directory), every worker runs under cProfile and writes n<i>.prof there.
PROFILE_DIR_VARIABLE = "PBFT_PROFILE_DIR"
SETTLE_POLL_INTERVAL_S = 0.05


def _pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def _unpack(data: bytes | memoryview) -> Any:
    return msgpack.unpackb(data, raw=False, max_ext_len=0)


# ---- events forwarded to the driver (for -v) -------------------------------------------------


def event_summary(event: Event) -> tuple[str, dict[str, Any]] | None:
    """(kind, detail) of a protocol event worth showing live, or None."""
    if isinstance(event, ViewChangeStarted):
        return "view-change", {"new_view": event.new_view, "reason": event.reason}
    if isinstance(event, NewViewInstalled):
        nv = event.message
        return "new-view", {
            "view": nv.view,
            "leader": replica_name(nv.replica),
            "from": [replica_name(vc.replica) for vc in nv.view_changes],
            "proposals": [[p.seq, len(p.batch)] for p in nv.proposals],
        }
    if isinstance(event, CheckpointStable):
        return "checkpoint", {"seq": event.seq}
    if isinstance(event, StateTransferred):
        return "state-transfer", {"seq": event.seq}
    if isinstance(event, Dropped):
        return "dropped", {
            "reason": event.reason,
            "type": event.message_type,
            "sender": event.sender,
        }
    return None


# ---- worker ----------------------------------------------------------------------------------


class _LinkWriter:
    """Sends frames on one connection without ever blocking the replica's loop.

    A frame goes out directly from the caller's thread when that cannot block: nothing is
    queued before it, it is at most `DIRECT_WRITE_MAX` bytes, and the socket polls writable. (A
    duplex `Pipe` is a Unix-domain socketpair; on Linux such a socket polls writable only while
    at most a quarter of its send buffer — 208 KiB by default — is in use, so a 32 KiB frame
    always fits.) Anything else goes to a writer thread with an unbounded queue, so two
    replicas that flood each other can never both block on a full socket. The direct path
    saves a thread hand-off per frame, which under load was the single largest non-crypto cost.
    """

    def __init__(self, conn: Connection, name: str) -> None:
        self.conn = conn
        self.broken = False
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        # Frames handed to the thread / written by it: each counter has a single writer thread.
        self._handed = 0
        self._written = 0
        self._poll: select.poll | None = None
        if DIRECT_WRITES:
            self._poll = select.poll()
            self._poll.register(conn.fileno(), select.POLLOUT)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, frame: bytes) -> None:
        if self.broken:
            return
        if (
            self._poll is not None
            and self._handed == self._written
            and len(frame) <= DIRECT_WRITE_MAX
            and self._poll.poll(0)
        ):
            try:
                self.conn.send_bytes(frame)
            except (OSError, ValueError):  # the peer is gone; its reader will have seen EOF
                self.broken = True
            return
        self._handed += 1
        self._queue.put(frame)

    def _run(self) -> None:
        while True:
            frame = self._queue.get()
            if frame is None:
                return
            try:
                self.conn.send_bytes(frame)
            except (OSError, ValueError):
                self.broken = True
                return
            self._written += 1

    def close(self, timeout_s: float) -> None:
        self._queue.put(None)
        self._thread.join(timeout_s)


def worker_main(
    replica_id: int,
    config_bytes: bytes,
    secrets_bytes: bytes,
    honest: bool,
    attacks_bytes: bytes,
    db_path: str,
    meta_json: str,
    driver: Connection,
    peers: list[tuple[int, Connection]],
    verbose: bool,
) -> None:
    """Entry point of one replica process (spawned; every argument is bytes, str, int or a pipe)."""
    # Ctrl-C reaches the whole process group; the driver alone decides how workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    to_driver = _LinkWriter(driver, "to-driver")
    args = (replica_id, config_bytes, secrets_bytes, honest, attacks_bytes, db_path, meta_json)
    profile_dir = os.environ.get(PROFILE_DIR_VARIABLE)
    try:
        if profile_dir:
            # `pbft bench smallbank --profile DIR`: one cProfile file per replica process.
            import cProfile

            # CPU time of the protocol thread: waiting for the other processes is not a cost.
            profiler = cProfile.Profile(time.thread_time)
            try:
                profiler.runcall(_worker_loop, *args, driver, to_driver, peers, verbose)
            finally:
                profiler.dump_stats(str(Path(profile_dir) / f"n{replica_id}.prof"))
        else:
            _worker_loop(*args, driver, to_driver, peers, verbose)
    except BaseException:
        to_driver.put(K_ERROR + traceback.format_exc().encode())
        to_driver.close(2.0)
        raise SystemExit(1) from None
    to_driver.close(5.0)


def _worker_loop(
    replica_id: int,
    config_bytes: bytes,
    secrets_bytes: bytes,
    honest: bool,
    attacks_bytes: bytes,
    db_path: str,
    meta_json: str,
    driver: Connection,
    to_driver: _LinkWriter,
    peers: list[tuple[int, Connection]],
    verbose: bool,
) -> None:
    config = config_from_bytes(config_bytes)
    secrets = NodeSecrets.from_bytes(secrets_bytes)
    replica = Replica(replica_id, config, secrets.crypto())
    node: Replica | ByzantineReplica = replica
    if not honest:
        attacks = tuple(
            Attack(str(kind), tuple(int(t) for t in targets))
            for kind, targets in _unpack(attacks_bytes)
        )
        node = ByzantineReplica(replica, attacks)
    store = ReplicaStore(db_path)
    store.set_meta(**json.loads(meta_json))
    store.commit()

    writers = {r: _LinkWriter(conn, f"to-n{r}") for r, conn in peers}
    epoch: list[float] = []  # set by GO

    def now_ms() -> float:
        return (time.monotonic() - epoch[0]) * 1000.0 if epoch else 0.0

    # What one loop iteration sends goes out as one frame per link (module docstring).
    to_peers: dict[int, list[bytes]] = {}
    to_clients: list[tuple[str, bytes]] = []

    def send_to_replica(r: int, data: bytes) -> None:
        if r in writers:
            to_peers.setdefault(r, []).append(data)

    def send_to_client(client: str, data: bytes) -> None:
        to_clients.append((client, data))

    def flush() -> None:
        host.flush()
        for r, messages in to_peers.items():
            writers[r].put(K_MESSAGE + _pack(messages))
        to_peers.clear()
        if to_clients:
            to_driver.put(K_CLIENT + _pack(to_clients))
            to_clients.clear()

    forwarded: set[tuple[str, str]] = set()

    def on_event(t_ms: float, event: Event) -> None:
        summary = event_summary(event)
        if summary is None:
            return
        kind, detail = summary
        if kind == "dropped":
            # One line per distinct drop (the database has every one of them).
            key = (kind, json.dumps(detail, sort_keys=True))
            if key in forwarded:
                return
            forwarded.add(key)
        to_driver.put(K_EVENT + _pack([t_ms, kind, detail]))

    host = NodeHost(
        node,
        store,
        send_to_replica,
        send_to_client,
        links=frozenset(writers),
        on_event=on_event if verbose else None,
        store_commit_interval_ms=STORE_COMMIT_INTERVAL_MS,
    )
    # One selector for the worker's life (`multiprocessing.connection.wait` builds one per call).
    selector = selectors.DefaultSelector()
    selector.register(driver, selectors.EVENT_READ, None)
    for r, conn in peers:
        selector.register(conn, selectors.EVENT_READ, r)
    to_driver.put(K_HELLO)

    while True:
        timeout = POLL_INTERVAL_S
        if epoch and host.wake_at_ms is not None:
            timeout = min(timeout, max(0.0, (host.wake_at_ms - now_ms()) / 1000.0))
        for key, _ in selector.select(timeout):
            conn, peer = key.fileobj, key.data
            for _ in range(FRAMES_PER_WAKEUP):
                try:
                    frame = conn.recv_bytes()  # type: ignore[union-attr]
                except (EOFError, OSError):
                    selector.unregister(conn)
                    if peer is None:  # the driver is gone: nobody to serve
                        flush()
                        host.finish()
                        store.close()
                        return
                    break
                if peer is not None:
                    if frame[:1] == K_MESSAGE:
                        for data in _frame_items(frame, host):
                            host.on_peer_bytes(peer, data, now_ms())
                elif _driver_frame(frame, host, flush, store, to_driver, epoch, now_ms):
                    for writer in writers.values():
                        writer.close(0.5)
                    return
                if not conn.poll(0):  # type: ignore[union-attr]
                    break
        # What the inputs produced goes out before the replica's deferred work and timers run
        # (the leader's own shares and aggregate check wait until its messages are sent).
        flush()
        if epoch and host.tick_if_due(now_ms()):
            flush()


def _frame_items(frame: bytes, host: NodeHost) -> list[Any]:
    """The items of a batched frame (M or C); an undecodable frame counts as a decode failure."""
    try:
        items = _unpack(frame[1:])
    except (ValueError, msgpack.UnpackException):
        items = None
    if not isinstance(items, list):
        host.decode_failures += 1
        return []
    return items


def _driver_frame(
    frame: bytes,
    host: NodeHost,
    flush: Callable[[], None],
    store: ReplicaStore,
    to_driver: _LinkWriter,
    epoch: list[float],
    now_ms: Callable[[], float],
) -> bool:
    """Handle one frame from the driver; True means stop."""
    kind, payload = frame[:1], frame[1:]
    if kind == K_CLIENT:
        for client, data in _frame_items(frame, host):
            host.on_client_bytes(str(client), bytes(data), now_ms())
    elif kind == K_GO:
        (start,) = _unpack(payload)
        epoch.append(float(start))
    elif kind == K_QUERY:
        flush()
        to_driver.put(K_STATE + _pack(host.state()))
    elif kind == K_STOP:
        flush()
        state = host.finish({"host.cpu_ms": int(time.process_time() * 1000)})
        store.close()
        to_driver.put(K_DONE + _pack(state))
        return True
    return False


# ---- driver ----------------------------------------------------------------------------------


class WorkerFailure(RuntimeError):
    def __init__(self, replica: int, detail: str) -> None:
        super().__init__(f"worker n{replica} failed: {detail}")
        self.replica = replica
        self.detail = detail


@dataclass(frozen=True)
class SetOptions:
    config: ClusterConfig = field(default_factory=ClusterConfig)
    stall_timeout_s: float = 3.0
    settle_timeout_s: float = 1.5
    startup_timeout_s: float = 60.0
    stop_timeout_s: float = 10.0
    seed: bytes | None = None  # None: fresh random keys
    verbose: bool = False


@dataclass
class SetResult:
    number: int
    outcomes: list[TransactionOutcome]
    ended_by: str  # "completed" | "stall" | "failure"
    failure: str | None
    started_at: float  # wall clock (time.time())
    duration_s: float
    startup_s: float
    run_ms: float  # from the first submission to the end of dispatching
    settle_ms: float
    first_submit_ms: float | None
    last_completion_ms: float | None
    settled: bool  # honest live replicas agreed on last_executed before the settle timeout
    states: dict[int, dict[str, Any]]  # final state per replica (live ones from their worker)
    set_dir: Path


EventCallback = Callable[[int, float, str, dict[str, Any]], None]
ProgressCallback = Callable[[int, int, str], None]


@dataclass
class _Worker:
    replica: int
    process: Any  # multiprocessing.context.SpawnProcess
    conn: Connection
    hello: bool = False
    done: dict[str, Any] | None = None
    error: str = ""
    closed: bool = False


class _Cluster:
    """The driver's view of the live workers: spawn, frame I/O, failure detection, stop."""

    def __init__(self, on_event: EventCallback | None) -> None:
        self.workers: dict[int, _Worker] = {}
        self.on_event = on_event
        self.states: dict[int, dict[str, Any]] = {}
        # Every worker's pipe and process sentinel, registered once (the driver polls often).
        self._selector = selectors.DefaultSelector()

    def spawn(
        self,
        live: list[int],
        make_args: Callable[[int, Connection, list[tuple[int, Connection]]], tuple[Any, ...]],
    ) -> None:
        ctx = mp.get_context("spawn")
        mesh: dict[int, list[tuple[int, Connection]]] = {r: [] for r in live}
        for i, a in enumerate(live):
            for b in live[i + 1 :]:
                end_a, end_b = ctx.Pipe(duplex=True)
                mesh[a].append((b, end_a))
                mesh[b].append((a, end_b))
        child_ends: list[Connection] = []
        for r in live:
            ours, theirs = ctx.Pipe(duplex=True)
            process = ctx.Process(
                target=worker_main,
                args=make_args(r, theirs, mesh[r]),
                name=f"pbft-n{r}",
                daemon=True,
            )
            process.start()
            worker = self.workers[r] = _Worker(r, process, ours)
            self._selector.register(ours, selectors.EVENT_READ, (worker, False))
            self._selector.register(process.sentinel, selectors.EVENT_READ, (worker, True))
            child_ends.append(theirs)
        # The children hold their own copies now; closing ours means a dead worker's peers see EOF.
        for conn in child_ends:
            conn.close()
        for links in mesh.values():
            for _, conn in links:
                conn.close()

    def send_frame(self, replica: int, frame: bytes) -> None:
        worker = self.workers[replica]
        if worker.closed:
            return
        try:
            worker.conn.send_bytes(frame)
        except OSError:
            self._fail(worker, "its pipe broke")

    def _close(self, worker: _Worker) -> None:
        """Stop watching a worker whose pipe or process is gone."""
        worker.closed = True
        for fileobj in (worker.conn, worker.process.sentinel):
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(fileobj)

    def _fail(self, worker: _Worker, why: str) -> None:
        self._close(worker)
        worker.process.join(0.5)  # reap it, so the exit code says what happened
        exitcode = worker.process.exitcode
        if exitcode is None:
            detail = why + " (the process is still running)"
        elif exitcode < 0:
            detail = why + f" (killed by signal {-exitcode})"
        else:
            detail = why + f" (exit code {exitcode})"
        if worker.error:
            detail += "\n" + worker.error.rstrip()
        raise WorkerFailure(worker.replica, detail)

    def poll(self, timeout_s: float) -> list[tuple[int, bytes]]:
        """Frames that arrived within `timeout_s` (events are dispatched, not returned)."""
        if not self._selector.get_map():
            time.sleep(max(0.0, timeout_s))
            return []
        frames: list[tuple[int, bytes]] = []
        ready = [key.data for key, _ in self._selector.select(max(0.0, timeout_s))]
        for worker, is_sentinel in ready:
            if not is_sentinel and not worker.closed:
                self._read(worker, frames)
        for worker, is_sentinel in ready:
            if is_sentinel and not worker.closed:
                self._read(worker, frames, drain=True)  # a crash report may still sit in the pipe
                if worker.done is None:
                    self._fail(worker, "the process exited unexpectedly")
                self._close(worker)
        return frames

    def _read(
        self, worker: _Worker, frames: list[tuple[int, bytes]], *, drain: bool = False
    ) -> None:
        budget = FRAMES_PER_WAKEUP * 4
        while drain or budget > 0:
            budget -= 1
            try:
                if not worker.conn.poll(0):
                    return
                frame = worker.conn.recv_bytes()
            except (EOFError, OSError):
                self._close(worker)
                if worker.done is None:
                    self._fail(worker, "its pipe closed")
                return
            kind = frame[:1]
            if kind == K_HELLO:
                worker.hello = True
            elif kind == K_ERROR:
                worker.error += frame[1:].decode(errors="replace")
            elif kind == K_EVENT:
                if self.on_event is not None:
                    t_ms, ev_kind, detail = _unpack(frame[1:])
                    self.on_event(worker.replica, float(t_ms), str(ev_kind), dict(detail))
            elif kind == K_DONE:
                worker.done = dict(_unpack(frame[1:]))
            elif kind == K_STATE:
                self.states[worker.replica] = dict(_unpack(frame[1:]))
            else:
                frames.append((worker.replica, frame))

    def wait_hello(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not all(w.hello for w in self.workers.values()):
            left = deadline - time.monotonic()
            if left <= 0:
                late = [f"n{w.replica}" for w in self.workers.values() if not w.hello]
                raise WorkerFailure(
                    int(late[0][1:]), f"{', '.join(late)} did not start within {timeout_s:.0f} s"
                )
            self.poll(min(left, POLL_INTERVAL_S))

    def query(self, replicas: list[int], timeout_s: float) -> dict[int, dict[str, Any]]:
        """Current state of `replicas` (those that answered within the timeout)."""
        self.states = {}
        for r in replicas:
            self.send_frame(r, K_QUERY)
        deadline = time.monotonic() + timeout_s
        while not all(r in self.states for r in replicas) and time.monotonic() < deadline:
            self.poll(min(deadline - time.monotonic(), POLL_INTERVAL_S))
        return dict(self.states)

    def stop(self, timeout_s: float) -> dict[int, dict[str, Any]]:
        """Stop every worker cleanly; returns their final states."""
        for worker in self.workers.values():
            if not worker.closed:
                self.send_frame(worker.replica, K_STOP)
        deadline = time.monotonic() + timeout_s
        while any(w.done is None and not w.closed for w in self.workers.values()):
            left = deadline - time.monotonic()
            if left <= 0:
                late = [w for w in self.workers.values() if w.done is None]
                raise WorkerFailure(late[0].replica, f"did not stop within {timeout_s:.0f} s")
            self.poll(min(left, POLL_INTERVAL_S))
        for worker in self.workers.values():
            worker.process.join(max(0.1, deadline - time.monotonic()))
        return {r: w.done for r, w in self.workers.items() if w.done is not None}

    def kill(self) -> None:
        """Terminate whatever is still running (only our own worker processes)."""
        for worker in self.workers.values():
            if worker.process.is_alive():
                worker.process.terminate()
        for worker in self.workers.values():
            worker.process.join(2.0)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(1.0)
        for worker in self.workers.values():
            worker.conn.close()


# ---- the driver's clients ---------------------------------------------------------------------
#
# A driver (`run_set` here, `loadgen.run_load`) hosts many sans-I/O `Client`s. `ClientHost`
# performs what they ask for (requests are queued and leave as one C frame per replica per
# `send`), hands them their replies from the workers' C frames, and ticks them when their timers
# are due; the driver decides what to submit and what a completion means (`on_complete`).
#
# A closed-loop client has moved on once it holds f+1 matching replies, so most of the n
# replies to each request are stale: `_awaited` reads a reply's timestamp field from the
# unpacked array and skips the field-by-field checks of those. Anything else goes on to them.

OnComplete = Callable[[str, Completion, float], None]
# Where a reply's timestamp sits in its wire array (after the tag).
_REPLY_TIMESTAMP = 1 + [f.name for f in fields(Reply)].index("timestamp")


def _awaited(client: Client, wire: list[Any]) -> bool:
    """Whether an unpacked reply may concern the client's outstanding request (see above)."""
    out = client.outstanding
    if out is None:
        return False
    return (
        wire[0] != Reply.TAG
        or len(wire) <= _REPLY_TIMESTAMP
        or wire[_REPLY_TIMESTAMP] == out.request.timestamp
    )


class ClientHost:
    def __init__(
        self,
        cluster: _Cluster,
        clients: dict[str, Client],
        on_complete: OnComplete,
        reachable: Collection[int],
    ) -> None:
        self.cluster = cluster
        self.clients = clients
        self.on_complete = on_complete
        self.reachable = reachable  # replicas with a worker (others get nothing)
        self.wake: dict[str, float] = {}
        self._outgoing: dict[int, list[tuple[str, bytes]]] = {}

    def next_wake_ms(self, default: float) -> float:
        return min(self.wake.values(), default=default)

    def perform(self, name: str, ready: ClientReady, now: float) -> None:
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
            self.on_complete(name, ready.completed, now)

    def submit(self, name: str, op: str, args: tuple[Arg, ...], now: float, *, read_only: bool) -> None:
        self.perform(name, self.clients[name].submit(op, args, now, read_only=read_only), now)

    def send(self) -> None:
        """What the clients asked to send since the last call: one frame per replica."""
        for r, items in self._outgoing.items():
            self.cluster.send_frame(r, K_CLIENT + _pack(items))
        self._outgoing.clear()

    def on_frames(self, frames: list[tuple[int, bytes]], now_ms: Callable[[], float]) -> None:
        for _replica, frame in frames:
            if frame[:1] != K_CLIENT:
                continue
            for name, data in _unpack(frame[1:]):
                client = self.clients.get(str(name))
                if client is None:
                    continue
                try:
                    wire = unpack(bytes(data))
                    if not _awaited(client, wire):
                        continue
                    reply = decode_unpacked(wire)
                except DecodeError:
                    continue
                if isinstance(reply, Reply):
                    now = now_ms()
                    self.perform(client.name, client.step(reply, now), now)

    def tick(self, now: float) -> None:
        for name, at in list(self.wake.items()):
            if at <= now and name in self.wake:
                self.perform(name, self.clients[name].tick(now), now)


def replica_meta(scenario_set: ScenarioSet, r: int, run_meta: dict[str, Any] | None) -> dict[str, Any]:
    """What a replica's database records about its role in a set (every shell writes this)."""
    byzantine = set(scenario_set.byzantine)
    return {
        **(run_meta or {}),
        "set": scenario_set.number,
        "replica": replica_name(r),
        "honest": r not in byzantine,
        "live": r in scenario_set.live,
        "attacks": [str(a) for a in scenario_set.attacks] if r in byzantine else [],
        "live_set": [replica_name(x) for x in sorted(scenario_set.live)],
        "byzantine_set": [replica_name(x) for x in sorted(byzantine)],
    }


def set_seed(seed: int | None, set_number: int) -> bytes | None:
    """Per-set key seed derived from the run's ``--seed`` (None: random keys)."""
    return None if seed is None else f"pbft/run-seed/{seed}/set/{set_number}".encode()


def run_set(
    scenario_set: ScenarioSet,
    options: SetOptions,
    run_dir: Path,
    *,
    run_meta: dict[str, Any] | None = None,
    on_event: EventCallback | None = None,
    on_progress: ProgressCallback | None = None,
) -> SetResult:
    """Play one scenario set on a fresh cluster of worker processes; see the module docstring."""
    config = scenario_set.cluster_config(options.config)
    started_at, t_start = time.time(), time.monotonic()
    number = scenario_set.number
    live = sorted(r for r in scenario_set.live if r in config.replica_ids)
    byzantine = set(scenario_set.byzantine)
    attacks = [[a.kind, list(a.targets)] for a in scenario_set.attacks]
    transactions = list(scenario_set.transactions)
    client_names = sorted(set(ACCOUNTS) | {t.client for t in transactions})
    keys = ClusterKeys.generate(config, client_names, options.seed)
    dispatcher = Dispatcher(transactions)  # type: ignore[arg-type]
    total = len(transactions)

    def meta_for(r: int) -> dict[str, Any]:
        return replica_meta(scenario_set, r, run_meta)

    # Disconnected replicas: no process, no links; their database holds their initial state.
    states: dict[int, dict[str, Any]] = {}
    for r in config.replica_ids:
        if r in live:
            continue
        store = ReplicaStore(replica_db_path(run_dir, number, r))
        store.set_meta(**meta_for(r))
        host = NodeHost(
            Replica(r, config, keys.replica_secrets[r].crypto()), store, _nowhere, _nowhere
        )
        states[r] = host.finish()
        store.close()

    config_bytes = config_to_bytes(config)

    def make_args(
        r: int, driver_end: Connection, peers: list[tuple[int, Connection]]
    ) -> tuple[Any, ...]:
        return (
            r,
            config_bytes,
            keys.replica_secrets[r].to_bytes(),
            r not in byzantine,
            _pack(attacks),
            str(replica_db_path(run_dir, number, r)),
            json.dumps(meta_for(r)),
            driver_end,
            peers,
            options.verbose,
        )

    cluster = _Cluster(on_event)
    verified: dict[tuple[int, bytes, bytes], None] = {}
    clients = {
        c: Client(c, config, keys.client_secrets[c].crypto(), verified=verified)
        for c in client_names
    }
    in_flight: dict[str, int] = {}
    last_progress_ms = 0.0
    first_submit_ms: float | None = None
    last_completion_ms: float | None = None
    ended_by, failure = "completed", None
    epoch = 0.0
    startup_s = run_ms = settle_ms = 0.0
    settled = False

    def now_ms() -> float:
        return (time.monotonic() - epoch) * 1000.0

    def complete(name: str, completion: Completion, now: float) -> None:
        nonlocal last_progress_ms, last_completion_ms
        dispatcher.complete(in_flight.pop(name), completion)
        last_progress_ms = last_completion_ms = now
        if on_progress is not None:
            on_progress(dispatcher.finished_count, total, "running")

    def dispatch(now: float) -> None:
        nonlocal first_submit_ms
        for index in dispatcher.next_submissions(set(in_flight)):
            txn = transactions[index]
            in_flight[txn.client] = index
            if first_submit_ms is None:
                first_submit_ms = now
            # A transaction's kind is its operation (transfer, balance, send_payment, ...).
            host.submit(txn.client, txn.kind, tuple(txn.args), now, read_only=txn.read_only)
        host.send()

    host = ClientHost(cluster, clients, complete, live)

    try:
        if on_progress is not None:
            on_progress(0, total, "starting replicas")
        cluster.spawn(live, make_args)
        cluster.wait_hello(options.startup_timeout_s)
        epoch = time.monotonic()
        startup_s = epoch - t_start
        for r in live:
            cluster.send_frame(r, K_GO + _pack([epoch]))
        if on_progress is not None:
            on_progress(0, total, "running")

        # ---- dispatch until done or stalled ----
        stall_ms = options.stall_timeout_s * 1000.0
        dispatch(now_ms())
        while not dispatcher.done:
            now = now_ms()
            if now - last_progress_ms >= stall_ms:
                ended_by = "stall"
                break
            wake = host.next_wake_ms(default=now + POLL_INTERVAL_S * 1000.0)
            timeout_ms = (
                min(wake, last_progress_ms + stall_ms, now + POLL_INTERVAL_S * 1000.0) - now
            )
            host.on_frames(cluster.poll(max(0.0, timeout_ms) / 1000.0), now_ms)
            host.tick(now_ms())
            dispatch(now_ms())
        run_ms = now_ms()

        # ---- settle: let honest live replicas converge (gossip catches up the dark ones) ----
        if on_progress is not None:
            on_progress(dispatcher.finished_count, total, "settling")
        honest_live = [r for r in live if r not in byzantine]
        settle_deadline = time.monotonic() + options.settle_timeout_s
        while honest_live:
            answers = cluster.query(honest_live, max(0.05, settle_deadline - time.monotonic()))
            executed = {a["last_executed"] for a in answers.values()}
            if len(answers) == len(honest_live) and len(executed) == 1:
                settled = True
                break
            left = settle_deadline - time.monotonic()
            if left <= 0:
                break
            host.on_frames(cluster.poll(min(left, SETTLE_POLL_INTERVAL_S)), now_ms)
            host.send()
        settle_ms = now_ms() - run_ms

        if on_progress is not None:
            on_progress(dispatcher.finished_count, total, "stopping")
        states.update(cluster.stop(options.stop_timeout_s))
    except WorkerFailure as exc:
        ended_by, failure = "failure", str(exc)
        # Let the survivors write their final state, so the failed set can still be inspected.
        with contextlib.suppress(WorkerFailure):
            states.update(cluster.stop(min(options.stop_timeout_s, 3.0)))
    finally:
        cluster.kill()

    return SetResult(
        number=number,
        outcomes=dispatcher.outcomes,
        ended_by=ended_by,
        failure=failure,
        started_at=started_at,
        duration_s=time.monotonic() - t_start,
        startup_s=startup_s,
        run_ms=run_ms,
        settle_ms=settle_ms,
        first_submit_ms=first_submit_ms,
        last_completion_ms=last_completion_ms,
        settled=settled,
        states=states,
        set_dir=set_dir(run_dir, number),
    )


def _nowhere(_to: Any, _data: bytes) -> None:
    """Send callback of a disconnected replica: it has no links."""
