"""Distributed key generation, scenario by scenario: an honest run, the byte identity with
`deal`, each misbehaviour the complaint round handles, and the message codec."""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import thresh_sig
from tests.thresh_sig.dkg_harness import Misbehaviour, key_pair, make_participants, run_dkg
from thresh_sig import (
    DkgFailedError,
    DkgMessageError,
    DkgPhaseError,
    MalformedError,
    ThresholdError,
    aggregate_all,
    bench,
    combine,
    deal,
    sign_share,
    verify,
    verify_all,
)
from thresh_sig.dkg import (
    DEAL,
    Deal,
    DkgParticipant,
    Justification,
    Phase,
    Response,
    decode_message,
)
from thresh_sig.field import R, derive_polynomial, eval_poly

MESSAGE = b"commit view=1 seq=7"


def signs(result: thresh_sig.DkgResult, shares: list[thresh_sig.KeyShare]) -> bool:
    """Do these shares make a signature that verifies under the run's group key?"""
    sig = combine(result.group, [sign_share(s, MESSAGE) for s in shares], MESSAGE)
    return verify(result.group, MESSAGE, sig)


# ---- honest runs ------------------------------------------------------------------------------


def test_an_honest_run_gives_everyone_the_same_working_5_of_7_key() -> None:
    run = run_dkg(7, 5, seed=b"honest")
    groups = {bytes(r.group) for r in run.results.values()}
    assert len(groups) == 1
    first = run.results[1]
    assert first.qualified == tuple(range(1, 8)) and first.disqualified == {}
    assert (first.group.t, first.group.n) == (5, 7)
    shares = [run.results[i].share for i in range(1, 8)]
    assert all(first.group.verify_key_share(s) for s in shares)
    assert signs(first, [shares[i] for i in (6, 0, 3, 2, 5)])
    assert not run.refused
    # Nobody was accused, so nothing was revealed: one deal and one (empty) response each.
    assert all(p.bytes_sent == 44 + 5 * 48 + 6 * 48 + 44 + 2 for p in run.participants.values())


def test_a_dkg_of_fixed_polynomials_is_byte_identical_to_dealing_their_sum() -> None:
    polys = {i: derive_polynomial(5, 7, b"fixed %d" % i) for i in range(1, 8)}
    run = run_dkg(7, 5, coefficients=polys)
    summed = [sum(column) % R for column in zip(*polys.values(), strict=True)]
    group, shares = deal(5, 7, coefficients=summed)
    assert bytes(run.results[3].group) == bytes(group)
    assert [bytes(run.results[i].share) for i in range(1, 8)] == [bytes(s) for s in shares]


def test_deal_takes_a_given_polynomial_without_changing_its_default() -> None:
    seeded, _ = deal(3, 4, seed=b"unchanged")
    assert bytes(seeded) == bytes(deal(3, 4, seed=b"unchanged")[0])
    poly = derive_polynomial(3, 4, b"unchanged")
    assert bytes(deal(3, 4, coefficients=poly)[0]) == bytes(seeded)
    with pytest.raises(thresh_sig.ParameterError):
        deal(3, 4, seed=b"x", coefficients=poly)
    with pytest.raises(thresh_sig.ParameterError):
        deal(3, 4, coefficients=[1, 2])
    with pytest.raises(thresh_sig.ParameterError):
        deal(3, 4, coefficients=[1, 0, 3])  # a zero commits to the identity


def test_the_fast_path_key_comes_from_a_dkg_with_t_equal_n() -> None:
    run = run_dkg(4, 4, seed=b"fast")
    result = run.results[2]
    shares = [run.results[i].share for i in range(1, 5)]
    aggregate = aggregate_all(result.group, [sign_share(s, MESSAGE) for s in shares])
    assert verify_all(result.group, MESSAGE, aggregate)
    assert not verify(result.group, MESSAGE, aggregate)


def test_the_router_sees_only_ciphertexts() -> None:
    participants = make_participants(4, 3, seed=b"secret shares")
    dealer = participants[1]
    data = dealer.start()
    for j in range(2, 5):
        assert eval_poly(dealer._poly, j).to_bytes(32, "big") not in data


# ---- misbehaviour, one at a time ----------------------------------------------------------------


def test_bad_shares_to_t_minus_1_recipients_are_answered_and_the_dealer_qualifies() -> None:
    run = run_dkg(7, 5, {7: Misbehaviour("bad_shares", frozenset({1, 2, 3, 4}))}, seed=b"b")
    result = run.results[1]
    assert 7 in result.qualified
    # The four recipients took the revealed shares: everyone's final share is still good.
    assert all(result.group.verify_key_share(run.results[i].share) for i in range(1, 7))
    assert run.participants[7].bytes_sent > run.participants[6].bytes_sent  # it had to reveal


def test_a_dealer_with_more_than_t_minus_1_complaints_is_disqualified() -> None:
    run = run_dkg(7, 5, {7: Misbehaviour("bad_shares", frozenset({1, 2, 3, 4, 5}))}, seed=b"c")
    assert run.results[1].disqualified == {7: "5 complaints (more than t-1)"}
    assert signs(run.results[1], [run.results[i].share for i in (1, 2, 3, 4, 5)])


def test_a_dealer_that_reveals_a_wrong_share_is_disqualified() -> None:
    run = run_dkg(4, 3, {2: Misbehaviour("wrong_reveal", frozenset({3}))}, seed=b"d")
    assert run.results[1].disqualified == {2: "revealed no valid share for [3]"}
    assert run.results[3].qualified == (1, 3, 4)


def test_a_dealer_that_does_not_answer_is_disqualified() -> None:
    run = run_dkg(4, 3, {2: Misbehaviour("no_answer", frozenset({3}))}, seed=b"e")
    assert run.results[4].disqualified == {2: "did not answer complaints"}


def test_inconsistent_commitments_disqualify_their_dealer() -> None:
    run = run_dkg(7, 7, {3: Misbehaviour("inconsistent_commitments")}, seed=b"f")
    # With t = n the six complaints are not enough on their own; the revealed (true) shares
    # do not match the commitments, which settles it.
    assert run.results[1].disqualified == {3: "revealed no valid share for [1, 2, 4, 5, 6, 7]"}


def test_a_silent_dealer_is_disqualified_and_the_rest_still_sign() -> None:
    run = run_dkg(4, 3, {4: Misbehaviour("silent")}, seed=b"g")
    result = run.results[1]
    assert result.disqualified == {4: "no valid deal (silent)"}
    assert signs(result, [run.results[i].share for i in (1, 2, 3)])


def test_an_undecodable_deal_counts_as_silence() -> None:
    run = run_dkg(4, 3, {1: Misbehaviour("malformed_deal")}, seed=b"h")
    assert run.results[2].disqualified == {1: "no valid deal (silent)"}
    assert {(r, s) for r, s, _ in run.refused} == {(2, 1), (3, 1), (4, 1)}


def test_false_complaints_do_not_disqualify_an_honest_dealer() -> None:
    run = run_dkg(7, 5, {5: Misbehaviour("false_complaints", frozenset({1, 2, 3}))}, seed=b"i")
    assert run.results[1].qualified == tuple(range(1, 8))
    assert all(run.participants[d].bytes_sent > run.participants[4].bytes_sent for d in (1, 2, 3))


def test_too_few_qualified_dealers_is_a_failure_not_a_key() -> None:
    bad = {3: Misbehaviour("silent"), 4: Misbehaviour("silent")}
    with pytest.raises(DkgFailedError) as caught:
        run_dkg(4, 2, bad, seed=b"j", min_qualified=3)
    assert caught.value.qualified == (1, 2) and caught.value.need == 3


# ---- the driver's side ---------------------------------------------------------------------------


def test_phase_calls_out_of_order_are_refused() -> None:
    p = make_participants(4, 3, seed=b"k")[1]
    with pytest.raises(DkgPhaseError):
        p.end_of_dealing()  # before start()
    p.start()
    with pytest.raises(DkgPhaseError):
        p.start()
    with pytest.raises(DkgPhaseError):
        p.end_of_justifications()
    assert p.phase is Phase.DEALING and not p.phase_complete


def test_messages_of_another_session_or_another_sender_are_refused() -> None:
    ours = make_participants(4, 3, seed=b"l")
    theirs = make_participants(4, 3, seed=b"l", context=b"another cluster")
    with pytest.raises(DkgMessageError):
        ours[1].receive(2, theirs[2].start())
    with pytest.raises(DkgMessageError):
        ours[1].receive(3, ours[2].start())  # the channel says 3, the message says 2


def test_late_duplicate_and_conflicting_messages_are_ignored_and_counted() -> None:
    ps = make_participants(4, 3, seed=b"m")
    deals = {i: p.start() for i, p in ps.items()}
    receiver = ps[1]
    receiver.receive(2, deals[2])
    receiver.receive(2, deals[2])
    other = make_participants(4, 3, seed=b"m, again")[2].start()
    receiver.receive(2, other)
    receiver.end_of_dealing()
    receiver.receive(3, deals[3])
    assert receiver.conflicts == {"late": 1, "duplicate": 1, "conflicting": 1}
    assert receiver.disqualified == {3: "no valid deal (silent)", 4: "no valid deal (silent)"}


def test_constructor_checks_its_arguments() -> None:
    publics = [key_pair(4, j).public for j in range(1, 5)]
    with pytest.raises(thresh_sig.ParameterError):
        DkgParticipant(5, 3, 4, key_pair(4, 1), publics)
    with pytest.raises(thresh_sig.ParameterError):
        DkgParticipant(2, 3, 4, key_pair(4, 1), publics)  # not participant 2's key
    with pytest.raises(thresh_sig.ParameterError):
        DkgParticipant(1, 3, 4, key_pair(4, 1), publics[:3])
    assert "secret" not in repr(key_pair(4, 1))


# ---- the codec -------------------------------------------------------------------------------------


def _sample_messages() -> list[bytes]:
    run = make_participants(4, 3, seed=b"codec")
    deal_bytes = run[1].start()
    session = run[1].session
    return [
        deal_bytes,
        bytes(Response(session, 3, 4, 2, (1, 4))),
        bytes(Response(session, 3, 4, 3, ())),
        bytes(Justification(session, 3, 4, 1, ((2, 5), (4, R - 1)))),
    ]


SAMPLES = _sample_messages()


def test_every_message_has_one_encoding() -> None:
    for data in SAMPLES:
        assert bytes(decode_message(data)) == data
    assert isinstance(decode_message(SAMPLES[0]), Deal) and SAMPLES[0][5] == DEAL
    session = decode_message(SAMPLES[0]).session
    for not_canonical in (
        bytes(Response(session, 3, 4, 2, (4, 1))),  # not ascending
        bytes(Response(session, 3, 4, 2, (2,))),  # complains about itself
        bytes(Justification(session, 3, 4, 1, ((2, R),))),  # not below r
        SAMPLES[1] + b"\x00",
        SAMPLES[0][:-1],
    ):
        with pytest.raises(MalformedError):
            decode_message(not_canonical)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(SAMPLES),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=3),
    st.integers(0, 10_000),
)
def test_decoding_mutated_bytes_raises_only_the_package_errors(
    sample: bytes, flips: list[tuple[int, int]], cut: int
) -> None:
    data = bytearray(sample)
    for position, value in flips:
        data[position % len(data)] = value
    data = data[: max(1, len(data) - cut % 8)] if cut % 3 == 0 else data
    try:
        message = decode_message(bytes(data))
    except ThresholdError:
        return
    assert bytes(message) == bytes(data)  # whatever decodes is canonical


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=600))
def test_a_participant_given_random_bytes_raises_only_the_package_errors(data: bytes) -> None:
    receiver = _RECEIVER
    with contextlib.suppress(ThresholdError):
        receiver.receive(2, data)


_RECEIVER = make_participants(4, 3, seed=b"fuzz")[1]


# ---- the README's example and the benchmark rows ------------------------------------------------


def test_the_readme_dkg_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    readme = Path(thresh_sig.__file__).parent / "README.md"
    blocks = re.findall(r"```python\n(.*?)```", readme.read_text(), flags=re.S)
    example = next(b for b in blocks if "DkgParticipant" in b)
    exec(compile(example, str(readme), "exec"), {"__name__": "readme_dkg_example"})
    assert capsys.readouterr().out.startswith("dkg ok ")


def test_the_benchmark_has_dkg_rows(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    assert bench.main(["--sizes", "4", "--reps", "1", "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())["dkg"]
    assert (row["n"], row["t"], row["sent_bytes"], row["wire_bytes"]) == (4, 3, 378, 3 * 378)
    assert row["complaints_accused_ms"] > 0 and row["total_ms"] >= row["deal_ms"]
    assert bench.main(["--sizes", "4", "--reps", "1", "--dkg-sizes", "none"]) == 0
