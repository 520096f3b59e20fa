"""What a sans-I/O node hands back to its shell after each input (etcd-raft's ``Ready``).

The shell performs it in order: persist the events, send the messages, then sleep until
``wake_at_ms`` (or the next input) and call ``tick``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from .messages import Message, NewView, Request, Result


class SlotStatus(StrEnum):
    """Status of a sequence number at one replica (the course's PrintStatus letters)."""

    NONE = "X"
    PRE_PREPARED = "PP"
    PREPARED = "P"
    COMMITTED = "C"
    EXECUTED = "E"


# ---- events: what happened, for storage, inspection and tests -------------------------------


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


@dataclass(frozen=True)
class CheckpointStable:
    seq: int
    state_digest: bytes


@dataclass(frozen=True)
class StateTransferred:
    seq: int
    state_digest: bytes


@dataclass(frozen=True)
class Dropped:
    """An input rejected before it could change anything (bad signature, wrong view, ...)."""

    reason: str
    message_type: str
    sender: str


Event = (
    StatusChanged
    | Executed
    | ViewChangeStarted
    | NewViewInstalled
    | CheckpointStable
    | StateTransferred
    | Dropped
)


@dataclass
class Ready:
    to_replicas: list[tuple[int, Message]] = field(default_factory=list)
    to_clients: list[tuple[str, Message]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    wake_at_ms: float | None = None
