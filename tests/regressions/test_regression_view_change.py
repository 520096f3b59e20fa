"""Regression the simulator found: lost VIEW-CHANGE messages stalled the cluster for good.

The bug (liveness, now fixed). A replica sends its VIEW-CHANGE once. Its new-view timer
(``vc_deadline_ms``) is armed only after it has *collected* 2f+1 view changes for the view. So
if the view changes are lost (a partition, message loss, or the receiver was down) such that
no replica holds 2f+1 of them, nobody has a timer running and nobody ever sends again: every
honest replica waits in "view change" forever, even after the network heals, and clients'
retransmissions only get forwarded to a leader that never starts. A replica restarted from disk
while changing views is in the same position: its VIEW-CHANGE is not durable and is not re-sent.

What PBFT assumes instead: view-change messages are retransmitted until the new view is
installed (Castro & Liskov retransmit them with the view-change timer; a replica that learns
of a newer installed view — e.g. through STATUS gossip — gets the NEW-VIEW re-sent).

The fix: a replica changing views re-sends its VIEW-CHANGE every `view_change_resend_ms`
(rebuilt from its state, also right after a restart from disk) until it installs a NEW-VIEW,
and a replica already in a later view answers a stale VIEW-CHANGE with its latest NEW-VIEW.
"""

from __future__ import annotations

import json
from pathlib import Path

from pbft_core.dispatch import Outcome
from pbft_core.invariants import InvariantChecker
from pbft_core.runtime.simulator import Simulation
from pbft_core.sim.plan import Plan
from pbft_core.sim.vopr import run_plan
from tests.support import transfer

PLANS = Path(__file__).parent / "plans"

# n1 (the leader of view 1) is down; the other six split 3 | 3 while they change views, so
# neither side ever holds the 2f+1 = 5 view changes that would start anyone's new-view timer.
HALVES = {"n2": 0, "n3": 0, "n4": 0, "n5": 1, "n6": 1, "n7": 1}


def split_cluster(seed: int) -> Simulation:
    sim = Simulation(seed=seed, live=[2, 3, 4, 5, 6, 7], keep_events=False, keep_durable=True)
    InvariantChecker.attach(sim)

    def split(s: Simulation) -> None:
        s.partition = dict(HALVES)

    sim.at(300.0, split)
    sim.at(2_500.0, lambda s: s.heal())
    return sim


def test_view_changes_lost_in_a_partition_are_resent_once_it_heals():
    # Given a down leader and a partition during the view change
    sim = split_cluster(seed=7)
    # When a client asks for a transfer and the partition heals at 2.5 s
    results = sim.run_transactions([transfer("A", "B", 1)], stall_timeout_ms=30_000)
    # Then the six honest replicas finish the view change and commit it
    assert results[0].outcome == Outcome.COMMITTED
    assert {sim.replica(r).view_active for r in range(2, 8)} == {True}


def test_replicas_restarted_from_disk_during_a_view_change_resend_their_view_change():
    # Given the same partition, and the n5 side crashing after it sent its view changes
    sim = split_cluster(seed=8)
    for r in (5, 6, 7):
        sim.at(1_800.0, lambda s, r=r: s.crash(r))
        sim.at(2_600.0, lambda s, r=r: s.restart(r))
    # When the partition heals and they come back from their durable events
    results = sim.run_transactions([transfer("C", "D", 2)], stall_timeout_ms=30_000)
    # Then the view change completes with their (re-sent) view changes
    assert results[0].outcome == Outcome.COMMITTED


def pinned(name: str) -> Plan:
    return Plan.from_json(json.loads((PLANS / name).read_text())["plan"])


def test_pinned_seed_29_two_partitions_and_one_transfer_stay_live():
    # Shrunk by the simulator from seed 29 (f=2): no Byzantine replica, no message loss — one
    # transfer and two partitions (the second a three-way split during the view change).
    result = run_plan(pinned("seed-29-lost-view-changes.json"))
    assert result.invariant is None, result.detail
    assert result.liveness is None, result.liveness


