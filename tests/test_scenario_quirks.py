"""Scenario files people already have (issue 12), and files that must never be read (issue 11).

Each test reads: given a scenario file with one quirk seen in the field, when it is parsed, then
the sets are what the file means, or the run stops with one ``FILE:LINE: ...`` message.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import main
from pbft_core import scenario
from pbft_core.scenario import (
    QUOTE_CHARS_MAX,
    SMALLBANK_CUSTOMERS_MAX,
    Attack,
    ScenarioError,
    ScenarioSet,
    parse_scenario,
    parse_scenario_file,
    select_sets,
)

HEADER = "Set Number,Transactions,Live,Byzantine,Attack"
ALL_LIVE = '"[n1, n2, n3, n4, n5, n6, n7]"'


def parse(*rows: str) -> list[ScenarioSet]:
    return parse_scenario("\n".join([HEADER, *rows]) + "\n", path="t.csv")


def rejects(*rows: str, line: int, match: str) -> ScenarioError:
    with pytest.raises(ScenarioError, match=match) as info:
        parse(*rows)
    assert info.value.line == line, str(info.value)
    assert str(info.value) == f"t.csv:{line}: {info.value.message}"
    return info.value


def ops(s: ScenarioSet) -> list[tuple[str, str, tuple[object, ...]]]:
    return [(t.client, t.kind, t.args) for t in s.transactions]


# ---- 1. set numbers in any order ----------------------------------------------------------------


def test_sets_numbered_4_5_1_2_3_play_in_file_order_and_are_selected_by_number() -> None:
    # Given a course demo file that numbers its sets 4, 5, 1, 2, 3
    rows = [f"{n},({'ABCDE'[i]}),[n1],[],[]" for i, n in enumerate((4, 5, 1, 2, 3))]
    # When it is parsed
    sets = parse(*rows)
    # Then the sets keep the file's numbers and order, and --sets picks by number in file order
    assert [s.number for s in sets] == [4, 5, 1, 2, 3]
    assert [s.line for s in sets] == [2, 3, 4, 5, 6]
    assert [s.number for s in select_sets(sets, "1-4")] == [4, 1, 2, 3]
    assert [s.number for s in select_sets(sets, "5,1")] == [5, 1]


def test_a_repeated_set_number_names_both_lines() -> None:
    rejects(
        "4,(A),[n1],[],[]",
        "1,(B),[n1],[],[]",
        "4,(C),[n1],[],[]",
        line=4,
        match=r"set number 4 is used twice \(lines 2 and 4\)",
    )


@pytest.mark.parametrize("number", ["`9", "'9", "9`", "#9", "s9"])
def test_a_stray_character_around_a_set_number_is_an_error(number: str) -> None:
    rejects("1,(A),[n1],[],[]", f"{number},(B),[n1],[],[]", line=3, match="set number must be")


# ---- 2. Attack cells without brackets -----------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "attacks"),
    [
        ("sign", (Attack("sign", ()),)),
        ("crash", (Attack("crash", ()),)),
        ('"dark(n3)"', (Attack("dark", (3,)),)),
        ("time; dark(n6)", (Attack("time", ()), Attack("dark", (6,)))),
        ('"time, equivocation(n6, n7)"', (Attack("time", ()), Attack("equivocation", (6, 7)))),
        (" Sign ", (Attack("sign", ()),)),
        ('"[time; dark(n6)]"', (Attack("time", ()), Attack("dark", (6,)))),  # bracketed still works
    ],
)
def test_an_attack_cell_with_or_without_brackets(cell: str, attacks: tuple[Attack, ...]) -> None:
    (s,) = parse(f"1,(A),{ALL_LIVE},[n1],{cell}")
    assert s.attacks == attacks


@pytest.mark.parametrize(
    ("cell", "match"),
    [
        ("boom", "unknown attack 'boom'"),
        ('"[crash"', "expected a list like"),
        ('"time;"', "empty entry"),
        ("dark", "dark needs at least one target"),
    ],
)
def test_a_bare_attack_cell_is_checked_like_a_bracketed_one(cell: str, match: str) -> None:
    rejects(f"1,(A),{ALL_LIVE},[n1],{cell}", line=2, match=match)


# ---- 3. several transactions in one cell --------------------------------------------------------


def test_several_transactions_in_one_cell_keep_their_order_and_line() -> None:
    (s,) = parse(f'1,"(A, B, 1), (C), (D, E, 2)",{ALL_LIVE},[],[]', ',"(F),(G, H, 3)",,,')
    assert ops(s) == [
        ("A", "transfer", ("A", "B", 1)),
        ("C", "balance", ("C",)),
        ("D", "transfer", ("D", "E", 2)),
        ("F", "balance", ("F",)),
        ("G", "transfer", ("G", "H", 3)),
    ]
    assert [t.line for t in s.transactions] == [2, 2, 2, 3, 3]


def test_a_whole_set_of_100_transactions_in_one_cell() -> None:
    cell = ", ".join(f"({'ABCDEFGHIJ'[i % 10]}, {'BCDEFGHIJA'[i % 10]}, 1)" for i in range(100))
    (s,) = parse(f'1,"{cell}",{ALL_LIVE},[],[]')
    assert len(s.transactions) == 100


def test_an_error_in_item_14_of_100_names_the_line_and_the_item_and_quotes_only_it() -> None:
    items = [f"({'ABCDEFGHIJ'[i % 10]}, {'BCDEFGHIJA'[i % 10]}, 1)" for i in range(100)]
    items[13] = "(Z, B, 1)"
    err = rejects(
        "1,(A),[n1],[],[]",
        f',"{", ".join(items)}",,,',
        line=3,
        match="item 14 of 100",
    )
    assert err.message == "item 14 of 100: unknown account 'Z' in transaction \"(Z, B, 1)\""


@pytest.mark.parametrize(
    ("cell", "match"),
    [
        ('"(A), , (B)"', "item 2 of 3: empty item"),
        ('"(A), (B),"', "item 3 of 3: empty item"),
        ('"(A) (B)"', "must look like"),
        ('"(A), (B, C, 0)"', "item 2 of 2: amount must be positive"),
    ],
)
def test_bad_items_in_a_cell(cell: str, match: str) -> None:
    rejects(f"1,{cell},[n1],[],[]", line=2, match=match)


# ---- 4. SmallBank operations --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("(DepositChecking(25,53))", ("25", "deposit_checking", (25, 53))),
        ("(Balance(A))", ("A", "sb_balance", (1,))),
        ('"(TransactSavings(D,-4))"', ("D", "transact_savings", (4, -4))),
        ('"(SendPayment(E,B,10))"', ("E", "send_payment", (5, 2, 10))),
        ('"(WriteCheck(H,16))"', ("H", "write_check", (8, 16))),
        ('"(Amalgamate(J,F))"', ("J", "amalgamate", (10, 6))),
        # without the outer parentheses, any letter case, spaces, numbers for A–J
        ('"SendPayment(E, B, 10)"', ("E", "send_payment", (5, 2, 10))),
        ('"( sendpayment ( e , 2 , 10 ) )"', ("E", "send_payment", (5, 2, 10))),
        ("BALANCE(73)", ("73", "sb_balance", (73,))),
        ('"deposit_checking(1, +7)"', ("A", "deposit_checking", (1, 7))),
        ('"WriteCheck(C, -5)"', ("C", "write_check", (3, -5))),  # fails at run time, not here
        ('"Amalgamate(J, J)"', ("J", "amalgamate", (10, 10))),  # likewise
    ],
)
def test_smallbank_operations_as_transactions(cell: str, expected: tuple[object, ...]) -> None:
    (s,) = parse(f"1,{cell},{ALL_LIVE},[],[]")
    assert ops(s) == [expected]


def test_a_smallbank_set_shows_its_operations_readably() -> None:
    (s,) = parse(
        f'1,"(SendPayment(5,b,10)), (Balance(73)), (TransactSavings(D,-4))",{ALL_LIVE},[],[]'
    )
    assert [str(t) for t in s.transactions] == [
        "SendPayment(E, B, 10)",
        "Balance(73)",
        "TransactSavings(D, -4)",
    ]
    assert [t.read_only for t in s.transactions] == [False, True, False]


def test_every_smallbank_set_of_a_file_runs_on_one_state_holding_every_customer_named() -> None:
    # Given a file whose SmallBank sets name customers up to 100, and one plain set
    sets = parse(
        f"1,(Balance(A)),{ALL_LIVE},[],[]",
        f'2,"(A, B, 1)",{ALL_LIVE},[],[]',
        f'3,"(SendPayment(100, 3, 1))",{ALL_LIVE},[],[]',
    )
    # Then both SmallBank sets have customers 0..100 and the plain set keeps the bank
    assert [s.state for s in sets] == ["smallbank:101", "bank", "smallbank:101"]
    # and a file naming only A–J still gets all ten of them
    assert parse(f"1,(Balance(C)),{ALL_LIVE},[],[]")[0].state == "smallbank:11"


def test_in_a_set_with_smallbank_operations_a_transfer_is_send_payment_and_a_read_is_balance() -> (
    None
):
    (s,) = parse(f'1,"(A, B, 3), (B), (WriteCheck(C, 1))",{ALL_LIVE},[],[]')
    assert ops(s) == [
        ("A", "send_payment", (1, 2, 3)),
        ("B", "sb_balance", (2,)),
        ("C", "write_check", (3, 1)),
    ]


@pytest.mark.parametrize(
    ("cell", "match"),
    [
        ('"(Balance(K))"', r"unknown customer 'K' in \"\(Balance\(K\)\)\" \(customers are A–J"),
        ('"(Balance(0))"', "unknown customer '0'"),
        ('"(Balance(-1))"', "unknown customer '-1'"),
        (f'"(Balance({SMALLBANK_CUSTOMERS_MAX + 1}))"', "unknown customer"),
        ('"(Balance(AB))"', "unknown customer 'AB'"),
        ('"(SendPayment(E,Z,10))"', "unknown customer 'Z'"),
        ('"(Transfer(A,B,1))"', "unknown operation 'Transfer'"),
        ('"(Balance(A)"', "must look like"),
        (
            '"(SendPayment(E,B))"',
            r"SendPayment takes 3 arguments \(customer, customer, amount\), got 2",
        ),
        ('"(Balance(A, B))"', "Balance takes 1 argument"),
        ('"(Balance())"', "Balance takes 1 argument"),
        ('"(DepositChecking(A,))"', "empty argument"),
        ('"(DepositChecking(A, 1.5))"', "amount must be a whole number, got 1.5"),
        ('"(DepositChecking(A, ten))"', "amount must be an integer, got 'ten'"),
        ('"(DepositChecking(A, 1e3))"', "amount must be a whole number"),
        ('"(DepositChecking(A, 99999999999999999999))"', "too large"),
        ('"(A, B, 1), (Balance(Q))"', "item 2 of 2: unknown customer 'Q'"),
    ],
)
def test_bad_smallbank_operations_are_rejected_before_anything_runs(cell: str, match: str) -> None:
    rejects("1,(Balance(A)),[n1],[],[]", f",{cell},,,", line=3, match=match)


# ---- issue 11: files that must not be read, messages that must stay short ----------------------


def test_dev_zero_is_refused_without_reading_it() -> None:
    with pytest.raises(ScenarioError, match="not a regular file") as info:
        parse_scenario_file("/dev/zero")
    assert str(info.value) == "/dev/zero: not a regular file (a scenario file must be a plain file)"


def test_a_named_pipe_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "scenario.csv"
    os.mkfifo(fifo)
    outcome: list[BaseException] = []
    reader = threading.Thread(target=lambda: _record(outcome, lambda: parse_scenario_file(fifo)))
    reader.start()
    reader.join(timeout=5)
    assert not reader.is_alive(), "parse_scenario_file blocked on a FIFO"
    assert isinstance(outcome[0], ScenarioError) and "not a regular file" in str(outcome[0])


def _record(into: list[BaseException], action: object) -> None:
    try:
        action()  # type: ignore[operator]
    except BaseException as exc:  # the test inspects whatever was raised
        into.append(exc)


def test_a_file_above_the_size_limit_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scenario, "SCENARIO_BYTES_MAX", 1024)
    path = tmp_path / "big.csv"
    path.write_text(HEADER + "\n" + "1,(A),[n1],[],[]\n" * 100)
    with pytest.raises(ScenarioError, match="larger than") as info:
        parse_scenario_file(path)
    assert info.value.line == 0


def test_a_huge_cell_is_quoted_clipped_in_the_error() -> None:
    # Given a line of a million characters in one cell
    huge = "Z" * 1_000_000
    rows = (
        f",({huge}),,,",
        f",{huge},,,",
        f",(Balance({huge})),,,",
        f"2,(A),[{huge}],[],[]",
        f"2,(A),[n1],[n1],{huge}",
        f"{huge},(A),[n1],[],[]",
        f",(A),,,,{huge}",
        "9" * 1_000_000 + ",(A),[n1],[],[]",
        ",(A, B, " + "9" * 1_000_000 + "),,,",
        ",(DepositChecking(A, " + "9" * 1_000_000 + ")),,,",
        ",(A, B, " + "0" * 1_000_000 + "),,,",
        ",(DepositChecking(A, " + "0" * 1_000_000 + "x)),,,",
        "0" * 1_000_000 + ",(A),[n1],[],[]",
        ",(A" + " " * 1_000_000 + "x),,,",
        ",(Balance" + " " * 1_000_000 + "x),,,",
    )
    for row in rows:
        with pytest.raises(ScenarioError) as info:
            parse("1,(A),[n1],[],[]", row)
        # Then the message quotes at most QUOTE_CHARS_MAX characters of it
        assert len(str(info.value)) < QUOTE_CHARS_MAX + 200, str(info.value)[:300]
        assert "…" in str(info.value)


def test_pbft_run_refuses_dev_zero_with_exit_2() -> None:
    result = CliRunner().invoke(main, ["run", "/dev/zero", "--non-interactive"])
    assert result.exit_code == 2
    assert "/dev/zero: not a regular file" in result.output
