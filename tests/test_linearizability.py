"""The linearizability checker on hand-written bank histories.

Each scenario is a few clients' operations on a timeline (invoked, completed, result), the way
a Jepsen history reads; the checker must accept exactly those some single order explains.
"""

from __future__ import annotations

from pbft_core.config import ACCOUNTS, INITIAL_BALANCE
from pbft_core.linearizability import History, Operation, check

BANK = dict.fromkeys(ACCOUNTS, INITIAL_BALANCE)


def transfer(client: str, target: str, amount: int, start: float, end: float | None, result: str | None = "ok") -> Operation:
    return Operation(client, "transfer", (client, target, amount), start, end, result if end is not None else None)


def read(client: str, account: str, start: float, end: float | None, value: int | str | None) -> Operation:
    return Operation(client, "balance", (account,), start, end, value)


def test_a_read_after_an_acknowledged_transfer_sees_it():
    history = [transfer("A", "B", 3, 0, 10), read("C", "B", 20, 30, 13)]
    assert check(history, BANK).ok


def test_a_stale_read_after_an_acknowledged_transfer_is_rejected():
    # A's transfer completed at 10; C's read began at 20 and still saw B's old balance.
    history = [transfer("A", "B", 3, 0, 10), read("C", "B", 20, 30, 10)]
    verdict = check(history, BANK)
    assert verdict.ok is False
    assert "C balance(B) -> 10" in verdict.detail


def test_a_read_concurrent_with_a_transfer_may_see_either_value():
    for seen in (10, 13):
        history = [transfer("A", "B", 3, 0, 20), read("C", "B", 5, 15, seen)]
        assert check(history, BANK).ok, seen


def test_a_read_concurrent_with_a_transfer_never_sees_a_value_no_order_produces():
    history = [transfer("A", "B", 3, 0, 20), read("C", "B", 5, 15, 12)]
    assert check(history, BANK).ok is False


def test_a_failed_transfer_is_legal_only_where_the_funds_were_short():
    # A has 10: a transfer of 13 fails; after receiving 5 it would have succeeded.
    assert check([transfer("A", "B", 13, 0, 10, "failed")], BANK).ok
    after_deposit = [transfer("C", "A", 5, 0, 10), transfer("A", "B", 13, 20, 30, "failed")]
    assert check(after_deposit, BANK).ok is False
    concurrent = [transfer("C", "A", 5, 0, 25), transfer("A", "B", 13, 20, 30, "failed")]
    assert check(concurrent, BANK).ok  # the failure may come first


def test_two_transfers_racing_for_one_balance_cannot_both_succeed():
    history = [transfer("A", "B", 8, 0, 10), transfer("A", "C", 8, 0, 10)]
    assert check(history, BANK).ok is False


def test_an_unacknowledged_transfer_that_took_effect_explains_a_later_read():
    # A's transfer never completed (its client was still waiting), but C later read its effect.
    history = [transfer("A", "B", 3, 0, None), read("C", "B", 20, 30, 13), read("C", "A", 40, 50, 7)]
    assert check(history, BANK).ok


def test_an_unacknowledged_transfer_may_also_never_take_effect():
    history = [transfer("A", "B", 3, 0, None), read("C", "B", 20, 30, 10), read("C", "A", 40, 50, 10)]
    assert check(history, BANK).ok


def test_an_unacknowledged_transfer_takes_effect_once_and_not_before_it_was_invoked():
    # Seen, then unseen: money cannot come back.
    flip = [transfer("A", "B", 3, 0, None), read("C", "B", 20, 30, 13), read("C", "B", 40, 50, 10)]
    assert check(flip, BANK).ok is False
    # A read that completed before the transfer was even invoked cannot see it.
    early = [read("C", "B", 0, 5, 13), transfer("A", "B", 3, 10, None)]
    assert check(early, BANK).ok is False


def test_a_transfer_moves_two_accounts_at_one_point():
    # Per-account checks would accept this: B already rich, A not yet poorer, read after the
    # transfer completed. One order for the whole bank cannot.
    history = [transfer("A", "B", 3, 0, 10), read("C", "B", 20, 30, 13), read("D", "A", 20, 30, 10)]
    assert check(history, BANK).ok is False


def test_the_recorder_keeps_invocation_order_at_one_instant_and_pending_operations():
    history = History()
    history.invoke("A", 1, "transfer", ("A", "B", 3), 5.0)
    history.complete("A", 1, "ok", 7.0)
    history.invoke("C", 1, "balance", ("B",), 7.0)  # same instant, but after A's completion
    history.complete("C", 1, 10, 9.0)
    history.invoke("D", 1, "transfer", ("D", "E", 1), 9.0)
    ops = history.all()
    assert [o.done for o in ops] == [True, True, False]
    assert check(ops, BANK).ok is False  # C's read began after A's transfer was acknowledged
