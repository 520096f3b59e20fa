"""One outgoing pipe that never blocks the replica's loop (`LinkWriter`), and a cheap check
for bytes waiting on an incoming one (`Readable`)."""

from __future__ import annotations

import queue
import select
import threading
from multiprocessing.connection import Connection

from .frames import DIRECT_WRITE_MAX, DIRECT_WRITES


class LinkWriter:
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


class Readable:
    """Whether a connection has a frame (or its end) waiting, without blocking.

    One `select.poll` for the connection's life: `Connection.poll(0)` builds, registers and
    closes a selector on every call (3.6 µs against 0.4 µs here), and both the workers and the
    driver ask after every frame they read. Hang-up is reported whether registered or not, so
    a closed pipe reads as readable and its reader sees the EOF.
    """

    def __init__(self, conn: Connection) -> None:
        self._poll = select.poll()
        self._poll.register(conn.fileno(), select.POLLIN)

    def __call__(self) -> bool:
        return bool(self._poll.poll(0))
