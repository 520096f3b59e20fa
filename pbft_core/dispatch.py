"""Playing one set of a scenario: which transaction may be sent when, and what it came to.

Rules (DESIGN §5): transactions are dispatched in file order; one whose client still has a
request outstanding waits (closed loop), and so does everything after it, so the leader sees
requests in file order; a balance read (default bank or SmallBank) also waits until every earlier transaction has an
outcome, so it reports the balance after the rows above it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from .bank import FAILED
from .client import Completion
from .messages import Arg, Result

# Transaction kinds that read a balance: the default bank's and SmallBank's.
READ_KINDS = frozenset({"balance", "sb_balance"})


class Outcome(StrEnum):
    COMMITTED = "committed"
    FAILED = "failed"
    UNAVAILABLE = "unavailable"


class TransactionLike(Protocol):
    @property
    def client(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def args(self) -> tuple[Arg, ...]: ...


@dataclass
class TransactionOutcome:
    index: int
    client: str
    kind: str
    args: tuple[Arg, ...]
    outcome: Outcome = Outcome.UNAVAILABLE
    result: Result | None = None
    latency_ms: float | None = None
    fell_back: bool = False


class Dispatcher:
    def __init__(self, transactions: list[TransactionLike]) -> None:
        self.transactions = transactions
        self.outcomes = [
            TransactionOutcome(i, t.client, t.kind, tuple(t.args)) for i, t in enumerate(transactions)
        ]
        self._next = 0
        self._finished = [False] * len(transactions)

    @property
    def done(self) -> bool:
        return all(self._finished)

    @property
    def finished_count(self) -> int:
        return sum(self._finished)

    def next_submissions(self, busy: set[str]) -> list[int]:
        """Indices to submit now, given the clients with a request outstanding."""
        out: list[int] = []
        while self._next < len(self.transactions):
            txn = self.transactions[self._next]
            if txn.client in busy:
                break
            if txn.kind in READ_KINDS and not all(self._finished[: self._next]):
                break
            out.append(self._next)
            busy.add(txn.client)
            self._next += 1
        return out

    def complete(self, index: int, completion: Completion) -> None:
        record = self.outcomes[index]
        record.result = completion.result
        record.latency_ms = completion.latency_ms
        record.fell_back = completion.fell_back
        record.outcome = Outcome.FAILED if completion.result == FAILED else Outcome.COMMITTED
        self._finished[index] = True
