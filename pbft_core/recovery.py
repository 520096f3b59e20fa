"""Restore and replay: rebuilding a replica after a crash from the durable events it emitted.

Theory of operation. A replica's durable events (`ready.DURABLE_EVENTS`: views entered,
proposals accepted, proofs stored, batches executed, checkpoints made stable, states
transferred, new views installed) are persisted before the messages that follow from them
leave (the shells' loop: persist, then send). Replaying them in order through the same
transition helpers the live path uses brings back what the replica accepted, proved, executed
and checkpointed, and the view it was in; collector shares and timers, which are volatile, do
not. So a restored replica never signs a share that conflicts with one it signed before the
crash. What the helpers output while replaying (events, messages) already happened once and
is discarded.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from .deadlines import Timer
from .messages import batch_digest
from .ready import (
    DURABLE_EVENTS,
    Accepted,
    CheckpointStable,
    Event,
    Executed,
    NewViewInstalled,
    ProofStored,
    Ready,
    StateTransferred,
    ViewEntered,
)

if TYPE_CHECKING:
    from .replica import Replica


def replay(replica: Replica, events: Iterable[Event]) -> None:
    """Bring a fresh `replica` to where the replica that emitted `events` was."""
    for event in events:
        if isinstance(event, DURABLE_EVENTS):
            _replay_one(replica, event)
    replica.next_seq = max([replica.last_executed, replica.stable_seq, *replica.slots]) + 1
    if not replica.view_active:
        # Its VIEW-CHANGE died with it: send it again at once.
        replica.deadlines.set(Timer.VIEW_CHANGE_RESEND, 0.0)
    replica._ready = Ready()


def _replay_one(replica: Replica, event: Event) -> None:
    if isinstance(event, ViewEntered):
        replica._enter_view(event.view, active=event.active)
    elif isinstance(event, Accepted):
        if event.seq > replica.stable_seq:
            slot = replica._slot(event.seq)
            replica._take_proposal(slot, event.view, batch_digest(event.batch), event.batch)
    elif isinstance(event, ProofStored):
        if event.proof.seq > replica.stable_seq:
            replica._record_proof(replica._slot(event.proof.seq), event.proof)
    elif isinstance(event, Executed):
        if event.seq == replica.last_executed + 1:
            replica._apply_batch(event.seq, event.batch)
            if event.state_digest:
                replica.snapshots[event.seq] = replica.bank.snapshot()
    elif isinstance(event, StateTransferred):
        if event.seq > replica.last_executed:
            replica._adopt_snapshot(event.seq, event.snapshot)
        replica._stabilize(event.proof)
    elif isinstance(event, NewViewInstalled):
        replica._keep_new_view(event.message)
    elif isinstance(event, CheckpointStable):
        if event.snapshot is not None:
            replica.snapshots[event.seq] = event.snapshot
        replica._stabilize(event.proof)
