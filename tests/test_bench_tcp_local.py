"""`pbft bench smallbank --transport tcp`: the benchmark starts and stops its own TCP cluster.

The usage errors need no replica. The process tests run the real command: seven `pbft node`
processes on free loopback ports, a one-second window (twice, for `--repeat`), and an
interrupted run that must exit 130 and leave no node behind. No timed assertions: throughput
and latency are only checked to be reported.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import main

ROOT = Path(__file__).resolve().parents[1]
REPLICAS = [f"n{r}" for r in range(1, 8)]
SMALL = ["--clients", "4", "--accounts", "50", "--hot-accounts", "10", "--duration", "1", "--warmup", "0.5"]


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def node_processes(marker: str) -> list[int]:
    """Live `pbft node` processes whose command line mentions `marker` (a test's directory)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and b"node" in command and any(marker.encode() in part for part in command):
            pids.append(int(entry.name))
    return pids


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--transport", "tcp", "--profile", "prof"], "cannot be used with --transport tcp"),
        (["--durability", "process"], "--durability applies to --transport tcp only"),
        (["--transport", "pipes", "--cluster", "cluster.toml"], "--transport pipes contradicts it"),
        (["--cluster", "cluster.toml", "--durability", "process"], "not --cluster's"),
    ],
)
def test_options_that_contradict_the_transport_are_usage_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cluster.toml").write_text("")
    code, output = invoke("bench", "smallbank", *SMALL, *args)
    assert code == 2, output
    assert "error:" in output and message in output
    assert not (tmp_path / ".pbft").exists()  # nothing started, nothing written


@pytest.mark.process
@pytest.mark.timeout(120)
def test_bench_smallbank_over_tcp_starts_measures_and_stops_its_own_cluster(tmp_path: Path):
    out = tmp_path / "report.json"
    data = tmp_path / "data"
    code, output = invoke(
        "bench", "smallbank", "--transport", "tcp", *SMALL, "--repeat", "2", "--durability", "process",
        "--data-dir", str(data), "--json", str(out),
    )
    assert code == 0, output
    assert "over TCP" in output and "committed tx/s" in output and "2 runs" in output
    report = json.loads(out.read_text())
    assert report["config"]["transport"] == "tcp" and report["config"]["durability"] == "process"
    assert report["completed"] > 0 and report["batches"] > 0 and report["ordered_tps"] > 0
    # CPU of every process: the seven nodes (from their status answers) and the generator.
    assert set(report["cpu_s"]) == {*REPLICAS, "load generator"}
    assert report["cpu_ms_per_tx"] > 0 and report["floor_tps"] > 0 and report["achieved_over_floor"] > 0
    assert report["messages_per_request"] is not None
    assert len(report["repeats"]) == 2 and report["medians"]["throughput_tps"] > 0
    # Two fresh clusters, each with its nodes' databases and logs in its own run directory,
    # every node stopped cleanly; the keys were dealt into a temporary directory, gone now.
    run_dirs = sorted((data / "bench").iterdir())
    assert [str(d) for d in run_dirs] == sorted(r["run_dir"] for r in report["repeats"])
    for run_dir in run_dirs:
        assert {p.name for p in run_dir.glob("n*.sqlite")} >= {f"{r}.sqlite" for r in REPLICAS}
        for r in REPLICAS:
            assert "event=stopped" in (run_dir / "logs" / f"{r}.log").read_text()
    assert node_processes(str(data)) == []


@pytest.mark.process
@pytest.mark.timeout(120)
def test_an_interrupted_tcp_bench_exits_130_and_leaves_no_node_running(tmp_path: Path):
    data = tmp_path / "data"
    command = [
        sys.executable, "-m", "cli.main", "bench", "smallbank", "--transport", "tcp", *SMALL,
        "--duration", "60", "--data-dir", str(data),
    ]
    bench = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while len(node_processes(str(data))) < len(REPLICAS) and bench.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        nodes = node_processes(str(data))
        assert len(nodes) == len(REPLICAS), bench.communicate(timeout=30)[0].decode()
        time.sleep(2.0)  # into the load
        bench.send_signal(signal.SIGINT)  # the benchmark alone, as `kill -INT`: it stops its nodes
        output = bench.communicate(timeout=60)[0].decode()
    finally:
        if bench.poll() is None:
            os.killpg(bench.pid, signal.SIGKILL)
    assert bench.returncode == 130, output
    assert "interrupted" in output and "Traceback" not in output
    assert node_processes(str(data)) == []
