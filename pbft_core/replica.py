"""The replica: Linear PBFT with a fast path, view change, checkpoints and catch-up, sans I/O.

Theory of operation (normal case, view v, leader = collector = n((v-1) mod n)+1):

1. A client's REQUEST reaches the leader (a backup that gets one forwards it and starts its
   execution timer). The leader batches pending requests and PRE-PREPAREs (v, s, d, batch) to
   all. A partial batch waits while an instance is in flight (Nagle's rule, `_propose`); full
   batches pipeline up to ``inflight_max`` instances. So batches grow with load.
2. Each backup that accepts the pre-prepare sends the leader a threshold share over
   (prepare, v, s, d).
3. With all n shares before the fast-path timer, the leader sends FAST-COMMIT (their n-of-n
   aggregate) and everyone commits. Otherwise, with 2f+1, it sends a PREPARE certificate; each
   replica is then prepared and sends a share over (commit, v, s, d); 2f+1 of those make the
   COMMIT certificate it sends to all. How long to wait for all n is `fastpath`'s policy.
4. Committed batches execute in sequence order; each replica replies to each client.

Every K executed sequence numbers replicas exchange CHECKPOINT shares (`checkpoint`); 2f+1 make
a stable checkpoint that moves the watermarks and lets old state go. Replicas gossip STATUS; one
that is stuck behind a peer FETCHes certified committed batches (and a certified snapshot if it
is below the peer's stable checkpoint; `catchup`). View change follows PBFT; see `viewchange`.
Which requests a replica keeps, trusts and forwards is `intake`'s; its timers are `deadlines`';
rebuilding it after a crash is `recovery`'s.

`Replica.step(message, now_ms)` and `Replica.tick(now_ms)` are the only inputs; each returns a
`Ready`. The replica never reads a clock, sleeps or does I/O. State changes go through the
transition helpers (`_enter_view`, `_take_proposal`, `_record_proof`, `_apply_batch`,
`_adopt_snapshot`, `_stabilize`, `_keep_new_view`), which replay after a restart uses too, and
a slot's status changes only in `_set_status`.

Work after sending. The leader is the one replica every instance waits for twice (to propose,
then to collect), so two pieces of its own work are *deferred* until the shell has sent the
message that others wait for: signing its own shares for a batch it proposes (after the
PRE-PREPARE is out) and checking the n-of-n aggregate it builds (after the FAST-COMMIT is out;
every backup checks it before committing, and the leader commits only once it has checked it
too). A Ready with deferred work is due at once (``wake_at_ms`` = now); the next `tick` does it.
A bad aggregate costs one wasted broadcast, falls back to the slow path and counts as a
fast-path miss, so a replica that keeps sending bad fast shares soon stops the leader waiting.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Iterable
from typing import Protocol, TypeVar, cast

from . import merkle
from .bank import Bank, is_read_only
from .catchup import CatchUpRole, FetchAnswers
from .certificates import Certifier, commit_message, prepare_message
from .checkpoint import CheckpointRole, CheckpointTally, Votes
from .collector import CollectorRole
from .config import ClusterConfig, replica_name
from .crypto import NodeCrypto
from .deadlines import Deadlines, Timer
from .fastpath import FastPathPolicy
from .intake import Intake, RequestKey
from .log import Slot
from .messages import (
    Ask,
    CatchUp,
    Checkpoint,
    CheckpointProof,
    CommitCertificate,
    CommitShare,
    FastCommit,
    Fetch,
    Message,
    NewView,
    PrepareCertificate,
    PrepareShare,
    PrePrepare,
    Proof,
    ProofKind,
    Reply,
    Request,
    Result,
    SlowPath,
    Status,
    ViewChange,
    batch_digest,
    batch_encoding,
    reply_root_payload,
    request_bytes,
)
from .ready import (
    Accepted,
    CheckpointStable,
    Dropped,
    Event,
    Executed,
    ProofStored,
    Ready,
    SlotStatus,
    StatusChanged,
    ViewEntered,
)
from .viewchange import ViewChangeRole

M = TypeVar("M", bound=Message)
EARLY_MESSAGES_MAX = 4  # certificates kept per slot while its pre-prepare is still on the way
NEW_VIEWS_KEPT = 4  # the latest NEW-VIEWs, to hand to replicas still changing to them


class FromReplica(Protocol):
    """Every message a replica takes but REQUEST: sent and signed by a replica."""

    replica: int
    sig: bytes


def _handler(cls: type[M], handle: Callable[[M], None]) -> tuple[type[Message], Callable[[Message], None]]:
    """One dispatch entry; the type variable ties the message class to its handler's parameter."""
    return cls, cast(Callable[[Message], None], handle)


class Replica(CollectorRole, CheckpointRole, CatchUpRole, ViewChangeRole):
    """One replica. The normal case, execution and the state transitions live here; the
    collector's, checkpoints', catch-up's and view change's handlers in the modules named for
    them, each beside the rules it follows."""

    def __init__(self, replica_id: int, config: ClusterConfig, crypto: NodeCrypto) -> None:
        assert replica_id in config.replica_ids
        self.id = replica_id
        self.name = replica_name(replica_id)
        self.config = config
        self.crypto = crypto
        self.certifier = Certifier(crypto)
        self.bank = Bank.initial(config.state)
        self.metrics: Counter[str] = Counter()
        self.intake = Intake(config, crypto, self.metrics)
        self.fast_path = FastPathPolicy(config.timers, self.metrics)
        self.checkpoints = CheckpointTally(crypto, config.quorum)
        self.fetch_answers = FetchAnswers(config.timers, self.metrics)
        self.deadlines = Deadlines()

        self.view = 1
        self.view_active = True  # False between sending VIEW-CHANGE and installing NEW-VIEW
        self._view_started_ms = 0.0  # a new view's leader gets a whole timeout for old requests
        self.last_executed = 0
        self.stable: CheckpointProof | None = None
        self.slots: dict[int, Slot] = {}
        self.next_seq = 1  # leader: the next sequence number to propose
        self.proposal_queue: deque[RequestKey] = deque()  # leader: pending requests to propose
        self._queue_bytes = 0  # their encoded size (stale keys count until the next batch)
        self.proposed: set[RequestKey] = set()  # requests in an uncommitted slot of this view

        self._helped: dict[tuple[int, int], float] = {}  # (replica, view) -> when we last helped
        self.vc_attempts = 0
        self.view_changes: dict[int, dict[int, ViewChange]] = {}
        self.new_views: list[NewView] = []

        self.peer_progress: dict[int, int] = {}
        self._executed_at_last_status = 0
        self._fetch_rounds = 0

        self._started = False  # the first input sets the clock (`_first_input`)
        self._now = 0.0
        self._ready = Ready()
        self._deferred: list[Callable[[], None]] = []  # done by the next tick (module docstring)
        self._reads: list[tuple[Request, Result]] = []  # answered on the next tick, under one root
        self._handlers = dict(
            [
                _handler(Request, self.on_request),
                _handler(PrePrepare, self.on_pre_prepare),
                _handler(PrepareShare, self.on_prepare_share),
                _handler(SlowPath, self.on_slow_path),
                _handler(PrepareCertificate, self.on_prepare_certificate),
                _handler(CommitShare, self.on_commit_share),
                _handler(CommitCertificate, self.on_commit_certificate),
                _handler(FastCommit, self.on_fast_commit),
                _handler(Checkpoint, self.on_checkpoint),
                _handler(Status, self.on_status),
                _handler(Fetch, self.on_fetch),
                _handler(CatchUp, self.on_catch_up),
                _handler(ViewChange, self.on_view_change),
                _handler(NewView, self.on_new_view),
            ]
        )
        # Fired in `Timer` order when due (see `deadlines`).
        self._timer_handlers: dict[Timer, Callable[[], None]] = {
            Timer.STATUS: self._gossip_status,
            Timer.PROPOSE: self._propose,
            Timer.FAST_PATH: self._fast_path_timeouts,
            Timer.PREPARE_SHARE: self._late_prepare_shares,
            Timer.EXECUTION: self._execution_timeout,
            Timer.VIEW_CHANGE_RESEND: self._resend_view_change,
            Timer.NEW_VIEW: self._new_view_timeout,
        }

    # ---- driver API ------------------------------------------------------------------------

    def step(self, message: Message, now_ms: float) -> Ready:
        """Take one message from the network."""
        self._now = now_ms
        if not self._started:
            self._first_input(now_ms, status_in_ms=self.config.timers.status_interval_ms)
        handler = self._handlers.get(type(message))
        if handler is None:
            self._drop(message, "unexpected message type")
        elif self._authentic(message):
            self.metrics[f"in.{type(message).__name__}"] += 1
            handler(message)
        return self._flush()

    def tick(self, now_ms: float) -> Ready:
        """Let time pass: do deferred work, then fire whatever timers are due."""
        self._now = now_ms
        if not self._started:
            self._first_input(now_ms, status_in_ms=0.0)
        deferred, self._deferred = self._deferred, []
        for work in deferred:
            work()
        earliest_ms = self.deadlines.earliest()
        if earliest_ms is not None and now_ms >= earliest_ms:
            for timer in Timer:
                if self.deadlines.pop_due(timer, now_ms):
                    self._timer_handlers[timer]()
        return self._flush()

    def _first_input(self, now_ms: float, *, status_in_ms: float) -> None:
        """The first input since start or restart: the clock is known from here on. Requests a
        restarted replica recovered get a whole execution timeout from now, not from when they
        first arrived before the crash (the shell's clock may have restarted too)."""
        self._started = True
        self.deadlines.set(Timer.STATUS, now_ms + status_in_ms)
        self._view_started_ms = max(self._view_started_ms, now_ms)
        self._restart_exec_timer()

    # ---- small helpers ---------------------------------------------------------------------

    @property
    def leader(self) -> int:
        return self.config.leader_of(self.view)

    @property
    def is_leader(self) -> bool:
        return self.leader == self.id

    @property
    def stable_seq(self) -> int:
        return self.stable.seq if self.stable else 0

    @property
    def high_watermark(self) -> int:
        return self.stable_seq + self.config.window

    @property
    def honest(self) -> Replica:
        """The honest replica inside a node (`faults.Node`); a `Replica` is its own."""
        return self

    @property
    def pending(self) -> dict[RequestKey, Request]:
        """Requests known and not yet executed, oldest first (see `intake`)."""
        return self.intake.pending

    @property
    def snapshots(self) -> dict[int, bytes]:
        return self.checkpoints.snapshots

    @property
    def exec_deadline_ms(self) -> float | None:
        return self.deadlines.get(Timer.EXECUTION)

    def status_of(self, seq: int) -> SlotStatus:
        slot = self.slots.get(seq)
        if slot is not None:
            return slot.status
        return SlotStatus.EXECUTED if seq <= self.last_executed else SlotStatus.NONE

    def _slot(self, seq: int) -> Slot:
        slot = self.slots.get(seq)
        if slot is None:
            slot = self.slots[seq] = Slot(seq)
        return slot

    def _sign(self, message: M) -> M:
        return message.with_sig(self.crypto.sign(message.signing_payload()))

    def _send(self, replica: int, message: Message) -> None:
        self._ready.to_replicas.append((replica, message))

    def _broadcast(self, message: Message) -> None:
        for replica in self.config.replica_ids:
            if replica != self.id:
                self._ready.to_replicas.append((replica, message))

    def _drop(self, message: Message, reason: str) -> None:
        self.metrics[f"dropped.{reason}"] += 1
        sender = getattr(message, "replica", None) or getattr(message, "client", "?")
        self._ready.events.append(Dropped(reason, type(message).__name__, str(sender)))

    def _flush(self) -> Ready:
        self._check_invariants()
        ready, self._ready = self._ready, Ready()
        wake_at_ms = self.deadlines.earliest()
        if self._deferred:
            wake_at_ms = self._now
        ready.wake_at_ms = wake_at_ms
        return ready

    def _check_invariants(self) -> None:
        """Cheap facts that hold after every input (TigerBeetle-style)."""
        assert self.view >= 1 and self.next_seq > self.stable_seq
        assert len(self.intake.pending) == len(self.intake.since_ms)

    def _authentic(self, message: Message) -> bool:
        if isinstance(message, Request):
            if self.intake.too_large(message):
                self._drop(message, "request too large")  # no batch could carry it
                return False
            if self.intake.valid(message):
                return True
            self._drop(message, "bad client signature")
            return False
        signed = cast(FromReplica, message)  # every other message type is a replica's, signed
        if signed.replica == self.id or signed.replica not in self.config.replica_ids:
            self._drop(message, "bad sender")
            return False
        if not self.crypto.verify_replica(signed.replica, message.signing_payload(), signed.sig):
            self._drop(message, "bad signature")
            return False
        return True

    def _reply(self, answers: list[tuple[Request, Result]]) -> None:
        """Reply to each client, signing one Merkle root for all of them."""
        if not answers:
            return
        view, me = self.view, self.id
        leaves = [Reply.leaf_of(view, r.client, r.timestamp, me, res, r.read_only) for r, res in answers]
        root, paths = merkle.build(leaves)
        sig = self.crypto.sign(reply_root_payload(root))
        for index, (r, res) in enumerate(answers):
            reply = Reply(view, r.client, r.timestamp, me, res, r.read_only, index, paths[index], sig)
            self._ready.to_clients.append((r.client, reply))

    # ---- state transitions (the live path and `recovery` both go through these) -------------

    def _set_status(self, slot: Slot, status: SlotStatus, *, reopen: bool = False) -> None:
        """The one way a slot's status changes (a new view's proposal reopens an uncommitted slot)."""
        if slot.advance(status, reopen=reopen) or reopen:
            self._ready.events.append(StatusChanged(slot.seq, slot.view, slot.status, slot.digest))

    def _enter_view(self, view: int, *, active: bool) -> None:
        self.view, self.view_active = view, active
        self._ready.events.append(ViewEntered(view, active=active))

    def _take_proposal(self, slot: Slot, view: int, digest: bytes, batch: tuple[Request, ...]) -> None:
        """Accept (view, seq, batch) as the proposal of `view`; its requests become pending."""
        slot.accept(view, digest, batch)
        slot.proposed_at_ms = self._now
        self._ready.events.append(Accepted(view, slot.seq, batch))
        self._set_status(slot, SlotStatus.PRE_PREPARED, reopen=True)
        for request in batch:
            if not self.bank.is_executed(request.client, request.timestamp):
                self.intake.add(request, self._now, from_client=False)
            self.proposed.add(request.key)

    def _record_proof(self, slot: Slot, proof: Proof) -> None:
        """`proof` shows its batch prepared (or committed) at the slot; it wins over a proposal
        this replica accepted in an older view or for another batch."""
        # A proof built here carries the slot's own batch; one from catch-up or replay may not
        # (an empty batch is one shared object, so a fresh slot is caught by its empty digest).
        if not slot.digest or slot.batch is not proof.batch:
            digest = batch_digest(proof.batch)
            if slot.view < proof.view or slot.digest != digest:
                slot.view, slot.digest, slot.batch = proof.view, digest, proof.batch
        slot.record_prepared(proof)
        self._ready.events.append(ProofStored(proof))
        committed = proof.kind in ProofKind.COMMITTED
        self._set_status(slot, SlotStatus.COMMITTED if committed else SlotStatus.PREPARED)

    def _apply_batch(self, seq: int, batch: tuple[Request, ...]) -> list[Result | None]:
        """Execute the batch committed at `seq` (the next one) against the bank."""
        assert seq == self.last_executed + 1
        results: list[Result | None] = []
        for request in batch:
            results.append(self.bank.execute(request))
            self.intake.remove(request.key)
            self.proposed.discard(request.key)
        self.last_executed = seq
        slot = self.slots.get(seq)
        if slot is not None:
            self._set_status(slot, SlotStatus.EXECUTED)
        return results

    def _adopt_snapshot(self, seq: int, snapshot: bytes) -> None:
        """Take a certified state (its digest already checked) as the state after `seq`."""
        self.bank = Bank.from_snapshot(snapshot)
        self.last_executed = seq
        self.snapshots[seq] = snapshot
        self.intake.forget_executed(self.bank)

    def _stabilize(self, proof: CheckpointProof, holders: Votes | None = None) -> None:
        if proof.seq <= self.stable_seq:
            return
        self.stable = proof
        for seq in [s for s in self.slots if s <= proof.seq]:
            del self.slots[seq]
        self.checkpoints.forget_through(proof.seq)
        self.next_seq = max(self.next_seq, proof.seq + 1)
        self._ready.events.append(CheckpointStable(proof, self.snapshots.get(proof.seq)))
        others = sorted(r for r in holders or () if r != self.id)
        if self.last_executed < proof.seq and others:
            self._fetch_from(others[0])

    def _keep_new_view(self, nv: NewView) -> None:
        self.new_views.append(nv)
        del self.new_views[:-NEW_VIEWS_KEPT]

    # ---- requests --------------------------------------------------------------------------

    def on_request(self, request: Request) -> None:
        if request.read_only:
            if is_read_only(request.op):
                self._answer_read(request, self.bank.read(request.op, request.args))
            else:
                self._drop(request, "read-only request for a write")
            return
        if self.bank.is_executed(request.client, request.timestamp):
            cached = self.bank.cached_reply(request.client, request.timestamp)
            if cached is not None:
                self._reply([(request, cached)])
            return
        if not self.intake.add(request, self._now, from_client=True):
            self._drop(request, "client has too many pending requests")
            return
        if self.is_leader and self.view_active:
            if request.key not in self.proposed and request.key not in self.proposal_queue:
                self.proposal_queue.append(request.key)
                self._queue_bytes += request_bytes(request)
            if self.deadlines.get(Timer.PROPOSE) is None:
                self.deadlines.set(Timer.PROPOSE, self._now + self.config.timers.batch_wait_ms)
        elif not self.is_leader:
            if self.intake.should_forward(request.key, self.view, self._now):
                self._send(self.leader, request)
            if self.deadlines.get(Timer.EXECUTION) is None:
                self._restart_exec_timer()

    def _answer_read(self, request: Request, result: Result) -> None:
        """Reads answered in one pass share one signed reply root, as a batch's replies do:
        the answer is read now and sent by the next tick (deferred work), so the reads that
        arrived together cost one signature here and one check per client process, not one
        each. A read's answer is the state when it arrived either way."""
        if not self._reads:
            self._deferred.append(self._send_read_replies)
        self._reads.append((request, result))

    def _send_read_replies(self) -> None:
        reads, self._reads = self._reads, []
        self._reply(reads)

    def _restart_exec_timer(self) -> None:
        """Backup: suspect the leader once the oldest request it knows has waited a timeout.

        The deadline runs from the oldest pending request's arrival (or the start of the view,
        whichever is later), not from the last execution: a leader that keeps ordering other
        clients' requests would otherwise never be suspected of censoring one.
        """
        oldest_ms = self.intake.oldest_since_ms()
        if oldest_ms is None or not self.view_active or self.is_leader:
            self.deadlines.set(Timer.EXECUTION, None)
            return
        start_ms = max(oldest_ms, self._view_started_ms)
        self.deadlines.set(Timer.EXECUTION, start_ms + self.config.timers.execution_timeout_ms)

    def _execution_timeout(self) -> None:
        if self.view_active and self.pending and not self.is_leader:
            self._start_view_change(self.view + 1, "execution timer expired")

    def _propose(self) -> None:
        """Leader: pre-prepare queued requests, up to the pipelining window, the watermark and
        the batch budgets.

        Nagle's rule for batches: a partial batch goes out when no instance is in flight, or
        once its oldest request has waited `batch_hold_ms`; full ones pipeline up to
        `inflight_max`. Requests that arrive while an instance runs then wait for it and leave
        together, so batches grow with the offered load and the certificate work per request
        falls, where eager proposing cut the same requests into more, smaller instances that
        competed for the same cores. A lone request still goes out at once, and the hold bounds
        what the rule can add to a request's latency when instances are slow (a leader that
        delays its messages, a slow network).
        """
        while (
            self.proposal_queue
            and self.view_active
            and self.next_seq - 1 - self.last_executed < self.config.inflight_max
            and self.next_seq <= self.high_watermark
        ):
            in_flight = self.next_seq - 1 > self.last_executed
            if in_flight and not self._full_batch_queued():
                oldest_ms = self.intake.since_ms.get(self.proposal_queue[0], self._now)
                release_ms = oldest_ms + self.config.timers.batch_hold_ms
                if self._now < release_ms:
                    self.deadlines.set_earlier(Timer.PROPOSE, release_ms)
                    return
            batch = self._next_batch()
            if not batch:
                return
            seq, self.next_seq = self.next_seq, self.next_seq + 1
            digest = batch_digest(batch)
            self.metrics["batches.proposed"] += 1
            self.metrics["batches.requests"] += len(batch)
            ask = self.fast_path.ask(seq) if self.config.fast_path else Ask.SLOW
            self._broadcast(self._sign(PrePrepare(self.view, seq, digest, batch, self.id, ask)))
            self._accept(self._slot(seq), self.view, digest, batch, ask)

    def _full_batch_queued(self) -> bool:
        """Would the next batch be full (by count or by bytes)? Stale keys may make it look
        fuller than it is, which only sends a batch early."""
        queue = self.proposal_queue
        return len(queue) >= self.config.batch_size_max or self._queue_bytes > self.config.batch_bytes_max

    def _set_proposal_queue(self, keys: Iterable[RequestKey]) -> None:
        self.proposal_queue = deque(keys)
        self._count_queue_bytes()

    def _count_queue_bytes(self) -> None:
        pending = self.pending
        self._queue_bytes = sum(request_bytes(pending[k]) for k in self.proposal_queue if k in pending)

    def _next_batch(self) -> tuple[Request, ...]:
        batch: list[Request] = []
        size_bytes = 0
        while self.proposal_queue and len(batch) < self.config.batch_size_max:
            request = self.pending.get(self.proposal_queue[0])
            if request is None or request.key in self.proposed:
                self.proposal_queue.popleft()
                continue
            size_bytes += request_bytes(request)
            if batch and size_bytes > self.config.batch_bytes_max:
                break  # the next batch starts with it
            self.proposal_queue.popleft()
            batch.append(request)
            self.proposed.add(request.key)
        self._count_queue_bytes()
        return tuple(batch)

    # ---- normal case: backups ---------------------------------------------------------------

    def _in_view(self, message: Message, view: int) -> bool:
        if view != self.view or not self.view_active:
            self._drop(message, "wrong view")
            return False
        if cast(FromReplica, message).replica != self.config.leader_of(view):
            self._drop(message, "not from the leader")
            return False
        return True

    def on_pre_prepare(self, pre_prepare: PrePrepare) -> None:
        if not self._in_view(pre_prepare, pre_prepare.view):
            return
        if not self.stable_seq < pre_prepare.seq <= self.high_watermark:
            self._drop(pre_prepare, "outside watermarks")
            return
        if not pre_prepare.batch:
            self._drop(pre_prepare, "batch size")
            return
        encoded = batch_encoding(pre_prepare.batch)
        reason = self.intake.batch_invalid(pre_prepare.batch, encoded)
        if reason is not None:
            self._drop(pre_prepare, reason)
            return
        if pre_prepare.digest != batch_digest(pre_prepare.batch, encoded):
            self._drop(pre_prepare, "digest mismatch")
            return
        slot = self._slot(pre_prepare.seq)
        if slot.view == pre_prepare.view:
            if slot.digest != pre_prepare.digest:
                self._drop(pre_prepare, "conflicting pre-prepare")
            return
        if slot.committed is not None and batch_digest(slot.committed.batch) != pre_prepare.digest:
            self._drop(pre_prepare, "conflicts with a committed batch")
            return
        if pre_prepare.ask not in Ask.ALL:
            self._drop(pre_prepare, "unknown ask")
            return
        ask = pre_prepare.ask if self.config.fast_path else Ask.SLOW
        self._accept(slot, pre_prepare.view, pre_prepare.digest, pre_prepare.batch, ask)

    def _accept(self, slot: Slot, view: int, digest: bytes, batch: tuple[Request, ...], ask: int) -> None:
        """Take (view, seq, batch) as this view's proposal and vote for it with the shares the
        leader asked for (`_vote`)."""
        if slot.committed is not None and batch_digest(slot.committed.batch) != digest:
            # Never vote for (nor report) anything but what this replica knows committed here.
            self.metrics["dropped.proposal over a committed slot"] += 1
            return
        self._take_proposal(slot, view, digest, batch)
        slot.ask = ask
        if self.is_leader:
            self._deferred.append(lambda: self._own_shares(slot, view, digest))
            return
        if self.deadlines.get(Timer.EXECUTION) is None:
            self._restart_exec_timer()
        self._vote(slot)
        early, slot.early = slot.early, []
        for message in early:
            self._handlers[type(message)](message)

    def _vote(self, slot: Slot) -> None:
        """Backup: send the collector the prepare shares asked for (`collector` docstring).

        A fast share alone (`Ask.FAST`) leaves the 2f+1 share for when the collector gives up
        (`on_slow_path`) or, should its SLOW-PATH be lost, for when the slot is still only
        pre-prepared `prepare_share_timeout_ms` later (`_late_prepare_shares`).
        """
        message, ask = prepare_message(slot.view, slot.seq, slot.digest), slot.ask
        share = self.crypto.sign_share(message) if ask != Ask.FAST else b""
        fast_share = self.crypto.sign_fast_share(message) if ask != Ask.SLOW else b""
        if ask == Ask.FAST:
            slot.share_due_ms = self._now + self.config.timers.prepare_share_timeout_ms
            self.deadlines.set_earlier(Timer.PREPARE_SHARE, slot.share_due_ms)
        self._send(self.leader, self._sign(PrepareShare(slot.view, slot.seq, slot.digest, share, fast_share, self.id)))

    def on_slow_path(self, slow: SlowPath) -> None:
        if not self._in_view(slow, slow.view):
            return
        slot = self.slots.get(slow.seq)
        if slot is not None and slot.view == slow.view and slot.digest == slow.digest:
            self._vote_slow(slot)

    def _vote_slow(self, slot: Slot) -> bool:
        """Backup: the 2f+1 share after a fast one alone, if the slot still waits for a
        certificate; whether it was sent."""
        slot.share_due_ms = None
        current = slot.view == self.view and self.view_active and not self.is_leader
        if not (current and slot.ask == Ask.FAST and slot.status == SlotStatus.PRE_PREPARED):
            return False
        slot.ask = Ask.SLOW
        self._vote(slot)
        return True

    def _late_prepare_shares(self) -> None:
        """Backup: no SLOW-PATH and no certificate for some slots that voted fast: vote slow."""
        for slot in self.slots.values():
            if slot.share_due_ms is not None and slot.share_due_ms <= self._now and self._vote_slow(slot):
                self.metrics["fast_path.late_prepare_shares"] += 1
        later = [s.share_due_ms for s in self.slots.values() if s.share_due_ms is not None]
        if later:
            self.deadlines.set_earlier(Timer.PREPARE_SHARE, min(later))

    def _own_shares(self, slot: Slot, view: int, digest: bytes) -> None:
        """Leader, deferred from `_accept`: its own vote for the batch it proposed."""
        if slot.view != view or slot.digest != digest or slot.certified:
            return
        message = prepare_message(view, slot.seq, digest)
        if slot.ask != Ask.SLOW and self.id not in slot.fast_shares:
            slot.fast_shares[self.id] = self.crypto.sign_fast_share(message)
        if slot.ask != Ask.FAST and self.id not in slot.prepare_shares:
            slot.prepare_shares[self.id] = self.crypto.sign_share(message)
        self._certify_prepare(slot)

    def _certified_slot(
        self, message: Message, view: int, seq: int, digest: bytes, kind: int, certificate: bytes
    ) -> tuple[Slot, Proof] | None:
        """A leader's certificate for a proposal we accepted, checked; None if not usable.

        A valid certificate whose pre-prepare has not arrived yet is kept for when it does.
        It is checked before it is kept, so only the few genuine ones can wait there.
        """
        if not self._in_view(message, view) or not self.stable_seq < seq <= self.high_watermark:
            return None
        slot = self.slots.get(seq)
        accepted = slot is not None and slot.view == view
        if slot is not None and accepted:
            if slot.digest != digest:
                self._drop(message, "digest mismatch")
                return None
            if slot.committed is not None:
                return None
            if kind == ProofKind.PREPARE and slot.status != SlotStatus.PRE_PREPARED:
                return None
        if not self.certifier.check(kind, view, seq, digest, certificate):
            self._drop(message, "bad certificate")
            return None
        if slot is None or not accepted:
            early = self._slot(seq).early
            if len(early) < EARLY_MESSAGES_MAX:
                early.append(message)
            return None
        return slot, Proof(view, seq, slot.batch, kind, certificate)

    def on_prepare_certificate(self, certificate: PrepareCertificate) -> None:
        found = self._certified_slot(
            certificate, certificate.view, certificate.seq, certificate.digest, ProofKind.PREPARE, certificate.certificate
        )
        if found is not None:
            self._prepared(*found)

    def on_commit_certificate(self, certificate: CommitCertificate) -> None:
        found = self._certified_slot(
            certificate, certificate.view, certificate.seq, certificate.digest, ProofKind.COMMIT, certificate.certificate
        )
        if found is not None:
            self._committed(*found)

    def on_fast_commit(self, fast_commit: FastCommit) -> None:
        found = self._certified_slot(
            fast_commit, fast_commit.view, fast_commit.seq, fast_commit.digest, ProofKind.FAST, fast_commit.aggregate
        )
        if found is not None:
            self._committed(*found)

    def _prepared(self, slot: Slot, proof: Proof) -> None:
        self._record_proof(slot, proof)
        share = self.crypto.sign_share(commit_message(slot.view, slot.seq, slot.digest))
        if self.is_leader:
            slot.commit_shares[self.id] = share
            self._certify_commit(slot)
        else:
            self._send(self.leader, self._sign(CommitShare(slot.view, slot.seq, slot.digest, share, self.id)))

    def _committed(self, slot: Slot, proof: Proof) -> None:
        self._record_proof(slot, proof)
        # A leader that learnt of commits by catch-up must not propose at those seqs again.
        self.next_seq = max(self.next_seq, slot.seq + 1)
        self.metrics["commits.fast" if proof.kind == ProofKind.FAST else "commits.slow"] += 1
        self._execute_ready()

    # ---- execution -------------------------------------------------------------------------

    def _execute_ready(self) -> None:
        progressed = False
        while True:
            slot = self.slots.get(self.last_executed + 1)
            if slot is None or slot.committed is None:
                break
            self._execute(slot, slot.committed)
            progressed = True
        if progressed:
            self._restart_exec_timer()
            if self.is_leader:
                self._propose()

    def _execute(self, slot: Slot, proof: Proof) -> None:
        results = self._apply_batch(slot.seq, proof.batch)
        self._reply([(r, res) for r, res in zip(proof.batch, results, strict=True) if res is not None])
        self.metrics["executed.batches"] += 1
        self.metrics["executed.requests"] += len(proof.batch)
        snapshot = self.bank.snapshot() if slot.seq % self.config.checkpoint_interval == 0 else None
        state_digest = Bank.digest_of(snapshot) if snapshot is not None else b""
        self._ready.events.append(Executed(slot.seq, proof.view, proof.batch, tuple(results), state_digest))
        if snapshot is not None:
            self._take_checkpoint(slot.seq, snapshot, state_digest)

    # ---- recovery --------------------------------------------------------------------------

    @classmethod
    def restore(cls, replica_id: int, config: ClusterConfig, crypto: NodeCrypto, events: Iterable[Event]) -> Replica:
        """Rebuild a replica after a crash from the durable events it emitted (`recovery`)."""
        from .recovery import replay

        replica = cls(replica_id, config, crypto)
        replay(replica, events)
        return replica
