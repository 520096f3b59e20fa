"""The deterministic simulator as a test oracle: hundreds of seeded fault schedules, every one
checked for safety after each message and for liveness once the network heals.

Scenarios: a sweep of seeds is safe (and live); the same seed replays the same trace, under
either crypto suite and any hash seed; a deliberately broken quorum rule is caught within a
bounded number of seeds; a failure shrinks to a smaller plan that replays from its file; a restart
from disk reads back the write-ahead log a shell would have written (compacted at checkpoints).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pbft_core.config import ClusterConfig
from pbft_core.invariants import InvariantChecker
from pbft_core.ready import Executed, StateTransferred
from pbft_core.runtime.simulator import Simulation
from pbft_core.sim.plan import ALL_FAULTS, generate_plan
from pbft_core.sim.runner import Batch, Summary, run_seeds
from pbft_core.sim.vopr import RunOptions, load_failure, run_plan, shrink, write_failure

JOBS = min(2, os.cpu_count() or 1)
SIM = RunOptions(crypto="sim")


def real_crypto_available() -> bool:
    try:
        import thresh_sig

        return hasattr(thresh_sig, "deal")
    except ImportError:
        return False


def describe(summary: Summary) -> str:
    failures = summary.violations + summary.liveness_failures
    return "; ".join(f"seed {r.seed}: {r.invariant or 'liveness'}: {r.detail or r.liveness}" for r in failures[:5])


# ---- the sweep: 300 seeds with the fast crypto suite ---------------------------------------


@pytest.fixture(scope="module")
def sweep() -> list[Summary]:
    """200 seeds with f=1 and 100 with f=2, every fault of the menu on."""
    return [
        run_seeds(range(0, 200), Batch(f=1, requests=10, options=SIM), jobs=JOBS),
        run_seeds(range(1000, 1100), Batch(f=2, requests=10, options=SIM), jobs=JOBS),
    ]


def test_no_seed_violates_an_invariant(sweep: list[Summary]):
    for summary in sweep:
        assert not summary.violations, describe(summary)


def test_the_sweep_injected_every_fault_of_the_menu(sweep: list[Summary]):
    for summary in sweep:
        seeds, counts = summary.fault_seeds(), summary.fault_counts()
        for name in ALL_FAULTS:
            assert seeds[name] > 0 and counts[name] > 0, f"f={summary.f}: {name} never injected"


def test_every_seed_completes_every_request_once_the_network_heals(sweep: list[Summary]):
    for summary in sweep:
        assert not summary.liveness_failures, describe(summary)


# ---- determinism ----------------------------------------------------------------------------


def trace_of(seed: int, *, f: int = 1, crypto: str = "sim") -> list[str]:
    lines: list[str] = []
    run_plan(generate_plan(seed, f=f, requests=8), RunOptions(crypto=crypto), tracer=lines.append)
    return lines


def test_a_seed_replays_the_same_trace_line_for_line():
    first, second = trace_of(4), trace_of(4)
    assert len(first) > 100
    assert first == second


def test_a_seed_replays_the_same_trace_in_another_process_with_another_hash_seed():
    # Set iteration order of strings depends on PYTHONHASHSEED; a run must not.
    script = (
        "import hashlib\n"
        "from pbft_core.sim.plan import generate_plan\n"
        "from pbft_core.sim.vopr import run_plan, RunOptions\n"
        "lines = []\n"
        "run_plan(generate_plan(11, f=1, requests=8), RunOptions(crypto='sim'), tracer=lines.append)\n"
        "print(hashlib.sha256('\\n'.join(lines).encode()).hexdigest())\n"
    )
    digests = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
        digests.add(out.stdout.strip())
    assert digests == {hashlib.sha256("\n".join(trace_of(11)).encode()).hexdigest()}


def without_digests(lines: list[str]) -> list[str]:
    # Batch digests cover the clients' signatures, which differ between suites; nothing else may.
    return [re.sub(r"d=[0-9a-f]{6}", "d=?", line) for line in lines]


@pytest.mark.skipif(not real_crypto_available(), reason="thresh_sig not available")
def test_the_fast_crypto_suite_takes_exactly_the_decisions_real_crypto_takes():
    # Same seed, same schedule: every signature and certificate accepted or rejected alike.
    assert without_digests(trace_of(3, crypto="sim")) == without_digests(trace_of(3, crypto="real"))


@pytest.mark.skipif(not real_crypto_available(), reason="thresh_sig not available")
def test_a_handful_of_seeds_with_real_cryptography_are_safe():
    summary = run_seeds(range(3), Batch(f=1, requests=8, options=RunOptions(crypto="real")), jobs=1)
    assert not summary.violations, describe(summary)


# ---- the simulator catches a broken protocol -------------------------------------------------


@pytest.fixture
def quorum_of_2f(monkeypatch: pytest.MonkeyPatch) -> None:
    """The mutation: certificates (prepare, commit, checkpoint, view change) need only 2f."""
    monkeypatch.setattr(ClusterConfig, "quorum", property(lambda self: 2 * self.f))


def test_a_2f_quorum_is_caught_within_40_seeds_with_every_fault_on(quorum_of_2f: None):
    summary = run_seeds(range(40), Batch(f=1, requests=20, options=SIM), jobs=1)
    assert summary.violations, "commits with 2f shares went unnoticed for 40 seeds"
    assert {r.invariant for r in summary.violations} <= {"certificate-agreement", "agreement", "status-agreement", "replay"}


def test_a_2f_quorum_is_caught_by_twins_within_20_seeds_with_f_2(quorum_of_2f: None):
    summary = run_seeds(range(20), Batch(f=2, requests=20, faults=("twins", "partition"), options=SIM), jobs=1)
    assert summary.violations, "twins on both sides of a partition did not split a 2f quorum"


def test_a_failure_shrinks_to_a_smaller_plan_that_replays_from_its_file(quorum_of_2f: None, tmp_path: Path):
    # The first of the seeds the mutation is caught within (above) that it breaks.
    plan, failure = next(
        (plan, result)
        for plan in (generate_plan(seed, f=1, requests=20) for seed in range(40))
        if (result := run_plan(plan, SIM)).invariant is not None
    )
    small, small_result = shrink(plan, failure, SIM, budget_s=30.0)
    assert small_result.invariant == failure.invariant
    assert (len(small.events), len(small.requests), len(small.byzantine)) <= (
        len(plan.events), len(plan.requests), len(plan.byzantine),
    )
    assert len(small.requests) < len(plan.requests) or len(small.events) < len(plan.events)
    path = write_failure(tmp_path, small, small_result, SIM, original=plan)
    loaded, document = load_failure(path)
    assert document["reproduced"] and document["invariant"] == failure.invariant
    assert any(line.startswith("VIOLATION") for line in document["trace"])
    assert run_plan(loaded, SIM).invariant == failure.invariant


# ---- restarts read the write-ahead log a shell would have written -----------------------------


def test_a_restart_from_disk_reads_back_the_compacted_write_ahead_log():
    # Given a cluster that executed past a few stable checkpoints
    sim = Simulation(ClusterConfig(f=1, checkpoint_interval=2, batch_size_max=1), seed=7, keep_events=False, keep_durable=True)
    checker = InvariantChecker.attach(sim)
    for client, target in zip("ABCDEF", "BCDEFA", strict=True):
        sim.submit(client, "transfer", (client, target, 1))
    sim.run_for(1_000.0)
    replica = sim.replica(2)
    assert (replica.stable_seq, replica.last_executed) == (6, 6)  # six transfers, one per batch
    before = (replica.view, replica.last_executed, replica.stable_seq, dict(replica.bank.balances))
    # When it crashes and restarts from disk
    sim.crash(2)
    sim.restart(2)
    # Then its log was compacted at the checkpoint, as the shells' log is, and it lost nothing
    events = sim.nodes[2].disk.load()  # type: ignore[union-attr]
    base = max(e.seq for e in events if isinstance(e, StateTransferred))
    assert base == 6  # the last stable checkpoint is the compacted log's base
    assert all(e.seq > base for e in events if isinstance(e, Executed))
    replica = sim.replica(2)
    assert (replica.view, replica.last_executed, replica.stable_seq, dict(replica.bank.balances)) == before
    checker.check_state(sim.nodes[2])

