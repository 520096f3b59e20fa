"""`pbft bench smallbank` over several combinations: `--clients` and `--transport` lists, the
summary table with its tcp / pipes ratio, `--markdown` and the sweep's `--plot`.

The summary and the markdown are pure functions of report dicts and are tested on made-up
reports; the usage errors start nothing. One small real sweep (two client counts on pipes, a
one-second window each, about 10 s of a 2-core machine) checks what the command writes. No
timed assertions: throughput and latency are only checked to be reported.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli.bench_sweep import (
    combinations,
    markdown_table,
    parse_clients,
    parse_transports,
    summary_rows,
    sweep_document,
)
from cli.errors import UsageFailure
from cli.main import main

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def report(transport: str, certificates: str, clients: int, throughput: float, **extra: Any) -> dict[str, Any]:
    """A report with the keys the summary reads, shaped as `build_report` writes them."""
    costs = {"ed25519_sign_us": 15.7, "ed25519_verify_us": 38.2}
    if certificates == "bls":
        costs |= {"bls_sign_us": 300.0, "bls_verify_us": 902.0}
    return {
        "benchmark": "smallbank",
        "run_dir": f"runs/{transport}-{certificates}-{clients}",
        "machine": {"cores": 2, "python": "3.11.7", "platform": "Linux", "processor": "x86_64"},
        "config": {"n": 7, "f": 2, "transport": transport, "certificates": certificates, "clients": clients,
                   "durability": "power" if transport == "tcp" else None, "duration_s": 30.0},
        "throughput_tps": throughput, "ordered_tps": 0.85 * throughput,
        "latency_ms": {"p50": 40.0, "p90": 55.5, "p99": 71.25, "mean": 41.0, "max": 90.0},
        "mean_batch": 19.04, "fast_path_share": 0.9912, "cpu_ms_per_tx": 1.453,
        "bytes_per_request": 2800.0, "floor_tps": 2141.0, "achieved_over_floor": 0.607,
        "crypto_costs_us": costs, "generated_at": "2026-12-08T10:00:00+0000",
        **extra,
    }  # fmt: skip


# ---- the options ------------------------------------------------------------------------------


def test_a_clients_list_is_measured_in_the_order_given_each_count_once():
    assert parse_clients("64") == [64]
    assert parse_clients("1, 32,64,32,128") == [1, 32, 64, 128]


def test_both_transports_are_pipes_then_tcp():
    assert parse_transports("both") == ["pipes", "tcp"]
    assert parse_transports("tcp,pipes") == ["tcp", "pipes"]


@pytest.mark.parametrize("text", ["0", "4097", "1,,4", "x", "", "1;4"])
def test_a_clients_list_that_is_not_whole_numbers_in_range_is_refused(text: str):
    with pytest.raises(UsageFailure, match="--clients"):
        parse_clients(text)


def test_the_combinations_run_client_count_by_client_count():
    # The transports and schemes compared at one client count are measured back to back.
    assert combinations([1, 32], ["pipes", "tcp"], ["bls"]) == [(1, "pipes", "bls"), (1, "tcp", "bls"), (32, "pipes", "bls"), (32, "tcp", "bls")]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--clients", "1,0"], "--clients: expected a whole number from 1 to 4096"),
        (["--clients", "1,x,4"], "--clients"),
        (["--transport", "pipes,udp"], "--transport: expected pipes, tcp, both or a comma list"),
        (["--transport", "both", "--profile", "prof"], "cannot be used with --transport tcp"),
        (["--clients", "1,4", "--durability", "process"], "--durability applies to --transport tcp only"),
        (["--json", "-", "--markdown", "-"], "only one of them can go to stdout"),
        (["--markdown", "/nonexistent/dir/table.md"], "--markdown: directory /nonexistent/dir does not exist"),
    ],
)
def test_bad_sweep_options_exit_2_before_anything_starts(tmp_path: Path, args: list[str], words: str):
    data = tmp_path / "data"
    code, output = invoke("bench", "smallbank", "--data-dir", str(data), *args)
    assert code == 2, output
    assert "error:" in output and words in output
    assert not data.exists()


# ---- the summary ------------------------------------------------------------------------------


def test_each_tcp_row_has_its_ratio_to_the_pipes_row_with_the_same_clients_and_scheme():
    reports = [
        report("pipes", "bls", 32, 1000.0), report("tcp", "bls", 32, 800.0),
        report("pipes", "ed25519", 32, 1100.0), report("tcp", "ed25519", 32, 990.0),
        report("pipes", "bls", 1, 100.0), report("tcp", "bls", 1, 70.0),
    ]  # fmt: skip
    rows = summary_rows(reports)
    assert [(r["transport"], r["certificates"], r["clients"]) for r in rows] == [
        ("pipes", "bls", 1), ("pipes", "bls", 32), ("pipes", "ed25519", 32),
        ("tcp", "bls", 1), ("tcp", "bls", 32), ("tcp", "ed25519", 32),
    ]  # fmt: skip
    ratios = {(r["transport"], r["certificates"], r["clients"]): r["tcp_over_pipes"] for r in rows}
    assert ratios[("tcp", "bls", 1)] == 0.7
    assert ratios[("tcp", "bls", 32)] == 0.8
    assert ratios[("tcp", "ed25519", 32)] == 0.9
    assert all(ratio is None for (transport, _, _), ratio in ratios.items() if transport == "pipes")


def test_a_tcp_row_without_its_pipes_row_has_no_ratio():
    rows = summary_rows([report("pipes", "bls", 32, 1000.0), report("tcp", "bls", 64, 900.0)])
    assert [r["tcp_over_pipes"] for r in rows] == [None, None]


def test_a_row_carries_the_reports_figures_and_how_many_runs_its_median_is_of():
    repeated = report("pipes", "bls", 48, 1303.0, repeats=[{}, {}, {}])
    (row,) = summary_rows([repeated])
    assert row["runs"] == 3
    assert (row["latency_p50_ms"], row["latency_p90_ms"], row["latency_p99_ms"]) == (40.0, 55.5, 71.25)
    assert (row["mean_batch"], row["fast_path_share"], row["cpu_ms_per_tx"]) == (19.04, 0.9912, 1.453)
    assert (row["floor_tps"], row["achieved_over_floor"], row["throughput_tps"]) == (2141.0, 0.607, 1303.0)


def test_the_sweep_document_holds_every_report_and_the_summary():
    reports = [report("pipes", "bls", 1, 100.0), report("pipes", "bls", 4, 300.0)]
    document = sweep_document(reports)
    assert list(document) == ["benchmark", "sweep", "summary"]
    assert document["benchmark"] == "smallbank"
    assert document["sweep"] == reports
    assert [row["clients"] for row in document["summary"]] == [1, 4]


# ---- the markdown -----------------------------------------------------------------------------


def test_the_markdown_is_one_line_naming_the_machine_then_the_table():
    reports = [report("pipes", "bls", 32, 1000.0), report("tcp", "bls", 32, 812.0), report("pipes", "ed25519", 32, 1100.0)]
    text = markdown_table(reports, "pbft bench smallbank --clients 32 --transport both")
    header, blank, columns, rule, *rows = text.splitlines()
    for words in ("n = 7 (f = 2)", "2 cores (x86_64)", "Python 3.11.7", "Ed25519 verify 38 µs", "BLS verify 902 µs", "2026-12-08", "`pbft bench smallbank --clients 32 --transport both`"):
        assert words in header
    assert blank == ""
    assert columns == "| transport | certificates | clients | tx/s | p50 / p90 / p99 (ms) | mean batch | fast path | CPU ms/tx | floor tx/s | achieved / floor | tcp / pipes |"
    assert rule == "|---|---|---|---|---|---|---|---|---|---|---|"
    assert rows == [
        "| pipes | bls | 32 | 1,000 | 40.0 / 55.5 / 71.2 | 19.0 | 99.1% | 1.45 | 2,141 | 0.61 | - |",
        "| pipes | ed25519 | 32 | 1,100 | 40.0 / 55.5 / 71.2 | 19.0 | 99.1% | 1.45 | 2,141 | 0.61 | - |",
        "| tcp | bls | 32 | 812 | 40.0 / 55.5 / 71.2 | 19.0 | 99.1% | 1.45 | 2,141 | 0.61 | 0.81 |",
    ]


def test_a_single_pipes_run_has_no_ratio_column_and_an_ed25519_run_no_bls_cost():
    text = markdown_table([report("pipes", "ed25519", 64, 1500.0, cpu_ms_per_tx=None)], "pbft bench smallbank --certificates ed25519")
    header, _, columns, _, *rows = text.splitlines()
    assert "Ed25519 verify 38 µs" in header and "BLS" not in header
    assert "tcp / pipes" not in columns
    assert rows == ["| pipes | ed25519 | 64 | 1,500 | 40.0 / 55.5 / 71.2 | 19.0 | 99.1% | - | 2,141 | 0.61 |"]


# ---- a real sweep -----------------------------------------------------------------------------


@pytest.mark.process
def test_a_sweep_over_two_client_counts_writes_the_document_the_plot_and_the_markdown(tmp_path: Path):
    out, plot, table = tmp_path / "sweep.json", tmp_path / "sweep.png", tmp_path / "table.md"
    code, output = invoke(
        "bench", "smallbank", "--clients", "1,4", "--duration", "1", "--warmup", "0",
        "--accounts", "50", "--hot-accounts", "5", "--data-dir", str(tmp_path / "data"),
        "--json", str(out), "--plot", str(plot), "--markdown", str(table),
    )  # fmt: skip
    assert code == 0, output
    assert "SmallBank: 2 combinations" in output
    assert "1/2 pipes, bls, 1 clients:" in output and "2/2 pipes, bls, 4 clients:" in output
    document = json.loads(out.read_text())
    assert list(document) == ["benchmark", "sweep", "summary"]
    sweep, summary = document["sweep"], document["summary"]
    assert [r["config"]["clients"] for r in sweep] == [1, 4]
    assert all(r["config"]["transport"] == "pipes" and r["config"]["certificates"] == "bls" for r in sweep)
    assert all(r["completed"] > 0 for r in sweep)
    assert len({r["run_dir"] for r in sweep}) == 2  # a fresh cluster for each combination
    assert summary == sweep_document(sweep)["summary"]
    assert [(row["clients"], row["tcp_over_pipes"]) for row in summary] == [(1, None), (4, None)]
    assert plot.read_bytes().startswith(PNG_SIGNATURE)
    header, _, _, _, *rows = table.read_text().splitlines()
    assert "--clients 1,4" in header and "--transport pipes" in header and "--certificates bls" in header
    assert "--json" not in header and "--data-dir" not in header  # where output goes is not an option of the measurement
    assert [row.split(" | ")[2] for row in rows] == ["1", "4"]
