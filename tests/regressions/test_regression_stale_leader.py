"""Regression the simulator found: a leader re-proposes sequence numbers it already executed.

The bug (open; seed 21911, f=1, invariant ``status-agreement``). The leader's ``next_seq``
moves only when it proposes (and at a new view or a stable checkpoint). Batches it learns
through catch-up (`on_catch_up` → `_committed` → `_execute`) do not move it. So a leader that
fell behind — in the run, n1 restarted from disk into view 1 after the others had moved to view
2 — catches up to seq s and then pre-prepares a new batch at a sequence number <= s. The
proposal overwrites the executed slot's ``view``/``digest``/``batch`` (``Slot.accept``; the
``committed`` proof survives, so execution stays right) and the replica emits
``StatusChanged(seq, E or C, <the new digest>)``: it reports a batch as committed/executed where
a different batch was. ``pbft inspect status`` and the JSON report show that false status, and
the re-proposal is sent to every backup (who drop it only if they hold the commit themselves).

No certificate for the conflicting batch can form here (the replicas that committed the real
batch moved to a newer view), so agreement holds; the reported state is what is wrong.
Fix direction: after catch-up (and after executing), ``next_seq = max(next_seq,
last_executed + 1)``, and never pre-prepare at a sequence number that holds a commit.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pbft_core.certificates import commit_message
from pbft_core.config import ClusterConfig
from pbft_core.messages import CatchUp, PrePrepare, Proof, ProofKind, Request, batch_digest
from pbft_core.replica import Replica
from pbft_core.runtime.simulator import make_crypto
from pbft_core.sim.plan import Plan
from pbft_core.sim.vopr import run_plan

REPROPOSES = "a leader's next_seq ignores what catch-up executed: it re-proposes executed sequence numbers (see module docstring)"
CONFIG = ClusterConfig(f=1)
REPLICA_CRYPTO, CLIENT_CRYPTO = make_crypto("sim", 1, CONFIG, "AB")


def signed_request(client: str, timestamp: int) -> Request:
    request = Request(client, timestamp, "transfer", (client, "B", 1), False)
    return request.with_sig(CLIENT_CRYPTO(client).sign(request.signing_payload()))


def committed_in_view_2(seq: int, batch: tuple[Request, ...]) -> Proof:
    """A genuine commit certificate from n2–n4 for `batch` at `seq` in view 2."""
    message = commit_message(2, seq, batch_digest(batch))
    shares = {r: REPLICA_CRYPTO(r).sign_share(message) for r in (2, 3, 4)}
    certificate, bad = REPLICA_CRYPTO(2).combine(shares, message)
    assert certificate is not None and not bad
    return Proof(2, seq, batch, ProofKind.COMMIT, certificate)


@pytest.mark.xfail(strict=True, reason=REPROPOSES)
def test_a_leader_that_caught_up_never_proposes_at_a_sequence_number_it_executed():
    # Given n1, leader of view 1, while the others committed batch X at seq 1 in view 2
    leader = Replica(1, CONFIG, REPLICA_CRYPTO(1))
    x = (signed_request("A", 1),)
    catch_up = CatchUp(None, b"", (committed_in_view_2(1, x),), 2)
    leader.step(catch_up.with_sig(REPLICA_CRYPTO(2).sign(catch_up.signing_payload())), 10.0)
    assert leader.last_executed == 1
    # When a client's request reaches it and its batching timer fires
    leader.step(signed_request("B", 1), 20.0)
    ready = leader.tick(20.0)
    # Then it proposes above what it executed, and seq 1 still reports X
    proposed = {m.seq for _, m in ready.to_replicas if isinstance(m, PrePrepare)}
    assert proposed and min(proposed) > 1
    assert leader.slots[1].digest == batch_digest(x)


@pytest.mark.xfail(strict=True, reason=REPROPOSES)
def test_pinned_seed_21911_a_leader_restarted_into_an_old_view_reports_only_true_statuses():
    plan = Plan.from_json(json.loads((Path(__file__).parent / "plans" / "seed-21911-stale-leader-reproposes.json").read_text())["plan"])
    result = run_plan(plan)
    assert result.invariant is None, result.detail
