"""Checkpoints: the votes that make one stable, and the snapshots kept for state transfer.

Theory of operation. Every `checkpoint_interval` executed sequence numbers each replica signs
a threshold share over (checkpoint, s, state digest) and broadcasts it. 2f+1 shares for the
same (s, digest) combine into a 96-byte certificate: the checkpoint is *stable*. Each replica
votes once per sequence number, so a liar cannot grow the table by voting for many digests;
a share that turns out bad when combining is dropped and the tally waits for another. Once a
checkpoint is stable, the votes at and below it and the snapshots below it go; the stable
snapshot itself stays, for peers that need a state transfer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .certificates import checkpoint_message
from .crypto import NodeCrypto
from .messages import Checkpoint, CheckpointProof

if TYPE_CHECKING:
    from .replica import Replica

Votes = dict[int, bytes]  # replica -> its checkpoint share


class CheckpointTally:
    def __init__(self, crypto: NodeCrypto, quorum: int) -> None:
        self.crypto = crypto
        self.quorum = quorum
        self.votes: dict[int, dict[bytes, Votes]] = {}  # seq -> state digest -> votes
        self.snapshots: dict[int, bytes] = {}

    def vote(self, seq: int, state_digest: bytes, replica: int, share: bytes) -> tuple[CheckpointProof, Votes] | None:
        """Count one replica's vote; the stable checkpoint and who voted for it, once there."""
        by_digest = self.votes.setdefault(seq, {})
        if any(replica in votes for votes in by_digest.values()):
            return None  # one vote per replica per seq, so a liar cannot grow this table
        votes = by_digest.setdefault(state_digest, {})
        votes[replica] = share
        if len(votes) < self.quorum:
            return None
        certificate, bad = self.crypto.combine(votes, checkpoint_message(seq, state_digest))
        if certificate is None:
            for r in bad:
                votes.pop(r, None)
            return None
        return CheckpointProof(seq, state_digest, certificate), votes

    def forget_through(self, seq: int) -> None:
        """`seq` is stable: drop the votes up to it and the snapshots before it."""
        for old in [s for s in self.votes if s <= seq]:
            del self.votes[old]
        for old in [s for s in self.snapshots if s < seq]:
            del self.snapshots[old]


class CheckpointRole:
    """`Replica`'s handlers for checkpoints (mixed into `Replica`)."""

    def _take_checkpoint(self: Replica, seq: int, snapshot: bytes, state_digest: bytes) -> None:
        self.snapshots[seq] = snapshot
        share = self.crypto.sign_share(checkpoint_message(seq, state_digest))
        self._broadcast(self._sign(Checkpoint(seq, state_digest, share, self.id)))
        self._vote_checkpoint(seq, state_digest, self.id, share)

    def on_checkpoint(self: Replica, checkpoint: Checkpoint) -> None:
        if checkpoint.seq <= self.stable_seq or checkpoint.seq % self.config.checkpoint_interval:
            return
        if checkpoint.seq > self.stable_seq + 2 * self.config.window:
            self._drop(checkpoint, "checkpoint too far ahead")
            return
        self._vote_checkpoint(checkpoint.seq, checkpoint.state_digest, checkpoint.replica, checkpoint.share)

    def _vote_checkpoint(self: Replica, seq: int, state_digest: bytes, replica: int, share: bytes) -> None:
        stable = self.checkpoints.vote(seq, state_digest, replica, share)
        if stable is not None:
            self._stabilize(*stable)
