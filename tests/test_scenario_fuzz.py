"""Property tests for the scenario parser.

1. Mutated valid files (line deletions/duplications/swaps, character substitutions, insertions,
   column shuffles, byte damage) either parse into well-formed sets or raise `ScenarioError`
   whose line lies within the file; never any other exception.
2. Randomly generated scenarios, rendered with random accepted quirks, parse back to exactly
   what was generated.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pbft_core.bank import Bank
from pbft_core.scenario import (
    ATTACK_KINDS,
    TARGETED_ATTACKS,
    Attack,
    ScenarioError,
    ScenarioSet,
    Transaction,
    parse_scenario,
    parse_scenario_file,
)
from pbft_core.smallbank import OPERATION_ARGUMENTS, checking, customer_name, customers_of, savings

DATA = Path(__file__).resolve().parent.parent / "data"
ACCOUNTS = tuple("ABCDEFGHIJ")
SEEDS = [p.read_text(encoding="utf-8") for p in sorted(DATA.glob("*.csv"))] + [
    "\ufeffset number , transactions,Live Servers,Byzantine Servers\r\n"
    "1,(A, B, 1),[S1, s2, n3],[n3]\r\n,(B),,\r\n\r\n",
    "Set Number,Transactions,Live,Byzantine,Attack,,\n"
    '1,"(A, B, 2)","[n1, n2, n3, n4, n5]","[n1, n2]","[time; dark(n6, n7); equivocation(n3)]",,\n'
    ",(B),,,,,\n,,,,,,\n2,,[],[],[]\n,(C, D, 1),,,\n",
]
CHARS = ',"()[];: \t\r\nnNsSxAZJaz0123456789-.+é\ufeff\x00'
ALPHABET = [
    *CHARS,
    *"`;",
    "dark",
    "crash",
    "(n8)",
    "[n1]",
    "(A, B, 1)",
    "1,(A),[n1],[n1],[crash]",
    "SendPayment(A, B, 1)",
    "(balance(73))",
    "Amalgamate(",
    "), (",
]
SETTINGS = settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def physical_line_count(text: str) -> int:
    lines = re.split(r"\r\n|\r|\n", text)
    if len(lines) > 1 and lines[-1] == "":
        lines.pop()
    return max(1, len(lines))


def numbered_lines(text: str) -> dict[int, str]:
    """The file's physical lines by number (1-based): a line number outside the file is a KeyError."""
    return dict(enumerate(re.split(r"\r\n|\r|\n", text), start=1))


def assert_error_points_at_content(e: ScenarioError, text: str) -> None:
    """A located error names a line with something on it, or the last line for what the file
    lacks as a whole (no header, no sets): never a blank line, never a line the file lacks."""
    line = numbered_lines(text.removeprefix("\ufeff"))[e.line]
    if e.line != physical_line_count(text):
        assert any(cell.strip() for cell in line.split(",")), (e.line, str(e))


def check_well_formed(sets: list[ScenarioSet], text: str) -> None:
    assert sets
    last_line = physical_line_count(text)
    lines = numbered_lines(text)
    numbers = [s.number for s in sets]
    assert len(set(numbers)) == len(numbers) and min(numbers) >= 1  # unique, any order
    for s in sets:
        assert s.transactions
        # A set's line is the row that opens it: its first cell is the set's number.
        assert int(lines[s.line].split(",", 1)[0].strip(" \t\ufeff").strip('"').strip()) == s.number
        assert s.live <= frozenset(range(1, 8)) and s.byzantine <= frozenset(range(1, 8))
        assert bool(s.byzantine) or not s.attacks
        for a in s.attacks:
            assert a.kind in ATTACK_KINDS
            assert bool(a.targets) == (a.kind in TARGETED_ATTACKS)
        if s.state != "bank":
            check_smallbank_set(s, last_line)
            continue
        for t in s.transactions:
            assert s.line <= t.line <= last_line
            assert t.client == t.args[0] and t.client in ACCOUNTS
            if t.kind == "transfer":
                assert len(t.args) == 3 and t.args[1] in ACCOUNTS and t.args[0] != t.args[1]
                assert isinstance(t.args[2], int) and t.args[2] > 0
            else:
                assert t.kind == "balance" and len(t.args) == 1


def check_smallbank_set(s: ScenarioSet, last_line: int) -> None:
    """Every transaction of a SmallBank set is an operation on customers the state holds."""
    customers = customers_of(s.state)
    assert customers is not None and customers > len(ACCOUNTS)
    accounts = Bank.initial(s.state).balances  # the state the set will actually run on
    for t in s.transactions:
        assert s.line <= t.line <= last_line
        kinds = OPERATION_ARGUMENTS[t.kind]
        assert len(t.args) == len(kinds) and all(type(a) is int for a in t.args)
        for kind, a in zip(kinds, t.args, strict=True):
            if kind == "customer":
                assert savings(int(a)) in accounts and checking(int(a)) in accounts
        assert t.client == customer_name(int(t.args[0]))


def parse_or_located_error(text: str) -> None:
    try:
        sets = parse_scenario(text, path="fuzz.csv")
    except ScenarioError as e:
        assert_error_points_at_content(e, text)
        assert str(e).startswith(f"fuzz.csv:{e.line}: ")
        assert e.message
    else:
        check_well_formed(sets, text)


@st.composite
def mutated(draw: st.DrawFn) -> str:
    lines = draw(st.sampled_from(SEEDS)).split("\n")
    for _ in range(draw(st.integers(1, 4))):
        op = draw(
            st.sampled_from(
                [
                    "delete",
                    "duplicate",
                    "swap",
                    "substitute",
                    "insert",
                    "erase",
                    "shuffle_row",
                    "shuffle_columns",
                    "truncate",
                ]
            )
        )
        if not lines:
            lines = [""]
        i = draw(st.integers(0, len(lines) - 1))
        line = lines[i]
        if op == "delete" and len(lines) > 1:
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, line)
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op in ("substitute", "insert", "erase"):
            k = draw(st.integers(0, len(line)))
            c = draw(st.sampled_from(ALPHABET))
            if op == "substitute":
                lines[i] = line[:k] + c + line[k + 1 :]
            elif op == "insert":
                lines[i] = line[:k] + c + line[k:]
            else:
                lines[i] = line[:k] + line[k + 1 :]
        elif op == "shuffle_row":
            cells = line.split(",")
            lines[i] = ",".join(draw(st.permutations(cells)))
        elif op == "shuffle_columns":
            # The same permutation of naive comma-split cells on every line.
            width = max(len(x.split(",")) for x in lines)
            order = draw(st.permutations(range(width)))
            out = []
            for x in lines:
                cells = x.split(",") + [""] * (width - len(x.split(",")))
                out.append(",".join(cells[o] for o in order))
            lines = out
        elif op == "truncate":
            lines = lines[: i + 1]
            lines[-1] = line[: draw(st.integers(0, len(line)))]
    return "\n".join(lines)


@settings(SETTINGS, max_examples=400)
@given(mutated())
def test_mutated_files_parse_or_fail_with_a_line(text: str) -> None:
    parse_or_located_error(text)


@SETTINGS
@given(st.lists(st.sampled_from(ALPHABET), max_size=80).map("".join))
def test_garbage_text(text: str) -> None:
    parse_or_located_error("Set Number,Transactions,Live,Byzantine,Attack\n" + text)
    parse_or_located_error(text)


_TMP = tempfile.TemporaryDirectory()


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(SEEDS),
    st.lists(st.tuples(st.integers(0, 10_000), st.binary(min_size=1, max_size=3)), max_size=4),
)
def test_damaged_bytes(seed: str, damage: list[tuple[int, bytes]]) -> None:
    data = bytearray(seed.encode("utf-8"))
    for at, chunk in damage:
        at %= len(data) + 1
        data[at : at + len(chunk)] = chunk
    path = Path(_TMP.name) / "damaged.csv"
    path.write_bytes(bytes(data))
    try:
        sets = parse_scenario_file(path)
    except ScenarioError as e:
        text = bytes(data).decode("utf-8", errors="replace")
        assert_error_points_at_content(e, text)
        assert e.path == str(path)
    else:
        check_well_formed(sets, bytes(data).decode("utf-8-sig"))


# ---- generated scenarios round-trip through random quirks ----------------------------------------

nodes = st.frozensets(st.integers(1, 7), max_size=7)


@st.composite
def transactions(draw: st.DrawFn) -> tuple[str, ...]:
    sender = draw(st.sampled_from(ACCOUNTS))
    if draw(st.booleans()):
        return (sender,)
    receiver = draw(st.sampled_from([a for a in ACCOUNTS if a != sender]))
    return (sender, receiver, str(draw(st.integers(1, 10**6))))


@st.composite
def attacks(draw: st.DrawFn) -> tuple[Attack, ...]:
    kinds = draw(st.lists(st.sampled_from(ATTACK_KINDS), min_size=1, unique=True))
    out = []
    for kind in kinds:
        targets: tuple[int, ...] = ()
        if kind in TARGETED_ATTACKS:
            targets = tuple(draw(st.lists(st.integers(1, 7), min_size=1, max_size=4, unique=True)))
        out.append(Attack(kind, targets))
    return tuple(out)


@st.composite
def scenarios(
    draw: st.DrawFn,
) -> tuple[
    bool,
    list[tuple[int, frozenset[int], frozenset[int], tuple[Attack, ...], list[tuple[str, ...]]]],
]:
    five = draw(st.booleans())
    numbers = sorted(draw(st.sets(st.integers(1, 50), min_size=1, max_size=4)))
    sets = []
    for number in numbers:
        byzantine = draw(nodes)
        if five:
            atk = draw(attacks()) if byzantine else ()
        else:
            atk = (Attack("crash"),) if byzantine else ()
        txns = draw(st.lists(transactions(), min_size=1, max_size=5))
        sets.append((number, draw(nodes), byzantine, atk, txns))
    return five, sets


def render(draw: st.DrawFn, five: bool, sets: list) -> tuple[str, list[tuple]]:  # type: ignore[type-arg]
    ws = st.sampled_from(["", " ", "  ", "\t"])
    eol = draw(st.sampled_from(["\n", "\r\n", "\r"]))

    def cell(text: str) -> str:
        text = draw(ws) + text + draw(ws)
        if draw(st.booleans()) or text.strip().startswith('"'):
            return '"' + text.replace('"', '""') + '"'
        return text

    def node_list(ids: frozenset[int] | tuple[int, ...]) -> str:
        names = [draw(st.sampled_from(["n", "N", "s", "S"])) + str(i) for i in ids]
        sep = draw(st.sampled_from([", ", ",", "; "]))
        return sep.join(names)

    def bracket_list(ids: frozenset[int]) -> str:
        if not ids and draw(st.booleans()):
            return ""
        return "[" + node_list(tuple(sorted(ids))) + "]"

    header = [
        draw(st.sampled_from(["Set Number", "set number", " SET  NUMBER "])),
        draw(st.sampled_from(["Transactions", "transactions"])),
        draw(st.sampled_from(["Live", "Live Servers", "live servers"])),
        draw(st.sampled_from(["Byzantine", "Byzantine Servers"])),
    ] + (["Attack"] if five else [])
    width = len(header)
    lines = [("\ufeff" if draw(st.booleans()) else "") + ",".join(header)]
    expected = []
    for number, live, byzantine, atk, txns in sets:
        first = len(lines) + 1
        parsed_txns = []
        for k, t in enumerate(txns):
            text = "(" + draw(st.sampled_from([", ", ",", " , "])).join(t) + ")"
            row = [""] * width
            row[1] = cell(text)
            if k == 0:
                row[0] = cell(str(number))
                row[2] = cell(bracket_list(live))
                row[3] = cell(bracket_list(byzantine))
                if five:
                    parts = [
                        draw(st.sampled_from([a.kind, a.kind.upper(), a.kind.title()]))
                        + (f"({node_list(a.targets)})" if a.targets else "")
                        for a in atk
                    ]
                    row[4] = cell(
                        "[" + draw(st.sampled_from(["; ", ";"])).join(parts) + "]"
                        if parts or draw(st.booleans())
                        else ""
                    )
            lines.append(",".join(row) + "," * draw(st.integers(0, 2)))
            line = len(lines)
            args = (t[0],) if len(t) == 1 else (t[0], t[1], int(t[2]))
            parsed_txns.append(
                Transaction(line, t[0], "balance" if len(t) == 1 else "transfer", args)
            )
            if draw(st.booleans()) and draw(st.booleans()):
                lines.append(draw(st.sampled_from(["", ",,,", "  "])))
        expected.append(ScenarioSet(number, first, tuple(parsed_txns), live, byzantine, atk))
    text = eol.join(lines) + eol * draw(st.integers(0, 3))
    return text, expected


@settings(SETTINGS, max_examples=120)
@given(st.data())
def test_generated_scenarios_round_trip(data: st.DataObject) -> None:
    five, sets = data.draw(scenarios())
    text, expected = render(data.draw, five, sets)
    assert parse_scenario(text) == expected
