"""End to end on real processes: `pbft run` plays sets on spawned replica workers over pipes.

Sets 1 and 3 of the official scenario file (the normal case; a crashed backup with one replica
disconnected), then a worker that dies at startup, which the driver must report, not hang on.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import main
from pbft_core.config import ClusterConfig
from pbft_core.runtime.pipes import SetOptions, run_set
from pbft_core.scenario import parse_scenario

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


@pytest.fixture(scope="module")
def played(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict, Path]:
    root = tmp_path_factory.mktemp("e2e")
    (root / "scenario.csv").write_text(SCENARIO)
    result = CliRunner().invoke(
        main,
        [
            "run",
            str(root / "scenario.csv"),
            "--non-interactive",
            "--json",
            str(root / "out.json"),
            "--data-dir",
            str(root / "data"),
            "--seed",
            "7",
        ],
    )
    report = json.loads((root / "out.json").read_text()) if (root / "out.json").exists() else {}
    return result.exit_code, report, root


def test_both_sets_finish_and_the_run_exits_zero(played: tuple[int, dict, Path]) -> None:
    exit_code, report, _ = played
    assert exit_code == 0
    assert [s["set"] for s in report["sets"]] == [1, 3]
    assert all(s["ended_by"] == "completed" for s in report["sets"])


def test_set_1_commits_everything_and_reads_e_14(played: tuple[int, dict, Path]) -> None:
    s = played[1]["sets"][0]
    assert [t["outcome"] for t in s["transactions"]] == ["committed"] * 5
    assert s["transactions"][-1] == {
        **s["transactions"][-1],
        "client": "E",
        "kind": "balance",
        "args": ["E"],
        "result": 14,
    }
    last = s["replicas"]["n1"]["last_executed"]
    for name, replica in s["replicas"].items():
        assert replica["honest"] and replica["live"], name
        assert replica["balances"] == SET_1_FINAL, name
        assert replica["last_executed"] == last
        assert [e["seq"] for e in replica["executed"]] == list(range(1, last + 1))
        # However the leader batched them, the four transfers were executed once each, in order.
        # (On a loaded machine the read may time out and be ordered too: that is allowed.)
        executed = [
            (r["client"], r["args"])
            for e in replica["executed"]
            for r in e["requests"]
            if r["kind"] == "transfer"
        ]
        assert executed == [
            ("A", ["A", "B", 1]),
            ("B", ["B", "C", 2]),
            ("C", ["C", "D", 3]),
            ("D", ["D", "E", 4]),
        ]


def test_set_3_agrees_on_every_honest_live_replica_despite_a_crashed_backup(
    played: tuple[int, dict, Path],
) -> None:
    s = played[1]["sets"][1]
    assert s["live"] == ["n1", "n2", "n3", "n4", "n5", "n6"] and s["byzantine"] == ["n2"]
    assert s["attacks"] == ["crash"]
    assert [t["outcome"] for t in s["transactions"]] == ["committed"] * 5
    assert s["transactions"][-1]["result"] == 14
    replicas = s["replicas"]
    honest_live = [n for n, r in replicas.items() if r["honest"] and r["live"]]
    assert honest_live == ["n1", "n3", "n4", "n5", "n6"]
    logs = {n: replicas[n]["executed"] for n in honest_live}
    for name in honest_live:
        assert replicas[name]["balances"] == SET_3_FINAL, name
        assert logs[name] == logs["n1"], name
    assert replicas["n2"]["honest"] is False
    assert replicas["n7"]["live"] is False and replicas["n7"]["last_executed"] == 0
    assert s["agreement"] == {**s["agreement"], "ok": True, "identical_logs": True}


def test_the_report_has_every_documented_field(played: tuple[int, dict, Path]) -> None:
    report = played[1]
    for s in report["sets"]:
        assert {
            "set",
            "live",
            "byzantine",
            "attacks",
            "transactions",
            "replicas",
            "new_views",
            "metrics",
        } <= set(s)
        for t in s["transactions"]:
            assert {"client", "kind", "args", "outcome", "result", "latency_ms"} <= set(t)
            assert t["outcome"] in ("committed", "failed", "unavailable")
        assert sorted(s["replicas"]) == [f"n{i}" for i in range(1, 8)]
        for r in s["replicas"].values():
            assert {"honest", "live", "view", "last_executed", "balances", "executed"} <= set(r)
            assert sorted(r["balances"]) == list("ABCDEFGHIJ")
            for entry in r["executed"]:
                assert {"seq", "requests"} <= set(entry)
                for req in entry["requests"]:
                    assert set(req) == {"client", "timestamp", "kind", "args"}
        m = s["metrics"]
        assert m["throughput_tps"] > 0
        assert {"mean", "p50", "p99"} <= set(m["latency_ms"])


def test_every_replica_of_every_set_has_its_sqlite_file(played: tuple[int, dict, Path]) -> None:
    root = played[2]
    runs = list((root / "data" / "runs").iterdir())
    assert len(runs) == 1 and (runs[0] / "run.sqlite").is_file()
    for k in (1, 3):
        for i in range(1, 8):
            assert (runs[0] / f"set-{k}" / f"n{i}.sqlite").is_file()


def test_a_worker_that_dies_is_reported_and_the_driver_does_not_hang(tmp_path: Path) -> None:
    (scenario_set,) = parse_scenario(
        'Set Number,Transactions,Live,Byzantine,Attack\n1,"(A, B, 1)","[n1, n2, n3, n4]",[],[]\n'
    )
    # n3 cannot open its database (the path is a directory): it dies during startup.
    (tmp_path / "set-1" / "n3.sqlite").mkdir(parents=True)
    result = run_set(scenario_set, SetOptions(ClusterConfig(), stall_timeout_s=1.0), tmp_path)
    assert result.ended_by == "failure"
    assert "n3" in (result.failure or "")
    assert "Error" in (result.failure or "")  # the worker's traceback came through
    assert result.outcomes[0].outcome == "unavailable"


def test_a_worker_killed_mid_set_is_reported_and_the_survivors_stop_cleanly(tmp_path: Path) -> None:
    (scenario_set,) = parse_scenario(
        "Set Number,Transactions,Live,Byzantine,Attack\n"
        '1,"(A, B, 1)","[n1, n2, n3, n4, n5, n6, n7]",[],[]\n,"(B, C, 1)",,,\n,"(C, D, 1)",,,\n'
    )
    killed: list[int] = []

    def kill_the_leader_after_the_first_outcome(done: int, total: int, phase: str) -> None:
        if done >= 1 and not killed:
            for process in multiprocessing.active_children():
                if process.name == "pbft-n1":  # our own worker, by pid
                    os.kill(process.pid, signal.SIGKILL)
                    killed.append(process.pid)

    result = run_set(
        scenario_set,
        SetOptions(ClusterConfig(), stall_timeout_s=1.0),
        tmp_path,
        on_progress=kill_the_leader_after_the_first_outcome,
    )
    assert killed
    assert result.ended_by == "failure"
    assert "n1" in (result.failure or "") and "signal 9" in (result.failure or "")
    assert not multiprocessing.active_children()
    assert set(result.states) == {2, 3, 4, 5, 6, 7}  # the survivors reported their final state
