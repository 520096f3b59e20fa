"""The TCP shell's bounds: every limit against slow, broken or hostile peers, with its reason.

Tests lower some of them (`monkeypatch.setattr(tcp.limits, ...)`), so the code that enforces
those reads them through this module at call time.
"""


import contextlib

from ...config import ClusterConfig
from ..framing import (
    CLIENT_FRAME_BYTES_MAX,
    SEAL_OVERHEAD,
)

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
# The node's pump writes a link's frames itself, right after its commit, while the link's
# transport holds at most this many unsent bytes; beyond that the link's writer task writes
# them once the transport has drained (asyncio's default high-water mark is 64 KiB).
DIRECT_WRITE_BUFFERED_MAX = 64 * 1024
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


def raise_fd_limit() -> int:
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
