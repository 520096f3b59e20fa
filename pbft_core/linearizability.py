"""Linearizability of client histories against the bank, Jepsen style.

Theory of operation. The invariant checker (`invariants`) judges what replicas do; this module
judges what clients *saw*. A history is the list of operations honest clients issued, each with
its invocation and (if it completed) its completion time and result. It is **linearizable**
(Herlihy & Wing) if there is one total order of the operations that

1. respects real time: if A completed before B was invoked, A comes first;
2. is legal for the sequential bank: replaying the order on the initial balances gives every
   completed operation exactly the result its client accepted.

An operation that never completed (its client was still waiting when the run ended) may have
taken effect at any point after its invocation, or not at all: it may be placed anywhere after
its invocation with whatever result the bank gives it, or left out. A read that never completed
constrains nothing and is dropped.

Why the whole bank is one object. Jepsen and Porcupine get their speed from P-compositionality:
a history of a map is linearizable iff its restriction to each key is. That does not hold here,
because a transfer touches two accounts and its outcome ("failed" for insufficient funds)
depends on the source balance; checking accounts separately would accept histories no single
order explains (and reject none that it should accept, so it is merely unsound). The state is
therefore the whole balance table (ten accounts), and the search is Wing & Gong's, as refined by
Lowe and Porcupine:

- Only a *minimal* operation may be linearized next: one invoked before the earliest completion
  among the completed operations not yet linearized (anything invoked later must come after
  that one).
- Memoization on (set of linearized operations, state): reaching the same state with the same
  operations done twice is one search, whatever order got there (a bitmask and a tuple).
- The search succeeds when every *completed* operation is linearized; pending writes left over
  simply never took effect.

Cost. Clients are closed-loop (one outstanding request each), so at most ten operations are
ever concurrent and the frontier of minimal operations stays small; simulated histories of
~20–100 operations check in milliseconds. A ``budget`` of explored states bounds the worst case:
running out is reported as inconclusive (``ok`` is None), never as a violation.

The sequential model is the bank's own operations (`bank.WRITE_OPERATIONS` /
`bank.READ_OPERATIONS`) on a plain dict, so the specification cannot drift from the state
machine; at-most-once execution is the history's premise (each operation is one request, which
the replicas' reply table executes at most once).

No well-kept Python checker was found to reuse (Knossos is Clojure, Porcupine is Go); this is a
small one written for this model.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .bank import READ_OPERATIONS, WRITE_OPERATIONS, Result

STATES_BUDGET = 2_000_000
PENDING = None  # the result of an operation that never completed


@dataclass(frozen=True)
class Operation:
    """One client operation. Times are any totally ordered numbers (virtual ms plus a
    tie-breaking counter in the simulator); ``completed`` is None if it never completed."""

    client: str
    op: str
    args: tuple[Any, ...]
    invoked: float
    completed: float | None = None
    result: Result | None = PENDING

    @property
    def done(self) -> bool:
        return self.completed is not None

    @property
    def writes(self) -> bool:
        return self.op not in READ_OPERATIONS

    def __str__(self) -> str:
        end = f"{self.completed:g}" if self.completed is not None else "never"
        outcome = repr(self.result) if self.done else "pending"
        args = ", ".join(map(str, self.args))
        return f"{self.client} {self.op}({args}) -> {outcome} [{self.invoked:g}, {end}]"


@dataclass
class Verdict:
    ok: bool | None  # None: the search ran out of budget (inconclusive)
    operations: int
    states: int
    detail: str = ""
    order: list[Operation] = field(default_factory=list)  # a witness order, when ok


class History:
    """Records invocations and completions as they happen (keyed by client and timestamp)."""

    def __init__(self) -> None:
        self._clock = 0
        self._open: dict[tuple[str, int], Operation] = {}
        self.operations: list[Operation] = []

    def _stamp(self, now_ms: float) -> float:
        # Events at one virtual instant still happen in an order; keep it.
        self._clock += 1
        return now_ms + self._clock * 1e-9

    def invoke(self, client: str, timestamp: int, op: str, args: tuple[Any, ...], now_ms: float) -> None:
        self._open[(client, timestamp)] = Operation(client, op, tuple(args), self._stamp(now_ms))

    def complete(self, client: str, timestamp: int, result: Result, now_ms: float) -> None:
        started = self._open.pop((client, timestamp), None)
        if started is None:
            return  # not an operation this history recorded (e.g. a malicious client's)
        self.operations.append(
            Operation(started.client, started.op, started.args, started.invoked, self._stamp(now_ms), result)
        )

    def all(self) -> list[Operation]:
        """Completed operations and the ones still pending."""
        return [*self.operations, *self._open.values()]


def _apply(state: tuple[int, ...], accounts: tuple[str, ...], op: Operation) -> tuple[Result, tuple[int, ...]]:
    read = READ_OPERATIONS.get(op.op)
    balances = dict(zip(accounts, state, strict=True))
    if read is not None:
        return read(balances, op.args), state
    write = WRITE_OPERATIONS.get(op.op)
    if write is None:
        return "failed", state
    result = write(balances, op.args)
    return result, tuple(balances[a] for a in accounts)


def check(operations: Iterable[Operation], initial: Mapping[str, int], *, budget: int = STATES_BUDGET) -> Verdict:
    """Is the history linearizable against the bank starting from `initial` balances?"""
    ops = [o for o in operations if o.done or o.writes]  # a pending read constrains nothing
    ops.sort(key=lambda o: o.invoked)
    accounts = tuple(sorted(initial))
    start = tuple(initial[a] for a in accounts)
    count = len(ops)
    required = 0
    for i, o in enumerate(ops):
        if o.done:
            required |= 1 << i
    ends = [o.completed if o.completed is not None else math.inf for o in ops]
    seen: set[tuple[int, tuple[int, ...]]] = set()
    best: list[int] = []  # the longest partial order found, for the report
    states = 0

    # Depth-first with an explicit stack: (linearized mask, state, order so far, next candidate).
    stack: list[tuple[int, tuple[int, ...], list[int]]] = [(0, start, [])]
    while stack:
        mask, state, order = stack.pop()
        if mask & required == required:
            return Verdict(True, count, states, order=[ops[i] for i in order])
        key = (mask, state)
        if key in seen:
            continue
        seen.add(key)
        states += 1
        if states > budget:
            return Verdict(None, count, states, detail=f"inconclusive: more than {budget} states explored")
        if len(order) > len(best):
            best = order
        horizon = min((ends[i] for i in range(count) if not mask >> i & 1), default=math.inf)
        # Push in reverse, so that the earliest-invoked candidate is tried first.
        for i in range(count - 1, -1, -1):
            if mask >> i & 1 or ops[i].invoked >= horizon:
                continue
            result, after = _apply(state, accounts, ops[i])
            if ops[i].done and result != ops[i].result:
                continue
            stack.append((mask | 1 << i, after, [*order, i]))
    return Verdict(False, count, states, detail=_explain(ops, best, accounts, start))


def _explain(ops: list[Operation], best: list[int], accounts: tuple[str, ...], start: tuple[int, ...]) -> str:
    """Where the search got furthest, and the first operation it could not go on with."""
    state = start
    for i in best:
        _, state = _apply(state, accounts, ops[i])
    placed = set(best)
    stuck = min((i for i in range(len(ops)) if i not in placed and ops[i].done), key=lambda i: ops[i].completed or 0.0)
    balances = ", ".join(f"{a}={b}" for a, b in zip(accounts, state, strict=True))
    expected, _ = _apply(state, accounts, ops[stuck])
    return (
        f"no legal order: the longest linearizable prefix ({len(best)} operations) ends at balances "
        f"{balances}, and no order extends it to {ops[stuck]} (there it would return {expected!r})"
    )


__all__ = ["History", "Operation", "Verdict", "check"]
