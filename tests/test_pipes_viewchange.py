"""View changes on real processes: the official sets with faulty leaders, through `pbft run`.

Given the course's official file, when sets 5, 6, 8 and 9 are played on spawned replica
workers, then every transaction commits after view changes (set 9 through two consecutive ones,
ending in view 3 led by n3), the replica kept in the dark in set 6 ends with the others'
balances, and all honest live replicas agree.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import main

pytestmark = [pytest.mark.process, pytest.mark.timeout(180)]

OFFICIAL = Path(__file__).resolve().parent.parent / "data" / "official-f25.csv"


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("viewchange")
    args = ["run", str(OFFICIAL), "--sets", "5,6,8,9", "--non-interactive"]
    args += ["--json", str(root / "out.json"), "--data-dir", str(root / "data"), "--seed", "3"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return {s["set"]: s for s in json.loads((root / "out.json").read_text())["sets"]}


def honest_live(s: dict) -> dict[str, dict]:
    return {name: r for name, r in s["replicas"].items() if r["honest"] and r["live"]}


@pytest.mark.parametrize("number", [5, 6, 8, 9])
def test_every_transaction_commits_after_a_view_change_and_honest_replicas_agree(report, number):
    s = report[number]
    assert [t["outcome"] for t in s["transactions"]] == ["committed"] * len(s["transactions"])
    replicas = honest_live(s)
    assert len({json.dumps(r["balances"], sort_keys=True) for r in replicas.values()}) == 1
    assert len({r["last_executed"] for r in replicas.values()}) == 1
    assert min(r["view"] for r in replicas.values()) >= 2
    assert s["new_views"]


def test_two_crashed_leaders_take_two_view_changes_and_n3_leads_view_3(report):
    s = report[9]
    assert {r["view"] for r in honest_live(s).values()} == {3}
    assert sorted({nv["view"] for nv in s["new_views"]}) == [2, 3]


def test_the_replica_kept_in_the_dark_in_set_6_ends_with_the_others_balances(report):
    replicas = report[6]["replicas"]
    assert replicas["n6"]["balances"] == replicas["n2"]["balances"]
    assert replicas["n6"]["last_executed"] == replicas["n2"]["last_executed"]


def test_after_the_equivocating_leader_each_transfer_ran_exactly_once(report):
    """Whether seq 1 became a no-op depends on which 2f+1 view changes the new leader used
    (f+1 reports of the batch at seq 1 carry it over); the deterministic simulator test pins
    the no-op case. Here: every transfer is in the log once, and nothing else is."""
    executed = report[5]["replicas"]["n2"]["executed"]
    keys = [(r["client"], r["timestamp"]) for entry in executed for r in entry["requests"]]
    assert len(keys) == len(set(keys))
    transfers = sorted(r["client"] for entry in executed for r in entry["requests"] if r["kind"] == "transfer")
    assert transfers == ["A", "B", "C", "D"]
