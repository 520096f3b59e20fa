"""The replica: Linear PBFT with a fast path, view change, checkpoints and catch-up, sans I/O.

Theory of operation (normal case, view v, leader = collector = n((v-1) mod n)+1):

1. A client's REQUEST reaches the leader (a backup that gets one forwards it and starts its
   execution timer). The leader batches pending requests and PRE-PREPAREs (v, s, d, batch) to
   all; it keeps up to ``inflight_max`` instances in flight, so requests that arrive meanwhile
   form the next, larger batch (adaptive batching).
2. Each backup that accepts the pre-prepare sends the leader a threshold share over
   (prepare, v, s, d).
3. With all n shares before the fast-path timer, the leader sends FAST-COMMIT (their n-of-n
   aggregate) and everyone commits. Otherwise, with 2f+1, it sends a PREPARE certificate; each
   replica is then prepared and sends a share over (commit, v, s, d); 2f+1 of those make the
   COMMIT certificate it sends to all. The timer adapts to how long the last shares take
   (concord-bft: mean + 2σ, clamped); when most recent instances missed it (a replica is down,
   dark or slow on purpose), the leader stops waiting and goes slow at once, waiting again only
   on every `FAST_PATH_PROBE_EVERY`-th instance until the fast path works again.
4. Committed batches execute in sequence order; each replica replies to each client.

Every K executed sequence numbers replicas exchange CHECKPOINT shares; 2f+1 make a stable
checkpoint that moves the watermarks and lets old state go. Replicas gossip STATUS; one that is
stuck behind a peer FETCHes certified committed batches (and a certified snapshot if it is below
the peer's stable checkpoint). View change follows PBFT; see `viewchange`.

`Replica.step(message, now_ms)` and `Replica.tick(now_ms)` are the only inputs; each returns a
`Ready`. The replica never reads a clock, sleeps or does I/O.

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

import math
from collections import Counter, deque
from collections.abc import Callable, Iterable

from . import merkle
from .bank import Bank, is_read_only
from .certificates import Certifier, checkpoint_message, commit_message, prepare_message
from .config import VIEW_CHANGE_ENTRY_BYTES, ClusterConfig, replica_name
from .crypto import NodeCrypto
from .log import Slot
from .messages import (
    BYTES_FIELD_MAX,
    MESSAGE_SIZE_MAX,
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
    PrePrepared,
    Proof,
    ProofKind,
    Reply,
    Request,
    Result,
    Status,
    ViewChange,
    batch_bytes,
    batch_digest,
    reply_root_payload,
    request_bytes,
)
from .ready import (
    DURABLE_EVENTS,
    Accepted,
    CheckpointStable,
    Dropped,
    Event,
    Executed,
    NewViewInstalled,
    ProofStored,
    Ready,
    SlotStatus,
    StateTransferred,
    StatusChanged,
    ViewChangeStarted,
    ViewEntered,
)
from .viewchange import check_view_change, select_checkpoint, select_proposals

RequestKey = tuple[str, int]
VERIFIED_REQUESTS_MAX = 100_000
CATCH_UP_ENTRIES_MAX = 128
HELPED_MAX = 1_000
# A peer's FETCH is answered at most once per this fraction of the status interval.
FETCH_ANSWER_INTERVAL = 0.5
CATCH_UP_ENVELOPE_BYTES = 64 * 1024  # a CATCH-UP's checkpoint, headers, sender and signature
EARLY_MESSAGES_MAX = 4  # certificates kept per slot while its pre-prepare is still on the way
FAST_PATH_HISTORY = 32
# Fast-path outcomes remembered; with at least `FAST_PATH_GIVE_UP` misses among them the leader
# stops waiting for all n shares except on probe instances.
FAST_PATH_OUTCOMES = 4
FAST_PATH_GIVE_UP = 3
FAST_PATH_PROBE_EVERY = 8
FORWARDED_MAX = 10_000  # forwarded-request records kept before the executed ones are pruned
# A client runs closed loop (one request outstanding), so more than a few unexecuted requests
# from one client are a flood: the rest are refused until some execute.
PENDING_PER_CLIENT_MAX = 8
NEW_VIEWS_KEPT = 4  # the latest NEW-VIEWs, to hand to replicas still changing to them


class Replica:
    def __init__(self, replica_id: int, config: ClusterConfig, crypto: NodeCrypto) -> None:
        assert replica_id in config.replica_ids
        self.id = replica_id
        self.name = replica_name(replica_id)
        self.config = config
        self.crypto = crypto
        self.certifier = Certifier(crypto)
        self.bank = Bank.initial(config.state)
        self.metrics: Counter[str] = Counter()

        self.view = 1
        self.view_active = True  # False between sending VIEW-CHANGE and installing NEW-VIEW
        self.last_executed = 0
        self.stable: CheckpointProof | None = None
        self.slots: dict[int, Slot] = {}
        self.next_seq = 1  # leader: the next sequence number to propose
        self.propose_at_ms: float | None = None  # leader: when queued requests go out

        # Requests known and not yet executed; the leader also queues them for proposal.
        self.pending: dict[RequestKey, Request] = {}
        # When each pending request arrived (insertion order = age): the execution deadline
        # runs from the oldest, so a leader cannot censor one request by ordering others.
        self._pending_since_ms: dict[RequestKey, float] = {}
        self._pending_per_client: Counter[str] = Counter()
        self._view_started_ms = 0.0  # a new view's leader gets a whole timeout for old requests
        self.proposal_queue: deque[RequestKey] = deque()
        self.proposed: set[RequestKey] = set()
        self._verified_requests: dict[bytes, None] = {}
        self._forwarded: dict[RequestKey, tuple[int, float]] = {}  # backup: key -> (view, when)

        self.exec_deadline_ms: float | None = None
        self.vc_deadline_ms: float | None = None
        self.vc_resend_ms: float | None = None
        self._helped: dict[tuple[int, int], float] = {}  # (replica, view) -> when we last helped
        self.vc_attempts = 0
        self.view_changes: dict[int, dict[int, ViewChange]] = {}
        self.new_views: list[NewView] = []

        self.checkpoint_votes: dict[int, dict[bytes, dict[int, bytes]]] = {}
        self.snapshots: dict[int, bytes] = {}

        self.peer_progress: dict[int, int] = {}
        self._fetch_answered_ms: dict[int, float] = {}  # peer -> when we last answered its FETCH
        self._catch_up_cache: tuple[tuple[int, int, int], CatchUp] | None = None
        self.next_status_ms: float | None = None
        self._executed_at_last_status = 0
        self._fetch_rounds = 0
        self._fast_waits_ms: deque[float] = deque(maxlen=FAST_PATH_HISTORY)
        # True: the timer expired, or the aggregate was bad.
        self._fast_missed: deque[bool] = deque(maxlen=FAST_PATH_OUTCOMES)

        self._now = 0.0
        self._ready = Ready()
        self._deferred: list[Callable[[], None]] = []  # done by the next tick (module docstring)
        self._handlers: dict[type[Message], Callable[[Message], None]] = {
            Request: self.on_request,  # type: ignore[dict-item]
            PrePrepare: self.on_pre_prepare,  # type: ignore[dict-item]
            PrepareShare: self.on_prepare_share,  # type: ignore[dict-item]
            PrepareCertificate: self.on_prepare_certificate,  # type: ignore[dict-item]
            CommitShare: self.on_commit_share,  # type: ignore[dict-item]
            CommitCertificate: self.on_commit_certificate,  # type: ignore[dict-item]
            FastCommit: self.on_fast_commit,  # type: ignore[dict-item]
            Checkpoint: self.on_checkpoint,  # type: ignore[dict-item]
            Status: self.on_status,  # type: ignore[dict-item]
            Fetch: self.on_fetch,  # type: ignore[dict-item]
            CatchUp: self.on_catch_up,  # type: ignore[dict-item]
            ViewChange: self.on_view_change,  # type: ignore[dict-item]
            NewView: self.on_new_view,  # type: ignore[dict-item]
        }

    # ---- driver API ------------------------------------------------------------------------

    def step(self, message: Message, now_ms: float) -> Ready:
        """Take one message from the network."""
        self._now = now_ms
        if self.next_status_ms is None:
            self._first_input(now_ms)
            self.next_status_ms = now_ms + self.config.timers.status_interval_ms
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
        if self.next_status_ms is None:
            self._first_input(now_ms)
        deferred, self._deferred = self._deferred, []
        for work in deferred:
            work()
        if self.next_status_ms is None or now_ms >= self.next_status_ms:
            self._gossip_status()
        if self.propose_at_ms is not None and now_ms >= self.propose_at_ms:
            self.propose_at_ms = None
            self._propose()
        for slot in list(self.slots.values()):
            if slot.fast_deadline_ms is not None and now_ms >= slot.fast_deadline_ms:
                slot.fast_deadline_ms = None
                self.metrics["fast_path.timeouts"] += 1
                self._fast_missed.append(True)
                self._certify_prepare(slot, allow_wait=False)
        if self.exec_deadline_ms is not None and now_ms >= self.exec_deadline_ms:
            self.exec_deadline_ms = None
            if self.view_active and self.pending and not self.is_leader:
                self._start_view_change(self.view + 1, "execution timer expired")
        if self.vc_resend_ms is not None and now_ms >= self.vc_resend_ms:
            self.vc_resend_ms = None
            if not self.view_active:
                self.metrics["view_changes.resent"] += 1
                self._send_view_change()
        if self.vc_deadline_ms is not None and now_ms >= self.vc_deadline_ms:
            self.vc_deadline_ms = None
            self.vc_attempts += 1
            self._start_view_change(self.view + 1, "new-view timer expired")
        return self._flush()

    def _first_input(self, now_ms: float) -> None:
        """The first input since start or restart: the clock is known from here on. Requests a
        restarted replica recovered get a whole execution timeout from now, not from when they
        first arrived before the crash (the shell's clock may have restarted too)."""
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

    def _sign(self, message: Message) -> Message:
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

    def _set_status(self, slot: Slot, status: SlotStatus) -> None:
        if slot.advance(status):
            self._ready.events.append(StatusChanged(slot.seq, slot.view, status, slot.digest))

    def _flush(self) -> Ready:
        ready, self._ready = self._ready, Ready()
        deadlines = [
            d
            for d in (
                self.propose_at_ms,
                self.exec_deadline_ms,
                self.vc_deadline_ms,
                self.vc_resend_ms,
                self.next_status_ms,
            )
            if d is not None
        ]
        if self._deferred:
            deadlines.append(self._now)
        deadlines.extend(
            s.fast_deadline_ms for s in self.slots.values() if s.fast_deadline_ms is not None
        )
        ready.wake_at_ms = min(deadlines) if deadlines else None
        return ready

    def _authentic(self, message: Message) -> bool:
        if isinstance(message, Request):
            if request_bytes(message) > self.config.batch_bytes_max:
                self._drop(message, "request too large")  # no batch could carry it
                return False
            if self._request_valid(message):
                return True
            self._drop(message, "bad client signature")
            return False
        sender = message.replica  # type: ignore[attr-defined]
        if sender == self.id or sender not in self.config.replica_ids:
            self._drop(message, "bad sender")
            return False
        if not self.crypto.verify_replica(sender, message.signing_payload(), message.sig):  # type: ignore[attr-defined]
            self._drop(message, "bad signature")
            return False
        return True

    def _request_valid(self, request: Request) -> bool:
        """Verify a client's signature once per replica, however often the request is seen."""
        key = request.sig
        if key in self._verified_requests:
            return True
        if not self.crypto.verify_client(request.client, request.signing_payload(), request.sig):
            return False
        if len(self._verified_requests) >= VERIFIED_REQUESTS_MAX:
            self._verified_requests.pop(next(iter(self._verified_requests)))
        self._verified_requests[key] = None
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

    def _restart_exec_timer(self) -> None:
        """Backup: suspect the leader once the oldest request it knows has waited a timeout.

        The deadline runs from the oldest pending request's arrival (or the start of the view,
        whichever is later), not from the last execution: a leader that keeps ordering other
        clients' requests would otherwise never be suspected of censoring one.
        """
        if self.pending and self.view_active and not self.is_leader:
            oldest_ms = self._pending_since_ms[next(iter(self.pending))]
            start_ms = max(oldest_ms, self._view_started_ms)
            self.exec_deadline_ms = start_ms + self.config.timers.execution_timeout_ms
        else:
            self.exec_deadline_ms = None

    def _add_pending(self, request: Request, *, from_client: bool) -> bool:
        """Remember an unexecuted request; False if its client already has too many pending
        (only for requests straight from a client: a batch the protocol accepted is kept)."""
        if request.key in self.pending:
            return True
        if from_client and self._pending_per_client[request.client] >= PENDING_PER_CLIENT_MAX:
            return False
        self.pending[request.key] = request
        self._pending_since_ms[request.key] = self._now
        self._pending_per_client[request.client] += 1
        return True

    def _remove_pending(self, key: RequestKey) -> None:
        if self.pending.pop(key, None) is None:
            return
        del self._pending_since_ms[key]
        client = key[0]
        self._pending_per_client[client] -= 1
        if not self._pending_per_client[client]:
            del self._pending_per_client[client]

    def _forget_executed_pending(self) -> None:
        """After a state transfer: what the new state executed is no longer pending."""
        for key in [k for k in self.pending if self.bank.is_executed(*k)]:
            self._remove_pending(key)

    # ---- requests --------------------------------------------------------------------------

    def on_request(self, request: Request) -> None:
        if request.read_only:
            if is_read_only(request.op):
                self._reply([(request, self.bank.read(request.op, request.args))])
            else:
                self._drop(request, "read-only request for a write")
            return
        if self.bank.is_executed(request.client, request.timestamp):
            cached = self.bank.cached_reply(request.client, request.timestamp)
            if cached is not None:
                self._reply([(request, cached)])
            return
        if not self._add_pending(request, from_client=True):
            self._drop(request, "client has too many pending requests")
            return
        if self.is_leader and self.view_active:
            if request.key not in self.proposed and request.key not in self.proposal_queue:
                self.proposal_queue.append(request.key)
            if self.propose_at_ms is None:
                self.propose_at_ms = self._now + self.config.timers.batch_wait_ms
        elif not self.is_leader:
            self._forward(request)
            if self.exec_deadline_ms is None:
                self._restart_exec_timer()

    def _forward(self, request: Request) -> None:
        """Backup: hand a request to the leader at most once per view and execution timeout.

        Copies keep arriving (the client's retransmissions, other replicas' forwards, echoes
        from a Byzantine peer or a twin); forwarding each one lets two replicas that disagree
        about the leader reflect a request between them, copy for copy, without end. A forward
        lost on the way is covered by the client's retransmission after the timeout, and a
        leader that ignores it by the execution timer.
        """
        last = self._forwarded.get(request.key)
        if last is not None and last[0] == self.view and self._now - last[1] < self.config.timers.execution_timeout_ms:
            self.metrics["requests.forward_suppressed"] += 1
            return
        if len(self._forwarded) >= FORWARDED_MAX:
            kept = {k: v for k, v in self._forwarded.items() if k in self.pending}
            self._forwarded = kept if len(kept) < FORWARDED_MAX // 2 else {}
        self._forwarded[request.key] = (self.view, self._now)
        self._send(self.leader, request)

    def _propose(self) -> None:
        """Leader: pre-prepare queued requests, up to the pipelining window and the watermark."""
        while (
            self.proposal_queue
            and self.view_active
            and self.next_seq - 1 - self.last_executed < self.config.inflight_max
            and self.next_seq <= self.high_watermark
        ):
            batch: list[Request] = []
            size = 0
            while self.proposal_queue and len(batch) < self.config.batch_size_max:
                request = self.pending.get(self.proposal_queue[0])
                if request is None or request.key in self.proposed:
                    self.proposal_queue.popleft()
                    continue
                size += request_bytes(request)
                if batch and size > self.config.batch_bytes_max:
                    break  # the next batch starts with it
                self.proposal_queue.popleft()
                batch.append(request)
                self.proposed.add(request.key)
            if not batch:
                return
            seq, self.next_seq = self.next_seq, self.next_seq + 1
            self._pre_prepare(seq, tuple(batch))

    def _pre_prepare(self, seq: int, batch: tuple[Request, ...]) -> None:
        digest = batch_digest(batch)
        self.metrics["batches.proposed"] += 1
        self.metrics["batches.requests"] += len(batch)
        self._broadcast(self._sign(PrePrepare(self.view, seq, digest, batch, self.id)))
        self._accept(self._slot(seq), self.view, digest, batch)

    # ---- normal case: backups ---------------------------------------------------------------

    def _in_view(self, message: Message, view: int) -> bool:
        if view != self.view or not self.view_active:
            self._drop(message, "wrong view")
            return False
        if message.replica != self.config.leader_of(view):  # type: ignore[attr-defined]
            self._drop(message, "not from the leader")
            return False
        return True

    def on_pre_prepare(self, pp: PrePrepare) -> None:
        if not self._in_view(pp, pp.view):
            return
        if not self.stable_seq < pp.seq <= self.high_watermark:
            self._drop(pp, "outside watermarks")
            return
        if not pp.batch:
            self._drop(pp, "batch size")
            return
        reason = self._batch_invalid(pp.batch)
        if reason is not None:
            self._drop(pp, reason)
            return
        if pp.digest != batch_digest(pp.batch):
            self._drop(pp, "digest mismatch")
            return
        slot = self._slot(pp.seq)
        if slot.view == pp.view:
            if slot.digest != pp.digest:
                self._drop(pp, "conflicting pre-prepare")
            return
        if slot.committed is not None and batch_digest(slot.committed.batch) != pp.digest:
            self._drop(pp, "conflicts with a committed batch")
            return
        self._accept(slot, pp.view, pp.digest, pp.batch)

    def _batch_invalid(self, batch: tuple[Request, ...]) -> str | None:
        """Why a proposed batch (a PRE-PREPARE's, or one NEW-VIEW re-proposes) may not be
        ordered, or None: every request in it must be an ordered request its client signed,
        and the batch must fit the budgets every honest leader keeps."""
        if len(batch) > self.config.batch_size_max:
            return "batch size"
        if batch_bytes(batch) > self.config.batch_bytes_max:
            return "batch too large"
        if any(r.read_only or not self._request_valid(r) for r in batch):
            return "bad request in batch"
        return None

    def _accept(self, slot: Slot, view: int, digest: bytes, batch: tuple[Request, ...]) -> None:
        """Take (view, seq, batch) as this view's proposal and sign a prepare share for it."""
        if slot.committed is not None and batch_digest(slot.committed.batch) != digest:
            # Never vote for (nor report) anything but what this replica knows committed here.
            self.metrics["dropped.proposal over a committed slot"] += 1
            return
        slot.accept(view, digest, batch)
        slot.proposed_at_ms = self._now
        self._ready.events.append(Accepted(view, slot.seq, batch))
        self._ready.events.append(StatusChanged(slot.seq, view, slot.status, digest))
        for request in batch:
            if not self.bank.is_executed(request.client, request.timestamp):
                self._add_pending(request, from_client=False)
            self.proposed.add(request.key)
        if self.is_leader:
            self._deferred.append(lambda: self._own_shares(slot, view, digest))
            return
        if self.exec_deadline_ms is None:
            self._restart_exec_timer()
        share, fast_share = self._prepare_shares(view, slot.seq, digest)
        vote = PrepareShare(view, slot.seq, digest, share, fast_share, self.id)
        self._send(self.leader, self._sign(vote))
        early, slot.early = slot.early, []
        for message in early:
            self._handlers[type(message)](message)

    def _prepare_shares(self, view: int, seq: int, digest: bytes) -> tuple[bytes, bytes]:
        message = prepare_message(view, seq, digest)
        fast_share = self.crypto.sign_fast_share(message) if self.config.fast_path else b""
        return self.crypto.sign_share(message), fast_share

    def _own_shares(self, slot: Slot, view: int, digest: bytes) -> None:
        """Leader, deferred from `_accept`: its own vote for the batch it proposed."""
        if slot.view != view or slot.digest != digest or slot.certified or self.id in slot.prepare_shares:
            return
        share, fast_share = self._prepare_shares(view, slot.seq, digest)
        slot.prepare_shares[self.id] = share
        if fast_share:
            slot.fast_shares[self.id] = fast_share
        self._certify_prepare(slot, allow_wait=True)

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

    def on_prepare_certificate(self, pc: PrepareCertificate) -> None:
        found = self._certified_slot(pc, pc.view, pc.seq, pc.digest, ProofKind.PREPARE, pc.certificate)
        if found is not None:
            self._prepared(*found)

    def on_commit_certificate(self, cc: CommitCertificate) -> None:
        found = self._certified_slot(cc, cc.view, cc.seq, cc.digest, ProofKind.COMMIT, cc.certificate)
        if found is not None:
            self._committed(*found)

    def on_fast_commit(self, fc: FastCommit) -> None:
        found = self._certified_slot(fc, fc.view, fc.seq, fc.digest, ProofKind.FAST, fc.aggregate)
        if found is not None:
            self._committed(*found)

    def _record_proof(self, slot: Slot, proof: Proof) -> None:
        slot.record_prepared(proof)
        self._ready.events.append(ProofStored(proof))

    def _prepared(self, slot: Slot, proof: Proof) -> None:
        self._record_proof(slot, proof)
        self._set_status(slot, SlotStatus.PREPARED)
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
        self._set_status(slot, SlotStatus.COMMITTED)
        self._execute_ready()

    # ---- normal case: collector --------------------------------------------------------------

    def _collector_slot(self, message: Message, view: int, seq: int, digest: bytes) -> Slot | None:
        if view != self.view or not self.view_active or not self.is_leader:
            self._drop(message, "not the collector")
            return None
        slot = self.slots.get(seq)
        if slot is None or slot.view != view or slot.digest != digest:
            self._drop(message, "share for an unknown proposal")
            return None
        return slot

    def on_prepare_share(self, ps: PrepareShare) -> None:
        slot = self._collector_slot(ps, ps.view, ps.seq, ps.digest)
        if slot is None or slot.certified or ps.replica in slot.prepare_shares:
            return
        slot.prepare_shares[ps.replica] = ps.share
        if ps.fast_share:
            slot.fast_shares[ps.replica] = ps.fast_share
        self._certify_prepare(slot, allow_wait=True)

    def _fast_path_worth_waiting(self, seq: int) -> bool:
        if sum(self._fast_missed) < FAST_PATH_GIVE_UP:
            return True
        if seq % FAST_PATH_PROBE_EVERY == 0:
            return True
        self.metrics["fast_path.skipped"] += 1
        return False

    def _fast_path_wait_ms(self) -> float:
        """concord-bft's rule: mean + 2σ of recent waits for the last shares, clamped."""
        timers = self.config.timers
        if len(self._fast_waits_ms) < 2:
            return timers.fast_path_timeout_max_ms
        waits = self._fast_waits_ms
        # Plain floats: `statistics.pstdev` is exact (fractions) and showed in the leader's profile.
        mean = sum(waits) / len(waits)
        deviation = math.sqrt(sum((w - mean) ** 2 for w in waits) / len(waits))
        wait = mean + 2 * deviation
        return min(max(wait, timers.fast_path_timeout_min_ms), timers.fast_path_timeout_max_ms)

    def _certify_prepare(self, slot: Slot, *, allow_wait: bool) -> None:
        """Collector: turn prepare shares into a fast commit (all n) or a certificate (2f+1)."""
        if slot.certified or slot.view != self.view or not self.is_leader:
            return
        count = len(slot.prepare_shares)
        message = prepare_message(slot.view, slot.seq, slot.digest)
        if self.config.fast_path and len(slot.fast_shares) == self.config.fast_quorum:
            if slot.quorum_at_ms is not None:
                self._fast_waits_ms.append(self._now - slot.quorum_at_ms)
            aggregate = self.crypto.aggregate_all(slot.fast_shares, message)
            if aggregate is not None:
                # Out first, checked after (module docstring): every backup checks it anyway.
                slot.certified = True
                slot.fast_deadline_ms = None
                self._broadcast(self._sign(FastCommit(slot.view, slot.seq, slot.digest, aggregate, self.id)))
                proof = Proof(slot.view, slot.seq, slot.batch, ProofKind.FAST, aggregate)
                self._deferred.append(lambda: self._check_fast_commit(slot, proof, message))
                return
            self._fast_path_failed(slot, message)
            count = len(slot.prepare_shares)
        if count < self.config.quorum:
            return
        if slot.quorum_at_ms is None:
            slot.quorum_at_ms = self._now
        if (
            self.config.fast_path
            and allow_wait
            and count < self.config.fast_quorum
            and not slot.fast_failed
            and self._fast_path_worth_waiting(slot.seq)
        ):
            if slot.fast_deadline_ms is None:
                slot.fast_deadline_ms = self._now + self._fast_path_wait_ms()
            return
        certificate, bad = self.crypto.combine(slot.prepare_shares, message)
        if certificate is None:
            for replica in bad:
                slot.prepare_shares.pop(replica, None)
            self.metrics["shares.invalid"] += len(bad)
            return
        slot.certified = True
        slot.fast_deadline_ms = None
        self._broadcast(self._sign(PrepareCertificate(slot.view, slot.seq, slot.digest, certificate, self.id)))
        self._prepared(slot, Proof(slot.view, slot.seq, slot.batch, ProofKind.PREPARE, certificate))

    def _check_fast_commit(self, slot: Slot, proof: Proof, message: bytes) -> None:
        """Leader, deferred: commit on the aggregate it sent, or fall back if it is bad."""
        if slot.view != proof.view or slot.committed is not None:
            return
        if self.certifier.aggregate(message, proof.certificate):
            self._fast_missed.append(False)
            self._committed(slot, proof)
            return
        slot.certified = False
        self._fast_path_failed(slot, message)
        self._certify_prepare(slot, allow_wait=False)

    def _fast_path_failed(self, slot: Slot, message: bytes) -> None:
        """Someone's fast share is bad: no fast path for this instance, and a miss."""
        self._fast_missed.append(True)
        self.metrics["fast_path.bad_aggregates"] += 1
        slot.fast_shares.clear()
        slot.fast_failed = True
        self._discard_bad_shares(slot.prepare_shares, message)

    def _discard_bad_shares(self, shares: dict[int, bytes], message: bytes) -> None:
        for replica in [r for r, s in shares.items() if not self.crypto.verify_share(r, message, s)]:
            del shares[replica]
            self.metrics["shares.invalid"] += 1

    def on_commit_share(self, cs: CommitShare) -> None:
        slot = self._collector_slot(cs, cs.view, cs.seq, cs.digest)
        if slot is None or slot.commit_certified or cs.replica in slot.commit_shares:
            return
        slot.commit_shares[cs.replica] = cs.share
        if slot.prepared is not None:
            self._certify_commit(slot)

    def _certify_commit(self, slot: Slot) -> None:
        if slot.commit_certified or len(slot.commit_shares) < self.config.quorum:
            return
        message = commit_message(slot.view, slot.seq, slot.digest)
        certificate, bad = self.crypto.combine(slot.commit_shares, message)
        if certificate is None:
            for replica in bad:
                slot.commit_shares.pop(replica, None)
            self.metrics["shares.invalid"] += len(bad)
            return
        slot.commit_certified = True
        self._broadcast(self._sign(CommitCertificate(slot.view, slot.seq, slot.digest, certificate, self.id)))
        if slot.committed is None:
            self._committed(slot, Proof(slot.view, slot.seq, slot.batch, ProofKind.COMMIT, certificate))

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
        results: list[Result | None] = []
        answers: list[tuple[Request, Result]] = []
        for request in proof.batch:
            result = self.bank.execute(request)
            results.append(result)
            self._remove_pending(request.key)
            self.proposed.discard(request.key)
            if result is not None:
                answers.append((request, result))
        self._reply(answers)
        self.last_executed = slot.seq
        self.metrics["executed.batches"] += 1
        self.metrics["executed.requests"] += len(proof.batch)
        slot.advance(SlotStatus.EXECUTED)
        snapshot = self.bank.snapshot() if slot.seq % self.config.checkpoint_interval == 0 else None
        state_digest = Bank.digest_of(snapshot) if snapshot is not None else b""
        self._ready.events.append(
            Executed(slot.seq, proof.view, proof.batch, tuple(results), state_digest)
        )
        self._ready.events.append(StatusChanged(slot.seq, proof.view, SlotStatus.EXECUTED, slot.digest))
        if snapshot is not None:
            self._take_checkpoint(slot.seq, snapshot, state_digest)

    # ---- checkpoints -----------------------------------------------------------------------

    def _take_checkpoint(self, seq: int, snapshot: bytes, state_digest: bytes) -> None:
        self.snapshots[seq] = snapshot
        share = self.crypto.sign_share(checkpoint_message(seq, state_digest))
        self._broadcast(self._sign(Checkpoint(seq, state_digest, share, self.id)))
        self._vote_checkpoint(seq, state_digest, self.id, share)

    def on_checkpoint(self, cp: Checkpoint) -> None:
        if cp.seq <= self.stable_seq or cp.seq % self.config.checkpoint_interval:
            return
        if cp.seq > self.stable_seq + 2 * self.config.window:
            self._drop(cp, "checkpoint too far ahead")
            return
        self._vote_checkpoint(cp.seq, cp.state_digest, cp.replica, cp.share)

    def _vote_checkpoint(self, seq: int, state_digest: bytes, replica: int, share: bytes) -> None:
        by_digest = self.checkpoint_votes.setdefault(seq, {})
        if any(replica in votes for votes in by_digest.values()):
            return  # one vote per replica per seq, so a liar cannot grow this table
        votes = by_digest.setdefault(state_digest, {})
        votes[replica] = share
        if len(votes) < self.config.quorum:
            return
        certificate, bad = self.crypto.combine(votes, checkpoint_message(seq, state_digest))
        if certificate is None:
            for r in bad:
                votes.pop(r, None)
            return
        self._stabilize(CheckpointProof(seq, state_digest, certificate), votes)

    def _stabilize(self, proof: CheckpointProof, holders: dict[int, bytes] | None = None) -> None:
        if proof.seq <= self.stable_seq:
            return
        self.stable = proof
        for seq in [s for s in self.slots if s <= proof.seq]:
            del self.slots[seq]
        for seq in [s for s in self.checkpoint_votes if s <= proof.seq]:
            del self.checkpoint_votes[seq]
        for seq in [s for s in self.snapshots if s < proof.seq]:
            del self.snapshots[seq]
        self.next_seq = max(self.next_seq, proof.seq + 1)
        self._ready.events.append(CheckpointStable(proof, self.snapshots.get(proof.seq)))
        others = sorted(r for r in holders or () if r != self.id)
        if self.last_executed < proof.seq and others:
            self._fetch_from(others[0])

    # ---- catch-up --------------------------------------------------------------------------

    def _gossip_status(self) -> None:
        self.next_status_ms = self._now + self.config.timers.status_interval_ms
        stuck = self.last_executed == self._executed_at_last_status
        self._executed_at_last_status = self.last_executed
        ahead = sorted(r for r, seq in self.peer_progress.items() if seq > self.last_executed)
        if stuck and ahead:
            # Rotate through the peers that claim to be ahead: one that lies about its progress
            # wastes a fetch now and then, but cannot keep this replica from catching up.
            self._fetch_rounds += 1
            self._fetch_from(ahead[self._fetch_rounds % len(ahead)])
        self._broadcast(self._sign(Status(self.view, self.last_executed, self.stable_seq, self.id)))

    def _fetch_from(self, replica: int) -> None:
        self.metrics["catch_up.fetches"] += 1
        self._send(replica, self._sign(Fetch(self.last_executed, self.id)))

    def on_status(self, st: Status) -> None:
        self.peer_progress[st.replica] = max(st.last_executed, st.stable_seq)

    def on_fetch(self, fe: Fetch) -> None:
        if fe.after_seq >= self.last_executed:
            return
        # A 70-byte FETCH buys a CATCH-UP of up to a frame: answer each peer at most once per
        # `FETCH_ANSWER_INTERVAL` of the status period (an honest one asks about once a period),
        # and hand out the same signed answer while nothing changed.
        last_ms = self._fetch_answered_ms.get(fe.replica)
        if last_ms is not None and self._now - last_ms < self.config.timers.status_interval_ms * FETCH_ANSWER_INTERVAL:
            self.metrics["catch_up.fetches_refused"] += 1
            return
        self._fetch_answered_ms[fe.replica] = self._now
        key = (fe.after_seq, self.last_executed, self.stable_seq)
        if self._catch_up_cache is None or self._catch_up_cache[0] != key:
            answer = self._catch_up_for(fe.after_seq)
            if answer is None:
                return
            self._catch_up_cache = (key, answer)
        self._send(fe.replica, self._catch_up_cache[1])

    def _catch_up_for(self, after_seq: int) -> CatchUp | None:
        """A signed CATCH-UP for a peer that executed up to `after_seq`, within one frame."""
        checkpoint, snapshot, start = None, b"", after_seq
        if after_seq < self.stable_seq and self.stable is not None:
            snapshot = self.snapshots.get(self.stable.seq, b"")
            if not snapshot or len(snapshot) > BYTES_FIELD_MAX:
                self.metrics["catch_up.snapshot_unavailable"] += 1
                return None
            checkpoint, start = self.stable, self.stable.seq
        budget = MESSAGE_SIZE_MAX - len(snapshot) - CATCH_UP_ENVELOPE_BYTES
        entries: list[Proof] = []
        for seq in range(start + 1, self.last_executed + 1):
            slot = self.slots.get(seq)
            if slot is None or slot.committed is None or len(entries) >= CATCH_UP_ENTRIES_MAX:
                break
            budget -= batch_bytes(slot.committed.batch) + VIEW_CHANGE_ENTRY_BYTES
            if budget < 0:
                break
            entries.append(slot.committed)
        if checkpoint is None and not entries:
            return None
        return self._sign(CatchUp(checkpoint, snapshot, tuple(entries), self.id))  # type: ignore[return-value]

    def on_catch_up(self, cu: CatchUp) -> None:
        cp = cu.checkpoint
        if cp is not None and cp.seq > self.last_executed:
            if not self.certifier.checkpoint(cp):
                self._drop(cu, "bad checkpoint certificate")
                return
            if Bank.digest_of(cu.snapshot) != cp.state_digest:
                self._drop(cu, "snapshot does not match its certificate")
                return
            self._install_snapshot(cp, cu.snapshot)
        for proof in cu.entries:
            if proof.seq <= self.last_executed or proof.seq <= self.stable_seq:
                continue
            if proof.kind not in ProofKind.COMMITTED or not self.certifier.proof(proof):
                self._drop(cu, "bad committed entry")
                return
            slot = self._slot(proof.seq)
            if slot.committed is None:
                digest = batch_digest(proof.batch)
                if slot.digest != digest:
                    slot.view, slot.digest, slot.batch = proof.view, digest, proof.batch
                self.metrics["catch_up.entries"] += 1
                self._committed(slot, proof)

    def _install_snapshot(self, cp: CheckpointProof, snapshot: bytes) -> None:
        self.bank = Bank.from_snapshot(snapshot)
        self.last_executed = cp.seq
        self.snapshots[cp.seq] = snapshot
        self._forget_executed_pending()
        self._restart_exec_timer()
        self.metrics["catch_up.snapshots"] += 1
        self._ready.events.append(StateTransferred(cp, snapshot))
        self._stabilize(cp)
        self._execute_ready()

    # ---- view change -----------------------------------------------------------------------

    def _start_view_change(self, new_view: int, reason: str) -> None:
        if new_view <= self.view:
            return
        self.view = new_view
        self.view_active = False
        self._ready.events.append(ViewEntered(new_view, active=False))
        self.exec_deadline_ms = None
        self.vc_deadline_ms = None
        self.proposal_queue.clear()
        self.metrics["view_changes.started"] += 1
        self._ready.events.append(ViewChangeStarted(new_view, reason))
        self._send_view_change()

    def _send_view_change(self) -> None:
        """(Re)send VIEW-CHANGE for the view this replica is moving to, from its current state.

        It is re-sent every `view_change_resend_ms` until a NEW-VIEW is installed: view
        changes lost in a partition, or by a replica that crashed meanwhile, must not leave
        everyone waiting for a quorum that no one holds.
        """
        low = self.stable_seq
        prepared = tuple(
            s.prepared for seq, s in sorted(self.slots.items()) if seq > low and s.prepared is not None
        )
        preprepared = tuple(
            PrePrepared(s.view, seq, s.batch)
            for seq, s in sorted(self.slots.items())
            if seq > low and s.view > 0
        )
        vc = self._sign(ViewChange(self.view, self.stable, prepared, preprepared, self.id))
        self.vc_resend_ms = self._now + self.config.timers.view_change_resend_ms
        self._broadcast(vc)
        self._record_view_change(vc)  # type: ignore[arg-type]

    def on_view_change(self, vc: ViewChange) -> None:
        if vc.new_view < self.view or (vc.new_view == self.view and self.view_active):
            self._help_replica_behind(vc)
            return
        if vc.new_view > self.view + self.config.n * 4:
            self._drop(vc, "view too far ahead")
            return
        reason = check_view_change(vc, self.config, self.certifier)
        if reason is not None:
            self._drop(vc, reason)
            return
        self._record_view_change(vc)

    def _help_replica_behind(self, vc: ViewChange) -> None:
        """The sender is still changing to a view this replica has completed or left behind.

        Hand it what it lacks; all of it is signed by its authors, so anyone may relay it: the
        NEW-VIEW of that view if we hold one (or, if we are active in a later view, the latest
        NEW-VIEW), else the VIEW-CHANGEs we collected for it, so it can reach 2f+1 and start
        its own new-view timer instead of waiting for messages nobody will send again.
        """
        # Relayed view changes reach us too (and would be answered again): help each replica
        # with each view at most once per re-send period, so helping cannot become a storm.
        last = self._helped.get((vc.replica, vc.new_view))
        if last is not None and self._now - last < self.config.timers.view_change_resend_ms:
            return
        self._helped[(vc.replica, vc.new_view)] = self._now
        if len(self._helped) > HELPED_MAX:
            self._helped.clear()
        new_view = next((nv for nv in self.new_views if nv.view == vc.new_view), None)
        if new_view is None and self.view_active and self.new_views:
            new_view = self.new_views[-1] if self.new_views[-1].view > vc.new_view else None
        if new_view is not None:
            self._send(vc.replica, new_view)
            return
        for replica, held in self.view_changes.get(vc.new_view, {}).items():
            if replica != vc.replica:
                self._send(vc.replica, held)

    def _record_view_change(self, vc: ViewChange) -> None:
        if vc.new_view > self.view:
            # Of the views above ours, keep each replica's highest only (an honest replica only
            # moves up): a liar cannot hold one VIEW-CHANGE per future view here.
            for view, by in list(self.view_changes.items()):
                held = by.get(vc.replica)
                if view > self.view and held is not None:
                    if view > vc.new_view:
                        return
                    del by[vc.replica]
                    if not by:
                        del self.view_changes[view]
        self.view_changes.setdefault(vc.new_view, {})[vc.replica] = vc
        # Join: f+1 replicas want a higher view, so at least one honest one does.
        higher = {r: v for v, by in self.view_changes.items() if v > self.view for r in by}
        if len(higher) >= self.config.join_quorum:
            self._start_view_change(min(higher.values()), "f+1 replicas moved on")
            return
        collected = self.view_changes.get(self.view, {})
        if self.view_active or len(collected) < self.config.quorum:
            return
        if self.vc_deadline_ms is None:
            timeout = self.config.timers.view_change_timeout_ms * 2**self.vc_attempts
            self.vc_deadline_ms = self._now + timeout
        if self.is_leader and not any(nv.view == self.view for nv in self.new_views):
            chosen = sorted(collected.values(), key=lambda v: (v.replica != self.id, v.replica))
            chosen = chosen[: self.config.quorum]
            proposals = select_proposals(self.config, chosen)
            nv = self._sign(NewView(self.view, tuple(chosen), proposals, self.id))
            self._broadcast(nv)
            self._install_new_view(nv)  # type: ignore[arg-type]

    def _keep_new_view(self, nv: NewView) -> None:
        self.new_views.append(nv)
        del self.new_views[:-NEW_VIEWS_KEPT]

    def on_new_view(self, nv: NewView) -> None:
        if nv.view < self.view or (nv.view == self.view and self.view_active):
            return
        if nv.replica != self.config.leader_of(nv.view):
            self._drop(nv, "new-view not from the new leader")
            return
        senders = {vc.replica for vc in nv.view_changes}
        if len(senders) != len(nv.view_changes) or len(senders) < self.config.quorum:
            self._drop(nv, "new-view without 2f+1 distinct view changes")
            return
        for vc in nv.view_changes:
            if vc.new_view != nv.view or vc.replica not in self.config.replica_ids:
                self._drop(nv, "new-view carries a view change for another view")
                return
            # The receiver's own VIEW-CHANGE too: the leader could put words in its mouth.
            if not self.crypto.verify_replica(vc.replica, vc.signing_payload(), vc.sig):
                self._drop(nv, "new-view carries a forged view change")
                return
            if check_view_change(vc, self.config, self.certifier) is not None:
                self._drop(nv, "new-view carries an invalid view change")
                return
        if select_proposals(self.config, nv.view_changes) != nv.proposals:
            self._drop(nv, "new-view O does not follow from V")
            return
        if any(p.batch and self._batch_invalid(p.batch) is not None for p in nv.proposals):
            self._drop(nv, "new-view re-proposes an invalid batch")
            return
        self._install_new_view(nv)

    def _install_new_view(self, nv: NewView) -> None:
        self.view = nv.view
        self.view_active = True
        self._view_started_ms = self._now
        self.vc_resend_ms = None
        self._ready.events.append(ViewEntered(nv.view, active=True))
        self.vc_attempts = 0
        self.vc_deadline_ms = None
        self._keep_new_view(nv)
        self.metrics["view_changes.completed"] += 1
        for v in [v for v in self.view_changes if v <= nv.view]:
            del self.view_changes[v]
        checkpoint = select_checkpoint(nv.view_changes)
        if checkpoint is not None and checkpoint.seq > self.stable_seq:
            holders = {vc.replica: b"" for vc in nv.view_changes if vc.checkpoint == checkpoint}
            self._stabilize(checkpoint, holders)
        self._ready.events.append(NewViewInstalled(nv.view, nv))
        last = self.stable_seq
        for proposal in nv.proposals:
            last = max(last, proposal.seq)
            if proposal.seq <= self.stable_seq:
                continue
            self._accept(self._slot(proposal.seq), nv.view, batch_digest(proposal.batch), proposal.batch)
        # Slots above O belonged to the old view and were never certified: forget them.
        for seq in [s for s in self.slots if s > last and self.slots[s].committed is None]:
            del self.slots[seq]
        self.next_seq = max(last, self.last_executed) + 1
        in_o = {r.key for p in nv.proposals for r in p.batch}
        self.proposed = in_o
        if self.is_leader:
            self.proposal_queue = deque(k for k in self.pending if k not in in_o)
            self._propose()
        self._restart_exec_timer()
        self._execute_ready()

    # ---- recovery --------------------------------------------------------------------------

    @classmethod
    def restore(
        cls, replica_id: int, config: ClusterConfig, crypto: NodeCrypto, events: Iterable[Event]
    ) -> Replica:
        """Rebuild a replica after a crash from the durable events it emitted, in order.

        What it accepted, proved, executed and checkpointed, and the view it was in, come back;
        collector shares and timers (volatile) do not. So the restored replica never signs a
        share that conflicts with one it signed before the crash.
        """
        replica = cls(replica_id, config, crypto)
        for event in events:
            if isinstance(event, DURABLE_EVENTS):
                replica._replay(event)
        replica.next_seq = max([replica.last_executed, replica.stable_seq, *replica.slots]) + 1
        if not replica.view_active:
            replica.vc_resend_ms = 0.0  # its VIEW-CHANGE died with it: send it again at once
        replica._ready = Ready()
        return replica

    def _replay(self, event: Event) -> None:
        if isinstance(event, ViewEntered):
            self.view, self.view_active = event.view, event.active
        elif isinstance(event, Accepted):
            if event.seq > self.stable_seq:
                self._slot(event.seq).accept(event.view, batch_digest(event.batch), event.batch)
                for request in event.batch:
                    if not self.bank.is_executed(request.client, request.timestamp):
                        self._add_pending(request, from_client=False)
                    self.proposed.add(request.key)
        elif isinstance(event, ProofStored):
            proof = event.proof
            if proof.seq > self.stable_seq:
                slot = self._slot(proof.seq)
                if slot.view < proof.view:
                    slot.view, slot.digest, slot.batch = proof.view, batch_digest(proof.batch), proof.batch
                slot.record_prepared(proof)
                committed = proof.kind in ProofKind.COMMITTED
                slot.advance(SlotStatus.COMMITTED if committed else SlotStatus.PREPARED)
        elif isinstance(event, Executed):
            if event.seq == self.last_executed + 1:
                for request in event.batch:
                    self.bank.execute(request)
                    self._remove_pending(request.key)
                    self.proposed.discard(request.key)
                self.last_executed = event.seq
                if event.seq in self.slots:
                    self.slots[event.seq].advance(SlotStatus.EXECUTED)
                if event.state_digest:
                    self.snapshots[event.seq] = self.bank.snapshot()
        elif isinstance(event, StateTransferred):
            if event.seq > self.last_executed:
                self.bank = Bank.from_snapshot(event.snapshot)
                self.last_executed = event.seq
                self.snapshots[event.seq] = event.snapshot
                self._forget_executed_pending()
            self._stabilize(event.proof)
        elif isinstance(event, NewViewInstalled):
            self._keep_new_view(event.message)
        elif isinstance(event, CheckpointStable):
            if event.snapshot is not None:
                self.snapshots[event.seq] = event.snapshot
            self._stabilize(event.proof)
