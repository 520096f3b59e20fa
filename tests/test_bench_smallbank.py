"""`pbft smallbank generate` and `pbft bench smallbank`: the commands, their JSON and PNG, and
what the replicas of a benchmark run agreed on (read back from their SQLite files).

No timed assertions: throughput and latency are only checked to be reported, never compared
with a value. The tests that start the seven replica processes are marked `process`; the
module-scoped run is shared by them (about 5 s of a 2-core machine).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli.bench_smallbank import with_repeats
from cli.main import main
from pbft_core.smallbank import INITIAL_SMALLBANK_BALANCE
from pbft_core.smallbank_workload import (
    MIX,
    Transaction,
    WorkloadGenerator,
    WorkloadSpec,
    read_workload,
)
from pbft_core.storage import ReplicaStore

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
REPLICAS = range(1, 8)
ACCOUNTS = 50
EXTERNAL = {"deposit_checking", "transact_savings", "write_check"}


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


# ---- pbft smallbank generate ------------------------------------------------------------------


def test_generate_writes_a_reproducible_workload_file(tmp_path: Path):
    out = tmp_path / "w.jsonl"
    args = ("smallbank", "generate", "--count", "3000", "--accounts", "40", "--hot-accounts", "4", "--seed", "5")
    code, output = invoke(*args, "-o", str(out))
    assert code == 0, output
    assert f"wrote 3000 transactions to {out}" in output
    assert "send_payment 2" in output  # the mix is summarised (25%, give or take)
    spec, transactions = read_workload(out)
    assert spec == WorkloadSpec(accounts=40, hot_accounts=4, hot_probability=0.9, seed=5)
    assert transactions == WorkloadGenerator(spec).take(3000)
    assert set(Counter(t.op for t in transactions)) == {op for op, _ in MIX}
    again = tmp_path / "again.jsonl"
    assert invoke(*args, "-o", str(again))[0] == 0
    assert again.read_bytes() == out.read_bytes()


def test_generate_into_a_missing_directory_exits_2(tmp_path: Path):
    code, output = invoke("smallbank", "generate", "--count", "10", "-o", str(tmp_path / "no" / "such" / "w.jsonl"))
    assert code == 2
    assert "error:" in output and "does not exist" in output
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["--accounts", "10", "--hot-accounts", "11"],
        ["--accounts", "1"],
        ["--hot-probability", "1.5"],
        ["--count", "0"],
        [],  # -o is required
    ],
)
def test_generate_usage_errors_exit_2(tmp_path: Path, args: list[str]):
    output = [] if not args else ["-o", str(tmp_path / "w.jsonl")]
    code, _ = invoke("smallbank", "generate", *args, *output)
    assert code == 2
    assert not (tmp_path / "w.jsonl").exists()


# ---- pbft bench smallbank: usage errors (nothing starts) -------------------------------------


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--hot-accounts", "100", "--accounts", "10"], "hot accounts"),
        (["--json", "/nonexistent/dir/out.json"], "--json"),
        (["--plot", "/nonexistent/dir/out.png"], "--plot"),
        (["--clients", "0"], ""),
        (["--duration", "0.5"], ""),
    ],
)
def test_bench_usage_errors_exit_2_before_anything_starts(tmp_path: Path, args: list[str], words: str):
    data = tmp_path / "data"
    code, output = invoke("bench", "smallbank", "--data-dir", str(data), *args)
    assert code == 2, output
    assert words in output
    assert not data.exists()  # no replica database, no run directory


def test_bench_with_a_malformed_workload_file_exits_2_naming_the_line(tmp_path: Path):
    data = tmp_path / "data"
    workload = tmp_path / "bad.jsonl"
    code, _ = invoke("smallbank", "generate", "--count", "5", "--accounts", "10", "--hot-accounts", "1", "-o", str(workload))
    assert code == 0
    lines = workload.read_text().splitlines()
    lines[3] = '["write_check", [1, "x"]]'
    workload.write_text("\n".join(lines) + "\n")
    code, output = invoke("bench", "smallbank", "--workload", str(workload), "--data-dir", str(data))
    assert code == 2
    assert f"error: {workload}:4: arguments must be integers" in output
    assert not data.exists()


# ---- pbft bench smallbank: a real run ---------------------------------------------------------


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("bench")
    out, plot, table = root / "out.json", root / "out.png", root / "table.md"
    code, output = invoke(
        "bench", "smallbank",
        "--duration", "2", "--warmup", "0.5", "--clients", "8",
        "--accounts", str(ACCOUNTS), "--hot-accounts", "5",
        "--json", str(out), "--plot", str(plot), "--markdown", str(table), "--data-dir", str(root / "data"),
    )  # fmt: skip
    assert code == 0, output
    return {"output": output, "report": json.loads(out.read_text()), "plot": plot, "markdown": table, "root": root}


def _stores(report: dict[str, Any]) -> dict[int, ReplicaStore]:
    run_dir = Path(report["run_dir"])
    paths = {r: run_dir / f"n{r}.sqlite" for r in REPLICAS}
    assert all(p.exists() for p in paths.values()), sorted(run_dir.iterdir())
    return {r: ReplicaStore(p, read_only=True) for r, p in paths.items()}


def _assert_replicas_agree(report: dict[str, Any], accounts: int) -> dict[int, list[dict[str, Any]]]:
    """Same batch (and results) at every sequence number two replicas both executed; final
    states never negative, equal where the last executed sequence number is equal, and (for a
    replica whose log starts at 1) the total changed exactly by the successful external
    operations it executed."""
    stores = _stores(report)
    try:
        executed = {r: s.executed() for r, s in stores.items()}
        finals = {r: s.final() for r, s in stores.items()}
        balances = {r: s.balances("final") for r, s in stores.items()}
    finally:
        for s in stores.values():
            s.close()
    by_seq: dict[int, dict[int, tuple[Any, Any]]] = {}
    for r, rows in executed.items():
        for row in rows:
            by_seq.setdefault(row["seq"], {})[r] = (row["requests"], row["results"])
    assert by_seq, "no replica executed anything"
    for seq, seen in by_seq.items():
        reference = next(iter(seen.values()))
        for r, batch in seen.items():
            assert batch == reference, f"n{r} executed a different batch at seq {seq}"
    assert sum(len(rows) > 0 for rows in executed.values()) >= 5  # a quorum at least executed
    initial_total = 2 * INITIAL_SMALLBANK_BALANCE * accounts
    audited = 0
    for r in REPLICAS:
        final, state = finals[r], balances[r]
        assert final is not None, f"n{r} did not record its final state"
        assert len(state) == 2 * accounts
        assert min(state.values()) >= 0, f"n{r} ends with a negative balance"
        seqs = [row["seq"] for row in executed[r]]
        if seqs != list(range(1, final["last_executed"] + 1)):
            continue  # installed a snapshot: the log does not start at 1
        change = 0
        for row in executed[r]:
            for request, result in zip(row["requests"], row["results"], strict=True):
                if result == "ok" and request["kind"] in EXTERNAL:
                    amount = request["args"][1]
                    change += -amount if request["kind"] == "write_check" else amount
        assert sum(state.values()) == initial_total + change, f"n{r}: money appeared or vanished"
        audited += 1
    assert audited >= 1, "every replica installed a snapshot: no log to audit the total against"
    last = {r: f["last_executed"] for r, f in finals.items() if f is not None}
    for r in REPLICAS:
        for q in REPLICAS:
            if last[r] == last[q]:
                assert balances[r] == balances[q], f"n{r} and n{q} executed {last[r]} but differ"
    return executed


@pytest.mark.process
def test_the_run_prints_the_summary_table(bench: dict[str, Any]):
    output = bench["output"]
    for row in ("committed tx/s", "latency p50 / p90 / p99", "fast-path share", "mean batch", "cryptographic floor", "achieved / floor"):
        assert row in output
    assert f"plot: {bench['plot']}" in output


@pytest.mark.process
def test_the_json_report_has_the_documented_keys(bench: dict[str, Any]):
    report = bench["report"]
    assert report["benchmark"] == "smallbank"
    assert report["completed"] > 0
    for key in ("throughput_tps", "fast_path_share", "mean_batch", "floor_tps", "achieved_over_floor", "messages_per_request", "bytes_per_request", "ordered_tps"):
        assert isinstance(report[key], int | float), key
    assert set(report["latency_ms"]) >= {"p50", "p90", "p99"}
    lat = report["latency_ms"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert 0 <= report["fast_path_share"] <= 1
    assert report["mean_batch"] >= 1 and report["batches"] > 0
    assert report["floor_tps"] > 0 and report["achieved_over_floor"] > 0
    assert report["messages_per_request"] > 0 and report["bytes_per_request"] > 0
    assert report["throughput_tps"] == pytest.approx(report["completed"] / 2, abs=0.1)
    assert report["ordered_tps"] > 0
    cfg = report["config"]
    assert (cfg["n"], cfg["f"], cfg["clients"], cfg["accounts"], cfg["hot_accounts"]) == (7, 2, 8, ACCOUNTS, 5)
    assert (cfg["duration_s"], cfg["warmup_s"], cfg["workload"]) == (2.0, 0.5, "generated")
    assert set(report["crypto_costs_us"]) == {"ed25519_sign_us", "ed25519_verify_us", "bls_sign_us", "bls_verify_us", "bls_combine_us", "bls_aggregate_us", "bls_decode_us"}
    assert all(v > 0 for v in report["crypto_costs_us"].values())
    # Every completion in the window is counted once, by operation and by kind of result.
    assert sum(report["by_op"].values()) == report["completed"]
    assert sum(report["results"].values()) == report["completed"]
    assert set(report["by_op"]) <= {op for op, _ in MIX}
    assert report["unordered_reads"] + report["reads_fell_back"] == report["by_op"].get("sb_balance", 0)
    assert sum(report["timeline"]["completed"]) == report["completed"]
    assert report["latencies_ms_sample"] and report["cpu_s"]["load generator"] > 0
    assert {f"n{r}" for r in REPLICAS} <= set(report["cpu_s"])


@pytest.mark.process
def test_the_plot_is_a_png(bench: dict[str, Any]):
    data = bench["plot"].read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 1000


@pytest.mark.process
def test_the_markdown_of_a_single_run_is_its_one_row(bench: dict[str, Any]):
    report = bench["report"]
    header, _, columns, _, *rows = bench["markdown"].read_text().splitlines()
    assert f"Python {report['machine']['python']}" in header and "BLS verify" in header
    assert "--clients 8 --duration 2 --warmup 0.5" in header
    assert "tcp / pipes" not in columns
    (row,) = rows
    assert row.startswith(f"| pipes | bls | 8 | {report['throughput_tps']:,.0f} | ")
    assert f"markdown: {bench['markdown']}" in bench["output"]


@pytest.mark.process
def test_the_replicas_of_the_run_agree_and_no_balance_is_negative(bench: dict[str, Any]):
    report = bench["report"]
    assert Path(report["run_dir"]).is_relative_to(bench["root"] / "data" / "bench")
    executed = _assert_replicas_agree(report, ACCOUNTS)
    ops = Counter(req["kind"] for rows in executed.values() for row in rows for req in row["requests"])
    assert set(ops) <= {op for op, _ in MIX} and sum(ops.values()) > 0


@pytest.mark.process
def test_replaying_a_workload_file(tmp_path: Path):
    workload = tmp_path / "w.jsonl"
    code, output = invoke("smallbank", "generate", "--count", "400", "--accounts", "20", "--hot-accounts", "3", "--seed", "9", "-o", str(workload))
    assert code == 0, output
    spec, transactions = read_workload(workload)
    out = tmp_path / "out.json"
    code, output = invoke(
        "bench", "smallbank", "--workload", str(workload),
        "--duration", "1", "--warmup", "0", "--clients", "4",
        "--accounts", "999",  # the file's spec wins
        "--json", str(out), "--data-dir", str(tmp_path / "data"),
    )  # fmt: skip
    assert code == 0, output
    report = json.loads(out.read_text())
    assert report["config"]["workload"] == "file"
    assert (report["config"]["accounts"], report["config"]["hot_accounts"]) == (spec.accounts, spec.hot_accounts)
    assert report["completed"] > 0
    executed = _assert_replicas_agree(report, spec.accounts)
    # Every request the replicas ordered is one of the file's transactions (a read that fell
    # back is ordered as the same sb_balance).
    in_file = set(transactions)
    for rows in executed.values():
        for row in rows:
            for request in row["requests"]:
                assert Transaction(request["kind"], tuple(request["args"])) in in_file


def _fake_report(throughput: float, ratio: float, p50: float) -> dict[str, Any]:
    return {
        "run_dir": f"runs/{throughput}", "throughput_tps": throughput, "achieved_over_floor": ratio,
        "floor_tps": 2000.0, "cpu_ms_per_tx": None, "fast_path_share": 0.99, "mean_batch": 20.0,
        "latency_ms": {"p50": p50, "p99": 2 * p50},
    }  # fmt: skip


def test_repeated_runs_report_the_median_run_and_the_median_of_each_figure():
    reports = [_fake_report(1300, 0.61, 40), _fake_report(1250, 0.62, 38), _fake_report(1280, 0.59, 41), _fake_report(1320, 0.60, 37)]
    combined = with_repeats(reports)
    assert combined["run_dir"] == "runs/1280"  # the lower middle of four by throughput
    assert [run["throughput_tps"] for run in combined["repeats"]] == [1300, 1250, 1280, 1320]
    assert combined["medians"]["throughput_tps"] == 1290
    assert combined["medians"]["achieved_over_floor"] == 0.605
    assert combined["medians"]["latency_p50_ms"] == 39
    assert "cpu_ms_per_tx" not in combined["medians"]  # unknown in every run: no median


@pytest.mark.process
def test_repeat_runs_the_whole_measurement_again_and_lists_every_run(tmp_path: Path):
    out = tmp_path / "out.json"
    code, output = invoke(
        "bench", "smallbank", "--repeat", "2", "--duration", "1", "--warmup", "0", "--clients", "4",
        "--accounts", str(ACCOUNTS), "--hot-accounts", "5", "--json", str(out), "--data-dir", str(tmp_path / "data"),
    )  # fmt: skip
    assert code == 0, output
    report = json.loads(out.read_text())
    assert len({run["run_dir"] for run in report["repeats"]}) == 2  # two clusters, two databases
    assert report["run_dir"] in {run["run_dir"] for run in report["repeats"]}
    assert "run 2 of 2" in output and "2 runs" in output and "median" in output
