"""Scenarios for the normal case and every attack, on the deterministic simulator.

Each reads: given a cluster and a fault, when clients do X, then Y. Balances in comments follow
the official course file (set 1 ends A9 B9 C9 D9 E14).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

from pbft_core.attacks import Attack
from pbft_core.config import ClusterConfig
from pbft_core.dispatch import Outcome
from pbft_core.fastpath import FAST_PATH_OUTCOMES
from pbft_core.messages import SHARE_SIZE, Ask, Message, PrePrepare, Request, SlowPath
from pbft_core.runtime.simulator import Simulation
from tests.support import (
    assert_honest_live_agree,
    assert_no_conflicting_execution,
    balance,
    transfer,
)

SET_1 = [transfer("A", "B", 1), transfer("B", "C", 2), transfer("C", "D", 3), transfer("D", "E", 4), balance("E")]


def outcomes(results) -> list[str]:
    return [str(r.outcome) for r in results]


def test_all_replicas_up_commit_on_the_fast_path_and_read_the_result():
    sim = Simulation(seed=1)
    results = sim.run_transactions(SET_1)
    assert outcomes(results) == ["committed"] * 5
    assert results[-1].result == 14
    assert sim.replica(1).bank.balances["E"] == 14
    assert_honest_live_agree(sim)
    replica = sim.replica(2)
    assert replica.metrics["commits.fast"] == replica.last_executed > 0
    assert replica.metrics["commits.slow"] == 0


def test_without_the_fast_path_every_instance_takes_the_slow_path():
    sim = Simulation(ClusterConfig(fast_path=False), seed=1)
    results = sim.run_transactions(SET_1)
    assert outcomes(results) == ["committed"] * 5
    replica = sim.replica(3)
    assert replica.metrics["commits.fast"] == 0
    assert replica.metrics["commits.slow"] == replica.last_executed > 0


RING = [transfer(a, b, 1) for a, b in zip("ABCDEFGHIJ", "BCDEFGHIJA", strict=True)]


def _count_prepare_shares(sim: Simulation) -> Counter[tuple[int, str]]:
    """(replica, "fast" or "slow") -> prepare shares it signed (checkpoint shares not counted)."""
    signed: Counter[tuple[int, str]] = Counter()

    def counting(sign: Callable[[bytes], bytes], key: tuple[int, str]) -> Callable[[bytes], bytes]:
        def sign_and_count(message: bytes) -> bytes:
            if message.startswith(b"pbft/v1/ts/prepare/"):
                signed[key] += 1
            return sign(message)

        return sign_and_count

    for r in sim.config.replica_ids:
        crypto = sim.replica(r).crypto
        crypto.sign_share = counting(crypto.sign_share, (r, "slow"))  # type: ignore[method-assign]
        crypto.sign_fast_share = counting(crypto.sign_fast_share, (r, "fast"))  # type: ignore[method-assign]
    return signed


def test_once_the_fast_path_has_worked_every_replica_signs_one_share_per_batch_not_two():
    sim = Simulation(seed=25)
    signed = _count_prepare_shares(sim)
    results = sim.run_transactions(RING * 4)
    assert outcomes(results) == ["committed"] * 40
    batches = sim.replica(1).last_executed
    assert sim.replica(1).metrics["commits.fast"] == batches > FAST_PATH_OUTCOMES
    # Both shares while the fast path is new; its share alone once the last attempts all worked.
    for r in sim.config.replica_ids:
        assert (signed[(r, "fast")], signed[(r, "slow")]) == (batches, FAST_PATH_OUTCOMES)
    assert_honest_live_agree(sim)


def _fast_path_confident_then_n7_cut_off(seed: int) -> tuple[Simulation, list[int]]:
    """A cluster whose leader asks for fast shares alone, then n7 cut off; the `ask` of every
    PRE-PREPARE the leader sends n2 from then on."""
    sim = Simulation(seed=seed)
    assert outcomes(sim.run_transactions(RING * 4)) == ["committed"] * 40
    assert sim.replica(1).fast_path.ask(sim.replica(1).next_seq) == Ask.FAST
    sim.blocked |= {(a, b) for r in range(1, 7) for a, b in (("n7", f"n{r}"), (f"n{r}", "n7"))}
    asks: list[int] = []

    def on_send(source: str, to: int, message: Message) -> None:
        if source == "n1" and to == 2 and isinstance(message, PrePrepare):
            asks.append(message.ask)

    sim.send_hooks.append(on_send)
    return sim, asks


def _n1_to_n6_agree(sim: Simulation) -> None:
    """n7 is cut off, so only n1..n6 must have executed the same prefix to the same state."""
    first = sim.replica(1)
    for r in range(2, 7):
        assert (sim.replica(r).last_executed, sim.replica(r).bank.balances) == (first.last_executed, first.bank.balances)
    assert_no_conflicting_execution(sim)


def test_when_a_fast_path_asked_alone_fails_the_collector_asks_for_the_2f_plus_1_shares():
    sim, asks = _fast_path_confident_then_n7_cut_off(26)
    assert outcomes(sim.run_transactions(RING * 3)) == ["committed"] * 30
    leader, backup = sim.replica(1), sim.replica(2)
    # The batches proposed before the first miss asked for fast shares alone and got a
    # SLOW-PATH each (all n can no longer answer); the miss ended the run of successes, so the
    # next ones asked for both shares, and once three of four missed, for the 2f+1 share alone.
    assert asks == sorted(asks, reverse=True) and set(asks) == {Ask.FAST, Ask.BOTH, Ask.SLOW}
    assert backup.metrics["in.SlowPath"] == asks.count(Ask.FAST)
    assert leader.metrics["commits.slow"] == len(asks)
    _n1_to_n6_agree(sim)


def test_a_lost_slow_path_costs_the_prepare_share_timeout_not_liveness():
    sim, asks = _fast_path_confident_then_n7_cut_off(27)
    leader = sim.replica(1)
    broadcast = leader._broadcast
    leader._broadcast = lambda m: None if isinstance(m, SlowPath) else broadcast(m)  # type: ignore[method-assign]
    assert outcomes(sim.run_transactions(RING)) == ["committed"] * 10
    # Every batch that asked for fast shares alone got its 2f+1 shares from the backups' timer.
    assert asks.count(Ask.FAST) >= 1
    assert sim.replica(2).metrics["fast_path.late_prepare_shares"] == asks.count(Ask.FAST)
    _n1_to_n6_agree(sim)


def test_a_silent_replica_costs_the_fast_path_timer_only_until_the_leader_gives_up_waiting():
    sim = Simulation(seed=21, byzantine={7: (Attack("crash"),)})
    results = sim.run_transactions(RING * 10)
    assert outcomes(results) == ["committed"] * 100
    leader = sim.replica(1)
    assert leader.metrics["commits.fast"] == 0
    assert leader.metrics["fast_path.skipped"] >= leader.last_executed // 2
    # Three misses to give up (and the instances already waiting then), after that at most one
    # per probe (every 8th sequence number).
    probes = leader.last_executed // 8 + 1
    assert leader.metrics["fast_path.timeouts"] <= 3 + sim.config.inflight_max + probes
    assert_honest_live_agree(sim)


def test_the_fast_path_comes_back_once_the_silent_replica_answers_again():
    sim = Simulation(seed=22)
    sim.blocked |= {(a, b) for r in range(1, 7) for a, b in (("n7", f"n{r}"), (f"n{r}", "n7"))}
    sim.at(150, lambda s: s.blocked.clear())
    results = sim.run_transactions(RING * 20)
    assert outcomes(results) == ["committed"] * 200
    leader = sim.replica(1)
    assert leader.metrics["fast_path.skipped"] > 0  # gave up while n7 was cut off
    assert leader.metrics["commits.fast"] > 0  # a probe found all n answering again
    assert_honest_live_agree(sim)


def test_a_backup_with_bad_fast_shares_costs_one_checked_fast_commit_each_until_the_leader_gives_up():
    # n7 signs its messages properly, but its fast-path shares are garbage.
    sim = Simulation(seed=23)
    sim.replica(7).crypto.sign_fast_share = lambda message: bytes(SHARE_SIZE)  # type: ignore[method-assign]
    results = sim.run_transactions(RING * 4)
    assert outcomes(results) == ["committed"] * 40
    leader, backup = sim.replica(1), sim.replica(2)
    # The leader sends each FAST-COMMIT before checking it; the backups refuse the bad ones,
    # and the leader, once it has checked, falls back to the slow path.
    bad = leader.metrics["fast_path.bad_aggregates"]
    assert bad >= 3
    assert backup.metrics["dropped.bad certificate"] == bad
    assert leader.metrics["commits.fast"] == 0
    assert leader.metrics["commits.slow"] == leader.last_executed
    # A bad aggregate is a miss: after three the leader stops waiting, bar a probe every 8th.
    assert bad <= 3 + sim.config.inflight_max + leader.last_executed // 8 + 1
    assert leader.metrics["fast_path.skipped"] > 0
    assert_honest_live_agree(sim)


def test_the_leader_sends_its_pre_prepare_before_it_signs_its_own_shares():
    sim = Simulation(seed=24)
    leader = sim.replica(1)
    own_share_when_sent: list[bool] = []

    def on_send(source: str, to: int, message: Message) -> None:
        if source == "n1" and to == 2 and isinstance(message, PrePrepare):
            own_share_when_sent.append(leader.id in leader.slots[message.seq].prepare_shares)

    sim.send_hooks.append(on_send)
    results = sim.run_transactions(SET_1[:1])
    assert outcomes(results) == ["committed"]
    assert own_share_when_sent == [False]  # signed on the tick after the send
    assert leader.metrics["commits.fast"] == 1


def test_insufficient_funds_is_a_final_failed_outcome_not_retried():
    sim = Simulation(seed=2, live=[1, 2, 3, 4, 5])
    txns = [transfer("F", "G", 12), transfer("G", "H", 1), transfer("H", "I", 11), transfer("I", "J", 11), balance("J")]
    results = sim.run_transactions(txns)
    assert outcomes(results) == ["failed", "committed", "committed", "committed", "committed"]
    balances = sim.replica(1).bank.balances
    assert [balances[a] for a in "FGHIJ"] == [10, 9, 0, 10, 21]
    assert results[-1].result == 21
    assert_honest_live_agree(sim)


def test_a_crashed_backup_forces_the_slow_path_and_everything_commits():
    sim = Simulation(seed=3, live=[1, 2, 3, 4, 5, 6], byzantine={2: (Attack("crash"),)})
    results = sim.run_transactions(SET_1)
    assert outcomes(results) == ["committed"] * 5
    assert sim.replica(2).last_executed == 0  # never prepared
    assert sim.replica(1).metrics["fast_path.misses"] > 0
    assert_honest_live_agree(sim)


def test_a_crashed_leader_is_replaced_by_view_change_to_view_2():
    sim = Simulation(seed=4, byzantine={1: (Attack("crash"),)})
    results = sim.run_transactions(SET_1)
    assert outcomes(results) == ["committed"] * 5
    for r in range(2, 8):
        assert sim.replica(r).view == 2
    assert_honest_live_agree(sim)


def test_two_consecutive_crashed_leaders_end_in_view_3_led_by_n3():
    sim = Simulation(seed=5, byzantine={1: (Attack("crash"),), 2: (Attack("crash"),)})
    results = sim.run_transactions(SET_1)
    assert outcomes(results) == ["committed"] * 5
    for r in range(3, 8):
        replica = sim.replica(r)
        assert replica.view == 3 and replica.leader == 3
        assert [nv.view for nv in replica.new_views] == [3]
    assert_honest_live_agree(sim)


def test_an_equivocating_leader_s_gap_is_filled_with_a_no_op_and_each_request_runs_once():
    sim = Simulation(seed=6, byzantine={1: (Attack("equivocation", (6, 7)),)})
    results = sim.run_transactions([transfer("A", "J", 1), transfer("B", "I", 1), transfer("C", "H", 1), transfer("D", "G", 1), balance("G")])
    assert outcomes(results) == ["committed"] * 5
    assert results[-1].result == 11
    log = sim.nodes[2].executed
    assert log[1].batch == ()  # the no-op
    executed = Counter(r.key for e in log.values() for r in e.batch)
    assert set(executed.values()) == {1}
    assert_honest_live_agree(sim)


def test_a_replica_kept_in_the_dark_by_a_slow_leader_catches_up():
    sim = Simulation(seed=7, live=[1, 2, 3, 4, 5, 6], byzantine={1: (Attack("time"), Attack("dark", (6,)))})
    results = sim.run_transactions(SET_1)
    assert outcomes(results) == ["committed"] * 5
    assert sim.replica(6).metrics["catch_up.entries"] == 1  # seed 7: one catch-up batch
    assert_honest_live_agree(sim)


def test_time_dark_and_equivocation_together_end_with_the_darkened_replica_in_agreement():
    sim = Simulation(seed=8, byzantine={1: (Attack("time"), Attack("dark", (6,)), Attack("equivocation", (7,)))})
    results = sim.run_transactions(SET_1)
    assert outcomes(results) == ["committed"] * 5
    assert sim.replica(6).bank.balances == sim.replica(2).bank.balances
    assert_honest_live_agree(sim)


def test_with_only_four_correctly_signing_replicas_nothing_commits_and_the_set_stalls():
    sim = Simulation(seed=9, live=[1, 2, 3, 4, 5], byzantine={3: (Attack("sign"),)})
    results = sim.run_transactions(SET_1, stall_timeout_ms=2_000)
    assert outcomes(results) == ["unavailable"] * 5
    for r in (1, 2, 4, 5):
        assert sim.replica(r).last_executed == 0
        assert sim.replica(r).metrics["dropped.bad signature"] > 0


def test_a_replica_keeping_the_collector_in_the_dark_makes_it_fall_back_to_the_slow_path():
    sim = Simulation(seed=10, byzantine={7: (Attack("dark", (1, 2)),)})
    txns = [transfer(a, b, 1) for a, b in zip("ABCDEFGHIJ", "BCDEFGHIJA", strict=True)] * 3
    results = sim.run_transactions(txns)
    assert all(r.outcome == Outcome.COMMITTED for r in results)
    replica = sim.replica(3)
    assert replica.metrics["commits.fast"] == 0
    assert replica.metrics["commits.slow"] == replica.last_executed > 0
    assert_honest_live_agree(sim)


def test_a_retransmitted_request_is_answered_from_the_reply_table_not_executed_again():
    sim = Simulation(seed=11)
    sim.run_transactions([transfer("A", "B", 5)])
    client = sim.clients["A"]
    original = next(e.batch[0] for e in sim.nodes[1].executed.values() if e.batch)
    for r in range(1, 8):
        sim._perform_replica(r, sim.nodes[r].replica.step(original, sim.now))
    sim.run_for(200)
    assert sim.replica(1).bank.balances["A"] == 5
    assert sum(len(e.batch) for e in sim.nodes[1].executed.values()) == 1
    assert client.metrics["replies.stale"] == 11  # seed 11: the cached replies came back


def test_a_request_with_a_forged_client_signature_is_dropped():
    sim = Simulation(seed=12)
    forged = Request("A", 1, "transfer", ("A", "B", 10), False, b"\x00" * 64)
    ready = sim.nodes[1].replica.step(forged, 0.0)
    assert not ready.to_replicas
    assert sim.replica(1).metrics["dropped.bad client signature"] == 1


@pytest.mark.parametrize("seed", range(5))
def test_checkpoints_bound_memory_over_a_long_run(seed):
    sim = Simulation(ClusterConfig(checkpoint_interval=10), seed=seed, keep_events=False)
    txns = [transfer(a, b, 1) for a, b in zip("ABCDEFGHIJ", "BCDEFGHIJA", strict=True)] * 20
    results = sim.run_transactions(txns)
    assert all(r.outcome == Outcome.COMMITTED for r in results)
    for r in range(1, 8):
        replica = sim.replica(r)
        interval = replica.config.checkpoint_interval
        assert replica.last_executed >= 3 * interval
        assert replica.stable_seq == replica.last_executed - replica.last_executed % interval
        assert len(replica.slots) <= replica.config.checkpoint_interval
        assert all(seq > replica.stable_seq for seq in replica.checkpoints.votes)
    assert_honest_live_agree(sim)


def test_a_partitioned_replica_rejoins_by_state_transfer_of_a_certified_snapshot():
    sim = Simulation(ClusterConfig(checkpoint_interval=10), seed=13)
    sim.blocked |= {(a, b) for r in range(1, 8) if r != 6 for a, b in (("n6", f"n{r}"), (f"n{r}", "n6"))}
    sim.at(800, lambda s: s.blocked.clear())
    txns = [transfer(a, b, 1) for a, b in zip("ABCDEFGHIJ", "BCDEFGHIJA", strict=True)] * 8
    results = sim.run_transactions(txns)
    assert all(r.outcome == Outcome.COMMITTED for r in results)
    sim.run_for(1000)  # the others may have finished before n6 was let back in: let it catch up
    assert sim.replica(6).metrics["catch_up.snapshots"] == 1  # seed 13: one certified snapshot
    assert_honest_live_agree(sim)


def test_a_peer_lying_about_its_progress_cannot_keep_a_lagging_replica_from_catching_up():
    from dataclasses import replace

    from pbft_core.messages import CatchUp, Status

    sim = Simulation(seed=14)
    liar = sim.nodes[7].replica
    honest_tick, honest_step = liar.tick, liar.step

    def lie(ready):
        """Claim to be far ahead, and never answer a fetch."""
        out = []
        for to, m in ready.to_replicas:
            if isinstance(m, CatchUp):
                continue
            if isinstance(m, Status):
                m = replace(m, last_executed=10**6, sig=b"")
                m = m.with_sig(liar.crypto.sign(m.signing_payload()))
            out.append((to, m))
        ready.to_replicas = out
        return ready

    liar.tick = lambda now: lie(honest_tick(now))
    liar.step = lambda message, now: lie(honest_step(message, now))
    sim.nodes[7].honest = False
    sim.blocked |= {("n1", "n6")}  # the leader's messages never reach n6
    results = sim.run_transactions(SET_1, settle_ms=1_500)
    assert outcomes(results) == ["committed"] * 5
    assert sim.replica(6).last_executed == sim.replica(2).last_executed
    assert_honest_live_agree(sim)


def test_a_replica_votes_once_per_checkpoint_so_a_liar_cannot_flood_the_vote_table():
    from pbft_core.messages import Checkpoint

    sim = Simulation(seed=15)
    target = sim.replica(3)
    crypto = sim.replica(5).crypto
    for i in range(50):
        cp = Checkpoint(10, bytes([i]) * 32, b"s" * SHARE_SIZE, 5)
        target.step(cp.with_sig(crypto.sign(cp.signing_payload())), 0.0)
    assert sum(len(v) for v in target.checkpoints.votes[10].values()) == 1
