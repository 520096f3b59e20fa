"""Per-sequence-number protocol state (one `Slot` per s between the watermarks)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .messages import Message, Proof, ProofKind, Request
from .ready import SlotStatus

_STATUS_ORDER = {s: i for i, s in enumerate(SlotStatus)}


@dataclass
class Slot:
    seq: int
    view: int = 0  # view of the pre-prepare this replica accepted (0: none)
    digest: bytes = b""
    batch: tuple[Request, ...] = ()
    status: SlotStatus = SlotStatus.NONE
    # Collector state for the current view.
    prepare_shares: dict[int, bytes] = field(default_factory=dict)
    fast_shares: dict[int, bytes] = field(default_factory=dict)
    commit_shares: dict[int, bytes] = field(default_factory=dict)
    proposed_at_ms: float = 0.0
    quorum_at_ms: float | None = None
    fast_deadline_ms: float | None = None
    # Which prepare shares the proposal asked for (`Ask`); SLOW once the fast path is given up
    # for this slot (the collector's miss, a backup's 2f+1 vote after a fast one alone).
    ask: int = 0
    share_due_ms: float | None = None  # backup: when its 2f+1 share follows a fast one alone
    certified: bool = False  # collector already sent this view's prepare certificate / fast commit
    commit_certified: bool = False
    # Evidence, kept across views until garbage-collected.
    prepared: Proof | None = None
    committed: Proof | None = None
    # Certificates that arrived before the pre-prepare they certify.
    early: list[Message] = field(default_factory=list)

    def accept(self, view: int, digest: bytes, batch: tuple[Request, ...]) -> None:
        """Take the pre-prepare of a (new) view; view-local collector state starts afresh.
        The status is the replica's to set (`Replica._set_status`)."""
        self.view, self.digest, self.batch = view, digest, batch
        self.prepare_shares, self.fast_shares, self.commit_shares = {}, {}, {}
        self.quorum_at_ms = self.fast_deadline_ms = self.share_due_ms = None
        self.certified = self.commit_certified = False
        self.ask = 0

    def advance(self, status: SlotStatus, *, reopen: bool = False) -> bool:
        """Move forward to `status`; statuses never go back, except that a new view's proposal
        reopens a slot that has not committed (`reopen`). True if it changed."""
        if reopen and self.committed is None:
            changed, self.status = self.status != status, status
            return changed
        if _STATUS_ORDER[status] <= _STATUS_ORDER[self.status]:
            return False
        self.status = status
        return True

    def record_prepared(self, proof: Proof) -> None:
        if self.prepared is None or proof.view >= self.prepared.view:
            self.prepared = proof
        if proof.kind in ProofKind.COMMITTED and self.committed is None:
            self.committed = proof
