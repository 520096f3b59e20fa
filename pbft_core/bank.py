"""The replicated state machine: a bank of accounts A–J.

Deterministic: the same operations in the same order give the same balances, results and
digest on every replica. An operation that cannot be carried out (insufficient funds, unknown
account, bad amount) is not an error: it executes as a no-op with the result ``"failed"``, which
is the client's final answer.

The client reply table lives here too, because it is part of the replicated state: it decides
whether a request is new or a retransmission, so it must be in every snapshot and digest.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import msgpack

from .config import ACCOUNTS, INITIAL_BALANCE
from .messages import Arg, Request, Result

OK = "ok"
FAILED = "failed"
READ_OPS = frozenset({"balance"})
WRITE_OPS = frozenset({"transfer", "balance"})  # a balance read may be ordered as a fallback


@dataclass
class LastReply:
    timestamp: int
    result: Result


@dataclass
class Bank:
    balances: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ACCOUNTS, INITIAL_BALANCE))
    last_reply: dict[str, LastReply] = field(default_factory=dict)

    # ---- operations ---------------------------------------------------------------------

    def read(self, op: str, args: tuple[Arg, ...]) -> Result:
        if op == "balance" and len(args) == 1 and args[0] in self.balances:
            return self.balances[args[0]]  # type: ignore[index]
        return FAILED

    def apply(self, op: str, args: tuple[Arg, ...]) -> Result:
        if op == "transfer" and len(args) == 3:
            source, target, amount = args
            if (
                source in self.balances
                and target in self.balances
                and type(amount) is int
                and amount > 0
                and source != target
                and self.balances[source] >= amount  # type: ignore[index]
            ):
                self.balances[source] -= amount  # type: ignore[index]
                self.balances[target] += amount  # type: ignore[index]
                return OK
            return FAILED
        return self.read(op, args)

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
                sorted(self.balances.items()),
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
