"""A replica rebuilt from its durable events is the replica it was, and votes as it voted."""

from __future__ import annotations

from pbft_core.attacks import Attack
from pbft_core.config import ClusterConfig
from pbft_core.dispatch import Outcome
from pbft_core.messages import PrePrepare, Request, batch_digest
from pbft_core.replica import Replica
from pbft_core.runtime.simulator import Simulation, make_crypto
from tests.support import assert_honest_live_agree, transfer

RING = [transfer(a, b, 1) for a, b in zip("ABCDEFGHIJ", "BCDEFGHIJA", strict=True)]


def restored(sim: Simulation, r: int) -> Replica:
    crypto = sim.replica(r).crypto
    return Replica.restore(r, sim.config, crypto, sim.nodes[r].events)


def test_a_restored_replica_has_the_same_state_as_before_the_crash():
    sim = Simulation(ClusterConfig(checkpoint_interval=5), seed=21)
    sim.run_transactions(RING * 3)
    for r in range(1, 8):
        before, after = sim.replica(r), restored(sim, r)
        assert after.bank.balances == before.bank.balances
        assert after.bank.last_reply == before.bank.last_reply
        assert (after.view, after.last_executed, after.stable_seq) == (before.view, before.last_executed, before.stable_seq)


def test_a_restored_replica_recovers_a_view_change_in_progress_and_its_new_views():
    sim = Simulation(seed=22, byzantine={1: (Attack("crash"),)})
    sim.run_transactions(RING[:3])
    after = restored(sim, 4)
    assert after.view == 2 and after.view_active
    assert after.last_executed == sim.replica(4).last_executed


def test_a_restored_backup_never_accepts_a_conflicting_pre_prepare_for_a_slot_it_voted_on():
    config = ClusterConfig()
    replica_crypto, client_crypto = make_crypto("sim", 5, config, "AB")
    leader = replica_crypto(1)

    def proposal(client: str) -> PrePrepare:
        request = Request(client, 1, "transfer", (client, "B", 1), False)
        request = request.with_sig(client_crypto(client).sign(request.signing_payload()))
        pp = PrePrepare(1, 1, batch_digest((request,)), (request,), 1)
        return pp.with_sig(leader.sign(pp.signing_payload()))

    backup = Replica(3, config, replica_crypto(3))
    ready = backup.step(proposal("A"), 0.0)
    assert len(ready.to_replicas) == 1  # its prepare share for A's batch
    again = Replica.restore(3, config, replica_crypto(3), ready.events)
    ready = again.step(proposal("B"), 1.0)
    assert ready.to_replicas == []
    assert again.metrics["dropped.conflicting pre-prepare"] == 1


def test_a_backup_that_crashes_and_restarts_mid_run_rejoins_and_agrees():
    sim = Simulation(ClusterConfig(checkpoint_interval=5), seed=23)

    def crash(s: Simulation) -> None:
        s.nodes[5].live = False

    def restart(s: Simulation) -> None:
        s.nodes[5].replica = restored(s, 5)
        s.nodes[5].live = True
        s._schedule(s.now, "tick", 5, None)

    sim.at(40, crash)
    sim.at(400, restart)
    results = sim.run_transactions(RING * 4)
    assert all(r.outcome == Outcome.COMMITTED for r in results)
    assert_honest_live_agree(sim)


def test_the_durable_log_round_trips_through_sqlite_and_compacts_at_checkpoints(tmp_path):
    from pbft_core.durable import DurableLog

    sim = Simulation(ClusterConfig(checkpoint_interval=5), seed=24, byzantine={1: (Attack("crash"),)})
    sim.run_transactions(RING * 3)
    for r in range(2, 8):
        log = DurableLog(tmp_path / f"n{r}.sqlite")
        for event in sim.nodes[r].events:  # one commit per event: compaction runs many times
            log.append([event])
            log.commit()
        rows = log.db.execute("SELECT COUNT(*) FROM durable").fetchone()[0]
        log.close()
        events = DurableLog(tmp_path / f"n{r}.sqlite").load()
        after = Replica.restore(r, sim.config, sim.replica(r).crypto, events)
        before = sim.replica(r)
        assert after.bank.balances == before.bank.balances
        assert (after.view, after.last_executed, after.stable_seq) == (before.view, before.last_executed, before.stable_seq)
        durable = sum(1 for e in sim.nodes[r].events if type(e).__name__ in ("Accepted", "ProofStored", "Executed"))
        assert rows < durable  # compaction dropped what the checkpoints subsume
