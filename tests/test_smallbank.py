"""SmallBank operations: money moves only where it should, no balance goes negative."""

from hypothesis import given
from hypothesis import strategies as st

from pbft_core.bank import FAILED, OK, Bank, is_read_only

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
