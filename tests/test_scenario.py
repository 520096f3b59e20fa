"""The scenario-file parser: the official file, every accepted quirk, every rejection."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from pbft_core.scenario import (
    Attack,
    ScenarioError,
    ScenarioSet,
    Transaction,
    parse_scenario,
    parse_scenario_file,
    select_sets,
)

DATA = Path(__file__).resolve().parent.parent / "data"
HEADER = "Set Number,Transactions,Live,Byzantine,Attack"
ALL = frozenset(range(1, 8))


def parse(*rows: str, header: str = HEADER, **kwargs: object) -> list[ScenarioSet]:
    return parse_scenario("\n".join([header, *rows]) + "\n", path="t.csv", **kwargs)  # type: ignore[arg-type]


def rejects(*rows: str, line: int, match: str, header: str = HEADER) -> ScenarioError:
    with pytest.raises(ScenarioError, match=match) as info:
        parse(*rows, header=header)
    err = info.value
    assert err.line == line, str(err)
    assert err.path == "t.csv"
    assert str(err) == f"t.csv:{line}: {err.message}"
    return err


# ---- the official course file ---------------------------------------------------------------


@pytest.fixture(scope="module")
def official() -> list[ScenarioSet]:
    return parse_scenario_file(DATA / "official-f25.csv")


def test_official_file_is_the_shared_one() -> None:
    shared = Path(__file__).resolve().parent.parent.parent / "shared/scenarios/official-f25.csv"
    if not shared.exists():
        pytest.skip("shared/ not beside the work tree")
    assert (DATA / "official-f25.csv").read_bytes() == shared.read_bytes()


def test_official_sets(official: list[ScenarioSet]) -> None:
    assert [s.number for s in official] == list(range(1, 11))
    assert [s.line for s in official] == [2, 7, 12, 17, 22, 27, 32, 37, 42, 47]
    assert [len(s.transactions) for s in official] == [5] * 9 + [50]
    expected = {
        1: (ALL, set(), ()),
        2: ({1, 2, 3, 4, 5}, set(), ()),
        3: ({1, 2, 3, 4, 5, 6}, {2}, (Attack("crash", ()),)),
        4: ({1, 2, 3, 4, 5, 6}, {1}, (Attack("time", ()), Attack("dark", (6,)))),
        5: (ALL, {1}, (Attack("equivocation", (6, 7)),)),
        6: (
            ALL,
            {1},
            (Attack("time", ()), Attack("dark", (6,)), Attack("equivocation", (7,))),
        ),
        7: ({1, 2, 3, 4, 5}, {3}, (Attack("sign", ()),)),
        8: ({1, 2, 3, 4, 5, 6}, {1}, (Attack("equivocation", (5, 6)),)),
        9: (ALL, {1, 2}, (Attack("crash", ()),)),
        10: (ALL, {7}, (Attack("dark", (1, 2)),)),
    }
    for s in official:
        live, byzantine, attacks = expected[s.number]
        assert s.live == frozenset(live), s.number
        assert s.byzantine == frozenset(byzantine), s.number
        assert s.attacks == attacks, s.number


def test_official_transactions(official: list[ScenarioSet]) -> None:
    first = official[0].transactions
    assert first[0] == Transaction(2, "A", "transfer", ("A", "B", 1))
    assert first[3] == Transaction(5, "D", "transfer", ("D", "E", 4))
    assert first[4] == Transaction(6, "E", "balance", ("E",))
    assert official[1].transactions[0].args == ("F", "G", 12)
    last = official[9].transactions
    assert [t.line for t in last] == list(range(47, 97))
    assert all(t.kind == "transfer" for t in last)
    assert str(first[0]) == "(A, B, 1)" and str(first[4]) == "(E)"


def test_attack_str() -> None:
    assert str(Attack("equivocation", (6, 7))) == "equivocation(n6, n7)"
    assert str(Attack("crash")) == "crash"


# ---- shipped data files ------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(DATA.glob("*.csv")), ids=lambda p: p.name)
def test_every_shipped_file_parses(path: Path) -> None:
    sets = parse_scenario_file(path)
    assert sets
    for s in sets:
        assert s.transactions
        assert s.live <= ALL and s.byzantine <= ALL


def test_shipped_files_cover_every_attack() -> None:
    kinds = {
        a.kind
        for p in DATA.glob("attacks-*.csv")
        for s in parse_scenario_file(p)
        for a in s.attacks
    }
    assert kinds == {"sign", "crash", "dark", "time", "equivocation"}
    for kind in kinds:
        sets = parse_scenario_file(DATA / f"attacks-{kind}.csv")
        assert all({a.kind for a in s.attacks} == {kind} for s in sets)
        assert any(1 in s.byzantine for s in sets), kind  # on the leader
        assert any(1 not in s.byzantine for s in sets), kind  # on a backup
        assert any(len(s.byzantine) == 2 for s in sets), kind  # f = 2
        assert any(len(s.live) < 7 for s in sets), kind  # fewer live


def test_input1_is_a_small_demo() -> None:
    sets = parse_scenario_file(DATA / "input1.csv")
    assert [len(s.transactions) for s in sets] == [6] * 6  # six sets of six
    assert all(s.transactions[-1].kind == "balance" for s in sets)


def test_long_file() -> None:
    (only,) = parse_scenario_file(DATA / "long.csv")
    transfers = [t for t in only.transactions if t.kind == "transfer"]
    assert len(transfers) == 60
    assert {t.client for t in transfers} == set("ABCDEFGHIJ")
    for c in "ABCDEFGHIJ":  # no client can ever spend more than it started with
        assert sum(t.args[2] for t in transfers if t.client == c) < 10  # type: ignore[misc]


def test_four_column_file() -> None:
    sets = parse_scenario_file(DATA / "four-column.csv")
    assert sets[0].attacks == ()
    assert all(s.attacks == (Attack("crash", ()),) for s in sets if s.byzantine)
    assert sets[-1].byzantine == {6, 7} and 7 not in sets[-1].live


# ---- accepted quirks ---------------------------------------------------------------------------


def test_minimal() -> None:
    (s,) = parse('1,"(A, B, 1)","[n1, n2]",[],[]')
    assert s == ScenarioSet(
        1, 2, (Transaction(2, "A", "transfer", ("A", "B", 1)),), frozenset({1, 2}), frozenset(), ()
    )


@pytest.mark.parametrize(
    "header",
    [
        "Set Number,Transactions,Live Servers,Byzantine Servers,Attack",
        "  set number , TRANSACTIONS,live   servers,Byzantine,attack  ",
        "Set Number,Transactions,Live,Byzantine,Attacks,,",
        "SET  NUMBER,Transactions,LIVE,BYZANTINE SERVERS,Attack",
    ],
)
def test_header_variants(header: str) -> None:
    (s,) = parse('1,"(A, B, 1)",[n1],[n1],[sign]', header=header)
    assert s.byzantine == {1} and s.attacks == (Attack("sign"),)


def test_columns_in_any_order() -> None:
    (s,) = parse(
        '[n2],[crash],1,[n1, n2],"(A, B, 1)"',
        header="Byzantine,Attack,Set Number,Live,Transactions",
    )
    assert s.number == 1 and s.live == {1, 2} and s.byzantine == {2}
    assert s.transactions[0].args == ("A", "B", 1)


def test_four_columns_means_crash() -> None:
    header = "Set Number,Transactions,Live Servers,Byzantine Servers"
    a, b = parse("1,(A),[n1],[n3]", ",(B),,", "2,(C),[n1],[]", header=header)
    assert a.attacks == (Attack("crash", ()),) and len(a.transactions) == 2
    assert b.attacks == () and b.byzantine == frozenset()


def test_crlf_bom_blank_lines_whitespace() -> None:
    text = (
        "\ufeffSet Number,Transactions,Live,Byzantine,Attack\r\n"
        '1 , "(A, B, 1)" , "[ n1 ,n2 ]" , [ ] , [ ]\r\n'
        ",  ( B ,  C , 2 )  ,,,\r\n"
        "\r\n"
        ",,,,\r\n"
        ", (E) ,,,\r\n"
        "\r\n\r\n"
    )
    (s,) = parse_scenario(text)
    assert [t.args for t in s.transactions] == [("A", "B", 1), ("B", "C", 2), ("E",)]
    assert [t.line for t in s.transactions] == [2, 3, 6]
    assert s.live == {1, 2}


def test_bom_in_bytes_and_crlf_file(tmp_path: Path) -> None:
    p = tmp_path / "f.csv"
    p.write_bytes(b"\xef\xbb\xbf" + (HEADER + '\r\n1,"(A, B, 1)",[n1],[],[]\r\n').encode())
    (s,) = parse_scenario_file(p)
    assert s.line == 2
    (s,) = parse_scenario_file(str(p))
    assert s.number == 1


def test_lone_cr_line_breaks() -> None:
    (s,) = parse_scenario(HEADER + "\r1,(A),[n1],[],[]\r,(B),,,\r")
    assert [t.line for t in s.transactions] == [2, 3]


def test_unquoted_lists_and_transactions() -> None:
    (s,) = parse("1,(A, B, 3),[n1, n2, n3],[n1, n2],[time; dark(n6, n7)]", ",(B, C, 1),,,")
    assert s.transactions[0].args == ("A", "B", 3)
    assert s.live == {1, 2, 3} and s.byzantine == {1, 2}
    assert s.attacks == (Attack("time"), Attack("dark", (6, 7)))


def test_empty_cells_and_empty_lists() -> None:
    a, b = parse("1,(A),,,", "2,(A),[],[],[]")
    for s in (a, b):
        assert s.live == frozenset() and s.byzantine == frozenset() and s.attacks == ()


def test_node_name_forms() -> None:
    (s,) = parse('1,(A),"[N1, s2, S3, n4; n7]","[S5]",[crash]')
    assert s.live == {1, 2, 3, 4, 7} and s.byzantine == {5}


def test_byzantine_need_not_be_live() -> None:
    (s,) = parse("1,(A),[n1],[n7],[crash]")
    assert s.byzantine == {7} and 7 not in s.live


def test_attack_spellings() -> None:
    (s,) = parse('1,(A),[n1],[n1],"[ Time ;DARK( n6 ,n7 ) , equivocation(S2)]"')
    assert s.attacks == (Attack("time"), Attack("dark", (6, 7)), Attack("equivocation", (2,)))


def test_trailing_and_extra_empty_columns() -> None:
    (s,) = parse('1,"(A, B, 1)",[n1],[],[],,,', ",(B),,,,,,,", ",(C)")
    assert len(s.transactions) == 3


def test_first_row_without_transaction() -> None:
    (s,) = parse("1,,[n1],[],[]", ",(A),,,")
    assert s.line == 2 and [t.line for t in s.transactions] == [3]


def test_quoted_quotes_and_leading_zeros() -> None:
    (s,) = parse('01,"(A, B, 007)",[n1],[],[]')
    assert s.number == 1 and s.transactions[0].args == ("A", "B", 7)


def test_non_consecutive_set_numbers() -> None:
    assert [s.number for s in parse("2,(A),[n1],[],[]", "10,(B),[n1],[],[]")] == [2, 10]


def test_insufficient_funds_is_not_a_parse_error() -> None:
    (s,) = parse('1,"(A, B, 1000)",[n1],[],[]')
    assert s.transactions[0].args == ("A", "B", 1000)


def test_custom_n_and_accounts() -> None:
    (s,) = parse('1,"(x, y, 1)",[n4],[],[]', n=4, accounts=("x", "y"))
    assert s.transactions[0].client == "x"
    with pytest.raises(ScenarioError, match="does not exist"):
        parse("1,(x),[n5],[],[]", n=4, accounts=("x",))


def test_error_is_a_picklable_value_error() -> None:
    err = ScenarioError("f.csv", 3, "boom")
    assert isinstance(err, ValueError)
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.path, copy.line, copy.message, str(copy)) == ("f.csv", 3, "boom", "f.csv:3: boom")


# ---- rejections ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "match"),
    [
        ('"(Z, B, 1)"', r"unknown account 'Z' in transaction \"\(Z, B, 1\)\""),
        ('"(A, Z, 1)"', "unknown account 'Z'"),
        ("(Z)", "unknown account 'Z'"),
        ('"(a, B, 1)"', "case-sensitive"),
        ('"(A, B, 0)"', "amount must be positive, got 0"),
        ('"(A, B, -3)"', "amount must be positive, got -3"),
        ('"(A, B, 1.5)"', "amount must be a whole number"),
        ('"(A, B, 1e3)"', "amount must be a whole number"),
        ('"(A, B, x)"', "amount must be a positive integer"),
        ('"(A, B, ١)"', "amount must be a positive integer"),
        ('"(A, B, 99999999999999999999)"', "too large"),
        ('"(A, A, 1)"', "sender and receiver are both 'A'"),
        ('"(A, B)"', "2 fields"),
        ('"(A, B, 1, 2)"', "4 fields"),
        ('"(A, , 1)"', "empty field"),
        ("()", "empty field"),
        ("A", r"must look like \(S, R, amount\) or \(S\)"),
        ('"A, B, 1"', "must look like"),
        ('"((A), B, 1)"', "must look like"),
    ],
)
def test_bad_transactions(cell: str, match: str) -> None:
    rejects("1,(A),[n1],[],[]", f",{cell},,,", line=3, match=match)


def test_bad_transaction_on_first_row() -> None:
    rejects('1,"(A, B, 0)",[n1],[],[]', line=2, match="positive")


@pytest.mark.parametrize(
    ("live", "byz", "attack", "match"),
    [
        ("[n8]", "[]", "[]", r"Live: replica 'n8' does not exist \(replicas are n1..n7\)"),
        ("[n0]", "[]", "[]", "does not exist"),
        ("[n1]", "[n9]", "[crash]", "Byzantine: replica 'n9' does not exist"),
        ("[x1]", "[]", "[]", "expected a replica name"),
        ("[1]", "[]", "[]", "expected a replica name"),
        ('"[n1, n1]"', "[]", "[]", "listed twice"),
        ('"[n1, , n2]"', "[]", "[]", "empty entry"),
        ("n1", "[]", "[]", "expected a list like"),
        ("[n1]", "n1", "[crash]", "expected a list like"),
        ("[n1]", "[n1]", '"[crash"', "expected a list like"),
        ("[n1]", "[n1]", '"crash]"', "expected a list like"),
        ("[n1]", "[n1]", "[boom]", "unknown attack 'boom'"),
        ("[n1]", "[n1]", "[dark]", "dark needs at least one target"),
        ("[n1]", "[n1]", "[dark()]", "dark needs at least one target"),
        ("[n1]", "[n1]", "[equivocation]", "equivocation needs at least one target"),
        ("[n1]", "[n1]", "[crash(n2)]", "crash takes no targets"),
        ("[n1]", "[n1]", "[time()]", "time takes no targets"),
        ("[n1]", "[n1]", "[dark(n8)]", "does not exist"),
        ('"[n1]"', "[n1]", '"[dark(n2, n2)]"', "listed twice"),
        ("[n1]", "[n1]", "[time; time]", "'time' listed twice"),
        ("[n1]", "[n1]", "[dark(n2); dark(n3)]", r"put all targets in one"),
        ("[n1]", "[n1]", "[time;]", "empty entry"),
        ("[n1]", "[n1]", "[dark n2]", "cannot read"),
        ("[n1]", "[]", "[crash]", "attacks listed but no Byzantine"),
        ("[n1]", "[n1]", "[]", "Byzantine replicas listed with no attack"),
        ("[n1]", "[n1]", "", "Byzantine replicas listed with no attack"),
    ],
)
def test_bad_lists(live: str, byz: str, attack: str, match: str) -> None:
    rejects(
        "1,(A),[n1],[],[]",
        ",(B),,,",
        f"2,(C),{live},{byz},{attack}",
        ",(D),,,",
        line=4,
        match=match,
    )


@pytest.mark.parametrize(
    ("row", "match"),
    [
        (",(B),[n1],,", "Live given on a row without a set number"),
        (",(B),,[n1],", "Byzantine given on a row without a set number"),
        (",(B),,,[crash]", "Attack given on a row without a set number"),
        (",,[n1],,", "Live given"),
        (",(B),,,,x", r"unexpected value 'x' in column 6"),
        ('"(B, C, 1),,,', "unterminated quote"),
        ('"(B, C, 1)"x,,,', "unexpected text"),
        (",(B, C, 1,,,", r"unclosed '\('"),
        (",(B, C, 1],,,", "mismatched"),
    ],
)
def test_bad_continuation_rows(row: str, match: str) -> None:
    rejects("1,(A),[n1],[],[]", row, line=3, match=match)


def test_row_with_only_stray_cells_is_rejected() -> None:
    rejects("1,(A),[n1],[],[]", ",,,,,,junk", line=3, match="no header")


@pytest.mark.parametrize(
    ("number", "match"),
    [
        ("0", "set number must be positive"),
        ("-2", "set number must be positive"),
        ("2.5", "set number must be a whole number"),
        ("two", "set number must be a positive integer"),
        ("#", "set number must be a positive integer"),
        ("1", r"set number 1 is used twice \(lines 2 and 4\)"),
        ("3", r"set number 3 is used twice \(lines 3 and 4\)"),
        ("`9", "set number must be a positive integer, got '`9'"),
    ],
)
def test_bad_set_numbers(number: str, match: str) -> None:
    rejects("1,(A),[n1],[],[]", "3,(A),[n1],[],[]", f"{number},(A),[n1],[],[]", line=4, match=match)


def test_set_without_transactions() -> None:
    rejects(
        "1,(A),[n1],[],[]",
        "2,,[n1],[],[]",
        "3,(A),[n1],[],[]",
        line=3,
        match="set 2 has no transactions",
    )
    rejects("1,(A),[n1],[],[]", "", "2,,[n1],[],[]", "", line=4, match="set 2 has no transactions")


def test_transaction_before_any_set() -> None:
    rejects(",(A),,,", "1,(A),[n1],[],[]", line=2, match="transaction before the first set")


@pytest.mark.parametrize(
    ("header", "match"),
    [
        ("Set Number,Transactions,Live,Byzantine,Atack", "unknown column 'Atack'"),
        ("Set Number,Transactions,Live", "lacks column"),
        ("Set Number,Transactions,Live,Live Servers,Byzantine", "'Live' appears twice"),
        ("Set Number;Transactions;Live;Byzantine;Attack", "separated by commas"),
    ],
)
def test_bad_headers(header: str, match: str) -> None:
    rejects("1,(A),[n1],[],[]", header=header, line=1, match=match)


def test_missing_header() -> None:
    with pytest.raises(ScenarioError, match="missing header") as info:
        parse_scenario('\n1,"(A, B, 1)",[n1],[],[]\n', path="t.csv")
    assert info.value.line == 2


def test_empty_file_and_no_sets() -> None:
    for text, line in [("", 1), ("\n\n", 2), ("\ufeff", 1)]:
        with pytest.raises(ScenarioError, match="empty file") as info:
            parse_scenario(text)
        assert info.value.line == line
    with pytest.raises(ScenarioError, match="no sets") as info:
        parse_scenario(HEADER + "\n\n")
    assert info.value.line == 2


def test_bad_utf8_names_the_line(tmp_path: Path) -> None:
    p = tmp_path / "bad.csv"
    p.write_bytes((HEADER + "\r\n1,(A),[n1],[],[]\r\n,(B),,,\r\n").encode() + b",(\xe9),,,\r\n")
    with pytest.raises(ScenarioError, match="not valid UTF-8") as info:
        parse_scenario_file(p)
    assert info.value.line == 4 and info.value.path == str(p)


def test_utf16_is_rejected(tmp_path: Path) -> None:
    p = tmp_path / "u16.csv"
    p.write_bytes((HEADER + "\n1,(A),[n1],[],[]\n").encode("utf-16"))
    with pytest.raises(ScenarioError, match="UTF-16") as info:
        parse_scenario_file(p)
    assert info.value.line == 1


def test_multiline_quoted_field_is_rejected() -> None:
    rejects('1,"(A,', ' B, 1)",[n1],[],[]', line=2, match="unterminated quote")


def test_default_path_in_message() -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(HEADER + "\n1,(Z),[n1],[],[]\n")
    assert str(info.value) == "<scenario>:2: unknown account 'Z' in transaction \"(Z)\""


# ---- select_sets -----------------------------------------------------------------------------


@pytest.fixture
def five() -> list[ScenarioSet]:
    return parse(*(f"{n},(A),[n1],[],[]" for n in (1, 2, 3, 5, 8)))


@pytest.mark.parametrize(
    ("spec", "numbers"),
    [
        ("1", [1]),
        ("1,3-5", [1, 3, 5]),
        (" 8 , 1 ", [1, 8]),
        ("2-3,3,1-2", [1, 2, 3]),
        ("4-8", [5, 8]),
        ("all", [1, 2, 3, 5, 8]),
        ("*", [1, 2, 3, 5, 8]),
        ("1 - 2", [1, 2]),
    ],
)
def test_select_sets(five: list[ScenarioSet], spec: str, numbers: list[int]) -> None:
    assert [s.number for s in select_sets(five, spec)] == numbers


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("", "empty set selection"),
        ("4", r"no set 4 in the file \(sets: 1-3, 5, 8\)"),
        ("6-7", "no sets numbered 6-7"),
        ("5-3", "5 > 3"),
        ("1,,2", "bad set selection ''"),
        ("a", "bad set selection 'a'"),
        ("-1", "bad set selection"),
        ("1-", "bad set selection"),
    ],
)
def test_select_sets_rejects(five: list[ScenarioSet], spec: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        select_sets(five, spec)
