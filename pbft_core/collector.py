"""The collector's part of the normal case (the leader of the view collects every quorum).

Theory of operation. Backups send their prepare shares to the collector instead of to each
other (Linear PBFT). Its PRE-PREPARE says which shares it wants (`Ask`, chosen per sequence
number by `fastpath`'s policy): the 2f+1 share alone when it will not wait for all n; both
shares while the fast path is uncertain (new, or missing now and then), so that a miss falls
back at once; the n-of-n fast share alone once the last attempts all succeeded, which saves
every replica a BLS signature per batch. With all n fast shares before the fast-path timer the
collector sends FAST-COMMIT, their aggregate, and every replica commits after one round; it
sends the aggregate first and checks it after (`Replica` docstring, "work after sending"),
since every backup checks it anyway. Otherwise the slot turns slow: the collector signs its own
2f+1 share and, if it had asked for fast shares alone, sends SLOW-PATH, which each backup
answers with its 2f+1 share (`Replica._vote`): one more message round, paid only on the first
miss after a run of successes. With 2f+1 shares the collector combines a PREPARE certificate;
each replica is then prepared and sends a commit share, and 2f+1 of those make the COMMIT
certificate. Shares are combined optimistically and verified once; only when a combination
fails are shares checked one by one and the bad ones dropped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .certificates import commit_message, prepare_message
from .deadlines import Timer
from .log import Slot
from .messages import (
    Ask,
    CommitCertificate,
    CommitShare,
    FastCommit,
    Message,
    PrepareCertificate,
    PrepareShare,
    Proof,
    ProofKind,
    SlowPath,
)

if TYPE_CHECKING:
    from .replica import Replica


class CollectorRole:
    """`Replica`'s handlers and helpers for collecting shares (mixed into `Replica`)."""

    def _collector_slot(self: Replica, message: Message, view: int, seq: int, digest: bytes) -> Slot | None:
        if view != self.view or not self.view_active or not self.is_leader:
            self._drop(message, "not the collector")
            return None
        slot = self.slots.get(seq)
        if slot is None or slot.view != view or slot.digest != digest:
            self._drop(message, "share for an unknown proposal")
            return None
        return slot

    def on_prepare_share(self: Replica, share: PrepareShare) -> None:
        slot = self._collector_slot(share, share.view, share.seq, share.digest)
        if slot is None or slot.certified:
            return
        counted = False
        if share.fast_share and slot.ask != Ask.SLOW and share.replica not in slot.fast_shares:
            slot.fast_shares[share.replica] = share.fast_share
            counted = True
        if share.share and share.replica not in slot.prepare_shares:
            slot.prepare_shares[share.replica] = share.share
            counted = True
            if slot.ask == Ask.FAST:
                # Its sender gave up on a FAST-COMMIT long after this collector would have (a
                # lost fast share or SLOW-PATH): the slot goes slow now.
                self._fast_path_missed(slot)
        if counted:
            self._certify_prepare(slot)

    def _certify_prepare(self: Replica, slot: Slot) -> None:
        """Collector: turn prepare shares into a fast commit (all n) or a certificate (2f+1)."""
        if slot.certified or slot.view != self.view or not self.is_leader:
            return
        message = prepare_message(slot.view, slot.seq, slot.digest)
        if slot.ask != Ask.SLOW:
            count = len(slot.fast_shares)
            if count == self.config.fast_quorum:
                if self._send_fast_commit(slot, message):
                    return
            elif count >= self.config.quorum and slot.quorum_at_ms is None:
                slot.quorum_at_ms = self._now
                slot.fast_deadline_ms = self._now + self.fast_path.wait_ms()
                self.deadlines.set_earlier(Timer.FAST_PATH, slot.fast_deadline_ms)
            if slot.ask != Ask.SLOW:  # still waiting for all n
                return
        if self.id not in slot.prepare_shares:  # the slot turned slow: the collector's own vote
            slot.prepare_shares[self.id] = self.crypto.sign_share(message)
        if len(slot.prepare_shares) < self.config.quorum:
            return
        certificate = self._combine(slot.prepare_shares, message)
        if certificate is None:
            return
        slot.certified = True
        slot.fast_deadline_ms = None
        self._broadcast(self._sign(PrepareCertificate(slot.view, slot.seq, slot.digest, certificate, self.id)))
        self._prepared(slot, Proof(slot.view, slot.seq, slot.batch, ProofKind.PREPARE, certificate))

    def _send_fast_commit(self: Replica, slot: Slot, message: bytes) -> bool:
        """All n fast shares: send their aggregate (checked after it is out; module docstring).
        False if they do not even aggregate: then this instance takes the slow path."""
        if slot.quorum_at_ms is not None:
            self.fast_path.record_wait(self._now - slot.quorum_at_ms)
        aggregate = self.crypto.aggregate_all(slot.fast_shares, message)
        if aggregate is None:
            self._fast_path_failed(slot, message)
            return False
        slot.certified = True
        slot.fast_deadline_ms = None
        self._broadcast(self._sign(FastCommit(slot.view, slot.seq, slot.digest, aggregate, self.id)))
        proof = Proof(slot.view, slot.seq, slot.batch, ProofKind.FAST, aggregate)
        self._deferred.append(lambda: self._check_fast_commit(slot, proof, message))
        return True

    def _fast_path_timeouts(self: Replica) -> None:
        """The wait for all n shares is over for some slots: they go slow."""
        due = [s for s in self.slots.values() if s.fast_deadline_ms is not None and s.fast_deadline_ms <= self._now]
        for slot in due:
            self.metrics["fast_path.timeouts"] += 1
            self._fast_path_missed(slot)
            self._certify_prepare(slot)
        later = [s.fast_deadline_ms for s in self.slots.values() if s.fast_deadline_ms is not None]
        if later:
            self.deadlines.set_earlier(Timer.FAST_PATH, min(later))

    def _check_fast_commit(self: Replica, slot: Slot, proof: Proof, message: bytes) -> None:
        """Leader, deferred: commit on the aggregate it sent, or fall back if it is bad."""
        if slot.view != proof.view or slot.committed is not None:
            return
        if self.certifier.aggregate(message, proof.certificate):
            self.fast_path.hit()
            self._committed(slot, proof)
            return
        slot.certified = False
        self._fast_path_failed(slot, message)
        self._certify_prepare(slot)

    def _fast_path_missed(self: Replica, slot: Slot) -> None:
        """No fast path for this instance (a miss for the policy): it collects 2f+1 shares."""
        self.fast_path.miss()
        self.metrics["fast_path.misses"] += 1
        if slot.ask == Ask.FAST:  # the backups hold back their 2f+1 shares until asked
            self._broadcast(self._sign(SlowPath(slot.view, slot.seq, slot.digest, self.id)))
        slot.ask = Ask.SLOW
        slot.fast_deadline_ms = None
        slot.fast_shares.clear()

    def _fast_path_failed(self: Replica, slot: Slot, message: bytes) -> None:
        """Someone's fast share is bad: the instance goes slow, and bad 2f+1 shares go too."""
        self.metrics["fast_path.bad_aggregates"] += 1
        self._fast_path_missed(slot)
        for replica in [r for r, s in slot.prepare_shares.items() if not self.crypto.verify_share(r, message, s)]:
            del slot.prepare_shares[replica]
            self.metrics["shares.invalid"] += 1

    def on_commit_share(self: Replica, share: CommitShare) -> None:
        slot = self._collector_slot(share, share.view, share.seq, share.digest)
        if slot is None or slot.commit_certified or share.replica in slot.commit_shares:
            return
        slot.commit_shares[share.replica] = share.share
        if slot.prepared is not None:
            self._certify_commit(slot)

    def _certify_commit(self: Replica, slot: Slot) -> None:
        if slot.commit_certified or len(slot.commit_shares) < self.config.quorum:
            return
        message = commit_message(slot.view, slot.seq, slot.digest)
        certificate = self._combine(slot.commit_shares, message)
        if certificate is None:
            return
        slot.commit_certified = True
        self._broadcast(self._sign(CommitCertificate(slot.view, slot.seq, slot.digest, certificate, self.id)))
        if slot.committed is None:
            self._committed(slot, Proof(slot.view, slot.seq, slot.batch, ProofKind.COMMIT, certificate))

    def _combine(self: Replica, shares: dict[int, bytes], message: bytes) -> bytes | None:
        """Combine 2f+1 shares optimistically; if that fails, drop the bad ones and wait."""
        certificate, bad = self.crypto.combine(shares, message)
        if certificate is None:
            for replica in bad:
                shares.pop(replica, None)
            self.metrics["shares.invalid"] += len(bad)
        return certificate
