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

from .config import VIEW_CHANGE_ENTRY_BYTES, Timers
from .log import Slot
from .messages import MESSAGE_SIZE_MAX, CatchUp, Proof, batch_bytes

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
        budget -= batch_bytes(slot.committed.batch) + VIEW_CHANGE_ENTRY_BYTES
        if budget < 0:
            break
        entries.append(slot.committed)
    return entries
