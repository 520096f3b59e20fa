"""View change rules: what a VIEW-CHANGE may claim and how NEW-VIEW's O follows from V."""

from __future__ import annotations

from pbft_core.certificates import Certifier, prepare_message
from pbft_core.config import ClusterConfig
from pbft_core.messages import NewView, PrePrepared, Proof, ProofKind, Proposal, Request, ViewChange
from pbft_core.replica import Replica
from pbft_core.runtime.simulator import make_crypto
from pbft_core.viewchange import check_view_change, select_proposals

CONFIG = ClusterConfig()
replica_crypto, client_crypto = make_crypto("sim", 99, CONFIG, "ABCDEFGHIJ")


def request(client: str, timestamp: int) -> Request:
    r = Request(client, timestamp, "transfer", (client, "B", 1), False)
    return r.with_sig(client_crypto(client).sign(r.signing_payload()))


def prepared_proof(view: int, seq: int, batch: tuple[Request, ...]) -> Proof:
    """A genuine 2f+1 prepare certificate, combined from real (sim) shares."""
    from pbft_core.messages import batch_digest

    message = prepare_message(view, seq, batch_digest(batch))
    shares = {r: replica_crypto(r).sign_share(message) for r in range(1, CONFIG.quorum + 1)}
    certificate, bad = replica_crypto(1).combine(shares, message)
    assert certificate is not None and not bad
    return Proof(view, seq, batch, ProofKind.PREPARE, certificate)


def view_change(sender: int, new_view: int, prepared=(), preprepared=()) -> ViewChange:
    vc = ViewChange(new_view, None, tuple(prepared), tuple(preprepared), sender)
    return vc.with_sig(replica_crypto(sender).sign(vc.signing_payload()))


def new_view(view: int, vcs: list[ViewChange], proposals: tuple[Proposal, ...]) -> NewView:
    leader = CONFIG.leader_of(view)
    nv = NewView(view, tuple(vcs), proposals, leader)
    return nv.with_sig(replica_crypto(leader).sign(nv.signing_payload()))


BATCH_X = (request("A", 1),)
BATCH_Y = (request("C", 1),)


def test_a_prepared_certificate_wins_over_reports_at_a_lower_view():
    vcs = [
        view_change(2, 3, prepared=[prepared_proof(2, 1, BATCH_X)]),
        view_change(3, 3, preprepared=[PrePrepared(1, 1, BATCH_Y)]),
        view_change(4, 3, preprepared=[PrePrepared(1, 1, BATCH_Y)]),
        view_change(5, 3, preprepared=[PrePrepared(1, 1, BATCH_Y)]),
        view_change(6, 3),
    ]
    assert select_proposals(CONFIG, vcs) == (Proposal(1, BATCH_X),)


def test_f_plus_1_matching_pre_prepare_reports_carry_a_batch_into_the_new_view():
    """This is what keeps a fast-path commit (all n signed, no prepare certificate) safe."""
    vcs = [view_change(r, 2, preprepared=[PrePrepared(1, 2, BATCH_X)]) for r in (2, 3, 4)]
    vcs += [view_change(r, 2) for r in (5, 6)]
    assert select_proposals(CONFIG, vcs) == (Proposal(1, ()), Proposal(2, BATCH_X))


def test_f_reports_are_not_enough_and_the_gap_becomes_a_no_op():
    vcs = [view_change(r, 2, preprepared=[PrePrepared(1, 1, BATCH_Y)]) for r in (6, 7)]
    vcs += [view_change(r, 2, preprepared=[PrePrepared(1, 2, BATCH_X)]) for r in (2, 3, 4)]
    assert select_proposals(CONFIG, vcs) == (Proposal(1, ()), Proposal(2, BATCH_X))


def test_no_candidates_means_an_empty_o():
    assert select_proposals(CONFIG, [view_change(r, 2) for r in (2, 3, 4, 5, 6)]) == ()


def test_a_view_change_with_a_forged_prepared_certificate_is_rejected():
    forged = Proof(1, 1, BATCH_X, ProofKind.PREPARE, b"\x07" * 96)
    vc = view_change(4, 2, prepared=[forged])
    assert check_view_change(vc, CONFIG, Certifier(replica_crypto(3))) == "bad prepared certificate at seq 1"
    replica = Replica(3, CONFIG, replica_crypto(3))
    replica.step(vc, 0.0)
    assert replica.metrics["dropped.bad prepared certificate at seq 1"] == 1
    assert 2 not in replica.view_changes


def test_a_certificate_for_one_batch_cannot_certify_another():
    proof = prepared_proof(1, 1, BATCH_X)
    swapped = Proof(1, 1, BATCH_Y, ProofKind.PREPARE, proof.certificate)
    assert not Certifier(replica_crypto(3)).proof(swapped)
    as_commit = Proof(1, 1, BATCH_X, ProofKind.COMMIT, proof.certificate)
    assert not Certifier(replica_crypto(3)).proof(as_commit)


def test_a_new_view_whose_o_does_not_follow_from_v_is_rejected_and_the_honest_one_installed():
    vcs = [view_change(r, 2, preprepared=[PrePrepared(1, 1, BATCH_X)]) for r in (3, 4, 5)]
    vcs += [view_change(r, 2) for r in (6, 7)]
    replica = Replica(3, CONFIG, replica_crypto(3))

    dropped_batch = new_view(2, vcs, (Proposal(1, ()),))
    replica.step(dropped_batch, 0.0)
    assert replica.metrics["dropped.new-view O does not follow from V"] == 1
    assert replica.view == 1

    honest = new_view(2, vcs, (Proposal(1, BATCH_X),))
    ready = replica.step(honest, 0.0)
    assert replica.view == 2 and replica.view_active
    assert replica.slots[1].batch == BATCH_X
    shares = [m for to, m in ready.to_replicas if type(m).__name__ == "PrepareShare"]
    assert len(shares) == 1 and ready.to_replicas[0][0] == 2


def test_a_new_view_with_too_few_or_duplicate_view_changes_is_rejected():
    vc = view_change(4, 2)
    replica = Replica(3, CONFIG, replica_crypto(3))
    replica.step(new_view(2, [vc, vc, vc, vc, vc], ()), 0.0)
    replica.step(new_view(2, [view_change(r, 2) for r in (4, 5, 6, 7)], ()), 0.0)
    assert replica.metrics["dropped.new-view without 2f+1 distinct view changes"] == 2
    assert replica.view == 1


def test_a_new_view_from_someone_other_than_the_new_leader_is_rejected():
    vcs = [view_change(r, 2) for r in (3, 4, 5, 6, 7)]
    nv = NewView(2, tuple(vcs), (), 4)
    nv = nv.with_sig(replica_crypto(4).sign(nv.signing_payload()))
    replica = Replica(3, CONFIG, replica_crypto(3))
    replica.step(nv, 0.0)
    assert replica.metrics["dropped.new-view not from the new leader"] == 1


def test_f_plus_1_view_changes_for_a_higher_view_make_a_replica_join_it():
    replica = Replica(5, CONFIG, replica_crypto(5))
    replica.step(view_change(2, 3), 0.0)
    replica.step(view_change(3, 3), 0.0)
    assert replica.view == 1 and replica.view_active
    ready = replica.step(view_change(4, 4), 0.0)
    assert replica.view == 3 and not replica.view_active
    assert any(type(m).__name__ == "ViewChange" for _, m in ready.to_replicas)


def test_a_replica_in_the_new_view_relays_the_new_view_to_one_that_missed_it():
    vcs = [view_change(r, 2) for r in (3, 4, 5, 6, 7)]
    replica = Replica(3, CONFIG, replica_crypto(3))
    nv = new_view(2, vcs, ())
    replica.step(nv, 0.0)
    assert replica.view == 2 and replica.view_active
    ready = replica.step(view_change(6, 2), 1.0)  # n6 is still waiting for the new view
    assert ready.to_replicas == [(6, nv)]


def test_a_replica_changing_views_re_sends_its_view_change_until_a_new_view_arrives():
    replica = Replica(3, CONFIG, replica_crypto(3))
    for r in (4, 5):
        replica.step(view_change(r, 2), 0.0)
    replica.step(view_change(6, 2), 0.0)  # f+1: it joins view 2
    assert replica.view == 2 and not replica.view_active
    resend = CONFIG.timers.view_change_resend_ms
    for round_ in range(1, 4):
        ready = replica.tick(round_ * resend + 1)
        assert sum(type(m).__name__ == "ViewChange" for _, m in ready.to_replicas) == CONFIG.n - 1
    replica.step(new_view(2, [view_change(r, 2) for r in (3, 4, 5, 6, 7)], ()), 2_000.0)
    ready = replica.tick(3_000.0)
    assert not any(type(m).__name__ == "ViewChange" for _, m in ready.to_replicas)
