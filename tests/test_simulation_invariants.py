"""The invariant checker is not vacuous: each invariant fires on the behaviour it forbids.

Each scenario hands the checker exactly what a broken replica or client would produce (or
tampers with a running cluster) and expects the named violation.
"""

from __future__ import annotations

import pytest

from pbft_core.bank import Bank
from pbft_core.certificates import commit_message
from pbft_core.client import Completion
from pbft_core.config import ACCOUNTS, ClusterConfig
from pbft_core.invariants import InvariantChecker, InvariantViolation
from pbft_core.messages import CommitCertificate, Request, batch_digest
from pbft_core.ready import Executed, Ready
from pbft_core.runtime.simulator import SimNode, Simulation, make_crypto
from tests.support import transfer

CONFIG = ClusterConfig(f=1)
SEED = 3
_, client_crypto = make_crypto("sim", SEED, CONFIG, ACCOUNTS)


def request(client: str, timestamp: int, target: str = "B", amount: int = 1) -> Request:
    # Signed as its client would: honest replicas may execute only signed requests (`authentic`).
    unsigned = Request(client, timestamp, "transfer", (client, target, amount), False)
    return unsigned.with_sig(client_crypto(client).sign(unsigned.signing_payload()))


@pytest.fixture
def sim() -> Simulation:
    return Simulation(CONFIG, seed=SEED, keep_events=False)


@pytest.fixture
def checker(sim: Simulation) -> InvariantChecker:
    return InvariantChecker.attach(sim)


def execute(checker: InvariantChecker, node: SimNode, seq: int, batch: tuple[Request, ...], results: tuple | None = None) -> None:
    """The replica executes `batch` at `seq` on its own bank and reports it, as a Ready would."""
    replica = node.inner
    actual = tuple(replica.bank.execute(r) for r in batch)
    replica.last_executed = seq
    checker.on_ready(node, Ready(events=[Executed(seq, 1, batch, results if results is not None else actual, b"")]))


def violation(invariant: str):  # type: ignore[no-untyped-def]
    return pytest.raises(InvariantViolation, match=f"^{invariant}:")


def test_two_honest_replicas_executing_different_batches_at_one_seq_break_agreement(sim, checker):
    execute(checker, sim.nodes[1], 1, (request("A", 1),))
    with violation("agreement"):
        execute(checker, sim.nodes[2], 1, (request("C", 1),))


def test_a_byzantine_replica_executing_something_else_is_not_held_to_agreement(sim, checker):
    sim.nodes[4].honest = False
    execute(checker, sim.nodes[1], 1, (request("A", 1),))
    execute(checker, sim.nodes[4], 1, (request("C", 1),))


def test_a_replica_reporting_results_its_log_does_not_produce_breaks_replay(sim, checker):
    with violation("replay"):
        execute(checker, sim.nodes[1], 1, (request("A", 1, amount=50),), results=("ok",))


def test_a_replica_whose_state_drifts_from_its_log_breaks_replay(sim, checker):
    sim.run_transactions([transfer("A", "B", 1)], settle_ms=50.0)
    sim.replica(2).bank.balances["A"] += 5  # money from nowhere, outside the log
    with violation("replay"):
        sim.run_transactions([transfer("B", "C", 1)])


def test_money_created_before_any_execution_breaks_conservation(sim, checker):
    sim.replica(3).bank.balances["J"] += 1
    with violation("conservation"):
        checker.check_state(sim.nodes[3])


def test_a_negative_balance_breaks_non_negative_even_if_the_total_is_right(sim, checker):
    balances = sim.replica(3).bank.balances
    balances["A"], balances["B"] = -1, balances["B"] + balances["A"] + 1
    with violation("non-negative"):
        checker.check_state(sim.nodes[3])


def test_a_request_executed_at_two_sequence_numbers_breaks_at_most_once(sim, checker, monkeypatch):
    # A bank that forgot its reply table re-executes; the replay uses the same bank code, so
    # only the independent at-most-once index can notice.
    monkeypatch.setattr(Bank, "execute", lambda self, r: self.apply(r.op, r.args))
    twice = request("A", 1)
    execute(checker, sim.nodes[1], 1, (twice,))
    with violation("at-most-once"):
        execute(checker, sim.nodes[1], 2, (twice,))


def test_a_client_accepting_a_result_no_honest_replica_produced_breaks_client_validity(sim, checker):
    execute(checker, sim.nodes[1], 1, (request("A", 1),))
    with violation("client-validity"):
        checker.on_completion("A", Completion(request("A", 1), "failed", 1.0, 1, False))


def test_a_read_of_a_balance_no_honest_replica_held_breaks_client_validity(sim, checker):
    read = Request("A", 1, "balance", ("A",), True)
    checker.on_completion("A", Completion(read, 10, 1.0, 1, False))  # the initial balance: fine
    with violation("client-validity"):
        checker.on_completion("A", Completion(read, 11, 1.0, 1, False))


def commit_certificate(sim: Simulation, seq: int, batch: tuple[Request, ...]) -> CommitCertificate:
    """A genuinely valid commit certificate: a quorum of real shares combined."""
    digest = batch_digest(batch)
    message = commit_message(1, seq, digest)
    shares = {r: sim.nodes[r].crypto.sign_share(message) for r in range(1, CONFIG.quorum + 1)}  # type: ignore[union-attr]
    certificate, bad = sim.nodes[1].crypto.combine(shares, message)  # type: ignore[union-attr]
    assert certificate is not None and not bad
    return CommitCertificate(1, seq, digest, certificate, 1)


def test_two_valid_commit_certificates_for_different_batches_break_certificate_agreement(sim, checker):
    checker.on_deliver("n1", "n2", commit_certificate(sim, 5, (request("A", 1),)))
    with violation("certificate-agreement"):
        checker.on_deliver("n1", "n3", commit_certificate(sim, 5, (request("C", 1),)))


def test_a_forged_certificate_for_another_batch_is_not_a_commit(sim, checker):
    checker.on_deliver("n1", "n2", commit_certificate(sim, 5, (request("A", 1),)))
    forged = commit_certificate(sim, 5, (request("C", 1),))
    checker.on_deliver("n4", "n3", CommitCertificate(1, 5, forged.digest, b"\x00" * 96, 4))


def test_a_clean_run_breaks_nothing(sim, checker):
    results = sim.run_transactions([transfer("A", "B", 3), transfer("B", "C", 20), transfer("C", "D", 2)])
    assert [r.result for r in results] == ["ok", "failed", "ok"]
    assert checker.checks >= CONFIG.n + 3  # every replica executed, every client checked
