"""The replicated state machine: a bank of accounts (A–J by default).

Deterministic: the same operations in the same order give the same balances, results and
digest on every replica. An operation that cannot be carried out (insufficient funds, unknown
account, bad amount) is not an error: it executes as a no-op with the result ``"failed"``, which
is the client's final answer.

The client reply table lives here too, because it is part of the replicated state: it decides
whether a request is new or a retransmission, so it must be in every snapshot and digest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

import msgpack

from .config import ACCOUNTS, INITIAL_BALANCE
from .messages import Arg, Request, Result

__all__ = ["BALANCE_MAX", "FAILED", "OK", "Balances", "Bank", "Result", "fits", "operation"]

OK = "ok"
FAILED = "failed"
# Every balance and every result stays a signed 64-bit integer: snapshots, replies and the
# write-ahead log are msgpack, which cannot encode more, so an operation that would leave the
# range fails instead (otherwise one client could make every replica crash, even after restart).
BALANCE_MAX = 2**63 - 1


def fits(value: int) -> bool:
    return -BALANCE_MAX - 1 <= value <= BALANCE_MAX

Balances = dict[str, int]
Operation = Callable[[Balances, tuple[Arg, ...]], Result]

# Operations by name. A read-only operation never mutates; it may be answered unordered, and
# also ordered (a read that fell back). Other modules (e.g. smallbank) register their own.
WRITE_OPERATIONS: dict[str, Operation] = {}
READ_OPERATIONS: dict[str, Operation] = {}
# Initial states by the name in `ClusterConfig.state` ("bank", or e.g. "smallbank:1000").
INITIAL_STATES: dict[str, Callable[[str], Balances]] = {}


def operation(name: str, *, read_only: bool = False) -> Callable[[Operation], Operation]:
    def register(fn: Operation) -> Operation:
        (READ_OPERATIONS if read_only else WRITE_OPERATIONS)[name] = fn
        return fn

    return register


def is_read_only(op: str) -> bool:
    return op in READ_OPERATIONS


@operation("transfer")
def transfer(balances: Balances, args: tuple[Arg, ...]) -> Result:
    if len(args) != 3:
        return FAILED
    source, target, amount = args
    if (
        source in balances
        and target in balances
        and type(amount) is int
        and amount > 0
        and source != target
        and balances[source] >= amount  # type: ignore[index]
        and balances[target] + amount <= BALANCE_MAX  # type: ignore[index, operator]
    ):
        balances[source] -= amount  # type: ignore[index]
        balances[target] += amount  # type: ignore[index]
        return OK
    return FAILED


@operation("balance", read_only=True)
def balance(balances: Balances, args: tuple[Arg, ...]) -> Result:
    if len(args) == 1 and args[0] in balances:
        return balances[args[0]]  # type: ignore[index]
    return FAILED


INITIAL_STATES["bank"] = lambda _spec: dict.fromkeys(ACCOUNTS, INITIAL_BALANCE)


@dataclass
class LastReply:
    timestamp: int
    result: Result


@dataclass
class Bank:
    balances: Balances = field(default_factory=lambda: dict.fromkeys(sorted(ACCOUNTS), INITIAL_BALANCE))
    last_reply: dict[str, LastReply] = field(default_factory=dict)

    @classmethod
    def initial(cls, state: str = "bank") -> Bank:
        """The state every replica starts from, by name (see `INITIAL_STATES`)."""
        kind = state.split(":", 1)[0]
        if kind not in INITIAL_STATES and kind == "smallbank":
            from . import smallbank  # noqa: F401  (registers its operations and state)
        # Keys in sorted order from the start: no operation adds keys, so the table stays
        # sorted and a snapshot needs no sort (snapshots install in the same order).
        return cls(balances=dict(sorted(INITIAL_STATES[kind](state).items())))

    # ---- operations ---------------------------------------------------------------------

    def read(self, op: str, args: tuple[Arg, ...]) -> Result:
        fn = READ_OPERATIONS.get(op)
        return fn(self.balances, args) if fn is not None else FAILED

    def apply(self, op: str, args: tuple[Arg, ...]) -> Result:
        fn = WRITE_OPERATIONS.get(op) or READ_OPERATIONS.get(op)
        result = fn(self.balances, args) if fn is not None else FAILED
        # Operations keep balances in range themselves; a result out of range is refused here too.
        if type(result) is int and not -BALANCE_MAX - 1 <= result <= BALANCE_MAX:
            return FAILED
        return result

    def execute(self, request: Request) -> Result | None:
        """Execute a request at most once; None if it is a retransmission of an executed one."""
        last = self.last_reply.get(request.client)
        if last is not None and request.timestamp <= last.timestamp:
            return None
        result = self.apply(request.op, request.args)
        self.last_reply[request.client] = LastReply(request.timestamp, result)
        return result

    def cached_reply(self, client: str, timestamp: int) -> Result | None:
        last = self.last_reply.get(client)
        if last is not None and last.timestamp == timestamp:
            return last.result
        return None

    def is_executed(self, client: str, timestamp: int) -> bool:
        last = self.last_reply.get(client)
        return last is not None and timestamp <= last.timestamp

    @property
    def total(self) -> int:
        return sum(self.balances.values())

    # ---- snapshots ----------------------------------------------------------------------

    def snapshot(self) -> bytes:
        return msgpack.packb(
            [
                list(self.balances.items()),
                sorted((c, r.timestamp, r.result) for c, r in self.last_reply.items()),
            ],
            use_bin_type=True,
        )

    def digest(self) -> bytes:
        return self.digest_of(self.snapshot())

    @staticmethod
    def digest_of(snapshot: bytes) -> bytes:
        return hashlib.sha256(b"pbft/v1/state/" + snapshot).digest()

    @classmethod
    def from_snapshot(cls, data: bytes) -> Bank:
        """Rebuild from `snapshot` bytes (already checked against a certified digest)."""
        balances, replies = msgpack.unpackb(data, raw=False, max_map_len=0)
        return cls(
            balances={str(a): int(b) for a, b in balances},
            last_reply={str(c): LastReply(int(t), r) for c, t, r in replies},
        )
