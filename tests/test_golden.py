"""Golden tables (etcd's data-driven tests): a scenario file played on the deterministic
simulator, every set's outcomes, final balances and final views written as text and compared
with ``tests/golden/<name>.txt``.

The simulator is exact for a seed, so any difference is a change in behaviour. When the change
is intended, rewrite the table and review its diff like code::

    .venv/bin/python -m pytest tests/test_golden.py --update-golden   # or PBFT_UPDATE_GOLDEN=1
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pbft_core.config import replica_name
from pbft_core.runtime.set_run import SetOptions
from pbft_core.runtime.sim_set import simulate_set
from pbft_core.scenario import ScenarioSet, parse_scenario_file

GOLDEN = Path(__file__).parent / "golden"
OFFICIAL = Path(__file__).resolve().parent.parent / "data" / "official-f25.csv"  # = ../shared/scenarios/
SEED = 0


def set_table(scenario_set: ScenarioSet) -> list[str]:
    """One set as lines: how it ended, each transaction's outcome, each replica's end state."""
    sim, driver = simulate_set(scenario_set, SetOptions(), seed=SEED)
    live = ",".join(replica_name(r) for r in sorted(scenario_set.live)) or "none"
    byzantine = ",".join(replica_name(r) for r in sorted(scenario_set.byzantine)) or "none"
    attacks = "; ".join(str(a) for a in scenario_set.attacks) or "-"
    lines = [
        f"set {scenario_set.number} · live {live} · byzantine {byzantine} · attacks {attacks}",
        f"  ended by {driver.ended_by} · settled {'yes' if driver.settled else 'no'}",
    ]
    for txn, outcome in zip(scenario_set.transactions, driver.outcomes, strict=True):
        result = "-" if outcome.result is None else outcome.result
        lines.append(f"  line {txn.line:3} {txn!s:16} {outcome.outcome!s:12} {result}")
    for r, node in sorted(sim.nodes.items()):
        replica = node.inner
        role = "honest" if node.honest else "byzantine"
        state = "live" if node.live else "down"
        balances = " ".join(f"{a}{v}" for a, v in sorted(replica.bank.balances.items()))
        lines.append(
            f"  {replica_name(r)} {role:9} {state:4} view {replica.view} exec {replica.last_executed:2}  {balances}"
        )
    return lines


def golden_text(path: Path) -> str:
    body = [line for s in parse_scenario_file(path) for line in set_table(s)]
    header = [
        f"# {path.name} on the simulator (seed {SEED}, default options): outcomes, final views, balances.",
        "# Regenerate: .venv/bin/python -m pytest tests/test_golden.py --update-golden",
    ]
    return "\n".join(header + body) + "\n"


def test_official_f25_plays_as_its_golden_table(request: pytest.FixtureRequest) -> None:
    golden = GOLDEN / "official-f25.txt"
    actual = golden_text(OFFICIAL)
    if request.config.getoption("--update-golden") or os.environ.get("PBFT_UPDATE_GOLDEN"):
        golden.write_text(actual)
    assert actual == golden.read_text(), "behaviour changed: review, then rerun with --update-golden"
