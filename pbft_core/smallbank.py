"""SmallBank (Cahill et al., SIGMOD 2008; H-Store/BenchBase) as operations of the replicated bank.

Each customer c has a savings balance ``S<c>`` and a checking balance ``C<c>`` in the bank's
balance table (initial state ``"smallbank:N"``: N customers, 1000 in each balance). The six
transactions, with the variants this project picked (documented in docs/smallbank.md):

- ``amalgamate(c1, c2)``: move all of c1's savings and checking into c2's checking (moves
  money: conserved);
- ``sb_balance(c)``: savings + checking (read-only: may use the unordered read path);
- ``deposit_checking(c, v)``: checking += v, v > 0 (money enters from outside);
- ``send_payment(c1, c2, v)``: checking c1 → checking c2 if c1 has v (moves money: conserved);
- ``transact_savings(c, v)``: savings += v (v may be negative, a withdrawal) unless that would
  make savings negative (money enters or leaves);
- ``write_check(c, v)``: checking -= v if checking covers v, else the check bounces
  ("failed"); the original overdraws checking with a penalty, here no balance goes negative.

Money moves between customers only through amalgamate and send_payment, and those conserve it;
deposit_checking / transact_savings / write_check change the total by exactly their amount.
"""

from __future__ import annotations

import itertools
import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from .bank import BALANCE_MAX, FAILED, INITIAL_STATES, OK, Balances, Result, fits, operation
from .messages import Arg

INITIAL_SMALLBANK_BALANCE = 1000
DEFAULT_CUSTOMERS = 1000


def savings(customer: int) -> str:
    return f"S{customer}"


def checking(customer: int) -> str:
    return f"C{customer}"


def customers_of(state: str) -> int | None:
    """Customers of a ``smallbank[:N]`` state (`ClusterConfig.state`; N is 1000 if left out),
    or None for any other state."""
    kind, _, count = state.partition(":")
    if kind != "smallbank":
        return None
    try:
        return int(count) if count else DEFAULT_CUSTOMERS
    except ValueError:
        return None


def _initial(spec: str) -> Balances:
    customers = customers_of(spec)
    if customers is None:
        raise ValueError(f"not a SmallBank state: {spec!r}")
    balances: Balances = {}
    for c in range(customers):
        balances[savings(c)] = INITIAL_SMALLBANK_BALANCE
        balances[checking(c)] = INITIAL_SMALLBANK_BALANCE
    return balances


INITIAL_STATES["smallbank"] = _initial


def _customer(balances: Balances, value: Arg) -> int | None:
    if type(value) is int and savings(value) in balances:
        return value
    return None


def _amount(value: Arg, *, signed: bool = False) -> int | None:
    if type(value) is int and (signed or value > 0):
        return value
    return None


@operation("sb_balance", read_only=True)
def balance(balances: Balances, args: tuple[Arg, ...]) -> Result:
    c = _customer(balances, args[0]) if len(args) == 1 else None
    if c is None:
        return FAILED
    total = balances[savings(c)] + balances[checking(c)]
    return total if fits(total) else FAILED


@operation("amalgamate")
def amalgamate(balances: Balances, args: tuple[Arg, ...]) -> Result:
    if len(args) != 2:
        return FAILED
    source, target = _customer(balances, args[0]), _customer(balances, args[1])
    if source is None or target is None or source == target:
        return FAILED
    total = balances[savings(source)] + balances[checking(source)]
    if not fits(balances[checking(target)] + total):
        return FAILED
    balances[savings(source)] = balances[checking(source)] = 0
    balances[checking(target)] += total
    return OK


@operation("deposit_checking")
def deposit_checking(balances: Balances, args: tuple[Arg, ...]) -> Result:
    if len(args) != 2:
        return FAILED
    c, amount = _customer(balances, args[0]), _amount(args[1])
    if c is None or amount is None or not fits(balances[checking(c)] + amount):
        return FAILED
    balances[checking(c)] += amount
    return OK


@operation("send_payment")
def send_payment(balances: Balances, args: tuple[Arg, ...]) -> Result:
    if len(args) != 3:
        return FAILED
    source, target = _customer(balances, args[0]), _customer(balances, args[1])
    amount = _amount(args[2])
    if source is None or target is None or amount is None or source == target:
        return FAILED
    if balances[checking(source)] < amount or not fits(balances[checking(target)] + amount):
        return FAILED
    balances[checking(source)] -= amount
    balances[checking(target)] += amount
    return OK


@operation("transact_savings")
def transact_savings(balances: Balances, args: tuple[Arg, ...]) -> Result:
    if len(args) != 2:
        return FAILED
    c, amount = _customer(balances, args[0]), _amount(args[1], signed=True)
    if c is None or amount is None or not 0 <= balances[savings(c)] + amount <= BALANCE_MAX:
        return FAILED
    balances[savings(c)] += amount
    return OK


@operation("write_check")
def write_check(balances: Balances, args: tuple[Arg, ...]) -> Result:
    if len(args) != 2:
        return FAILED
    c, amount = _customer(balances, args[0]), _amount(args[1])
    if c is None or amount is None:
        return FAILED
    if balances[checking(c)] < amount:
        return FAILED
    balances[checking(c)] -= amount
    return OK


# ---- workload ---------------------------------------------------------------------------------
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


# ---- scenario-file form -----------------------------------------------------------------------
#
# Scenario files (docs/scenarios.md) name the six transactions as the SmallBank papers do
# (``SendPayment(E, B, 10)``) and customers by a letter A–J (customers 1–10) or by number. A
# scenario's customer k is the state's customer k, so `pbft inspect db` shows E's balances as
# S5/C5; customer 0 of the state exists (the bench numbers from 0) but no scenario names it.

# Readable name of each operation, in the mix's order.
OPERATION_TITLES: dict[str, str] = {
    "amalgamate": "Amalgamate",
    "sb_balance": "Balance",
    "deposit_checking": "DepositChecking",
    "send_payment": "SendPayment",
    "transact_savings": "TransactSavings",
    "write_check": "WriteCheck",
}
# What each argument is: "customer" or "amount" (an amount may be any integer: the operation
# decides whether it can be carried out, as in the bank).
OPERATION_ARGUMENTS: dict[str, tuple[str, ...]] = {
    "amalgamate": ("customer", "customer"),
    "sb_balance": ("customer",),
    "deposit_checking": ("customer", "amount"),
    "send_payment": ("customer", "customer", "amount"),
    "transact_savings": ("customer", "amount"),
    "write_check": ("customer", "amount"),
}
CUSTOMER_LETTERS = "ABCDEFGHIJ"  # customers 1..10, the ten accounts of the default bank


def customer_name(customer: int) -> str:
    """``E`` for customer 5, ``73`` for customer 73: the letter where the file could use one."""
    if 1 <= customer <= len(CUSTOMER_LETTERS):
        return CUSTOMER_LETTERS[customer - 1]
    return str(customer)


def operation_text(op: str, args: tuple[Arg, ...] | list[Arg]) -> str | None:
    """``SendPayment(E, B, 10)`` for ``send_payment(5, 2, 10)``; None if `op` is not a SmallBank
    operation or its arguments do not have the operation's shape (shown raw by the caller)."""
    kinds = OPERATION_ARGUMENTS.get(op)
    if kinds is None or len(args) != len(kinds) or not all(type(a) is int for a in args):
        return None
    shown = [
        customer_name(a) if kind == "customer" else str(a)  # type: ignore[arg-type]
        for kind, a in zip(kinds, args, strict=True)
    ]
    return f"{OPERATION_TITLES[op]}({', '.join(shown)})"


def scenario_state(customers: int) -> str:
    """The `ClusterConfig.state` of a scenario set naming customers up to `customers`."""
    return f"smallbank:{customers + 1}"  # + customer 0, which scenario files never name


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
