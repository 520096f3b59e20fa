"""The TCP shell: one replica per process (`ReplicaNode`), and an async client pool (`ClientPool`).

Modules: `limits` (every bound and timeout, with its reason), `log` (`NodeLog`: stdlib logging
as logfmt lines), `links` (bounded outboxes, handshake slots, one authenticated `Connection`,
the reconnecting `DialLink`), `data` (a node's files and its cluster fingerprint), `node` (`ReplicaNode`, `run_node`), `pool` (`ClientPool`),
`driver` (``pbft run --transport tcp``: `run_set_tcp` over the set driver).

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

**The node loop.** Reader tasks read whatever has arrived in one go, split every whole frame
out of it (`framing.FrameSplitter`), and hand each decrypted protocol message straight to the
`NodeHost` (decode, step the replica, perform its `Ready` into the host's outbox) and wake the
*pump*. The pump runs once per event-loop iteration at most: it **commits** the write-ahead log
(`DurableLog`, ``synchronous=FULL`` with the default ``power`` durability), preceded by the
inspection database (`ReplicaStore`, which otherwise trails by up to 50 ms, as the pipes
workers' does), and only then lets the host hand its queued bytes to the links, and writes them
itself (one sealed frame per link: what one turn queued for a peer or a client leaves as one
``B`` payload; a link's writer task is woken only when its peer is backed up or it is down). Before
it ticks the replica it lets the readers hand over what has already arrived (a few rounds of
two turns, while they keep finding input; each round's output is committed and sent), as the
pipes worker reads every ready link before its tick; then it ticks the replica when its
``wake_at_ms`` is due (timers, a leader's proposal, and the work a replica defers until its
messages are out) and commits and sends again. So a vote is on disk before any peer can see it,
one commit (one fsync) covers everything that arrived in that iteration (group commit for free),
and the leader's adaptive batching proposes every request at hand, not the first few.

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

from . import limits
from .data import NodeStartError, cluster_fingerprint, data_paths
from .limits import (
    CLIENT_CONNECTIONS_MAX,
    FILE_DESCRIPTORS_RESERVED,
    HANDSHAKE_TIMEOUT_S,
    OUTBOUND_FRAMES_MAX,
    PENDING_HANDSHAKES_MAX,
    PENDING_HANDSHAKES_PER_SOURCE_MAX,
    STATUS_CACHE_MS,
    STATUS_QUERIES_PER_S,
    STATUS_QUERY_BURST,
    client_connections_budget,
    client_frame_bytes_max,
)
from .links import DialLink, HandshakeSlots, TokenBucket
from .log import NodeLog
from .node import ReplicaNode, run_node
from .pool import ClientCrypto, ClientPool, PoolCompletion, wall_clock_timestamp

__all__ = [
    "CLIENT_CONNECTIONS_MAX",
    "FILE_DESCRIPTORS_RESERVED",
    "HANDSHAKE_TIMEOUT_S",
    "OUTBOUND_FRAMES_MAX",
    "PENDING_HANDSHAKES_MAX",
    "PENDING_HANDSHAKES_PER_SOURCE_MAX",
    "STATUS_CACHE_MS",
    "STATUS_QUERIES_PER_S",
    "STATUS_QUERY_BURST",
    "ClientCrypto",
    "ClientPool",
    "DialLink",
    "HandshakeSlots",
    "NodeLog",
    "NodeStartError",
    "PoolCompletion",
    "ReplicaNode",
    "TokenBucket",
    "client_connections_budget",
    "client_frame_bytes_max",
    "cluster_fingerprint",
    "data_paths",
    "limits",
    "run_node",
    "wall_clock_timestamp",
]
