"""Property: with at most f of n participants misbehaving, in any mix of the ways the complaint
round exists for, the honest participants finish with one working t-of-n key, and none of them
ever holds a share that does not match its dealer's commitments.

For n = 4, 7, 10 (f = 1, 2, 3, t = 2f+1) and for the n-of-n fast-path key (n = 4, 7), hypothesis
draws the misbehaving set (up to f participants), each one's behaviour and whom it targets.
The expected disqualified set is worked out from the behaviours alone (GJKR's rules) and must be
exactly what every honest participant computed.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.thresh_sig.dkg_harness import BEHAVIOURS, Misbehaviour, expected_disqualified, run_dkg
from thresh_sig import combine, sign_share, verify

MESSAGE = b"a block the honest replicas certify"


@st.composite
def adversaries(draw: st.DrawFn, n: int) -> dict[int, Misbehaviour]:
    f = (n - 1) // 3
    bad = draw(st.sets(st.integers(1, n), max_size=f))
    plan = {}
    for i in sorted(bad):
        behaviour = draw(st.sampled_from(BEHAVIOURS))
        others = [j for j in range(1, n + 1) if j != i]
        targets = draw(st.sets(st.sampled_from(others), min_size=1))
        plan[i] = Misbehaviour(behaviour, frozenset(targets))
    return plan


def check_run(n: int, t: int, bad: dict[int, Misbehaviour], seed: int) -> None:
    run = run_dkg(n, t, bad, seed=b"property %d" % seed)
    honest = [i for i in range(1, n + 1) if i not in bad]
    results = [run.results[i] for i in honest]

    # One key, one qualified set, at every honest participant; every honest dealer in it.
    assert len({bytes(r.group) for r in results}) == 1
    assert len({r.qualified for r in results}) == 1
    group, qualified = results[0].group, results[0].qualified
    assert set(honest) <= set(qualified)
    assert set(range(1, n + 1)) - set(qualified) == expected_disqualified(n, t, bad)

    # No honest participant holds a share its dealer's commitments disown, or a final share
    # that misses the group key.
    for i in honest:
        p = run.participants[i]
        assert all(p._matches(d, i, p._shares[d]) for d in qualified if d != i)
        assert group.verify_key_share(run.results[i].share)

    # The key works: any t honest participants sign for the group.
    signers = random.Random(seed).sample(honest, t)
    shares = [sign_share(run.results[i].share, MESSAGE) for i in signers]
    assert verify(group, MESSAGE, combine(group, shares, MESSAGE))


PROFILE = dict(
    deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


@pytest.mark.parametrize(("n", "examples"), [(4, 80), (7, 50), (10, 30)])
def test_up_to_f_misbehaving_participants_cannot_stop_or_spoil_a_2f_plus_1_key(
    n: int, examples: int
) -> None:
    t = 2 * ((n - 1) // 3) + 1

    @settings(max_examples=examples, **PROFILE)
    @given(adversaries(n), st.integers(0, 2**32))
    def prop(bad: dict[int, Misbehaviour], seed: int) -> None:
        check_run(n, t, bad, seed)

    prop()


@pytest.mark.parametrize(("n", "examples"), [(4, 30), (7, 20)])
def test_up_to_f_misbehaving_participants_cannot_spoil_an_n_of_n_key(n: int, examples: int) -> None:
    @settings(max_examples=examples, **PROFILE)
    @given(adversaries(n), st.integers(0, 2**32))
    def prop(bad: dict[int, Misbehaviour], seed: int) -> None:
        # n-of-n needs every share, so only check the parts that do not: agreement, QUAL,
        # shares consistent with commitments (check_run signs with t = n honest: skip that).
        run = run_dkg(n, n, bad, seed=b"fast %d" % seed)
        honest = [i for i in range(1, n + 1) if i not in bad]
        results = [run.results[i] for i in honest]
        assert len({bytes(r.group) for r in results}) == 1
        qualified = results[0].qualified
        assert set(range(1, n + 1)) - set(qualified) == expected_disqualified(n, n, bad)
        for i in honest:
            assert results[0].group.verify_key_share(run.results[i].share)

    prop()


@pytest.mark.slow
@pytest.mark.parametrize("n", [4, 7, 10])
def test_many_more_adversaries(n: int) -> None:
    t = 2 * ((n - 1) // 3) + 1

    @settings(max_examples=200, **PROFILE)
    @given(adversaries(n), st.integers(0, 2**32))
    def prop(bad: dict[int, Misbehaviour], seed: int) -> None:
        check_run(n, t, bad, seed)

    prop()
