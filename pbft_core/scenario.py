"""Scenario files: parse, validate and select the sets a run plays (DESIGN §4, §5).

A scenario file is a CSV with the header ``Set Number,Transactions,Live,Byzantine,Attack``::

    Set Number,Transactions,Live,Byzantine,Attack
    1,"(A, B, 1)","[n1, n2, n3, n4, n5, n6, n7]",[],[]
    ,"(B, C, 2)",,,
    ,(E),,,
    2,"(F, G, 12)","[n1, n2, n3, n4, n5]",[n1],"[time; dark(n6)]"

A row with a set number starts a set and carries its Live / Byzantine / Attack columns; the rows
after it (empty set number, empty list columns) add transactions to it. ``(S, R, amt)`` is a
transfer, ``(S)`` a balance read. A file without the Attack column (the older 4-column format)
means ``crash`` for its Byzantine replicas.

Everything is checked before anything runs. Any problem raises `ScenarioError`, whose text is
``path:LINE: what is wrong`` with LINE the physical line of the file (the header is line 1 when
the file starts with it). The accepted quirks and every decision are listed in
``docs/scenarios.md``.

The module is pure: apart from `parse_scenario_file` reading its file, it does no I/O.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from .faults import ATTACK_KINDS, TARGETED_ATTACKS, Attack

__all__ = [
    "ATTACK_KINDS",
    "MAX_AMOUNT",
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
_NUMBER_LIKE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
_NODE = re.compile(r"[nNsS]([0-9]+)", re.ASCII)
_ATTACK = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:\((.*)\))?", re.ASCII | re.DOTALL)
_OPENERS = {"(": ")", "[": "]"}
_CLOSERS = {")": "(", "]": "["}
_MAX_DIGITS = len(str(MAX_AMOUNT))


class ScenarioError(ValueError):
    """A scenario file is malformed. ``str(e)`` is ``"path:LINE: message"``."""

    def __init__(self, path: str, line: int, message: str) -> None:
        super().__init__(path, line, message)
        self.path = path
        self.line = line
        self.message = message

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass(frozen=True)
class Transaction:
    """One row's transaction: ``(S, R, amount)`` transfer or ``(S)`` balance read."""

    line: int
    client: str
    kind: str  # "transfer" | "balance"
    args: tuple[str | int, ...]  # transfer: (S, R, amount) ; balance: (S,)

    def __str__(self) -> str:
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
                    f"unexpected text {line[k : k + 12]!r} after the closing quote "
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
                            f"{line[i : k + 1].strip()!r}"
                        )
                    stack.pop()
                elif c == "," and not stack:
                    break
                k += 1
            if stack:
                raise _CellError(
                    f"unclosed {stack[-1]!r} in column {len(fields) + 1}: {line[i:k].strip()!r}"
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
        if len(text.lstrip("0")) > _MAX_DIGITS or int(text) > MAX_AMOUNT:
            raise _CellError(f"{what} {text} is too large (at most {MAX_AMOUNT})")
        value = int(text)
        if value == 0:
            raise _CellError(f"{what} must be positive, got {text}")
        return value
    if _INT_LIKE.fullmatch(text):
        raise _CellError(f"{what} must be positive, got {text}")
    if _NUMBER_LIKE.fullmatch(text):
        raise _CellError(f"{what} must be a whole number, got {text}")
    raise _CellError(f"{what} must be a positive integer, got {text!r}")


def _parse_transaction(cell: str, accounts: tuple[str, ...], line: int) -> Transaction:
    shown = f'"{cell}"'
    if not (cell.startswith("(") and cell.endswith(")")):
        raise _CellError(f"transaction {shown} must look like (S, R, amount) or (S)")
    inner = cell[1:-1]
    if any(c in inner for c in "()[]"):
        raise _CellError(f"transaction {shown} must look like (S, R, amount) or (S)")
    parts = [p.strip() for p in inner.split(",")]
    if any(p == "" for p in parts):
        raise _CellError(f"transaction {shown} has an empty field")
    if len(parts) not in (1, 3):
        raise _CellError(
            f"transaction {shown} has {len(parts)} fields; expected (S, R, amount) or (S)"
        )
    for name in parts[:2] if len(parts) == 3 else parts:
        if name not in accounts:
            hint = ""
            if name.upper() in accounts or name.lower() in accounts:
                hint = " (account names are case-sensitive)"
            raise _CellError(f"unknown account {name!r} in transaction {shown}{hint}")
    if len(parts) == 1:
        return Transaction(line, parts[0], "balance", (parts[0],))
    sender, receiver, amount_text = parts
    if sender == receiver:
        raise _CellError(f"sender and receiver are both {sender!r} in transaction {shown}")
    try:
        amount = _positive_int(amount_text, "amount")
    except _CellError as e:
        raise _CellError(f"{e} in transaction {shown}") from None
    return Transaction(line, sender, "transfer", (sender, receiver, amount))


def _parse_node(text: str, n: int, column: str) -> int:
    m = _NODE.fullmatch(text)
    if not m:
        raise _CellError(f"{column}: expected a replica name like n1 (or S1), got {text!r}")
    digits = m.group(1)
    if len(digits) > 6 or not 1 <= int(digits) <= n:
        raise _CellError(f"{column}: replica {text!r} does not exist (replicas are n1..n{n})")
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
            raise _CellError(f"{column}: empty entry in {what} {text!r}")
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
        raise _CellError(f"{column}: expected a list like {example} or [], got {cell!r}")
    return cell[1:-1].strip()


def _parse_node_list(cell: str, n: int, column: str) -> frozenset[int]:
    body = _list_body(cell, column, "[n1, n2]")
    return frozenset(_parse_nodes(body, n, column))


def _parse_attacks(cell: str, n: int) -> tuple[Attack, ...]:
    column = "Attack"
    body = _list_body(cell, column, "[time; dark(n6)]")
    if not body:
        return ()
    attacks: list[Attack] = []
    seen: set[str] = set()
    for item in _split_top(body, ";,"):
        item = item.strip()
        if not item:
            raise _CellError(f"Attack: empty entry in {cell!r}")
        m = _ATTACK.fullmatch(item)
        if not m:
            raise _CellError(f"Attack: cannot read {item!r} (expected e.g. crash or dark(n6))")
        kind = m.group(1).lower()
        args = m.group(2)
        if kind not in ATTACK_KINDS:
            raise _CellError(
                f"Attack: unknown attack {m.group(1)!r} (known: {', '.join(ATTACK_KINDS)})"
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
                raise _CellError(f"Attack: {kind} takes no targets, got {item!r}")
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
                f"unknown column {raw.strip()!r} in the header{hint}; expected {_EXPECTED_HEADER}"
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
        return ScenarioSet(
            self.number,
            self.line,
            tuple(self.transactions),
            self.live,
            self.byzantine,
            self.attacks,
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
    last_number = 0

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
            current, last_number = _read_row(
                cells, columns, lineno, current, last_number, sets, path, n, accounts
            )
        except _CellError as e:
            raise ScenarioError(path, lineno, str(e)) from None

    last_line = max(1, len(lines))
    if columns is None:
        raise ScenarioError(path, last_line, f"empty file; expected the header {_EXPECTED_HEADER}")
    if current is not None:
        sets.append(current.close(path))
    if not sets:
        raise ScenarioError(path, last_line, "no sets in the file")
    return sets


def _read_row(
    cells: list[str],
    columns: dict[str, int],
    lineno: int,
    current: _OpenSet | None,
    last_number: int,
    sets: list[ScenarioSet],
    path: str,
    n: int,
    accounts: tuple[str, ...],
) -> tuple[_OpenSet | None, int]:
    def cell(key: str) -> str:
        index = columns.get(key)
        return cells[index] if index is not None and index < len(cells) else ""

    named = set(columns.values())
    for index, value in enumerate(cells):
        if value and index not in named:
            raise _CellError(
                f"unexpected value {value!r} in column {index + 1}, which has no header"
            )

    set_cell = cell("set")
    txn_cell = cell("transactions")
    if set_cell:
        number = _positive_int(set_cell, "set number")
        if number == last_number or any(s.number == number for s in sets):
            raise _CellError(f"set number {number} is used twice")
        if number < last_number:
            raise _CellError(
                f"set number {number} comes after set {last_number}; numbers must increase"
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
        last_number = number
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
        current.transactions.append(_parse_transaction(txn_cell, accounts, lineno))
    return current, last_number


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
    """Read `path` (UTF-8, optional BOM) and parse it with `parse_scenario`."""
    name = os.fspath(path)
    with open(name, "rb") as f:
        data = f.read()
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
            raise ValueError(f"bad set selection {item!r} in {spec!r}; expected e.g. 1,3-5")
        low = int(m.group(1))
        if m.group(2) is None:
            if low not in numbers:
                raise ValueError(f"no set {low} in the file (sets: {_ranges(numbers)})")
            wanted.add(low)
            continue
        high = int(m.group(2))
        if low > high:
            raise ValueError(f"bad set range {item!r}: {low} > {high}")
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
