"""Scenario files: parse, validate and select the sets a run plays (DESIGN §4, §5).

A scenario file is a CSV with the header ``Set Number,Transactions,Live,Byzantine,Attack``::

    Set Number,Transactions,Live,Byzantine,Attack
    1,"(A, B, 1)","[n1, n2, n3, n4, n5, n6, n7]",[],[]
    ,"(B, C, 2)",,,
    ,(E),,,
    2,"(F, G, 12)","[n1, n2, n3, n4, n5]",[n1],"[time; dark(n6)]"

A row with a set number starts a set and carries its Live / Byzantine / Attack columns; the rows
after it (empty set number, empty list columns) add transactions to it. ``(S, R, amt)`` is a
transfer, ``(S)`` a balance read; a SmallBank operation such as ``(SendPayment(E, B, 10))`` makes
its set run on a SmallBank state (``pbft_core/smallbank.py``). One cell may hold several
transactions, ``(A, B, 1), (C)``. Sets play in file order whatever their numbers. A file without
the Attack column (the older 4-column format) means ``crash`` for its Byzantine replicas.

Everything is checked before anything runs. Any problem raises `ScenarioError`, whose text is
``path:LINE: what is wrong`` with LINE the physical line of the file (the header is line 1 when
the file starts with it). The accepted quirks and every decision are listed in
``docs/scenarios.md``.

The module is pure: apart from `parse_scenario_file` reading its file, it does no I/O.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field, replace

from .attacks import ATTACK_KINDS, TARGETED_ATTACKS, Attack
from .config import ClusterConfig
from .dispatch import READ_KINDS
from .smallbank import (
    CUSTOMER_LETTERS,
    OPERATION_ARGUMENTS,
    OPERATION_TITLES,
    customer_name,
    operation_text,
    scenario_state,
)

__all__ = [
    "ATTACK_KINDS",
    "MAX_AMOUNT",
    "QUOTE_CHARS_MAX",
    "SCENARIO_BYTES_MAX",
    "SMALLBANK_CUSTOMERS_MAX",
    "TARGETED_ATTACKS",
    "Attack",
    "ScenarioError",
    "ScenarioSet",
    "Transaction",
    "parse_scenario",
    "parse_scenario_file",
    "select_sets",
]

# The attack vocabulary is the fault layer's; a scenario only names attacks.
# Amounts and set numbers must fit a signed 64-bit integer (wire codec, SQLite).
MAX_AMOUNT = 2**63 - 1
# A scenario file is read whole before anything runs; the largest real one is a few kB, so a file
# above this is a mistake (or /dev/zero), refused before it is read into memory.
SCENARIO_BYTES_MAX = 8 * 1024 * 1024
# Cell text quoted in an error is cut to this many characters: a 100 MB line must not become a
# 100-million-character message.
QUOTE_CHARS_MAX = 60
# Highest customer number a SmallBank set may name. The set's state holds every customer up to
# the highest one named, and a replica that falls behind fetches it as one snapshot: 10,000
# customers are ~0.25 MB, well inside a CATCH-UP message (200,000 would not fit).
SMALLBANK_CUSTOMERS_MAX = 10_000

_HEADER_ALIASES: dict[str, str] = {
    "set number": "set",
    "set": "set",
    "transactions": "transactions",
    "transaction": "transactions",
    "live": "live",
    "live servers": "live",
    "live nodes": "live",
    "live replicas": "live",
    "byzantine": "byzantine",
    "byzantine servers": "byzantine",
    "byzantine nodes": "byzantine",
    "byzantine replicas": "byzantine",
    "attack": "attack",
    "attacks": "attack",
}
_COLUMN_TITLES = {
    "set": "Set Number",
    "transactions": "Transactions",
    "live": "Live",
    "byzantine": "Byzantine",
    "attack": "Attack",
}
_EXPECTED_HEADER = "Set Number,Transactions,Live,Byzantine,Attack"
_REQUIRED_COLUMNS = ("set", "transactions", "live", "byzantine")

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_LINE_BREAK_BYTES = re.compile(rb"\r\n|\r|\n")
_UINT = re.compile(r"[0-9]+", re.ASCII)
_INT_LIKE = re.compile(r"[+-]?[0-9]+", re.ASCII)
_NUMBER_LIKE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
_NODE = re.compile(r"[nNsS]([0-9]+)", re.ASCII)
_ATTACK = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:\((.*)\))?", re.ASCII | re.DOTALL)
_OPENERS = {"(": ")", "[": "]"}
_CLOSERS = {")": "(", "]": "["}
_MAX_DIGITS = len(str(MAX_AMOUNT))
# ``Name(args)``, optionally inside one more pair of parentheses: a SmallBank operation.
_OPERATION = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*\((.*)\)", re.ASCII | re.DOTALL)
_OPERATION_NAMES = {title.lower(): op for op, title in OPERATION_TITLES.items()} | {
    op.replace("_", ""): op for op in OPERATION_TITLES
}


def _clip(text: str) -> str:
    """`text` cut to `QUOTE_CHARS_MAX` characters (marked with an ellipsis when cut)."""
    return text if len(text) <= QUOTE_CHARS_MAX else text[:QUOTE_CHARS_MAX] + "…"


def _quote(text: str) -> str:
    return repr(_clip(text))


class ScenarioError(ValueError):
    """A scenario file is malformed. ``str(e)`` is ``"path:LINE: message"`` (``"path: message"``
    when line is 0: the problem is the whole file)."""

    def __init__(self, path: str, line: int, message: str) -> None:
        super().__init__(path, line, message)
        self.path = path
        self.line = line
        self.message = message

    def __str__(self) -> str:
        if self.line == 0:  # about the whole file (not a regular file, too large)
            return f"{self.path}: {self.message}"
        return f"{self.path}:{self.line}: {self.message}"


@dataclass(frozen=True)
class Transaction:
    """One transaction of a set, as the client submits it.

    `kind` is the operation on the wire: ``"transfer"`` ``(S, R, amount)`` and ``"balance"``
    ``(S,)`` on the default bank, or a SmallBank operation (``"send_payment"``, ...) with integer
    arguments, customers numbered as in the file (A = 1). `client` is the submitting client: the
    sender, or the operation's first customer (``E`` for customer 5, ``73`` for customer 73).
    """

    line: int
    client: str
    kind: str
    args: tuple[str | int, ...]

    @property
    def read_only(self) -> bool:
        return self.kind in READ_KINDS

    def __str__(self) -> str:
        text = operation_text(self.kind, self.args)
        if text is not None:
            return text
        return "(" + ", ".join(str(a) for a in self.args) + ")"


@dataclass(frozen=True)
class ScenarioSet:
    """One set: a fresh cluster, its faults, and its transactions in file order."""

    number: int
    line: int
    transactions: tuple[Transaction, ...]
    live: frozenset[int]
    byzantine: frozenset[int]
    attacks: tuple[Attack, ...] = field(default=())
    # The replicated state the set starts from: "bank" (A–J, 10 each) or "smallbank:N".
    state: str = "bank"

    def cluster_config(self, base: ClusterConfig) -> ClusterConfig:
        """`base` with this set's initial state (the state is the file's to choose)."""
        return base if base.state == self.state else replace(base, state=self.state)


class _CellError(Exception):
    """A problem inside one cell/row; turned into a ScenarioError with the line attached."""


# ---- physical lines and CSV fields --------------------------------------------------------


def _physical_lines(text: str) -> list[str]:
    lines = _LINE_BREAK.split(text)
    if len(lines) > 1 and lines[-1] == "":
        lines.pop()  # the final line break ends the last line, it does not start a new one
    return lines


def _split_fields(line: str) -> list[str]:
    """Split one physical line into CSV fields.

    Standard CSV quoting (``"..."`` with ``""`` for a quote, optional whitespace around the
    quotes), plus: outside quotes, a comma nested in ``(...)`` or ``[...]`` does not separate
    fields, so unquoted ``(A, B, 1)`` and ``[n1, n2]`` are single fields. A quoted field may
    not span lines.
    """
    fields: list[str] = []
    i, end = 0, len(line)
    while True:
        j = i
        while j < end and line[j] in " \t":
            j += 1
        if j < end and line[j] == '"':
            buf: list[str] = []
            k = j + 1
            while True:
                if k >= end:
                    raise _CellError(
                        f"unterminated quote in column {len(fields) + 1} "
                        "(a quoted field must close on the same line)"
                    )
                c = line[k]
                if c == '"':
                    if k + 1 < end and line[k + 1] == '"':
                        buf.append('"')
                        k += 2
                        continue
                    k += 1
                    break
                buf.append(c)
                k += 1
            while k < end and line[k] in " \t":
                k += 1
            if k < end and line[k] != ",":
                raise _CellError(
                    f"unexpected text {_quote(line[k : k + 12])} after the closing quote "
                    f"in column {len(fields) + 1}"
                )
            fields.append("".join(buf))
        else:
            stack: list[str] = []
            k = i
            while k < end:
                c = line[k]
                if c in _OPENERS:
                    stack.append(c)
                elif c in _CLOSERS and stack:
                    if stack[-1] != _CLOSERS[c]:
                        raise _CellError(
                            f"mismatched {c!r} in column {len(fields) + 1}: "
                            f"{_quote(line[i : k + 1].strip())}"
                        )
                    stack.pop()
                elif c == "," and not stack:
                    break
                k += 1
            if stack:
                raise _CellError(
                    f"unclosed {stack[-1]!r} in column {len(fields) + 1}: {_quote(line[i:k].strip())}"
                )
            fields.append(line[i:k])
        if k >= end:
            return fields
        i = k + 1  # skip the comma; a trailing comma yields a final empty field


# ---- cells --------------------------------------------------------------------------------


def _split_top(text: str, separators: str) -> list[str]:
    """Split on `separators` outside parentheses/brackets."""
    parts: list[str] = []
    depth = 0
    start = 0
    for k, c in enumerate(text):
        if c in _OPENERS:
            depth += 1
        elif c in _CLOSERS:
            depth = max(0, depth - 1)
        elif c in separators and depth == 0:
            parts.append(text[start:k])
            start = k + 1
    parts.append(text[start:])
    return parts


def _positive_int(text: str, what: str) -> int:
    if _UINT.fullmatch(text):
        # int() only on the significant digits: Python refuses strings of over 4300 digits.
        digits = text.lstrip("0") or "0"
        if len(digits) > _MAX_DIGITS or int(digits) > MAX_AMOUNT:
            raise _CellError(f"{what} {_clip(text)} is too large (at most {MAX_AMOUNT})")
        value = int(digits)
        if value == 0:
            raise _CellError(f"{what} must be positive, got {_clip(text)}")
        return value
    if _INT_LIKE.fullmatch(text):
        raise _CellError(f"{what} must be positive, got {_clip(text)}")
    if _NUMBER_LIKE.fullmatch(text):
        raise _CellError(f"{what} must be a whole number, got {_clip(text)}")
    raise _CellError(f"{what} must be a positive integer, got {_quote(text)}")


def _parse_cell(cell: str, accounts: tuple[str, ...], line: int) -> list[Transaction]:
    """The transactions of one Transactions cell, in order: ``(A, B, 1), (C), (D, E, 2)``.

    An error in a cell of several items names the item (``item 14 of 100: ...``) and quotes
    only that item.
    """
    # A cell without any parenthesis is one malformed transaction, not a list of names.
    items = [item.strip() for item in _split_top(cell, ",")] if "(" in cell else [cell]
    transactions: list[Transaction] = []
    for number, item in enumerate(items, start=1):
        try:
            if not item:
                raise _CellError("empty item (two commas in a row, or a comma at the end)")
            transactions.append(_parse_item(item, accounts, line))
        except _CellError as e:
            if len(items) > 1:
                raise _CellError(f"item {number} of {len(items)}: {e}") from None
            raise
    return transactions


def _parse_item(item: str, accounts: tuple[str, ...], line: int) -> Transaction:
    """One transaction: ``(S, R, amount)``, ``(S)``, or a SmallBank operation with or without
    outer parentheses (``(SendPayment(E, B, 10))``, ``balance(73)``)."""
    body = item
    if item.startswith("(") and item.endswith(")") and _OPERATION.fullmatch(item[1:-1].strip()):
        body = item[1:-1].strip()
    m = _OPERATION.fullmatch(body)
    if m is not None:
        return _parse_operation(m.group(1), m.group(2), f'"{_clip(item)}"', line)
    return _parse_transaction(item, accounts, line)


def _parse_transaction(cell: str, accounts: tuple[str, ...], line: int) -> Transaction:
    shown = f'"{_clip(cell)}"'
    expected = "(S, R, amount) or (S)"
    if not (cell.startswith("(") and cell.endswith(")")):
        raise _CellError(
            f"transaction {shown} must look like {expected}, or an operation like SendPayment(A, B, 10)"
        )
    inner = cell[1:-1]
    if any(c in inner for c in "()[]"):
        raise _CellError(
            f"transaction {shown} must look like {expected}, or an operation like SendPayment(A, B, 10)"
        )
    parts = [p.strip() for p in inner.split(",")]
    if any(p == "" for p in parts):
        raise _CellError(f"transaction {shown} has an empty field")
    if len(parts) not in (1, 3):
        raise _CellError(f"transaction {shown} has {len(parts)} fields; expected {expected}")
    for name in parts[:2] if len(parts) == 3 else parts:
        if name not in accounts:
            hint = ""
            if name.upper() in accounts or name.lower() in accounts:
                hint = " (account names are case-sensitive)"
            raise _CellError(f"unknown account {_quote(name)} in transaction {shown}{hint}")
    if len(parts) == 1:
        return Transaction(line, parts[0], "balance", (parts[0],))
    sender, receiver, amount_text = parts
    if sender == receiver:
        raise _CellError(f"sender and receiver are both {_quote(sender)} in transaction {shown}")
    try:
        amount = _positive_int(amount_text, "amount")
    except _CellError as e:
        raise _CellError(f"{e} in transaction {shown}") from None
    return Transaction(line, sender, "transfer", (sender, receiver, amount))


# ---- SmallBank operations -------------------------------------------------------------------


def _parse_operation(name: str, args_text: str, shown: str, line: int) -> Transaction:
    op = _OPERATION_NAMES.get(name.replace("_", "").lower())
    if op is None:
        known = ", ".join(OPERATION_TITLES.values())
        raise _CellError(f"unknown operation {_quote(name)} in {shown} (known: {known})")
    kinds = OPERATION_ARGUMENTS[op]
    texts = [a.strip() for a in args_text.split(",")] if args_text.strip() else []
    title = OPERATION_TITLES[op]
    if len(texts) != len(kinds):
        raise _CellError(
            f"{title} takes {len(kinds)} argument{'s' if len(kinds) > 1 else ''} "
            f"({', '.join(kinds)}), got {len(texts)} in {shown}"
        )
    args: list[int] = []
    for kind, text in zip(kinds, texts, strict=True):
        if not text:
            raise _CellError(f"empty argument in {shown}")
        args.append(_customer(text, shown) if kind == "customer" else _signed_amount(text, shown))
    return Transaction(line, customer_name(args[0]), op, tuple(args))


def _customer(text: str, shown: str) -> int:
    """A customer: a letter A–J (any case; customers 1–10) or a number 1..the maximum."""
    if len(text) == 1 and text.upper() in CUSTOMER_LETTERS:
        return CUSTOMER_LETTERS.index(text.upper()) + 1
    # The length check keeps int() off a huge digit string.
    if _UINT.fullmatch(text) and len(text) <= len(str(SMALLBANK_CUSTOMERS_MAX)):
        customer = int(text)
        if 1 <= customer <= SMALLBANK_CUSTOMERS_MAX:
            return customer
    raise _CellError(
        f"unknown customer {_quote(text)} in {shown} "
        f"(customers are A–J or numbers 1–{SMALLBANK_CUSTOMERS_MAX})"
    )


def _signed_amount(text: str, shown: str) -> int:
    """Any whole number in the signed 64-bit range: whether the operation can be carried out
    with it (a negative deposit, say) is the operation's to decide, at run time."""
    if _INT_LIKE.fullmatch(text):
        # int() only on the significant digits: Python refuses strings of over 4300 digits.
        digits = text.lstrip("+-").lstrip("0") or "0"
        if len(digits) <= _MAX_DIGITS and int(digits) <= MAX_AMOUNT:
            return -int(digits) if text.startswith("-") else int(digits)
        raise _CellError(f"amount {_clip(text)} is too large (at most {MAX_AMOUNT}) in {shown}")
    if _NUMBER_LIKE.fullmatch(text):
        raise _CellError(f"amount must be a whole number, got {_clip(text)} in {shown}")
    raise _CellError(f"amount must be an integer, got {_quote(text)} in {shown}")


def _as_smallbank(t: Transaction) -> Transaction:
    """A default-bank transaction in a SmallBank set: ``(A, B, 3)`` is SendPayment(A, B, 3) and
    ``(A)`` is Balance(A) (a transfer moves checking money, as SendPayment does)."""
    if t.kind in OPERATION_ARGUMENTS:
        return t
    customers = [CUSTOMER_LETTERS.index(str(a)) + 1 for a in t.args[:2] if isinstance(a, str)]
    if t.kind == "transfer":
        return replace(t, kind="send_payment", args=(customers[0], customers[1], t.args[2]))
    return replace(t, kind="sb_balance", args=(customers[0],))


def _highest_customer(t: Transaction) -> int:
    kinds = OPERATION_ARGUMENTS[t.kind]
    return max(int(a) for kind, a in zip(kinds, t.args, strict=True) if kind == "customer")


def _parse_node(text: str, n: int, column: str) -> int:
    m = _NODE.fullmatch(text)
    if not m:
        raise _CellError(f"{column}: expected a replica name like n1 (or S1), got {_quote(text)}")
    digits = m.group(1)
    if len(digits) > 6 or not 1 <= int(digits) <= n:
        raise _CellError(f"{column}: replica {_quote(text)} does not exist (replicas are n1..n{n})")
    return int(digits)


def _parse_nodes(text: str, n: int, column: str, *, what: str = "list") -> tuple[int, ...]:
    """Comma- (or semicolon-) separated replica names, no duplicates, no empty entries."""
    text = text.strip()
    if not text:
        return ()
    ids: list[int] = []
    for item in re.split(r"[,;]", text):
        item = item.strip()
        if not item:
            raise _CellError(f"{column}: empty entry in {what} {_quote(text)}")
        node = _parse_node(item, n, column)
        if node in ids:
            raise _CellError(f"{column}: replica n{node} listed twice")
        ids.append(node)
    return tuple(ids)


def _list_body(cell: str, column: str, example: str) -> str:
    """The inside of a ``[...]`` cell; an empty cell is an empty list."""
    if cell == "":
        return ""
    if not (cell.startswith("[") and cell.endswith("]")):
        raise _CellError(f"{column}: expected a list like {example} or [], got {_quote(cell)}")
    return cell[1:-1].strip()


def _parse_node_list(cell: str, n: int, column: str) -> frozenset[int]:
    body = _list_body(cell, column, "[n1, n2]")
    return frozenset(_parse_nodes(body, n, column))


def _parse_attacks(cell: str, n: int) -> tuple[Attack, ...]:
    column = "Attack"
    # Brackets are optional here (``sign``, ``time; dark(n6)``): attacks read unambiguously
    # without them. A cell that opens or closes a bracket must do both.
    if cell.startswith("[") or cell.endswith("]"):
        body = _list_body(cell, column, "[time; dark(n6)]")
    else:
        body = cell
    if not body:
        return ()
    attacks: list[Attack] = []
    seen: set[str] = set()
    for item in _split_top(body, ";,"):
        item = item.strip()
        if not item:
            raise _CellError(f"Attack: empty entry in {_quote(cell)}")
        m = _ATTACK.fullmatch(item)
        if not m:
            raise _CellError(
                f"Attack: cannot read {_quote(item)} (expected e.g. crash or dark(n6))"
            )
        kind = m.group(1).lower()
        args = m.group(2)
        if kind not in ATTACK_KINDS:
            raise _CellError(
                f"Attack: unknown attack {_quote(m.group(1))} (known: {', '.join(ATTACK_KINDS)})"
            )
        if kind in seen:
            hint = f" (put all targets in one: {kind}(n6, n7))" if kind in TARGETED_ATTACKS else ""
            raise _CellError(f"Attack: {kind!r} listed twice{hint}")
        seen.add(kind)
        if kind in TARGETED_ATTACKS:
            if args is None or not args.strip():
                raise _CellError(f"Attack: {kind} needs at least one target, like {kind}(n6)")
            targets = _parse_nodes(args, n, column, what=f"{kind}(...)")
            attacks.append(Attack(kind, targets))
        else:
            if args is not None:
                raise _CellError(f"Attack: {kind} takes no targets, got {_quote(item)}")
            attacks.append(Attack(kind, ()))
    return tuple(attacks)


# ---- the file -----------------------------------------------------------------------------


def _norm_header(cell: str) -> str:
    return " ".join(cell.split()).lower()


def _read_header(fields: list[str]) -> dict[str, int]:
    columns: dict[str, int] = {}
    for index, raw in enumerate(fields):
        name = _norm_header(raw)
        if not name:
            continue  # unnamed column: its cells must stay empty
        key = _HEADER_ALIASES.get(name)
        if key is None:
            hint = ""
            if len(fields) == 1 and (";" in raw or "\t" in raw):
                hint = " (columns must be separated by commas)"
            raise _CellError(
                f"unknown column {_quote(raw.strip())} in the header{hint}; expected {_EXPECTED_HEADER}"
            )
        if key in columns:
            raise _CellError(f"column {_COLUMN_TITLES[key]!r} appears twice in the header")
        columns[key] = index
    missing = [_COLUMN_TITLES[k] for k in _REQUIRED_COLUMNS if k not in columns]
    if missing:
        raise _CellError(
            f"header lacks column(s) {', '.join(missing)}; expected {_EXPECTED_HEADER} "
            "(Attack is optional)"
        )
    return columns


@dataclass
class _OpenSet:
    number: int
    line: int
    live: frozenset[int]
    byzantine: frozenset[int]
    attacks: tuple[Attack, ...]
    transactions: list[Transaction]

    def close(self, path: str) -> ScenarioSet:
        if not self.transactions:
            raise ScenarioError(path, self.line, f"set {self.number} has no transactions")
        transactions = self.transactions
        state = "bank"
        if any(t.kind in OPERATION_ARGUMENTS for t in transactions):
            for t in transactions:
                legacy = [a for a in t.args if isinstance(a, str)]
                if any(a not in CUSTOMER_LETTERS for a in legacy):
                    raise ScenarioError(
                        path,
                        t.line,
                        f"transaction {t} names an account that is not a "
                        "SmallBank customer (A–J), in a set with SmallBank operations",
                    )
            transactions = [_as_smallbank(t) for t in transactions]
            state = "smallbank"  # sized once the whole file is read (parse_scenario)
        return ScenarioSet(
            self.number,
            self.line,
            tuple(transactions),
            self.live,
            self.byzantine,
            self.attacks,
            state,
        )


def parse_scenario(
    text: str,
    *,
    path: str = "<scenario>",
    n: int = 7,
    accounts: tuple[str, ...] = tuple("ABCDEFGHIJ"),
) -> list[ScenarioSet]:
    """Parse and validate a whole scenario file; raise `ScenarioError` at the first problem."""
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = _physical_lines(text)
    columns: dict[str, int] | None = None
    sets: list[ScenarioSet] = []
    current: _OpenSet | None = None
    set_lines: dict[int, int] = {}  # set number -> the line that opened it

    for lineno, raw_line in enumerate(lines, start=1):
        try:
            fields = _split_fields(raw_line)
        except _CellError as e:
            raise ScenarioError(path, lineno, str(e)) from None
        cells = [f.strip() for f in fields]
        if not any(cells):
            continue  # blank line or a row of empty cells
        if columns is None:
            try:
                columns = _read_header(fields)
            except _CellError as e:
                if cells and _UINT.fullmatch(cells[0]):
                    raise ScenarioError(
                        path, lineno, f"missing header line; expected {_EXPECTED_HEADER}"
                    ) from None
                raise ScenarioError(path, lineno, str(e)) from None
            continue

        try:
            current = _read_row(cells, columns, lineno, current, set_lines, sets, path, n, accounts)
        except _CellError as e:
            raise ScenarioError(path, lineno, str(e)) from None

    last_line = max(1, len(lines))
    if columns is None:
        raise ScenarioError(path, last_line, f"empty file; expected the header {_EXPECTED_HEADER}")
    if current is not None:
        sets.append(current.close(path))
    if not sets:
        raise ScenarioError(path, last_line, "no sets in the file")
    return _size_smallbank_states(sets)


def _size_smallbank_states(sets: list[ScenarioSet]) -> list[ScenarioSet]:
    """Every SmallBank set of a file gets one state, holding every customer the file names (at
    least A–J), so a set looks the same whichever sets a run selects."""
    operations = [t for s in sets if s.state != "bank" for t in s.transactions]
    if not operations:
        return sets
    customers = max(len(CUSTOMER_LETTERS), *(_highest_customer(t) for t in operations))
    state = scenario_state(customers)
    return [s if s.state == "bank" else replace(s, state=state) for s in sets]


def _read_row(
    cells: list[str],
    columns: dict[str, int],
    lineno: int,
    current: _OpenSet | None,
    set_lines: dict[int, int],
    sets: list[ScenarioSet],
    path: str,
    n: int,
    accounts: tuple[str, ...],
) -> _OpenSet | None:
    def cell(key: str) -> str:
        index = columns.get(key)
        return cells[index] if index is not None and index < len(cells) else ""

    named = set(columns.values())
    for index, value in enumerate(cells):
        if value and index not in named:
            raise _CellError(
                f"unexpected value {_quote(value)} in column {index + 1}, which has no header"
            )

    set_cell = cell("set")
    txn_cell = cell("transactions")
    if set_cell:
        number = _positive_int(set_cell, "set number")
        # Any order is fine (sets play in file order), but `--sets` selects by number.
        if number in set_lines:
            raise _CellError(
                f"set number {number} is used twice (lines {set_lines[number]} and {lineno})"
            )
        live = _parse_node_list(cell("live"), n, "Live")
        byzantine = _parse_node_list(cell("byzantine"), n, "Byzantine")
        if "attack" in columns:
            attacks = _parse_attacks(cell("attack"), n)
            if attacks and not byzantine:
                raise _CellError("attacks listed but no Byzantine replicas to perform them")
            if byzantine and not attacks:
                raise _CellError(
                    "Byzantine replicas listed with no attack (write e.g. [crash] in the Attack column)"
                )
        else:
            attacks = (Attack("crash", ()),) if byzantine else ()
        if current is not None:
            sets.append(current.close(path))
        current = _OpenSet(number, lineno, live, byzantine, attacks, [])
        set_lines[number] = lineno
    else:
        for key in ("live", "byzantine", "attack"):
            if cell(key):
                raise _CellError(
                    f"{_COLUMN_TITLES[key]} given on a row without a set number "
                    "(only a set's first row sets it)"
                )
        if current is None:
            raise _CellError("transaction before the first set (the first row needs a set number)")
        if not txn_cell:
            raise _CellError("row without a set number has no transaction")
    if txn_cell:
        current.transactions.extend(_parse_cell(txn_cell, accounts, lineno))
    return current


def _decode(data: bytes, path: str) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ScenarioError(path, 1, "file is UTF-16; save it as UTF-8")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = len(_LINE_BREAK_BYTES.findall(data[: e.start])) + 1
        raise ScenarioError(
            path, line, f"not valid UTF-8 (byte 0x{data[e.start]:02x}); save the file as UTF-8"
        ) from None


def parse_scenario_file(path: str | os.PathLike[str]) -> list[ScenarioSet]:
    """Read `path` (UTF-8, optional BOM) and parse it with `parse_scenario`.

    Only a regular file of at most `SCENARIO_BYTES_MAX` bytes is read: a device (``/dev/zero``)
    or a pipe would never end, or block, and a huge file would be read whole into memory. Such a
    file raises `ScenarioError` with line 0 (the whole file); a file that cannot be opened
    raises `OSError`.
    """
    name = os.fspath(path)
    info = os.stat(name)  # before opening: opening a FIFO blocks until a writer comes
    if not stat.S_ISREG(info.st_mode):
        raise ScenarioError(name, 0, "not a regular file (a scenario file must be a plain file)")
    with open(name, "rb") as f:
        data = f.read(SCENARIO_BYTES_MAX + 1)  # + 1: a file that grew since stat is caught too
    if len(data) > SCENARIO_BYTES_MAX:
        raise ScenarioError(
            name,
            0,
            f"file is larger than {SCENARIO_BYTES_MAX // (1024 * 1024)} MiB "
            "(scenario files are limited to SCENARIO_BYTES_MAX)",
        )
    return parse_scenario(_decode(data, name), path=name)


# ---- selecting sets -----------------------------------------------------------------------


def select_sets(sets: list[ScenarioSet], spec: str) -> list[ScenarioSet]:
    """The sets named by `spec`, in file order: ``"1,3-5"``; ``"all"`` or ``"*"`` for every set.

    A single number must name an existing set; a range ``a-b`` (a <= b) picks the sets numbered
    within it and must pick at least one. Raises `ValueError` otherwise.
    """
    text = spec.strip()
    if text.lower() in ("all", "*"):
        return list(sets)
    if not text:
        raise ValueError("empty set selection; expected e.g. 1,3-5 or all")
    numbers = {s.number for s in sets}
    wanted: set[int] = set()
    for part in text.split(","):
        item = part.strip()
        m = re.fullmatch(r"([0-9]+)\s*(?:-\s*([0-9]+))?", item, re.ASCII)
        if not m:
            raise ValueError(
                f"bad set selection {_quote(item)} in {_quote(spec)}; expected e.g. 1,3-5"
            )
        low = int(m.group(1))
        if m.group(2) is None:
            if low not in numbers:
                raise ValueError(f"no set {low} in the file (sets: {_ranges(numbers)})")
            wanted.add(low)
            continue
        high = int(m.group(2))
        if low > high:
            raise ValueError(f"bad set range {_quote(item)}: {low} > {high}")
        hits = {x for x in numbers if low <= x <= high}
        if not hits:
            raise ValueError(
                f"no sets numbered {low}-{high} in the file (sets: {_ranges(numbers)})"
            )
        wanted |= hits
    return [s for s in sets if s.number in wanted]


def _ranges(numbers: set[int]) -> str:
    spans: list[list[int]] = []
    for x in sorted(numbers):
        if spans and spans[-1][1] == x - 1:
            spans[-1][1] = x
        else:
            spans.append([x, x])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans) or "none"
