"""The driver's view of the live workers: spawn, frame I/O, failure detection, stop."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import selectors
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from ..packing import unpack
from ..set_run import EventCallback, ReplicaState
from .frames import (
    FRAMES_PER_WAKEUP,
    K_DONE,
    K_ERROR,
    K_EVENT,
    K_HELLO,
    K_QUERY,
    K_STATE,
    K_STOP,
    POLL_INTERVAL_S,
)
from .links import Readable
from .worker import WorkerSpec, worker_main


class WorkerFailure(RuntimeError):
    def __init__(self, replica: int, detail: str) -> None:
        super().__init__(f"worker n{replica} failed: {detail}")
        self.replica = replica
        self.detail = detail


@dataclass
class _Worker:
    replica: int
    process: Any  # multiprocessing.context.SpawnProcess
    conn: Connection
    hello: bool = False
    done: ReplicaState | None = None
    error: str = ""
    closed: bool = False
    readable: Readable = field(init=False)

    def __post_init__(self) -> None:
        self.readable = Readable(self.conn)


class Cluster:
    """The live workers of one set (or one benchmark), seen from the driver."""

    def __init__(self, on_event: EventCallback | None) -> None:
        self.workers: dict[int, _Worker] = {}
        self.on_event = on_event
        self.states: dict[int, ReplicaState] = {}
        # Every worker's pipe and process sentinel, registered once (the driver polls often).
        self._selector = selectors.DefaultSelector()

    def spawn(self, live: list[int], spec_for: Callable[[int], WorkerSpec]) -> None:
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
                target=worker_main, args=(spec_for(r), theirs, mesh[r]), name=f"pbft-n{r}", daemon=True
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

    def _read(self, worker: _Worker, frames: list[tuple[int, bytes]], *, drain: bool = False) -> None:
        budget = FRAMES_PER_WAKEUP * 4
        while drain or budget > 0:
            budget -= 1
            try:
                if not worker.readable():
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
                    t_ms, event_kind, detail = unpack(frame[1:])
                    self.on_event(worker.replica, float(t_ms), str(event_kind), dict(detail))
            elif kind == K_DONE:
                worker.done = dict(unpack(frame[1:]))
            elif kind == K_STATE:
                self.states[worker.replica] = dict(unpack(frame[1:]))
            else:
                frames.append((worker.replica, frame))

    def wait_hello(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not all(w.hello for w in self.workers.values()):
            left = deadline - time.monotonic()
            if left <= 0:
                late = [f"n{w.replica}" for w in self.workers.values() if not w.hello]
                raise WorkerFailure(int(late[0][1:]), f"{', '.join(late)} did not start within {timeout_s:.0f} s")
            self.poll(min(left, POLL_INTERVAL_S))

    def ask_states(self, replicas: list[int]) -> None:
        """Send a state query to `replicas`; the answers land in `states` as `poll` reads them."""
        self.states = {}
        for r in replicas:
            self.send_frame(r, K_QUERY)

    def stop(self, timeout_s: float) -> dict[int, ReplicaState]:
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
