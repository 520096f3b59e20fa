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

from .bank import FAILED, INITIAL_STATES, OK, Balances, Result, operation
from .messages import Arg

INITIAL_SMALLBANK_BALANCE = 1000


def savings(customer: int) -> str:
    return f"S{customer}"


def checking(customer: int) -> str:
    return f"C{customer}"


def _initial(spec: str) -> Balances:
    _, _, count = spec.partition(":")
    customers = int(count or 1000)
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
    return balances[savings(c)] + balances[checking(c)]


@operation("amalgamate")
def amalgamate(balances: Balances, args: tuple[Arg, ...]) -> Result:
    if len(args) != 2:
        return FAILED
    source, target = _customer(balances, args[0]), _customer(balances, args[1])
    if source is None or target is None or source == target:
        return FAILED
    total = balances[savings(source)] + balances[checking(source)]
    balances[savings(source)] = balances[checking(source)] = 0
    balances[checking(target)] += total
    return OK


@operation("deposit_checking")
def deposit_checking(balances: Balances, args: tuple[Arg, ...]) -> Result:
    if len(args) != 2:
        return FAILED
    c, amount = _customer(balances, args[0]), _amount(args[1])
    if c is None or amount is None:
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
    if balances[checking(source)] < amount:
        return FAILED
    balances[checking(source)] -= amount
    balances[checking(target)] += amount
    return OK


@operation("transact_savings")
def transact_savings(balances: Balances, args: tuple[Arg, ...]) -> Result:
    if len(args) != 2:
        return FAILED
    c, amount = _customer(balances, args[0]), _amount(args[1], signed=True)
    if c is None or amount is None or balances[savings(c)] + amount < 0:
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
