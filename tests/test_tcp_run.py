"""`pbft run --transport tcp`: scenario sets on `pbft node` processes give the same outcomes,
balances and report as the pipes shell (the normal case, and a crashed backup with a replica
outside the Live column)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import main
from pbft_core.storage import ReplicaStore

pytestmark = [pytest.mark.process, pytest.mark.timeout(120)]

SCENARIO = """\
Set Number,Transactions,Live,Byzantine,Attack
1,"(A, B, 1)","[n1, n2, n3, n4, n5, n6, n7]",[],[]
,"(B, C, 2)",,,
,"(C, D, 3)",,,
,"(D, E, 4)",,,
,(E),,,
3,"(A, B, 1)","[n1, n2, n3, n4, n5, n6]",[n2],[crash]
,"(C, D, 2)",,,
,"(E, F, 3)",,,
,"(G, H, 4)",,,
,(H),,,
"""

SET_1_FINAL = {"A": 9, "B": 9, "C": 9, "D": 9, "E": 14, "F": 10, "G": 10, "H": 10, "I": 10, "J": 10}
SET_3_FINAL = {"A": 9, "B": 11, "C": 8, "D": 12, "E": 7, "F": 13, "G": 6, "H": 14, "I": 10, "J": 10}


def test_scenario_sets_play_on_tcp_nodes_like_on_pipes(tmp_path: Path) -> None:
    (tmp_path / "scenario.csv").write_text(SCENARIO)
    result = CliRunner().invoke(
        main,
        [
            "run",
            str(tmp_path / "scenario.csv"),
            "--transport",
            "tcp",
            "--non-interactive",
            "--json",
            str(tmp_path / "out.json"),
            "--data-dir",
            str(tmp_path / "data"),
            "--seed",
            "7",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "out.json").read_text())
    assert report["options"]["transport"] == "tcp"
    first, third = report["sets"]
    assert [t["outcome"] for t in first["transactions"]] == ["committed"] * 5
    assert first["transactions"][-1]["result"] == 14
    assert all(r["balances"] == SET_1_FINAL for r in first["replicas"].values())
    assert [t["outcome"] for t in third["transactions"]] == ["committed"] * 5
    replicas = third["replicas"]
    for name in ("n1", "n3", "n4", "n5", "n6"):
        assert replicas[name]["balances"] == SET_3_FINAL, name
    assert replicas["n2"]["honest"] is False and replicas["n2"]["attacks"] == ["crash"]
    assert replicas["n7"]["live"] is False and replicas["n7"]["last_executed"] == 0
    assert third["agreement"]["ok"] and third["agreement"]["identical_logs"]
    # The databases are where `pbft inspect` looks, written by the nodes themselves.
    (run_dir,) = (tmp_path / "data" / "runs").iterdir()
    with ReplicaStore(run_dir / "set-3" / "n4.sqlite", read_only=True) as store:
        assert store.meta()["transport"] == "tcp"
        assert store.meta()["set"] == 3
        assert store.messages(types=["PrePrepare"])
    assert (run_dir / "set-3" / "cluster" / "cluster.toml").is_file()
    assert "event=listening" in (run_dir / "set-3" / "logs" / "n4.log").read_text()
