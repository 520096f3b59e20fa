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
3. hosts the ten clients (`Client`, with their timers, in `ClientHost`) and plays the set with
   the transport-neutral `set_run.SetDriver` (as the TCP shell and the simulator do): dispatch
   in file order, closed loop, reads after everything before them, until every transaction has
   an outcome or nothing completed for the stall timeout; then settle until the honest live
   replicas agree on ``last_executed`` (a replica left in the dark catches up by gossip);
4. sends STOP; each worker writes its final state, closes its database and answers DONE.

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

Modules: `frames` (the kinds below and the shell's limits), `links` (`LinkWriter`, a pipe
that never blocks the loop), `worker` (`worker_main` and the `Worker` loop of one replica
process), `cluster` (the driver's `Cluster` of workers: spawn, poll, stop, failures),
`clients` (`ClientHost`: the driver's clients), `driver` (`run_set` and `PipesTransport`).

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

from ..set_run import (
    EventCallback,
    ProgressCallback,
    SetOptions,
    SetResult,
    replica_meta,
    set_seed,
)
from ..summary import event_summary
from .clients import ClientHost, OnComplete, awaited
from .cluster import Cluster, WorkerFailure
from .driver import PipesTransport, run_set
from .frames import (
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
)
from .worker import WorkerSpec, worker_main

__all__ = [
    "K_CLIENT",
    "K_DONE",
    "K_ERROR",
    "K_EVENT",
    "K_GO",
    "K_HELLO",
    "K_MESSAGE",
    "K_QUERY",
    "K_STATE",
    "K_STOP",
    "POLL_INTERVAL_S",
    "PROFILE_DIR_VARIABLE",
    "ClientHost",
    "Cluster",
    "EventCallback",
    "OnComplete",
    "PipesTransport",
    "ProgressCallback",
    "SetOptions",
    "SetResult",
    "WorkerFailure",
    "WorkerSpec",
    "awaited",
    "event_summary",
    "replica_meta",
    "run_set",
    "set_seed",
    "worker_main",
]
