"""Regression the simulator found: a replica takes a new proposal over a slot it already
committed or executed.

The bug (fixed; was 16 of 2000 seeds with f=1, e.g. 21911 and 20555; invariant
``status-agreement``). `Slot.accept` keeps a slot's ``committed`` proof but replaces its
``view``/``digest``/``batch`` with the new proposal, and nothing on two paths checks the
proposal against ``committed`` (`on_pre_prepare` does: "conflicts with a committed batch"):

1. **A leader re-proposes what it executed.** ``next_seq`` moves only when the leader proposes
   (or at a new view or stable checkpoint), not when catch-up executes batches. A leader that
   fell behind — in seed 21911 n1, restarted from disk into view 1 after the others moved to
   view 2 — catches up to seq s and then pre-prepares new batches at sequence numbers <= s.
2. **A NEW-VIEW's O overrides an executed slot.** `_install_new_view` accepts every proposal of
   O. In seed 20555 a twin of the leader of view 2 sent a second, different (valid) NEW-VIEW;
   n3, restarted from disk, had executed the batch committed at seq 4 in view 2 by catch-up,
   then installed the other NEW-VIEW, signed a prepare share for O's different batch at seq 4.

Either way the replica emits ``StatusChanged(seq, E or C, <the new digest>)`` — it reports a
batch as executed/committed where a different batch was (what ``pbft inspect status`` and the
JSON report show) — and signs/sends a vote for a batch that conflicts with a commit certificate
it holds. Execution stays right (it uses ``committed``), and no conflicting certificate can form
(the replicas that committed the real batch do not vote again in that view), so agreement holds.
The fix: `Replica._accept` refuses a batch that conflicts with ``slot.committed`` (counted as
"proposal over a committed slot"), and a commit learnt any way moves ``next_seq`` past it.
"""

from __future__ import annotations

import json
from pathlib import Path

from pbft_core.certificates import commit_message
from pbft_core.config import ClusterConfig
from pbft_core.messages import (
    CatchUp,
    Message,
    NewView,
    PrepareShare,
    PrePrepare,
    PrePrepared,
    Proof,
    ProofKind,
    Request,
    ViewChange,
    batch_digest,
)
from pbft_core.replica import Replica
from pbft_core.runtime.simulator import make_crypto
from pbft_core.sim.plan import Plan
from pbft_core.sim.vopr import run_plan
from pbft_core.viewchange import select_proposals

CONFIG = ClusterConfig(f=1)
REPLICA_CRYPTO, CLIENT_CRYPTO = make_crypto("sim", 1, CONFIG, "AB")


def signed_request(client: str, timestamp: int) -> Request:
    request = Request(client, timestamp, "transfer", (client, "B", 1), False)
    return request.with_sig(CLIENT_CRYPTO(client).sign(request.signing_payload()))


def signed_by(message: Message, replica: int) -> Message:
    return message.with_sig(REPLICA_CRYPTO(replica).sign(message.signing_payload()))


def pinned(name: str) -> Plan:
    return Plan.from_json(json.loads((Path(__file__).parent / "plans" / name).read_text())["plan"])


def committed_in_view_2(seq: int, batch: tuple[Request, ...]) -> Proof:
    """A genuine commit certificate from n2–n4 for `batch` at `seq` in view 2."""
    message = commit_message(2, seq, batch_digest(batch))
    shares = {r: REPLICA_CRYPTO(r).sign_share(message) for r in (2, 3, 4)}
    certificate, bad = REPLICA_CRYPTO(2).combine(shares, message)
    assert certificate is not None and not bad
    return Proof(2, seq, batch, ProofKind.COMMIT, certificate)


def test_a_leader_that_caught_up_never_proposes_at_a_sequence_number_it_executed():
    # Given n1, leader of view 1, while the others committed batch X at seq 1 in view 2
    leader = Replica(1, CONFIG, REPLICA_CRYPTO(1))
    x = (signed_request("A", 1),)
    leader.step(signed_by(CatchUp(None, b"", (committed_in_view_2(1, x),), 2), 2), 10.0)
    assert leader.last_executed == 1
    # When a client's request reaches it and its batching timer fires
    leader.step(signed_request("B", 1), 20.0)
    ready = leader.tick(20.0)
    # Then it proposes above what it executed, and seq 1 still reports X
    proposed = {m.seq for _, m in ready.to_replicas if isinstance(m, PrePrepare)}
    assert proposed and min(proposed) > 1
    assert leader.slots[1].digest == batch_digest(x)


def test_pinned_seed_21911_a_leader_restarted_into_an_old_view_reports_only_true_statuses():
    result = run_plan(pinned("seed-21911-stale-leader-reproposes.json"))
    assert result.invariant is None, result.detail


def test_a_replica_that_executed_a_batch_never_votes_for_another_at_that_seq_from_a_new_view():
    # Given n3 executed batch X at seq 1 (committed in view 2, learnt by catch-up)
    n3 = Replica(3, CONFIG, REPLICA_CRYPTO(3))
    x, y = (signed_request("A", 1),), (signed_request("B", 1),)
    n3.step(signed_by(CatchUp(None, b"", (committed_in_view_2(1, x),), 2), 2), 10.0)
    assert n3.last_executed == 1
    # When the (equivocating) leader of view 2 sends a valid NEW-VIEW whose O puts Y at seq 1
    view_changes = tuple(signed_by(ViewChange(2, None, (), (PrePrepared(1, 1, y),), r), r) for r in (1, 2, 4))
    new_view = signed_by(NewView(2, view_changes, select_proposals(CONFIG, view_changes), 2), 2)
    ready = n3.step(new_view, 20.0)
    # Then n3 signs nothing for Y at seq 1, and seq 1 still reports X
    votes = [m for _, m in ready.to_replicas if isinstance(m, PrepareShare) and m.seq == 1]
    assert all(v.digest == batch_digest(x) for v in votes)
    assert n3.slots[1].digest == batch_digest(x)


def test_pinned_seed_20555_a_second_new_view_from_a_twin_leaves_executed_slots_alone():
    result = run_plan(pinned("seed-20555-new-view-over-executed-slot.json"))
    assert result.invariant is None, result.detail
