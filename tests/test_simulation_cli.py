"""`pbft simulate` as a user meets it: a sweep with a summary and JSON, a replay that prints the
trace, failures saved as replayable trace files, and clear errors for bad options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.simulate import simulate
from pbft_core.config import ClusterConfig
from pbft_core.sim.plan import ALL_FAULTS

FAST = ["--f", "1", "--requests", "6", "--crypto", "sim", "--jobs", "1"]


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(simulate, [*args], catch_exceptions=False)
    return result.exit_code, result.output


def test_a_sweep_prints_a_summary_and_writes_the_json_report(tmp_path: Path):
    out = tmp_path / "out.json"
    code, output = run("--seeds", "4", *FAST, "--json", str(out), "--trace-dir", str(tmp_path / "traces"))
    assert code == 0, output
    assert "faults injected" in output and "seeds/s" in output
    report = json.loads(out.read_text())
    assert report["seeds"] == 4
    assert report["violations"] == [] and report["liveness_failures"] == []
    assert set(report["fault_counts"]) == set(ALL_FAULTS)
    assert report["liveness"]["requests_completed"] == report["liveness"]["requests"] == 24


def test_replay_prints_the_trace_of_one_seed():
    code, output = run("--replay", "2", *FAST, "-v")
    assert code == 0, output
    # The plan in words (no reprs of the plan's dataclasses), then the trace.
    assert "seed 2: n = 4 (f = 1)" in output and "network: delay" in output
    assert "FaultEvent(" not in output and "NetworkPlan(" not in output
    assert "executes seq=1" in output
    assert "seed 2: ok" in output


def test_replay_with_vv_shows_every_delivered_message_too():
    _, quiet = run("--replay", "2", *FAST, "-v")
    _, loud = run("--replay", "2", *FAST, "-vv")
    assert " -> n" not in quiet.replace("-> '", "").replace("-> [", "")
    assert "PrePrepare(" in loud


def test_a_broken_protocol_fails_the_sweep_and_leaves_a_replayable_trace(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setattr(ClusterConfig, "quorum", property(lambda self: 2 * self.f))
    out = tmp_path / "out.json"
    code, output = run(
        "--seeds", "10", "--f", "2", "--requests", "10", "--crypto", "sim", "--jobs", "1", "--faults", "twins,partition",
        "--json", str(out), "--trace-dir", str(tmp_path / "traces"), "--shrink-max", "1",
    )
    assert code == 1
    report = json.loads(out.read_text())
    assert report["violations"], output
    first = report["violations"][0]
    assert Path(first["trace_file"]).exists()
    code, replay = run("--replay-file", first["trace_file"], "-v")
    assert code == 1
    assert f"VIOLATION {first['invariant']}" in replay


def test_unknown_faults_are_rejected_naming_the_menu():
    code, output = run("--seeds", "1", *FAST, "--faults", "loss,meteor")
    assert code != 0
    assert "unknown fault 'meteor'" in output and "twins" in output


def test_faults_can_be_excluded_from_the_menu(tmp_path: Path):
    out = tmp_path / "out.json"
    code, _ = run("--seeds", "3", *FAST, "--faults", "all,-twins,-adversary", "--json", str(out))
    assert code == 0
    report = json.loads(out.read_text())
    assert report["fault_seeds"]["twins"] == report["fault_seeds"]["adversary"] == 0
    assert "twins" not in report["faults_enabled"]


def test_simulate_is_a_command_of_pbft_itself_and_loads_only_when_used():
    from cli.main import main

    listing = CliRunner().invoke(main, ["--help"])
    assert "simulate" in listing.output
    result = CliRunner().invoke(main, ["simulate", "--replay", "2", *FAST], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "seed 2: ok" in result.output
