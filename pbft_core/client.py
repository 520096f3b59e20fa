"""The client side of the protocol, sans I/O: one outstanding request at a time (closed loop).

Ordered requests (transfers, and reads that fell back) go to the replica the client believes
leads; the client accepts a result once f+1 replicas sent matching signed replies (one of them is
honest). With no answer before its timer, it broadcasts the request to every replica, which
forwards it to the leader and starts suspecting it; the timer doubles up to a cap.

Read-only requests are multicast and answered at once from each replica's state; 2f+1 matching
replies are needed (they intersect every commit quorum in an honest replica that has executed
everything the client saw acknowledged). Disagreement or silence until the read timer sends the
read again as an ordered request.

The client learns the leader from the view in the replies it accepts.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .config import ClusterConfig
from .crypto import NodeCrypto
from .messages import Arg, Reply, Request, Result

CLIENT_TIMEOUT_DOUBLINGS_MAX = 4
VERIFIED_ROOTS_MAX = 10_000


@dataclass(frozen=True)
class Completion:
    request: Request
    result: Result
    latency_ms: float
    view: int
    fell_back: bool  # a read that had to be ordered


@dataclass
class ClientReady:
    to_replicas: list[tuple[int, Request]] = field(default_factory=list)
    completed: Completion | None = None
    wake_at_ms: float | None = None


@dataclass
class _Outstanding:
    request: Request
    started_ms: float
    deadline_ms: float
    timeout_ms: float
    fell_back: bool = False
    replies: dict[int, Reply] = field(default_factory=dict)


class Client:
    def __init__(
        self,
        name: str,
        config: ClusterConfig,
        crypto: NodeCrypto,
        *,
        first_timestamp: int = 1,
        verified: dict[tuple[int, bytes, bytes], None] | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.crypto = crypto
        self.view = 1
        self.next_timestamp = first_timestamp
        self.outstanding: _Outstanding | None = None
        self.metrics: Counter[str] = Counter()
        # Signed reply roots already checked. Clients in one process may share this table: a
        # root signed once for a whole batch is then verified once, not once per client.
        self.verified = verified if verified is not None else {}

    @property
    def busy(self) -> bool:
        return self.outstanding is not None

    def _signed(self, request: Request) -> Request:
        return request.with_sig(self.crypto.sign(request.signing_payload()))

    def submit(self, op: str, args: tuple[Arg, ...], now_ms: float, *, read_only: bool = False) -> ClientReady:
        assert self.outstanding is None, "closed loop: one outstanding request per client"
        timestamp, self.next_timestamp = self.next_timestamp, self.next_timestamp + 1
        request = self._signed(Request(self.name, timestamp, op, args, read_only))
        timers = self.config.timers
        timeout = timers.read_timeout_ms if read_only else timers.client_timeout_ms
        self.outstanding = _Outstanding(request, now_ms, now_ms + timeout, timeout)
        ready = ClientReady(wake_at_ms=self.outstanding.deadline_ms)
        if read_only:
            ready.to_replicas = [(r, request) for r in self.config.replica_ids]
        else:
            ready.to_replicas = [(self.config.leader_of(self.view), request)]
        return ready

    def step(self, reply: Reply, now_ms: float) -> ClientReady:
        out = self.outstanding
        ready = ClientReady(wake_at_ms=out.deadline_ms if out else None)
        if out is None or reply.client != self.name or reply.timestamp != out.request.timestamp:
            self.metrics["replies.stale"] += 1
            return ready
        if reply.read_only != out.request.read_only or reply.replica in out.replies:
            return ready
        if not self._authentic(reply):
            self.metrics["replies.bad_signature"] += 1
            return ready
        out.replies[reply.replica] = reply
        needed = self.config.read_quorum if out.request.read_only else self.config.reply_quorum
        matching = [r for r in out.replies.values() if r.result == reply.result]
        if len(matching) >= needed:
            # The (f+1)-th highest view among them: at least one honest replica is in it or
            # beyond, and f liars claiming a huge view cannot pin the client there.
            views = sorted((r.view for r in matching), reverse=True)
            self.view = max(self.view, views[self.config.reply_quorum - 1])
            self.outstanding = None
            ready.completed = Completion(
                out.request, reply.result, now_ms - out.started_ms, self.view, out.fell_back
            )
            ready.wake_at_ms = None
        elif out.request.read_only and len(out.replies) == self.config.n:
            ready.to_replicas = self._fall_back(out, now_ms)
            ready.wake_at_ms = out.deadline_ms
        return ready

    def _authentic(self, reply: Reply) -> bool:
        payload = reply.signed_root()
        if payload is None:
            return False
        key = (reply.replica, payload, reply.sig)
        if key in self.verified:
            return True
        if not self.crypto.verify_replica(reply.replica, payload, reply.sig):
            return False
        if len(self.verified) >= VERIFIED_ROOTS_MAX:
            self.verified.clear()
        self.verified[key] = None
        return True

    def tick(self, now_ms: float) -> ClientReady:
        out = self.outstanding
        if out is None or now_ms < out.deadline_ms:
            return ClientReady(wake_at_ms=out.deadline_ms if out else None)
        if out.request.read_only:
            sends = self._fall_back(out, now_ms)
        else:
            # Retransmit to everyone: backups forward it and start suspecting the leader.
            self.metrics["retransmissions"] += 1
            cap = self.config.timers.client_timeout_ms * 2**CLIENT_TIMEOUT_DOUBLINGS_MAX
            out.timeout_ms = min(out.timeout_ms * 2, cap)
            out.deadline_ms = now_ms + out.timeout_ms
            sends = [(r, out.request) for r in self.config.replica_ids]
        return ClientReady(to_replicas=sends, wake_at_ms=out.deadline_ms)

    def _fall_back(self, out: _Outstanding, now_ms: float) -> list[tuple[int, Request]]:
        """A read without 2f+1 matching answers is ordered like a write (same timestamp)."""
        self.metrics["reads.fell_back"] += 1
        r = out.request
        out.request = self._signed(Request(r.client, r.timestamp, r.op, r.args, read_only=False))
        out.fell_back = True
        out.replies = {}
        out.timeout_ms = self.config.timers.client_timeout_ms
        out.deadline_ms = now_ms + out.timeout_ms
        return [(self.config.leader_of(self.view), out.request)]
