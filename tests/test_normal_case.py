"""One backup, driven message by message through the normal case (sim crypto)."""

from __future__ import annotations

from pbft_core.certificates import commit_message, prepare_message
from pbft_core.config import ClusterConfig
from pbft_core.messages import (
    CommitCertificate,
    CommitShare,
    PrepareCertificate,
    PrepareShare,
    PrePrepare,
    Request,
    batch_digest,
)
from pbft_core.ready import SlotStatus
from pbft_core.replica import Replica
from pbft_core.runtime.simulator import make_crypto

CONFIG = ClusterConfig()
replica_crypto, client_crypto = make_crypto("sim", 8, CONFIG, "A")
LEADER = replica_crypto(1)


def signed(message, crypto=LEADER):
    return message.with_sig(crypto.sign(message.signing_payload()))


def certificate(message: bytes) -> bytes:
    shares = {r: replica_crypto(r).sign_share(message) for r in range(1, CONFIG.quorum + 1)}
    cert, _ = LEADER.combine(shares, message)
    assert cert is not None
    return cert


REQUEST = signed(Request("A", 1, "transfer", ("A", "B", 3), False), client_crypto("A"))
BATCH = (REQUEST,)
DIGEST = batch_digest(BATCH)


def test_a_backup_votes_prepares_commits_and_executes_in_order():
    backup = Replica(4, CONFIG, replica_crypto(4))
    ready = backup.step(signed(PrePrepare(1, 1, DIGEST, BATCH, 1)), 0.0)
    [(to, vote)] = ready.to_replicas
    assert to == 1 and isinstance(vote, PrepareShare) and vote.fast_share
    assert backup.status_of(1) == SlotStatus.PRE_PREPARED

    ready = backup.step(signed(PrepareCertificate(1, 1, DIGEST, certificate(prepare_message(1, 1, DIGEST)), 1)), 1.0)
    [(to, vote)] = ready.to_replicas
    assert to == 1 and isinstance(vote, CommitShare)
    assert backup.status_of(1) == SlotStatus.PREPARED

    ready = backup.step(signed(CommitCertificate(1, 1, DIGEST, certificate(commit_message(1, 1, DIGEST)), 1)), 2.0)
    assert backup.status_of(1) == SlotStatus.EXECUTED
    assert backup.bank.balances["A"] == 7
    [(client, reply)] = ready.to_clients
    assert client == "A" and reply.result == "ok"


def test_a_certificate_that_does_not_verify_is_dropped_even_when_the_leader_signed_it():
    backup = Replica(4, CONFIG, replica_crypto(4))
    backup.step(signed(PrePrepare(1, 1, DIGEST, BATCH, 1)), 0.0)
    forged = certificate(prepare_message(1, 2, DIGEST))  # a real certificate, for another seq
    backup.step(signed(PrepareCertificate(1, 1, DIGEST, forged, 1)), 1.0)
    assert backup.metrics["dropped.bad certificate"] == 1
    assert backup.status_of(1) == SlotStatus.PRE_PREPARED


def test_a_certificate_that_overtakes_its_pre_prepare_is_kept_until_it_arrives():
    backup = Replica(4, CONFIG, replica_crypto(4))
    backup.step(signed(CommitCertificate(1, 1, DIGEST, certificate(commit_message(1, 1, DIGEST)), 1)), 0.0)
    assert backup.status_of(1) == SlotStatus.NONE
    backup.step(signed(PrePrepare(1, 1, DIGEST, BATCH, 1)), 1.0)
    assert backup.status_of(1) == SlotStatus.EXECUTED


def test_a_pre_prepare_from_a_backup_or_outside_the_watermarks_is_dropped():
    backup = Replica(4, CONFIG, replica_crypto(4))
    backup.step(signed(PrePrepare(1, 1, DIGEST, BATCH, 2), replica_crypto(2)), 0.0)
    backup.step(signed(PrePrepare(1, CONFIG.window + 1, DIGEST, BATCH, 1)), 0.0)
    assert backup.metrics["dropped.not from the leader"] == 1
    assert backup.metrics["dropped.outside watermarks"] == 1
    assert not backup.slots


def test_reads_that_arrive_together_are_answered_under_one_signed_root_on_the_next_tick():
    backup = Replica(4, CONFIG, replica_crypto(4))
    reads = [signed(Request(c, 1, "balance", (c,), True), client_crypto(c)) for c in "ABC"]
    for read in reads:
        assert backup.step(read, 0.0).to_clients == []  # answered on the tick, not one by one
    replies = backup.tick(0.0).to_clients
    assert [(client, reply.result) for client, reply in replies] == [("A", 10), ("B", 10), ("C", 10)]
    assert len({reply.sig for _, reply in replies}) == 1
    assert len({reply.signed_root() for _, reply in replies}) == 1
    assert backup.tick(1.0).to_clients == []


def _transfer(client: str) -> Request:
    return signed(Request(client, 1, "transfer", (client, "J", 1), False), client_crypto(client))


def _proposed(ready) -> list[tuple[str, ...]]:
    return [tuple(r.client for r in m.batch) for to, m in ready.to_replicas if to == 2 and isinstance(m, PrePrepare)]


def test_a_partial_batch_waits_for_the_instance_in_flight_but_no_longer_than_the_hold():
    leader = Replica(1, CONFIG, replica_crypto(1))
    hold = CONFIG.timers.batch_hold_ms
    leader.step(_transfer("A"), 0.0)
    assert _proposed(leader.tick(0.0)) == [("A",)]  # nothing in flight: a lone request goes at once
    leader.step(_transfer("B"), 1.0)
    leader.step(_transfer("C"), 2.0)
    assert _proposed(leader.tick(1.0 + hold / 2)) == []  # A's instance is in flight: B and C wait
    ready = leader.tick(1.0 + hold)
    assert _proposed(ready) == [("B", "C")]  # together, once B has waited the whole hold
