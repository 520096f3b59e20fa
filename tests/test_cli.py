"""The `pbft` command line: usage errors exit 2 before anything starts; inspect and runs read a
finished run's SQLite files (one tiny run with a crashed leader, so there is a view change)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from cli.main import main
from cli.session import run_command
from cli.views import Target
from pbft_core.storage import list_runs

TINY = """\
Set Number,Transactions,Live,Byzantine,Attack
4,"(A, B, 3)","[n1, n2, n3, n4, n5, n6, n7]",[n1],[crash]
,(B),,,
"""


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


# ---- usage errors: nothing starts -----------------------------------------------------------


def test_a_malformed_scenario_is_rejected_with_its_line_and_nothing_runs(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text('Set Number,Transactions,Live,Byzantine,Attack\n1,"(A, B, x)","[n1]",[],[]\n')
    code, output = invoke(
        "run", str(bad), "--non-interactive", "--data-dir", str(tmp_path / "data")
    )
    assert code == 2
    assert output.startswith(f"error: {bad}:2: ")
    assert not (tmp_path / "data").exists()


def test_a_missing_file_and_a_bad_set_selection_exit_2(tmp_path: Path) -> None:
    code, output = invoke("run", str(tmp_path / "nope.csv"), "--data-dir", str(tmp_path / "data"))
    assert code == 2 and "error:" in output
    good = tmp_path / "good.csv"
    good.write_text(TINY)
    code, output = invoke("run", str(good), "--sets", "9", "--data-dir", str(tmp_path / "data"))
    assert code == 2 and "--sets" in output
    code, _ = invoke("run", str(good), "--batch-size", "0")
    assert code == 2
    code, output = invoke("run", str(good), "--json", str(tmp_path / "no" / "out.json"))
    assert code == 2 and "--json" in output
    assert not (tmp_path / "data").exists()


def test_inspect_without_any_run_says_so(tmp_path: Path) -> None:
    code, output = invoke("inspect", "log", "3", "--data-dir", str(tmp_path))
    assert code == 2 and "no runs" in output
    code, output = invoke("runs", "--data-dir", str(tmp_path))
    assert code == 0 and "No runs" in output


# ---- a tiny real run, then inspect it ------------------------------------------------------


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    (root / "tiny.csv").write_text(TINY)
    code, output = invoke(
        "run",
        str(root / "tiny.csv"),
        "--non-interactive",
        "--data-dir",
        str(root / "data"),
        "--json",
        str(root / "out.json"),
        "--stall-timeout",
        "5",
    )
    assert code == 0, output
    return root / "data"


@pytest.mark.process
def test_run_prints_the_transactions_and_replicas_tables(run_dir: Path) -> None:
    report = json.loads((run_dir.parent / "out.json").read_text())
    (s,) = report["sets"]
    assert [t["outcome"] for t in s["transactions"]] == ["committed", "committed"]
    assert s["transactions"][1]["result"] == 13
    assert [nv["view"] for nv in s["new_views"]] == [2]


@pytest.mark.process
def test_runs_lists_the_run(run_dir: Path) -> None:
    code, output = invoke("runs", "--data-dir", str(run_dir))
    assert code == 0
    assert list_runs(run_dir)[0].name in output and "tiny" in output


@pytest.mark.process
def test_inspect_log_shows_what_a_replica_received_and_sent(run_dir: Path) -> None:
    code, output = invoke("inspect", "log", "3", "--data-dir", str(run_dir))
    assert code == 0, output
    assert "n3 message log — set 4" in output
    for kind in ("PrePrepare", "Request", "ViewChange", "NewView", "Reply"):
        assert kind in output
    assert "Status gossip messages hidden" in output
    code, output = invoke(
        "inspect", "log", "n3", "--all", "--type", "Status", "--data-dir", str(run_dir)
    )
    assert code == 0 and "Status" in output and "PrePrepare" not in output


@pytest.mark.process
def test_inspect_status_shows_every_replica(run_dir: Path) -> None:
    code, output = invoke("inspect", "status", "1", "--data-dir", str(run_dir), "--set", "4")
    assert code == 0, output
    rows = [line.split() for line in output.splitlines() if line.strip().startswith("n")]
    statuses = {row[0]: row[2] for row in rows}
    assert set(statuses) == {f"n{i}" for i in range(1, 8)}
    assert all(statuses[f"n{i}"] == "E" for i in range(2, 8))  # n1 (crashed leader) never executes
    # No set orders 99 requests: every replica reports X (no such sequence number).
    code, output = invoke("inspect", "status", "99", "--data-dir", str(run_dir))
    rows = [line.split() for line in output.splitlines() if line.strip().startswith("n")]
    assert code == 0 and [row[-4] for row in rows] == ["X"] * 7  # status, view, digest, history
    assert "X nothing for this sequence number" in output  # the legend says what X means


@pytest.mark.process
def test_inspect_view_db_and_perf(run_dir: Path) -> None:
    code, output = invoke("inspect", "view", "--data-dir", str(run_dir))
    assert code == 0 and "NEW-VIEW v2 from n2" in output and "A#1 A→B 3" in output
    code, output = invoke("inspect", "db", "--data-dir", str(run_dir))
    assert code == 0 and "n7" in output
    code, output = invoke("inspect", "db", "5", "--data-dir", str(run_dir))
    assert code == 0 and "executed" in output and "A#1" in output
    code, output = invoke("inspect", "perf", "--data-dir", str(run_dir))
    assert code == 0 and "throughput" in output and "latency p99" in output
    code, output = invoke("inspect", "perf", "2", "--data-dir", str(run_dir))
    assert code == 0 and "message log rows by type" in output and "protocol counters" in output


@pytest.mark.process
def test_inspect_rejects_a_set_or_replica_that_is_not_there(run_dir: Path) -> None:
    code, output = invoke("inspect", "view", "--set", "9", "--data-dir", str(run_dir))
    assert code == 2 and "no set 9" in output
    code, output = invoke("inspect", "log", "8", "--data-dir", str(run_dir))
    assert code == 2
    code, output = invoke("inspect", "log", "1", "--run", "nope", "--data-dir", str(run_dir))
    assert code == 2 and "no run" in output


@pytest.mark.process
def test_the_interactive_session_commands_use_the_same_renderers(run_dir: Path) -> None:
    run = list_runs(run_dir)[0]
    target = Target(run / "set-4", "run", run.name, 4, None)
    console = Console(record=True, width=160)
    for words in (
        ["log", "2", "--tail", "5"],
        ["db"],
        ["db", "n2"],
        ["status", "1"],
        ["view"],
        ["perf"],
    ):
        assert run_command(console, target, words) == 0
    text = console.export_text()
    assert (
        "n2 message log" in text and "Status of sequence number 1" in text and "NEW-VIEW v2" in text
    )
    assert run_command(console, target, ["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in console.export_text()
