"""`ClientPool`: many closed-loop clients over one connection per replica (package docstring)."""


import asyncio
import time
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, cast

import msgpack
from nacl.signing import SigningKey, VerifyKey

from ...client import Client, ClientReady, Completion
from ...clusterfile import ClusterFile
from ...crypto import ED25519_SIG_SIZE, NodeCrypto
from ...keys import NodeSecrets
from ...messages import Arg, DecodeError, Reply, Request, decode_unpacked, encode, unpack
from ..framing import (
    KIND_MESSAGE,
    KIND_MESSAGES,
    KIND_QUERY,
    KIND_STATE,
    ROLE_CLIENT,
    Dialer,
    PeerMisbehaved,
    split_messages,
)
from .limits import (
    CLIENT_RECONNECT_DELAY_MAX_S,
    STATUS_TIMEOUT_S,
    client_frame_bytes_max,
)
from .links import DialLink
from .log import NodeLog

# ---- the client pool -------------------------------------------------------------------------

# Where a reply's client and timestamp sit in its wire array (after the tag).
_REPLY_CLIENT = 1 + [f.name for f in fields(Reply)].index("client")
_REPLY_TIMESTAMP = 1 + [f.name for f in fields(Reply)].index("timestamp")


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
        # Each client's armed timer and the time it is armed for (a reply that does not
        # complete a request leaves the deadline where it was: the timer is then kept).
        self._timers: dict[str, tuple[asyncio.TimerHandle, float]] = {}
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
                # The requests queued in one turn leave as one frame, within the replica's
                # limit on what a client may send in one.
                send_frame_bytes_max=client_frame_bytes_max(self.config),
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
        for handle, _ in self._timers.values():
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
        armed = self._timers.get(name)
        wake_at_ms = ready.wake_at_ms
        if armed is None or armed[1] != wake_at_ms:
            if armed is not None:
                del self._timers[name]
                armed[0].cancel()
            if wake_at_ms is not None:
                assert self._loop is not None
                when = self._epoch + wake_at_ms / 1000.0
                self._timers[name] = (self._loop.call_at(when, self._tick, name), wake_at_ms)
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
        # Every reply kept was verified by the client when it arrived (`_on_reply_bytes`).
        certified = sorted(
            {
                reply.replica
                for reply in outstanding.replies.values()
                if reply.timestamp == request.timestamp
                and reply.read_only == request.read_only
                and reply.result == completion.result
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
        if kind == KIND_MESSAGES:
            try:
                messages = split_messages(payload)
            except PeerMisbehaved:
                self.counters["frame.bad_batch"] += 1
                return
            for message in messages:
                self._on_reply_bytes(replica, message)
            return
        if kind != KIND_MESSAGE:
            self.counters["frame.unexpected_kind"] += 1
            return
        self._on_reply_bytes(replica, memoryview(payload)[1:])

    def _on_reply_bytes(self, replica: int, data: memoryview) -> None:
        try:
            wire = unpack(data)  # type: ignore[arg-type]  # the codec reads any buffer
        except DecodeError:
            self.counters["replies.undecodable"] += 1
            return
        # A client has moved on once it holds f+1 matching replies, so most of the n replies to
        # a request arrive after it completed: skip those before the field-by-field checks (as
        # the pipes shell's client host does). Anything else goes on to them.
        if wire[0] == Reply.TAG and len(wire) > _REPLY_TIMESTAMP and isinstance(wire[_REPLY_CLIENT], str):
            stale_for = self.clients.get(wire[_REPLY_CLIENT])
            if stale_for is not None:
                out = stale_for.outstanding
                if out is None or wire[_REPLY_TIMESTAMP] != out.request.timestamp:
                    self.counters["replies.stale"] += 1
                    return
        try:
            reply = decode_unpacked(wire)
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
        # signature verified (the client keeps a reply among its outstanding request's replies
        # only then, so that is asked instead of hashing the signed root again).
        outstanding = self._outstanding.get(reply.client)
        if (
            outstanding is not None
            and pending is not None
            and pending.replies.get(reply.replica) is reply
            and (reply.replica, reply.read_only) not in outstanding.replies
        ):
            outstanding.replies[(reply.replica, reply.read_only)] = reply
        self._perform(reply.client, ready)
