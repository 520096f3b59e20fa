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

This module is the state machine and its readable forms only (part of the sans-I/O core); the
workload generator and its files are `smallbank_workload`.
"""

from __future__ import annotations

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
