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

from .certificates import Certifier
from .config import ClusterConfig
from .messages import CheckpointProof, Proposal, Request, ViewChange, batch_digest


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
