"""SmallBank: the operations (money moves only where it should, no balance goes negative), the
workload generator (reproducible, the 15/15/15/25/15/15 mix, hot-set skew) and the workload file."""

import json
import signal
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pbft_core.bank import FAILED, OK, Bank, is_read_only
from pbft_core.smallbank import INITIAL_SMALLBANK_BALANCE
from pbft_core.smallbank_workload import (
    MIX,
    WORKLOAD_FORMAT,
    Transaction,
    WorkloadError,
    WorkloadGenerator,
    WorkloadSpec,
    read_workload,
    write_workload,
)

OPS = st.one_of(
    st.tuples(st.just("amalgamate"), st.tuples(st.integers(0, 5), st.integers(0, 5))),
    st.tuples(st.just("send_payment"), st.tuples(st.integers(0, 5), st.integers(0, 5), st.integers(-5, 3000))),
    st.tuples(st.just("deposit_checking"), st.tuples(st.integers(0, 5), st.integers(-5, 3000))),
    st.tuples(st.just("transact_savings"), st.tuples(st.integers(0, 5), st.integers(-3000, 3000))),
    st.tuples(st.just("write_check"), st.tuples(st.integers(0, 5), st.integers(-5, 3000))),
)
EXTERNAL = {"deposit_checking", "transact_savings", "write_check"}


def test_the_initial_state_and_the_read_only_balance():
    bank = Bank.initial("smallbank:10")
    assert len(bank.balances) == 20 and bank.total == 20_000
    assert is_read_only("sb_balance") and not is_read_only("send_payment")
    assert bank.read("sb_balance", (3,)) == 2000
    assert bank.read("sb_balance", (99,)) == FAILED


def test_amalgamate_moves_everything_into_the_target_checking_account():
    bank = Bank.initial("smallbank:4")
    assert bank.apply("amalgamate", (1, 2)) == OK
    assert (bank.balances["S1"], bank.balances["C1"], bank.balances["C2"]) == (0, 0, 3000)


@given(st.lists(OPS, max_size=40))
def test_transfers_conserve_money_and_nothing_goes_negative(ops):
    bank = Bank.initial("smallbank:6")
    expected_total = bank.total
    for op, args in ops:
        before = bank.total
        result = bank.apply(op, args)
        if op not in EXTERNAL:
            assert bank.total == before
        elif result == OK:
            expected_total += bank.total - before
        assert min(bank.balances.values()) >= 0
    assert bank.total == expected_total


# ---- the workload generator -------------------------------------------------------------------

MIX_SHARES = {op: weight / 100 for op, weight in MIX}
TWO_CUSTOMER_OPS = {"amalgamate", "send_payment"}


def _customers(transaction: Transaction) -> tuple[int, ...]:
    """The customer arguments of a generated transaction (amounts left out)."""
    if transaction.op in TWO_CUSTOMER_OPS:
        return transaction.args[:2]
    return transaction.args[:1]


def test_the_mix_weights_are_cahills():
    assert dict(MIX) == {
        "amalgamate": 15,
        "sb_balance": 15,
        "deposit_checking": 15,
        "send_payment": 25,
        "transact_savings": 15,
        "write_check": 15,
    }


def test_the_generator_is_reproducible_for_a_seed_and_differs_across_seeds():
    spec = WorkloadSpec(accounts=200, hot_accounts=20, seed=7)
    first = WorkloadGenerator(spec).take(500)
    assert WorkloadGenerator(spec).take(500) == first
    # take() continues the same stream as next()
    generator = WorkloadGenerator(spec)
    assert [generator.next() for _ in range(200)] + generator.take(300) == first
    other = WorkloadGenerator(WorkloadSpec(accounts=200, hot_accounts=20, seed=8)).take(500)
    assert other != first


def test_the_mix_over_20000_transactions_is_within_one_and_a_half_points():
    transactions = WorkloadGenerator(WorkloadSpec(seed=3)).take(20_000)
    counts = Counter(t.op for t in transactions)
    assert set(counts) == set(MIX_SHARES)
    for op, share in MIX_SHARES.items():
        assert abs(counts[op] / len(transactions) - share) <= 0.015, (op, counts[op])


def test_generated_transactions_are_well_formed():
    spec = WorkloadSpec(accounts=50, hot_accounts=5, seed=11)
    for t in WorkloadGenerator(spec).take(3000):
        assert all(type(a) is int for a in t.args)
        assert all(0 <= c < spec.accounts for c in _customers(t))
        assert t.read_only == (t.op == "sb_balance")
        if t.op == "sb_balance":
            assert len(t.args) == 1
        elif t.op == "amalgamate":
            assert len(t.args) == 2
        elif t.op == "send_payment":
            assert len(t.args) == 3 and 1 <= t.args[2] <= 50
        elif t.op == "transact_savings":
            assert len(t.args) == 2 and -50 <= t.args[1] <= 100
        else:  # deposit_checking, write_check
            assert len(t.args) == 2 and 1 <= t.args[1] <= 100


def test_with_hot_probability_0_9_about_90_percent_of_customer_draws_hit_the_hot_set():
    spec = WorkloadSpec(accounts=1000, hot_accounts=10, hot_probability=0.9, seed=5)
    draws = [c for t in WorkloadGenerator(spec).take(20_000) for c in _customers(t)]
    hot_share = sum(c < spec.hot_accounts for c in draws) / len(draws)
    # Two-customer transactions redraw a repeated customer, which slightly favours the (larger)
    # cold set; with 10 hot customers that costs well under a point.
    assert 0.88 <= hot_share <= 0.92, hot_share
    # The hot set is small, so every hot customer shows up; the cold ones are spread thin.
    hot_counts = Counter(c for c in draws if c < spec.hot_accounts)
    assert set(hot_counts) == set(range(spec.hot_accounts))


def test_without_a_hot_set_customers_are_uniform():
    spec = WorkloadSpec(accounts=20, hot_accounts=0, hot_probability=0.9, seed=6)
    draws = [c for t in WorkloadGenerator(spec).take(20_000) for c in _customers(t)]
    counts = Counter(draws)
    assert set(counts) == set(range(spec.accounts))
    expected = len(draws) / spec.accounts
    for c, k in counts.items():
        assert abs(k - expected) < 0.1 * expected, (c, k, expected)
    # The first 10% of customers get about 10% of the draws, not 90%.
    assert abs(sum(k for c, k in counts.items() if c < 2) / len(draws) - 0.1) < 0.01


def test_hot_probability_zero_and_one_and_an_all_hot_set():
    never = WorkloadSpec(accounts=100, hot_accounts=10, hot_probability=0.0, seed=1)
    assert all(c >= 10 for t in WorkloadGenerator(never).take(2000) for c in _customers(t))
    always = WorkloadSpec(accounts=100, hot_accounts=10, hot_probability=1.0, seed=1)
    assert all(c < 10 for t in WorkloadGenerator(always).take(2000) for c in _customers(t))
    everyone = WorkloadSpec(accounts=4, hot_accounts=4, hot_probability=0.0, seed=1)
    assert {c for t in WorkloadGenerator(everyone).take(2000) for c in _customers(t)} == set(range(4))


def test_two_customer_transactions_never_use_the_same_customer_twice():
    # A tiny population and a tiny hot set make repeated draws frequent.
    for spec in (
        WorkloadSpec(accounts=2, hot_accounts=0, seed=1),
        WorkloadSpec(accounts=50, hot_accounts=2, hot_probability=0.99, seed=2),
        WorkloadSpec(accounts=3, hot_accounts=3, seed=3),
    ):
        pairs = [t.args[:2] for t in WorkloadGenerator(spec).take(5000) if t.op in TWO_CUSTOMER_OPS]
        assert len(pairs) > 1000
        assert all(a != b for a, b in pairs)


def _generate_with_alarm(spec: WorkloadSpec, count: int, seconds: int = 1) -> list[Transaction]:
    """Generate, but give up (TimeoutError) after `seconds` instead of hanging the test run."""

    def expire(_signum: int, _frame: object) -> None:
        raise TimeoutError(f"the generator for {spec} did not produce {count} transactions in {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        return WorkloadGenerator(spec).take(count)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize(
    "spec",
    [
        WorkloadSpec(accounts=10, hot_accounts=1, hot_probability=1.0),
        WorkloadSpec(accounts=10, hot_accounts=9, hot_probability=0.0),
    ],
    ids=["one-hot-customer-always", "one-cold-customer-only"],
)
def test_a_spec_with_a_single_reachable_customer_is_rejected_or_still_generates(spec: WorkloadSpec):
    try:
        transactions = _generate_with_alarm(spec, 200)
    except ValueError:
        return  # rejecting the spec is fine too
    assert all(a != b for t in transactions if t.op in TWO_CUSTOMER_OPS for a, b in [t.args[:2]])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"accounts": 1},
        {"accounts": 0},
        {"accounts": 10, "hot_accounts": -1},
        {"accounts": 10, "hot_accounts": 11},
        {"hot_probability": -0.1},
        {"hot_probability": 1.5},
    ],
)
def test_invalid_specs_raise_value_error(kwargs: dict[str, float]):
    with pytest.raises(ValueError):
        WorkloadSpec(**kwargs)  # type: ignore[arg-type]


def test_the_spec_names_the_initial_state():
    spec = WorkloadSpec(accounts=42, hot_accounts=4)
    assert spec.state == "smallbank:42"
    bank = Bank.initial(spec.state)
    assert len(bank.balances) == 84 and bank.total == 84 * INITIAL_SMALLBANK_BALANCE


# ---- replaying a workload through the bank ----------------------------------------------------


def _external_change(t: Transaction) -> int:
    """How a successful transaction changes the bank's total (0: it only moves money)."""
    if t.op in ("deposit_checking", "transact_savings"):
        return t.args[1]
    if t.op == "write_check":
        return -t.args[1]
    return 0


@pytest.mark.parametrize(
    "spec",
    [
        WorkloadSpec(accounts=1000, hot_accounts=100, seed=1),
        WorkloadSpec(accounts=8, hot_accounts=2, hot_probability=0.95, seed=2),  # heavy contention
        WorkloadSpec(accounts=30, hot_accounts=0, seed=3),
    ],
    ids=["default", "tiny-hot", "uniform"],
)
def test_replaying_a_workload_conserves_money_up_to_the_external_operations(spec: WorkloadSpec):
    bank = Bank.initial(spec.state)
    expected_total = bank.total
    results: Counter[str] = Counter()
    for t in WorkloadGenerator(spec).take(5000):
        before = dict(bank.balances)
        result = bank.apply(t.op, t.args)
        if t.read_only:
            assert bank.balances == before
            c = t.args[0]
            assert result == before[f"S{c}"] + before[f"C{c}"]
            assert bank.read(t.op, t.args) == result
            results["read"] += 1
            continue
        assert result in (OK, FAILED)
        results[str(result)] += 1
        if result == OK:
            expected_total += _external_change(t)
        else:
            assert bank.balances == before  # a failed transaction is a no-op
        assert bank.total == expected_total, t
        assert min(bank.balances.values()) >= 0, t
    assert results["ok"] > 0 and results["read"] > 0
    if spec.accounts == 8:
        # Under contention some transactions fail (bounced checks, empty accounts).
        assert results["failed"] > 0


def test_write_check_bounces_instead_of_overdrawing():
    bank = Bank.initial("smallbank:2")
    assert bank.apply("write_check", (0, 1001)) == FAILED
    assert bank.balances["C0"] == 1000
    assert bank.apply("write_check", (0, 1000)) == OK
    assert bank.balances["C0"] == 0 and bank.total == 3000
    assert bank.apply("transact_savings", (1, -1001)) == FAILED
    assert bank.apply("transact_savings", (1, -1000)) == OK
    assert bank.balances["S1"] == 0


# ---- the workload file ------------------------------------------------------------------------


def test_write_and_read_round_trip(tmp_path: Path):
    spec = WorkloadSpec(accounts=77, hot_accounts=7, hot_probability=0.75, seed=99)
    transactions = WorkloadGenerator(spec).take(1234)
    path = tmp_path / "w.jsonl"
    write_workload(path, spec, transactions)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1 + len(transactions)
    header = json.loads(lines[0])
    assert header == {
        "format": WORKLOAD_FORMAT,
        "accounts": 77,
        "hot_accounts": 7,
        "hot_probability": 0.75,
        "seed": 99,
        "count": 1234,
    }
    assert json.loads(lines[1]) == [transactions[0].op, list(transactions[0].args)]
    assert read_workload(path) == (spec, transactions)


def test_blank_lines_are_skipped(tmp_path: Path):
    spec = WorkloadSpec(accounts=5, hot_accounts=0)
    path = tmp_path / "w.jsonl"
    write_workload(path, spec, [Transaction("sb_balance", (1,)), Transaction("write_check", (2, 5))])
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], "", lines[1], "   ", lines[2], ""]) + "\n")
    assert read_workload(path)[1] == [Transaction("sb_balance", (1,)), Transaction("write_check", (2, 5))]


def _workload_file(tmp_path: Path, body: list[str], header: str | None = None) -> Path:
    if header is None:
        header = json.dumps({"format": WORKLOAD_FORMAT, **asdict(WorkloadSpec(accounts=10, hot_accounts=2))})
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join([header, *body]) + "\n", encoding="utf-8")
    return path


GOOD = json.dumps(["send_payment", [1, 2, 3]])


@pytest.mark.parametrize(
    ("header", "body", "line", "words"),
    [
        (json.dumps({"accounts": 10}), [GOOD], 1, "bad header"),
        ("not json at all", [GOOD], 1, "bad header"),
        (json.dumps(["a", "list"]), [GOOD], 1, "bad header"),
        (json.dumps({"format": "pbft-smallbank-workload/999"}), [GOOD], 1, "not a"),
        (json.dumps({"format": WORKLOAD_FORMAT, "accounts": 10, "colour": "red"}), [GOOD], 1, "bad header"),
        (json.dumps({"format": WORKLOAD_FORMAT, "accounts": 10, "hot_accounts": 20}), [GOOD], 1, "hot accounts"),
        (None, [GOOD, json.dumps(["transfer", ["A", "B", 5]])], 3, "unknown transaction 'transfer'"),
        (None, [json.dumps(["write_check", [1, "5"]])], 2, "integers"),
        (None, [json.dumps(["write_check", [1, 2.5]])], 2, "integers"),
        (None, [json.dumps(["write_check", [1, True]])], 2, "integers"),
        (None, [json.dumps(["write_check", 7])], 2, ""),
        (None, [json.dumps(["write_check"])], 2, ""),
        (None, [json.dumps(["write_check", [1, 2], "extra"])], 2, ""),
        (None, [GOOD] * 5 + ['["send_payment", [1, 2, 3]'], 7, ""),
    ],
    ids=[
        "no-format",
        "header-not-json",
        "header-not-an-object",
        "wrong-format-name",
        "unknown-header-key",
        "invalid-spec-in-header",
        "unknown-op",
        "string-arg",
        "float-arg",
        "bool-arg",
        "args-not-a-list",
        "no-args",
        "three-items",
        "bad-json-on-line-7",
    ],
)
def test_malformed_workload_files_name_the_line(
    tmp_path: Path, header: str | None, body: list[str], line: int, words: str
):
    path = _workload_file(tmp_path, body, header)
    with pytest.raises(WorkloadError) as info:
        read_workload(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert words in message


@pytest.mark.parametrize("key", ["accounts", "hot_accounts"])
def test_a_header_with_a_non_integer_count_is_rejected_on_line_1(tmp_path: Path, key: str):
    fields = {"format": WORKLOAD_FORMAT, **asdict(WorkloadSpec(accounts=10, hot_accounts=2))}
    fields[key] = 2.5 if key == "hot_accounts" else 10.5
    path = _workload_file(tmp_path, [GOOD], json.dumps(fields))
    with pytest.raises(WorkloadError, match=r":1: bad header"):
        read_workload(path)


def test_an_empty_workload_file_names_line_1(tmp_path: Path):
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    with pytest.raises(WorkloadError, match=r":1: empty file") as info:
        read_workload(path)
    assert str(info.value).startswith(f"{path}:1: ")


def test_a_header_without_transactions_and_a_missing_file(tmp_path: Path):
    path = _workload_file(tmp_path, [])
    with pytest.raises(WorkloadError, match="no transactions"):
        read_workload(path)
    with pytest.raises(WorkloadError, match="missing"):
        read_workload(tmp_path / "missing.jsonl")


def test_workload_error_is_a_value_error():
    assert issubclass(WorkloadError, ValueError)
