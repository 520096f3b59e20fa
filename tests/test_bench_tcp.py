"""`pbft bench smallbank --cluster`: the SmallBank benchmark against running `pbft node` processes.

Keys are dealt with `pbft keygen` (SmallBank state of 50 customers, 8 benchmark clients) on
free loopback ports. The usage errors need no replica; the process test starts seven nodes
(`LocalCluster`), runs a short benchmark against them and stops them. No timed assertions:
throughput and latency are only checked to be reported.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import main
from pbft_core.runtime.tcp_local import LocalCluster, free_ports

REPLICAS = list(range(1, 8))
ACCOUNTS = 50
CLIENTS = 8


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


@pytest.fixture
def cluster_file(tmp_path: Path) -> Path:
    hosts = ",".join(f"127.0.0.1:{p}" for p in free_ports(len(REPLICAS)))
    out = tmp_path / "cluster"
    code, output = invoke(
        "keygen", "--out", str(out), "--state", f"smallbank:{ACCOUNTS}", "--clients", str(CLIENTS),
        "--seed", "test-bench-tcp", "--hosts", hosts,
    )
    assert code == 0, output
    return out / "cluster.toml"


def bench(cluster: Path, *args: str) -> tuple[int, str]:
    return invoke("bench", "smallbank", "--cluster", str(cluster), *args)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--accounts", "1000"], f"the cluster's state is smallbank:{ACCOUNTS}"),
        (["--accounts", str(ACCOUNTS), "--hot-accounts", "10", "--clients", str(CLIENTS + 1)], f"pbft keygen --clients {CLIENTS + 1}"),
        (["--accounts", str(ACCOUNTS), "--hot-accounts", "10", "--batch-size", "16"], "replica parameters come from the cluster file"),
        (["--accounts", str(ACCOUNTS), "--hot-accounts", "10", "--batch-wait", "2"], "timers.batch_wait_ms = 2.0 was asked for"),
        (["--accounts", str(ACCOUNTS), "--hot-accounts", "10", "--profile", "prof"], "cannot be used with --cluster"),
    ],
)
def test_a_load_the_cluster_cannot_run_is_a_usage_error(cluster_file: Path, args: list[str], message: str):
    code, output = bench(cluster_file, "--duration", "1", *args)
    assert code == 2, output
    assert "error:" in output and message in output


def test_a_cluster_without_smallbank_state_is_a_usage_error(tmp_path: Path):
    code, output = invoke("keygen", "--out", str(tmp_path / "c"), "--clients", "2", "--seed", "x")
    assert code == 0, output
    code, output = bench(tmp_path / "c" / "cluster.toml", "--clients", "2", "--duration", "1")
    assert code == 2, output
    assert "not SmallBank" in output and "--state smallbank:1000" in output


@pytest.mark.process
@pytest.mark.timeout(120)
def test_bench_smallbank_against_a_running_cluster(cluster_file: Path, tmp_path: Path):
    local = LocalCluster(cluster_file, tmp_path / "data", tmp_path / "logs")
    out = tmp_path / "report.json"
    local.start_all(REPLICAS)
    try:
        code, output = bench(
            cluster_file, "--duration", "2", "--warmup", "0.5", "--clients", str(CLIENTS),
            "--accounts", str(ACCOUNTS), "--hot-accounts", "10", "--json", str(out),
        )
    finally:
        codes = local.stop_all()
    logs = "\n".join(f"== n{r}\n{local.log_text(r)[-2000:]}" for r in REPLICAS)
    assert code == 0, output + logs
    assert "committed tx/s" in output
    report = json.loads(out.read_text())
    assert report["completed"] > 0 and report["throughput_tps"] > 0
    assert report["config"]["accounts"] == ACCOUNTS and report["config"]["clients"] == CLIENTS
    assert report["run_dir"] == str(cluster_file)
    # Replica counters came over the status query: the window's batches and ordered requests.
    assert report["batches"] > 0 and report["ordered_tps"] > 0
    assert set(report["cpu_s"]) == {*(f"n{r}" for r in REPLICAS), "load generator"}
    assert codes == {r: 0 for r in REPLICAS}, logs
