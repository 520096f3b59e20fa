"""Answering FETCH: what a replica hands a peer that fell behind, and how often.

Theory of operation. A replica that made no progress over a status interval while a peer
reports more executed FETCHes from that peer (`Replica._gossip_status`). The answer, CATCH-UP,
is a certified snapshot if the asker is below our stable checkpoint, then the committed batches
above it, each with its certificate; nothing in it is trusted without its certificate.

A 70-byte FETCH buys an answer of up to a frame, so answering is bounded three ways: each
peer is answered at most once per `FETCH_ANSWER_INTERVAL` of the status period (an honest one
asks about once a period); the answer holds at most `CATCH_UP_ENTRIES_MAX` entries and fits one
frame; and while nothing changed the same signed answer is handed out again, not re-signed.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from .bank import Bank
from .config import VIEW_CHANGE_ENTRY_BYTES, Timers
from .deadlines import Timer
from .log import Slot
from .messages import (
    BYTES_FIELD_MAX,
    MESSAGE_SIZE_MAX,
    CatchUp,
    CheckpointProof,
    Fetch,
    Proof,
    ProofKind,
    Status,
    batch_bytes,
)
from .ready import StateTransferred

if TYPE_CHECKING:
    from .replica import Replica

CATCH_UP_ENTRIES_MAX = 128
FETCH_ANSWER_INTERVAL = 0.5  # of the status interval
CATCH_UP_ENVELOPE_BYTES = 64 * 1024  # a CATCH-UP's checkpoint, headers, sender and signature

AnswerKey = tuple[int, int, int]  # (asker's last executed, our last executed, our stable seq)


class FetchAnswers:
    def __init__(self, timers: Timers, metrics: Counter[str]) -> None:
        self.timers = timers
        self.metrics = metrics
        self._answered_ms: dict[int, float] = {}  # peer -> when we last answered it
        self._cached: tuple[AnswerKey, CatchUp] | None = None

    def admit(self, peer: int, now_ms: float) -> bool:
        """May `peer` have an answer now? (module docstring)"""
        last_ms = self._answered_ms.get(peer)
        if last_ms is not None and now_ms - last_ms < self.timers.status_interval_ms * FETCH_ANSWER_INTERVAL:
            self.metrics["catch_up.fetches_refused"] += 1
            return False
        self._answered_ms[peer] = now_ms
        return True

    def cached(self, key: AnswerKey) -> CatchUp | None:
        return self._cached[1] if self._cached is not None and self._cached[0] == key else None

    def remember(self, key: AnswerKey, answer: CatchUp) -> None:
        self._cached = (key, answer)


def committed_entries(slots: dict[int, Slot], start: int, last_executed: int, snapshot_bytes: int) -> list[Proof]:
    """The committed batches after `start`, as many as fit one CATCH-UP beside the snapshot."""
    budget = MESSAGE_SIZE_MAX - snapshot_bytes - CATCH_UP_ENVELOPE_BYTES
    entries: list[Proof] = []
    for seq in range(start + 1, last_executed + 1):
        slot = slots.get(seq)
        if slot is None or slot.committed is None or len(entries) >= CATCH_UP_ENTRIES_MAX:
            break
        budget -= batch_bytes(slot.committed.batch) + len(slot.committed.certificate) + VIEW_CHANGE_ENTRY_BYTES
        if budget < 0:
            break
        entries.append(slot.committed)
    return entries


class CatchUpRole:
    """`Replica`'s status gossip, FETCH answers and CATCH-UP handling (mixed into `Replica`)."""

    def _gossip_status(self: Replica) -> None:
        self.deadlines.set(Timer.STATUS, self._now + self.config.timers.status_interval_ms)
        stuck = self.last_executed == self._executed_at_last_status
        self._executed_at_last_status = self.last_executed
        ahead = sorted(r for r, seq in self.peer_progress.items() if seq > self.last_executed)
        if stuck and ahead:
            # Rotate through the peers that claim to be ahead: one that lies about its progress
            # wastes a fetch now and then, but cannot keep this replica from catching up.
            self._fetch_rounds += 1
            self._fetch_from(ahead[self._fetch_rounds % len(ahead)])
        self._broadcast(self._sign(Status(self.view, self.last_executed, self.stable_seq, self.id)))

    def _fetch_from(self: Replica, replica: int) -> None:
        self.metrics["catch_up.fetches"] += 1
        self._send(replica, self._sign(Fetch(self.last_executed, self.id)))

    def on_status(self: Replica, status: Status) -> None:
        self.peer_progress[status.replica] = max(status.last_executed, status.stable_seq)

    def on_fetch(self: Replica, fetch: Fetch) -> None:
        if fetch.after_seq >= self.last_executed or not self.fetch_answers.admit(fetch.replica, self._now):
            return
        key = (fetch.after_seq, self.last_executed, self.stable_seq)
        answer = self.fetch_answers.cached(key)
        if answer is None:
            answer = self._catch_up_for(fetch.after_seq)
            if answer is None:
                return
            self.fetch_answers.remember(key, answer)
        self._send(fetch.replica, answer)

    def _catch_up_for(self: Replica, after_seq: int) -> CatchUp | None:
        """A signed CATCH-UP for a peer that executed up to `after_seq`, within one frame."""
        checkpoint, snapshot, start = None, b"", after_seq
        if after_seq < self.stable_seq and self.stable is not None:
            snapshot = self.snapshots.get(self.stable.seq, b"")
            if not snapshot or len(snapshot) > BYTES_FIELD_MAX:
                self.metrics["catch_up.snapshot_unavailable"] += 1
                return None
            checkpoint, start = self.stable, self.stable.seq
        entries = committed_entries(self.slots, start, self.last_executed, len(snapshot))
        if checkpoint is None and not entries:
            return None
        return self._sign(CatchUp(checkpoint, snapshot, tuple(entries), self.id))

    def on_catch_up(self: Replica, catch_up: CatchUp) -> None:
        checkpoint = catch_up.checkpoint
        if checkpoint is not None and checkpoint.seq > self.last_executed:
            if not self.certifier.checkpoint(checkpoint):
                self._drop(catch_up, "bad checkpoint certificate")
                return
            if Bank.digest_of(catch_up.snapshot) != checkpoint.state_digest:
                self._drop(catch_up, "snapshot does not match its certificate")
                return
            self._install_snapshot(checkpoint, catch_up.snapshot)
        for proof in catch_up.entries:
            if proof.seq <= self.last_executed or proof.seq <= self.stable_seq:
                continue
            if proof.kind not in ProofKind.COMMITTED or not self.certifier.proof(proof):
                self._drop(catch_up, "bad committed entry")
                return
            slot = self._slot(proof.seq)
            if slot.committed is None:
                self.metrics["catch_up.entries"] += 1
                self._committed(slot, proof)

    def _install_snapshot(self: Replica, checkpoint: CheckpointProof, snapshot: bytes) -> None:
        self._adopt_snapshot(checkpoint.seq, snapshot)
        self._restart_exec_timer()
        self.metrics["catch_up.snapshots"] += 1
        self._ready.events.append(StateTransferred(checkpoint, snapshot))
        self._stabilize(checkpoint)
        self._execute_ready()
