"""What a sans-I/O node hands back to its shell after each input (etcd-raft's ``Ready``).

The shell performs it in order: persist the events, send the messages, then sleep until
``wake_at_ms`` (or the next input) and call ``tick``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from .messages import CheckpointProof, Message, NewView, Proof, Request, Result


class SlotStatus(StrEnum):
    """Status of a sequence number at one replica (the course's PrintStatus letters)."""

    NONE = "X"
    PRE_PREPARED = "PP"
    PREPARED = "P"
    COMMITTED = "C"
    EXECUTED = "E"


# ---- events: what happened, for storage, inspection and tests -------------------------------
#
# Events marked *durable* are what a replica must not forget: the shell persists them before it
# sends the messages of the same Ready, and `Replica.restore` rebuilds the replica from them
# after a crash, so it never votes inconsistently with what it voted before.


@dataclass(frozen=True)
class Accepted:
    """Durable: this replica accepted (and signs a prepare share for) batch at (view, seq)."""

    view: int
    seq: int
    batch: tuple[Request, ...]


@dataclass(frozen=True)
class ProofStored:
    """Durable: evidence that a batch prepared or committed (it may then sign commit shares)."""

    proof: Proof


@dataclass(frozen=True)
class ViewEntered:
    """Durable: the view this replica is in (active) or changing to (not active)."""

    view: int
    active: bool


@dataclass(frozen=True)
class StatusChanged:
    seq: int
    view: int
    status: SlotStatus
    digest: bytes


@dataclass(frozen=True)
class Executed:
    seq: int
    view: int
    batch: tuple[Request, ...]
    results: tuple[Result | None, ...]  # None: a retransmission, not executed again
    state_digest: bytes


@dataclass(frozen=True)
class ViewChangeStarted:
    new_view: int
    reason: str


@dataclass(frozen=True)
class NewViewInstalled:
    view: int
    message: NewView


class _AtCheckpoint:
    proof: CheckpointProof

    @property
    def seq(self) -> int:
        return self.proof.seq

    @property
    def state_digest(self) -> bytes:
        return self.proof.state_digest


@dataclass(frozen=True)
class CheckpointStable(_AtCheckpoint):
    """Durable: a checkpoint certificate, and the snapshot at it if this replica has one."""

    proof: CheckpointProof
    snapshot: bytes | None


@dataclass(frozen=True)
class StateTransferred(_AtCheckpoint):
    """Durable: the state was replaced by a certified snapshot from a peer."""

    proof: CheckpointProof
    snapshot: bytes


@dataclass(frozen=True)
class Dropped:
    """An input rejected before it could change anything (bad signature, wrong view, ...)."""

    reason: str
    message_type: str
    sender: str


Event = (
    Accepted
    | ProofStored
    | ViewEntered
    | StatusChanged
    | Executed
    | ViewChangeStarted
    | NewViewInstalled
    | CheckpointStable
    | StateTransferred
    | Dropped
)
DURABLE_EVENTS = (
    Accepted,
    ProofStored,
    ViewEntered,
    NewViewInstalled,  # so a restarted new leader can still relay it to replicas that missed it
    Executed,
    CheckpointStable,
    StateTransferred,
)


@dataclass
class Ready:
    to_replicas: list[tuple[int, Message]] = field(default_factory=list)
    to_clients: list[tuple[str, Message]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    wake_at_ms: float | None = None
