"""Regressions the simulator found: two ways honest replicas stay stuck in a view change forever.

Both are liveness bugs with at most f faulty replicas; both are fixed: NEW-VIEW is now a
durable event (a restarted leader can still relay it), and a replica answers a VIEW-CHANGE
for a view it has completed or left with the NEW-VIEW it holds for it, or else with the
VIEW-CHANGEs it collected for it (`Replica._help_replica_behind`).

1. **A NEW-VIEW lost on restart** (seed 11228). A replica that misses a NEW-VIEW can only
   finish that view change by having it relayed (`on_view_change` relays ``new_views[-1]``).
   But NEW-VIEW is not durable: the new leader, restarted from disk, comes back active in the
   new view with ``new_views == []``, so it can never relay it; as the leader it runs no
   execution timer, so it never suspects anyone either. Replicas that installed the view and
   then moved on to the next one do not relay it (they are not active). The replicas that
   missed it wait "changing" forever, and so does everyone.
   Scenario: n3 down; n1 still in view 1; the backups change to view 2 while n2's side cannot
   send to {n1, n4, n7}; n2 installs view 2 with n5 and n6, who later time out to view 3; n2
   crashes and restarts from disk; the links heal. n1, n4, n7 wait in view 2, n5, n6 in view 3,
   n2 leads view 2 alone: nothing ever moves again.
   Fix directions: make NEW-VIEW durable (restore ``new_views``), and/or let a replica that is
   past view v relay the NEW-VIEW of v it holds.

2. **A view change left behind** (seed 11634). The new-view timer starts only once a replica
   holds 2f+1 VIEW-CHANGEs for its view, and a replica re-sends only its *current* VIEW-CHANGE.
   If some replica collects 2f+1 and moves on (its timer fires: it now re-sends VIEW-CHANGE for
   v+1, never again for v) while the others hold fewer than 2f+1 for v, the others wait with
   no timer for messages nobody will send again, and one replica alone in v+1 is below the f+1
   needed to pull them along.
   Scenario: n1 down, n2 Byzantine (the `crash` attack: collects view changes but never sends
   NEW-VIEW; and `dark` towards n4–n7); n3's messages to n4–n7 are cut during the view change
   to view 2. n3 holds six VIEW-CHANGE(2), times out and moves to view 3; n4–n7 hold four each
   (n2's never come, n3's never come again) and wait forever.
   Fix directions: start the new-view timer when the replica sends its VIEW-CHANGE (PBFT's
   doubling timers plus the f+1 join rule then bring the views together), or answer a
   VIEW-CHANGE for an older view with the view changes held for it.
"""

from __future__ import annotations

import json
from pathlib import Path

from pbft_core.attacks import Attack
from pbft_core.dispatch import Outcome
from pbft_core.invariants import InvariantChecker
from pbft_core.runtime.simulator import Simulation
from pbft_core.sim.plan import Plan
from pbft_core.sim.vopr import run_plan
from tests.support import transfer

PLANS = Path(__file__).parent / "plans"


def pinned(name: str) -> Plan:
    return Plan.from_json(json.loads((PLANS / name).read_text())["plan"])


def test_a_new_leader_restarted_from_disk_still_brings_everyone_into_its_view():
    # Given n3 down and n2's side unable to reach {n1, n4, n7} while n2 installs view 2
    sim = Simulation(seed=5, live=[1, 2, 4, 5, 6, 7], keep_events=False, keep_durable=True)
    InvariantChecker.attach(sim)
    sim.blocked |= {(b, a) for a in ("n1", "n4", "n7") for b in ("n2", "n5", "n6")}
    # When n2 crashes and restarts from disk, then the links heal
    sim.at(1_500.0, lambda s: s.crash(2))
    sim.at(1_600.0, lambda s: s.restart(2))
    sim.at(1_700.0, lambda s: s.blocked.clear())
    results = sim.run_transactions([transfer("A", "B", 1)], stall_timeout_ms=30_000)
    # Then the view changes complete and the transfer commits
    assert results[0].outcome == Outcome.COMMITTED


def test_replicas_short_of_2f_plus_1_view_changes_are_not_left_behind():
    # Given n1 down, n2 collecting view changes but never sending NEW-VIEW (and dark to n4-n7),
    # and n3 unable to reach n4-n7 during the view change
    sim = Simulation(
        seed=5, live=[2, 3, 4, 5, 6, 7], keep_events=False,
        byzantine={2: (Attack("crash"), Attack("dark", (4, 5, 6, 7)))},
    )
    InvariantChecker.attach(sim)
    sim.blocked |= {("n3", r) for r in ("n4", "n5", "n6", "n7")}
    sim.at(2_000.0, lambda s: s.blocked.clear())
    # When a client asks for a transfer
    results = sim.run_transactions([transfer("A", "B", 1)], stall_timeout_ms=30_000)
    # Then the five honest replicas reach a common view with an honest leader and commit it
    assert results[0].outcome == Outcome.COMMITTED


def test_pinned_seed_11228_twins_loss_partitions_and_a_restarted_leader_stay_live():
    result = run_plan(pinned("seed-11228-new-view-lost-on-restart.json"))
    assert result.invariant is None, result.detail
    assert result.liveness is None, result.liveness


def test_pinned_seed_11634_a_silent_leader_and_two_partitions_stay_live():
    result = run_plan(pinned("seed-11634-view-change-left-behind.json"))
    assert result.invariant is None, result.detail
    assert result.liveness is None, result.liveness


def test_pinned_seed_11964_twins_bouncing_a_request_do_not_stall_the_simulation():
    # Twins of n1 and n2 in different views forwarded one request back and forth, doubling it
    # at every twin, until the simulation drowned (honest replicas were never involved). The
    # simulator now throttles links between two Byzantine instances; the seed must finish.
    result = run_plan(pinned("seed-11964-twins-forwarding-storm.json"))
    assert result.invariant is None, result.detail
    assert result.liveness is None, result.liveness
