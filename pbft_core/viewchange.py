"""View change: what a VIEW-CHANGE may claim, and the one way to compute a NEW-VIEW's O.

Theory of operation. A backup that suspects the leader of view v stops taking part in v and
sends VIEW-CHANGE(v+1) carrying (1) its stable checkpoint with its certificate, (2) for each
sequence number above it, its best proof that a batch *prepared* there (a 2f+1 prepare
certificate, an n-of-n fast aggregate, or a commit certificate) and (3) the latest pre-prepare it
*accepted* there. The leader of v+1 gathers 2f+1 valid ones and sends NEW-VIEW(v+1, V, O); every
backup recomputes O from V with `select_proposals` and rejects a NEW-VIEW whose O differs.

Choosing the batch for sequence number s (above the highest checkpoint in V):

- a prepared proof from any member of V is a candidate at its view;
- a pre-prepare reported by at least f+1 members of V for the same (view, digest) is a
  candidate at that view;
- the candidate with the highest view wins; at equal views a prepared proof beats reports
  (then more reporters, then the smaller digest);
- s with no candidate, up to the highest chosen s, is filled with a no-op.

Why this is safe. If a batch committed at s in view w on the slow path, 2f+1 replicas signed a
commit share, so at least f+1 honest ones hold a prepare certificate for it, and any 2f+1 view
changes include one of them. If it committed on the fast path, all n signed a prepare share, so
every honest member of V (at least f+1) reports that pre-prepare. No conflicting candidate can
exist at view w (a conflicting certificate would need an honest replica to sign twice) and, by
induction, every later new view re-proposed the same batch at s, so the highest candidate is
the committed batch. The pre-prepare rule is what makes the fast path safe under plain PBFT
view change (SBFT's rule); with f+1 reporters, at least one honest replica vouches for it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .certificates import Certifier
from .config import ClusterConfig
from .deadlines import Timer
from .messages import (
    Ask,
    CheckpointProof,
    NewView,
    PrePrepared,
    Proposal,
    Request,
    ViewChange,
    batch_digest,
)
from .ready import NewViewInstalled, ViewChangeStarted

if TYPE_CHECKING:
    from .replica import Replica

HELPED_MAX = 1_000  # (replica, view) pairs remembered as recently helped


def check_view_change(vc: ViewChange, config: ClusterConfig, certifier: Certifier) -> str | None:
    """Why `vc` is invalid, or None. The sender's signature is checked by the caller."""
    if len(vc.encode()) > config.view_change_bytes_max:
        return "view change too large"  # see ClusterConfig.view_change_bytes_max
    low = 0
    if vc.checkpoint is not None:
        if not certifier.checkpoint(vc.checkpoint):
            return "bad checkpoint certificate"
        low = vc.checkpoint.seq
    high = low + config.window
    seen: set[int] = set()
    for proof in vc.prepared:
        if proof.seq in seen or not low < proof.seq <= high or proof.view >= vc.new_view:
            return "prepared proof out of range"
        seen.add(proof.seq)
        if not certifier.proof(proof):
            return f"bad prepared certificate at seq {proof.seq}"
    seen.clear()
    for report in vc.preprepared:
        if report.seq in seen or not low < report.seq <= high or report.view >= vc.new_view:
            return "pre-prepare report out of range"
        seen.add(report.seq)
    return None


def select_checkpoint(view_changes: Sequence[ViewChange]) -> CheckpointProof | None:
    best: CheckpointProof | None = None
    for vc in view_changes:
        if vc.checkpoint is not None and (best is None or vc.checkpoint.seq > best.seq):
            best = vc.checkpoint
    return best


def select_proposals(config: ClusterConfig, view_changes: Sequence[ViewChange]) -> tuple[Proposal, ...]:
    """O for a NEW-VIEW built from `view_changes` (already checked, distinct senders)."""
    checkpoint = select_checkpoint(view_changes)
    low = checkpoint.seq if checkpoint else 0
    # seq -> (view, rank, reporters, -digest-order, batch); max() picks the winner.
    best: dict[int, tuple[int, int, int, bytes, tuple[Request, ...]]] = {}

    def offer(seq: int, candidate: tuple[int, int, int, bytes, tuple[Request, ...]]) -> None:
        current = best.get(seq)
        if current is None or candidate[:4] > current[:4]:
            best[seq] = candidate

    reports: dict[tuple[int, int, bytes], set[int]] = defaultdict(set)
    batches: dict[bytes, tuple[Request, ...]] = {}
    for vc in view_changes:
        for proof in vc.prepared:
            if proof.seq > low:
                digest = batch_digest(proof.batch)
                offer(proof.seq, (proof.view, 1, 0, _invert(digest), proof.batch))
        for report in vc.preprepared:
            if report.seq > low:
                digest = batch_digest(report.batch)
                reports[(report.seq, report.view, digest)].add(vc.replica)
                batches[digest] = report.batch
    for (seq, view, digest), reporters in reports.items():
        if len(reporters) >= config.join_quorum:
            offer(seq, (view, 0, len(reporters), _invert(digest), batches[digest]))
    if not best:
        return ()
    return tuple(
        Proposal(seq, best[seq][4] if seq in best else ()) for seq in range(low + 1, max(best) + 1)
    )


def _invert(digest: bytes) -> bytes:
    """Order so that max() prefers the smaller digest."""
    return bytes(255 - b for b in digest)


# ---- the replica's part ---------------------------------------------------------------------


class ViewChangeRole:
    """`Replica`'s handlers and helpers for changing views (mixed into `Replica`)."""

    def _start_view_change(self: Replica, new_view: int, reason: str) -> None:
        if new_view <= self.view:
            return
        self._enter_view(new_view, active=False)
        self.deadlines.set(Timer.EXECUTION, None)
        self.deadlines.set(Timer.NEW_VIEW, None)
        self._set_proposal_queue(())
        self.metrics["view_changes.started"] += 1
        self._ready.events.append(ViewChangeStarted(new_view, reason))
        self._send_view_change()

    def _new_view_timeout(self: Replica) -> None:
        self.vc_attempts += 1
        self._start_view_change(self.view + 1, "new-view timer expired")

    def _resend_view_change(self: Replica) -> None:
        if not self.view_active:
            self.metrics["view_changes.resent"] += 1
            self._send_view_change()

    def _send_view_change(self: Replica) -> None:
        """(Re)send VIEW-CHANGE for the view this replica is moving to, from its current state.

        It is re-sent every `view_change_resend_ms` until a NEW-VIEW is installed: view
        changes lost in a partition, or by a replica that crashed meanwhile, must not leave
        everyone waiting for a quorum that no one holds.
        """
        low = self.stable_seq
        above = [(seq, s) for seq, s in sorted(self.slots.items()) if seq > low]
        prepared = tuple(s.prepared for _, s in above if s.prepared is not None)
        preprepared = tuple(PrePrepared(s.view, seq, s.batch) for seq, s in above if s.view > 0)
        view_change = self._sign(ViewChange(self.view, self.stable, prepared, preprepared, self.id))
        self.deadlines.set(Timer.VIEW_CHANGE_RESEND, self._now + self.config.timers.view_change_resend_ms)
        self._broadcast(view_change)
        self._record_view_change(view_change)

    def on_view_change(self: Replica, view_change: ViewChange) -> None:
        if view_change.new_view < self.view or (view_change.new_view == self.view and self.view_active):
            self._help_replica_behind(view_change)
            return
        if view_change.new_view > self.view + self.config.n * 4:
            self._drop(view_change, "view too far ahead")
            return
        reason = check_view_change(view_change, self.config, self.certifier)
        if reason is not None:
            self._drop(view_change, reason)
            return
        self._record_view_change(view_change)

    def _help_replica_behind(self: Replica, view_change: ViewChange) -> None:
        """The sender is still changing to a view this replica has completed or left behind.

        Hand it what it lacks; all of it is signed by its authors, so anyone may relay it: the
        NEW-VIEW of that view if we hold one (or, if we are active in a later view, the latest
        NEW-VIEW), else the VIEW-CHANGEs we collected for it, so it can reach 2f+1 and start
        its own new-view timer instead of waiting for messages nobody will send again.
        """
        # Relayed view changes reach us too (and would be answered again): help each replica
        # with each view at most once per re-send period, so helping cannot become a storm.
        asker, view = view_change.replica, view_change.new_view
        last = self._helped.get((asker, view))
        if last is not None and self._now - last < self.config.timers.view_change_resend_ms:
            return
        self._helped[(asker, view)] = self._now
        if len(self._helped) > HELPED_MAX:
            self._helped.clear()
        new_view = next((nv for nv in self.new_views if nv.view == view), None)
        if new_view is None and self.view_active and self.new_views:
            new_view = self.new_views[-1] if self.new_views[-1].view > view else None
        if new_view is not None:
            self._send(asker, new_view)
            return
        for replica, held in self.view_changes.get(view, {}).items():
            if replica != asker:
                self._send(asker, held)

    def _record_view_change(self: Replica, view_change: ViewChange) -> None:
        if view_change.new_view > self.view:
            # Of the views above ours, keep each replica's highest only (an honest replica only
            # moves up): a liar cannot hold one VIEW-CHANGE per future view here.
            for view, by in list(self.view_changes.items()):
                if view > self.view and view_change.replica in by:
                    if view > view_change.new_view:
                        return
                    del by[view_change.replica]
                    if not by:
                        del self.view_changes[view]
        self.view_changes.setdefault(view_change.new_view, {})[view_change.replica] = view_change
        # Join: f+1 replicas want a higher view, so at least one honest one does.
        higher = {r: v for v, by in self.view_changes.items() if v > self.view for r in by}
        if len(higher) >= self.config.join_quorum:
            self._start_view_change(min(higher.values()), "f+1 replicas moved on")
            return
        collected = self.view_changes.get(self.view, {})
        if self.view_active or len(collected) < self.config.quorum:
            return
        if self.deadlines.get(Timer.NEW_VIEW) is None:
            timeout = self.config.timers.view_change_timeout_ms * 2**self.vc_attempts
            self.deadlines.set(Timer.NEW_VIEW, self._now + timeout)
        if self.is_leader and not any(nv.view == self.view for nv in self.new_views):
            chosen = sorted(collected.values(), key=lambda v: (v.replica != self.id, v.replica))
            chosen = chosen[: self.config.quorum]
            proposals = select_proposals(self.config, chosen)
            new_view = self._sign(NewView(self.view, tuple(chosen), proposals, self.id))
            self._broadcast(new_view)
            self._install_new_view(new_view)

    def on_new_view(self: Replica, new_view: NewView) -> None:
        if new_view.view < self.view or (new_view.view == self.view and self.view_active):
            return
        reason = self._new_view_invalid(new_view)
        if reason is not None:
            self._drop(new_view, reason)
            return
        self._install_new_view(new_view)

    def _new_view_invalid(self: Replica, new_view: NewView) -> str | None:
        if new_view.replica != self.config.leader_of(new_view.view):
            return "new-view not from the new leader"
        senders = {vc.replica for vc in new_view.view_changes}
        if len(senders) != len(new_view.view_changes) or len(senders) < self.config.quorum:
            return "new-view without 2f+1 distinct view changes"
        for vc in new_view.view_changes:
            if vc.new_view != new_view.view or vc.replica not in self.config.replica_ids:
                return "new-view carries a view change for another view"
            # The receiver's own VIEW-CHANGE too: the leader could put words in its mouth.
            if not self.crypto.verify_replica(vc.replica, vc.signing_payload(), vc.sig):
                return "new-view carries a forged view change"
            if check_view_change(vc, self.config, self.certifier) is not None:
                return "new-view carries an invalid view change"
        if select_proposals(self.config, new_view.view_changes) != new_view.proposals:
            return "new-view O does not follow from V"
        if any(p.batch and self.intake.batch_invalid(p.batch) is not None for p in new_view.proposals):
            return "new-view re-proposes an invalid batch"
        return None

    def _install_new_view(self: Replica, new_view: NewView) -> None:
        self._enter_view(new_view.view, active=True)
        self._view_started_ms = self._now
        self.deadlines.set(Timer.VIEW_CHANGE_RESEND, None)
        self.deadlines.set(Timer.NEW_VIEW, None)
        self.vc_attempts = 0
        self._keep_new_view(new_view)
        self.metrics["view_changes.completed"] += 1
        for view in [v for v in self.view_changes if v <= new_view.view]:
            del self.view_changes[view]
        checkpoint = select_checkpoint(new_view.view_changes)
        if checkpoint is not None and checkpoint.seq > self.stable_seq:
            holders = {vc.replica: b"" for vc in new_view.view_changes if vc.checkpoint == checkpoint}
            self._stabilize(checkpoint, holders)
        self._ready.events.append(NewViewInstalled(new_view.view, new_view))
        last = self.stable_seq
        for proposal in new_view.proposals:
            last = max(last, proposal.seq)
            if proposal.seq > self.stable_seq:
                self._accept(
                    self._slot(proposal.seq), new_view.view, batch_digest(proposal.batch), proposal.batch, Ask.SLOW
                )
        # Slots above O belonged to the old view and were never certified: forget them.
        for seq in [s for s in self.slots if s > last and self.slots[s].committed is None]:
            del self.slots[seq]
        self.next_seq = max(last, self.last_executed) + 1
        in_o = {r.key for p in new_view.proposals for r in p.batch}
        self.proposed = in_o
        if self.is_leader:
            self._set_proposal_queue(k for k in self.pending if k not in in_o)
            self._propose()
        self._restart_exec_timer()
        self._execute_ready()
