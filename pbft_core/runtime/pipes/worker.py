"""One replica process of the pipes shell: `worker_main` and its loop (`Worker`)."""

from __future__ import annotations

import json
import os
import selectors
import signal
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from ...attacks import Attack
from ...faults import make_node
from ...keys import NodeSecrets
from ...ready import Event
from ...replica import Replica
from ...storage import ReplicaStore
from ..host import NodeHost, config_from_bytes
from ..packing import pack, unpack
from ..summary import event_summary
from .frames import (
    FRAMES_PER_WAKEUP,
    K_CLIENT,
    K_DONE,
    K_ERROR,
    K_EVENT,
    K_GO,
    K_HELLO,
    K_MESSAGE,
    K_QUERY,
    K_STATE,
    K_STOP,
    POLL_INTERVAL_S,
    PROFILE_DIR_VARIABLE,
    STORE_COMMIT_INTERVAL_MS,
    frame_items,
)
from .links import LinkWriter, Readable


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker is given (bytes, str, int and bool only: it crosses a spawn)."""

    replica_id: int
    config_bytes: bytes
    secrets_bytes: bytes
    honest: bool
    attacks_bytes: bytes  # msgpack list of [kind, [targets]]
    db_path: str
    meta_json: str
    verbose: bool = False


def worker_main(spec: WorkerSpec, driver: Connection, peers: list[tuple[int, Connection]]) -> None:
    """Entry point of one replica process (spawned)."""
    # Ctrl-C reaches the whole process group; the driver alone decides how workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    to_driver = LinkWriter(driver, "to-driver")
    profile_dir = os.environ.get(PROFILE_DIR_VARIABLE)
    try:
        worker = Worker(spec, driver, to_driver, peers)
        if profile_dir:
            # `pbft bench smallbank --profile DIR`: one cProfile file per replica process.
            import cProfile

            # CPU time of the protocol thread: waiting for the other processes is not a cost.
            profiler = cProfile.Profile(time.thread_time)
            try:
                profiler.runcall(worker.run)
            finally:
                profiler.dump_stats(str(Path(profile_dir) / f"n{spec.replica_id}.prof"))
        else:
            worker.run()
    except BaseException:
        to_driver.put(K_ERROR + traceback.format_exc().encode())
        to_driver.close(2.0)
        raise SystemExit(1) from None
    to_driver.close(5.0)


class Worker:
    """The loop of one replica process: read frames, step the replica, flush, tick.

    What the inputs of one iteration send to a link leave as one frame per link (after the
    SQLite commit, when one is due); then the replica's due timers and deferred work run, and
    what they send leaves as one more frame per link.
    """

    def __init__(
        self, spec: WorkerSpec, driver: Connection, to_driver: LinkWriter, peers: list[tuple[int, Connection]]
    ) -> None:
        config = config_from_bytes(spec.config_bytes)
        replica = Replica(spec.replica_id, config, NodeSecrets.from_bytes(spec.secrets_bytes).crypto())
        attacks = tuple(
            Attack(str(kind), tuple(int(t) for t in targets)) for kind, targets in unpack(spec.attacks_bytes)
        )
        node = make_node(replica, attacks if not spec.honest else ())
        self.store = ReplicaStore(spec.db_path)
        self.store.set_meta(**json.loads(spec.meta_json))
        self.store.commit()
        self.driver = driver
        self.to_driver = to_driver
        self.peers = peers
        self.writers = {r: LinkWriter(conn, f"to-n{r}") for r, conn in peers}
        self.readable = {conn: Readable(conn) for conn in (driver, *(conn for _, conn in peers))}
        self.epoch_s: float | None = None  # set by GO
        self.to_peers: dict[int, list[bytes]] = {}
        self.to_clients: list[tuple[str, bytes]] = []
        self.forwarded: set[tuple[str, str]] = set()  # distinct drops already forwarded
        self.host = NodeHost(
            node,
            self.store,
            self._send_to_replica,
            self._send_to_client,
            links=frozenset(self.writers),
            on_event=self._on_event if spec.verbose else None,
            store_commit_interval_ms=STORE_COMMIT_INTERVAL_MS,
            clock_ms=lambda: time.monotonic() * 1000.0,
        )

    def now_ms(self) -> float:
        return (time.monotonic() - self.epoch_s) * 1000.0 if self.epoch_s is not None else 0.0

    def _send_to_replica(self, r: int, data: bytes) -> None:
        if r in self.writers:
            self.to_peers.setdefault(r, []).append(data)

    def _send_to_client(self, client: str, data: bytes) -> None:
        self.to_clients.append((client, data))

    def flush(self) -> None:
        self.host.flush()
        for r, messages in self.to_peers.items():
            self.writers[r].put(K_MESSAGE + pack(messages))
        self.to_peers.clear()
        if self.to_clients:
            self.to_driver.put(K_CLIENT + pack(self.to_clients))
            self.to_clients.clear()

    def _on_event(self, t_ms: float, event: Event) -> None:
        summary = event_summary(event)
        if summary is None:
            return
        kind, detail = summary
        if kind == "dropped":
            # One line per distinct drop (the database has every one of them).
            key = (kind, json.dumps(detail, sort_keys=True))
            if key in self.forwarded:
                return
            self.forwarded.add(key)
        self.to_driver.put(K_EVENT + pack([t_ms, kind, detail]))

    def run(self) -> None:
        host = self.host
        # One selector for the worker's life (`multiprocessing.connection.wait` builds one per call).
        selector = selectors.DefaultSelector()
        selector.register(self.driver, selectors.EVENT_READ, None)
        for r, conn in self.peers:
            selector.register(conn, selectors.EVENT_READ, r)
        self.to_driver.put(K_HELLO)
        while True:
            timeout = POLL_INTERVAL_S
            if self.epoch_s is not None and host.wake_at_ms is not None:
                timeout = min(timeout, max(0.0, (host.wake_at_ms - self.now_ms()) / 1000.0))
            for key, _ in selector.select(timeout):
                if self._read(selector, key.fileobj, key.data):  # type: ignore[arg-type]
                    return
            # What the inputs produced goes out before the replica's deferred work and timers
            # run (the leader's own shares and aggregate check wait until its messages are sent).
            self.flush()
            if self.epoch_s is not None and host.tick_if_due(self.now_ms()):
                self.flush()

    def _read(self, selector: selectors.BaseSelector, conn: Connection, peer: int | None) -> bool:
        """Read up to `FRAMES_PER_WAKEUP` frames from one link; True means stop."""
        for _ in range(FRAMES_PER_WAKEUP):
            try:
                frame = conn.recv_bytes()
            except (EOFError, OSError):
                selector.unregister(conn)
                if peer is None:  # the driver is gone: nobody to serve
                    self.flush()
                    self.host.finish()
                    self.store.close()
                    return True
                return False
            if peer is not None:
                if frame[:1] == K_MESSAGE:
                    for data in frame_items(frame, self.host):
                        self.host.on_peer_bytes(peer, data, self.now_ms())
            elif self._on_driver_frame(frame):
                for writer in self.writers.values():
                    writer.close(0.5)
                return True
            if not self.readable[conn]():
                return False
        return False

    def _on_driver_frame(self, frame: bytes) -> bool:
        """Handle one frame from the driver; True means stop."""
        kind, payload = frame[:1], frame[1:]
        if kind == K_CLIENT:
            for client, data in frame_items(frame, self.host):
                self.host.on_client_bytes(str(client), bytes(data), self.now_ms())
        elif kind == K_GO:
            (start,) = unpack(payload)
            self.epoch_s = float(start)
        elif kind == K_QUERY:
            self.flush()
            self.to_driver.put(K_STATE + pack(self.host.state()))
        elif kind == K_STOP:
            self.flush()
            state = self.host.finish({"host.cpu_ms": int(time.process_time() * 1000)})
            self.store.close()
            self.to_driver.put(K_DONE + pack(state))
            return True
        return False
