"""The replicated bank: deterministic, conserving, at-most-once."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pbft_core.bank import FAILED, OK, Bank
from pbft_core.config import ACCOUNTS
from pbft_core.messages import Request


def req(client: str, ts: int, *args) -> Request:
    return Request(client, ts, "transfer", args, False)


def test_a_transfer_moves_money_and_a_short_one_fails_without_changing_anything():
    bank = Bank()
    assert bank.execute(req("A", 1, "A", "B", 4)) == OK
    assert bank.execute(req("A", 2, "A", "B", 7)) == FAILED
    assert (bank.balances["A"], bank.balances["B"]) == (6, 14)


def test_a_request_is_executed_at_most_once_and_its_reply_is_cached():
    bank = Bank()
    first = req("A", 1, "A", "B", 1)
    assert bank.execute(first) == OK
    assert bank.execute(first) is None
    assert bank.cached_reply("A", 1) == OK
    assert bank.balances["A"] == 9


def test_nonsense_operations_fail_cleanly():
    bank = Bank()
    for args in [("A", "A", 1), ("A", "Z", 1), ("A", "B", 0), ("A", "B", -1), ("A", "B", "1"), ("A",)]:
        assert bank.apply("transfer", args) == FAILED
    assert bank.read("balance", ("Z",)) == FAILED
    assert bank.total == 100


@given(st.lists(st.tuples(st.sampled_from(ACCOUNTS), st.sampled_from(ACCOUNTS), st.integers(-3, 15)), max_size=60))
def test_money_is_conserved_no_balance_goes_negative_and_snapshots_round_trip(ops):
    bank = Bank()
    for ts, (a, b, amount) in enumerate(ops, start=1):
        bank.execute(req(a, ts, a, b, amount))
        assert bank.total == 10 * len(ACCOUNTS)
        assert min(bank.balances.values()) >= 0
    copy = Bank.from_snapshot(bank.snapshot())
    assert copy.balances == bank.balances and copy.digest() == bank.digest()
