"""SmallBank workloads: the transaction mix, a reproducible generator, and their files.

The operations themselves are `smallbank`'s (part of the protocol core); this module draws
transactions for benchmarks and writes them out, as JSON lines (`write_workload`, read back by
`read_workload`) or as a scenario file `pbft run` plays (`write_scenario_csv`).
"""

from __future__ import annotations

import itertools
import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from .smallbank import OPERATION_ARGUMENTS, operation_text

# ---- the mix and the generator ---------------------------------------------------------------------------------
#
# Cahill et al.'s mix (and BenchBase's default): Amalgamate 15%, Balance 15%, DepositChecking 15%,
# SendPayment 25%, TransactSavings 15%, WriteCheck 15%. Customers are drawn from a small "hot"
# set with `hot_probability`, otherwise uniformly from the rest (H-Store's skew knob).

MIX: tuple[tuple[str, int], ...] = (
    ("amalgamate", 15),
    ("sb_balance", 15),
    ("deposit_checking", 15),
    ("send_payment", 25),
    ("transact_savings", 15),
    ("write_check", 15),
)
WORKLOAD_FORMAT = "pbft-smallbank-workload/1"
# Redraws for the second customer of a two-customer transaction before falling back to uniform.
TWO_CUSTOMER_DRAWS = 16


@dataclass(frozen=True)
class Transaction:
    """One SmallBank transaction as a client submits it."""

    op: str
    args: tuple[int, ...]

    @property
    def read_only(self) -> bool:
        return self.op == "sb_balance"


@dataclass(frozen=True)
class WorkloadSpec:
    accounts: int = 1000
    hot_accounts: int = 100
    hot_probability: float = 0.9
    seed: int = 1

    def __post_init__(self) -> None:
        for name in ("accounts", "hot_accounts", "seed"):
            if type(getattr(self, name)) is not int:
                raise ValueError(f"{name} must be an integer")
        if type(self.hot_probability) not in (int, float):
            raise ValueError("the hot-access probability must be a number")
        if self.accounts < 2:
            raise ValueError("a SmallBank workload needs at least 2 accounts")
        if not 0 <= self.hot_accounts <= self.accounts:
            raise ValueError("hot accounts must be between 0 and the number of accounts")
        if not 0.0 <= self.hot_probability <= 1.0:
            raise ValueError("the hot-access probability must be between 0 and 1")

    @property
    def state(self) -> str:
        """The `ClusterConfig.state` this workload runs against."""
        return f"smallbank:{self.accounts}"


class WorkloadGenerator:
    """An endless, reproducible stream of transactions for one `WorkloadSpec`."""

    def __init__(self, spec: WorkloadSpec) -> None:
        self.spec = spec
        self._rng = random.Random(spec.seed)
        self._ops = [op for op, _ in MIX]
        # Cumulative weights, summed once: `choices` draws exactly as it would from the weights.
        self._cum_weights = list(itertools.accumulate(weight for _, weight in MIX))

    def _customer(self) -> int:
        spec, rng = self.spec, self._rng
        hot = spec.hot_accounts
        if hot and (hot == spec.accounts or rng.random() < spec.hot_probability):
            return rng.randrange(hot)
        return rng.randrange(hot, spec.accounts)

    def _two_customers(self) -> tuple[int, int]:
        first = self._customer()
        for _ in range(TWO_CUSTOMER_DRAWS):
            second = self._customer()
            if second != first:
                return first, second
        # A skew that (almost) always yields one customer: take any other, uniformly.
        return first, (first + 1 + self._rng.randrange(self.spec.accounts - 1)) % self.spec.accounts

    def next(self) -> Transaction:
        rng = self._rng
        op = rng.choices(self._ops, cum_weights=self._cum_weights)[0]
        if op == "amalgamate":
            return Transaction(op, self._two_customers())
        if op == "send_payment":
            return Transaction(op, (*self._two_customers(), rng.randint(1, 50)))
        if op == "transact_savings":
            return Transaction(op, (self._customer(), rng.randint(-50, 100)))
        if op == "sb_balance":
            return Transaction(op, (self._customer(),))
        return Transaction(op, (self._customer(), rng.randint(1, 100)))  # deposit / write check

    def take(self, count: int) -> list[Transaction]:
        return [self.next() for _ in range(count)]


class WorkloadError(ValueError):
    """A workload file that cannot be read; the message names the line."""


def write_workload(path: Path, spec: WorkloadSpec, transactions: list[Transaction]) -> None:
    """JSON lines: a header with the format and the spec, then one ``[op, args]`` per line."""
    header = {"format": WORKLOAD_FORMAT, **asdict(spec), "count": len(transactions)}
    with path.open("w", encoding="utf-8") as out:
        out.write(json.dumps(header) + "\n")
        for t in transactions:
            out.write(json.dumps([t.op, list(t.args)]) + "\n")


def read_workload(path: Path) -> tuple[WorkloadSpec, list[Transaction]]:
    """Read a file written by `write_workload`, strictly."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkloadError(f"{path}: {exc}") from None
    if not lines:
        raise WorkloadError(f"{path}:1: empty file (expected a {WORKLOAD_FORMAT} header)")
    try:
        header = json.loads(lines[0])
        if header.pop("format") != WORKLOAD_FORMAT:
            raise ValueError(f"not a {WORKLOAD_FORMAT} file")
        header.pop("count", None)
        spec = WorkloadSpec(**header)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise WorkloadError(f"{path}:1: bad header: {exc}") from None
    known = {op for op, _ in MIX}
    transactions: list[Transaction] = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            op, args = json.loads(line)
            if op not in known or not isinstance(args, list):
                raise ValueError(f"unknown transaction {op!r}")
            if not all(type(a) is int for a in args):
                raise ValueError("arguments must be integers")
        except (ValueError, TypeError) as exc:
            raise WorkloadError(f"{path}:{number}: {exc}") from None
        transactions.append(Transaction(op, tuple(args)))
    if not transactions:
        raise WorkloadError(f"{path}: no transactions")
    return spec, transactions



# ---- scenario files ----------------------------------------------------------------------------


def write_scenario_csv(
    path: Path,
    sets: list[list[Transaction]],
    *,
    live: str = "[n1, n2, n3, n4, n5, n6, n7]",
    byzantine: str = "[]",
    attack: str = "[]",
) -> None:
    """A scenario file (docs/scenarios.md) with one set per list of `sets`, numbered from 1.

    Customers are written one-based (the generator draws 0..N-1, the file names 1..N), so a
    ten-customer workload reads A..J. `live`, `byzantine` and `attack` are written as given on
    every set's first row.
    """

    def cell(text: str) -> str:
        return '"' + text.replace('"', '""') + '"'

    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("Set Number,Transactions,Live,Byzantine,Attack\r\n")
        for number, transactions in enumerate(sets, start=1):
            for row, t in enumerate(transactions):
                shifted = tuple(
                    a + 1 if kind == "customer" else a
                    for kind, a in zip(OPERATION_ARGUMENTS[t.op], t.args, strict=True)
                )
                # The course's SmallBank files wrap each operation in one more pair of parentheses.
                text = cell(f"({operation_text(t.op, shifted)})")
                if row == 0:
                    out.write(f"{number},{text},{cell(live)},{cell(byzantine)},{cell(attack)}\r\n")
                else:
                    out.write(f",{text},,,\r\n")
