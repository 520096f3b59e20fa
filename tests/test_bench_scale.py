"""`pbft bench scale`: the linear protocol's message cost per instance grows O(n), all-to-all
PBFT's O(n²), certificates stay 96 bytes; the command prints its table and writes its JSON.

Counts, not timings: every assertion is about messages and bytes in a deterministic run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.bench_scale import scale
from cli.main import main
from pbft_core.sim.scale import (
    ScaleReport,
    ScaleResult,
    all_to_all_messages,
    fit_exponent,
    run_scale,
)

FS = (1, 2, 4)
REQUESTS = 40
CLIENTS = 8


@pytest.fixture(scope="module")
def results() -> dict[int, ScaleResult]:
    return {f: run_scale(f, requests=REQUESTS, clients=CLIENTS, crypto="sim", seed=3) for f in FS}


def test_every_request_is_committed_and_every_replica_executed_every_instance(results: dict[int, ScaleResult]):
    for r in results.values():
        assert r.requests_committed == REQUESTS
        # One PRE-PREPARE to the n-1 backups per executed instance, none wasted.
        assert r.replica_by_type["PrePrepare"].messages == (r.n - 1) * r.instances
        assert r.mean_batch == pytest.approx(REQUESTS / r.instances)


def test_each_instance_costs_3_or_5_times_n_minus_1_ordering_messages(results: dict[int, ScaleResult]):
    # Fast path: PRE-PREPARE, shares, FAST-COMMIT; slow path adds the prepare certificate, commit
    # shares and the commit certificate. Each goes to (or comes from) the n-1 other replicas.
    for r in results.values():
        slow = r.replica_by_type.get("PrepareCertificate")
        slow_instances = slow.messages // (r.n - 1) if slow else 0
        assert r.ordering.messages == (r.n - 1) * (3 * r.instances + 2 * slow_instances)


def test_without_the_fast_path_every_instance_costs_exactly_5_times_n_minus_1():
    r = run_scale(2, requests=20, clients=4, crypto="sim", seed=1, fast_path=False)
    assert "FastCommit" not in r.replica_by_type
    assert r.messages_per_instance == 5 * (r.n - 1)


def test_messages_per_instance_per_replica_stay_within_a_constant_factor(results: dict[int, ScaleResult]):
    per_replica = {f: r.messages_per_instance_per_replica for f, r in results.items()}
    assert per_replica[4] / per_replica[1] < 2
    for value in per_replica.values():
        assert 2 <= value <= 5  # between 3(n-1)/n and 5(n-1)/n
    exponent = fit_exponent([r.n for r in results.values()], [r.messages_per_instance for r in results.values()])
    assert exponent is not None and 0.8 < exponent < 1.4


def test_the_all_to_all_model_grows_quadratically(results: dict[int, ScaleResult]):
    assert [all_to_all_messages(n) for n in (4, 7, 13, 25)] == [24, 84, 312, 1200]
    for n in (4, 7, 13, 25, 100):
        assert all_to_all_messages(n) == 2 * n * (n - 1)
    ns = [r.n for r in results.values()]
    exponent = fit_exponent(ns, [r.all_to_all_messages for r in results.values()])
    assert exponent is not None and 1.8 < exponent < 2.4
    ratios = [r.ratio_messages for r in results.values()]
    assert ratios == sorted(ratios) and ratios[-1] > 2 * ratios[0]
    # The all-to-all per-replica cost grows with n; the linear one does not.
    assert results[4].all_to_all_messages / 13 > 3 * results[1].all_to_all_messages / 4


def test_bytes_model_uses_the_measured_sizes(results: dict[int, ScaleResult]):
    for r in results.values():
        # A vote is our certificate message without its 96-byte certificate: v, s, d, i, sig.
        assert 64 < r.vote_bytes < 203 - 96
        assert r.preprepare_bytes > r.vote_bytes
        expected = (r.n - 1) * r.preprepare_bytes + ((r.n - 1) ** 2 + r.n * (r.n - 1)) * r.vote_bytes
        assert r.all_to_all_bytes == pytest.approx(expected)


def test_certificates_are_96_bytes_for_every_n(results: dict[int, ScaleResult]):
    for r in results.values():
        assert r.certificate_sizes == {96}


def test_client_traffic_is_counted_apart(results: dict[int, ScaleResult]):
    for r in results.values():
        assert r.client_by_type["Request"].messages >= REQUESTS
        assert r.client_by_type["Reply"].messages >= r.n * REQUESTS  # every replica answers
        assert "Request" not in r.replica_by_type  # no forwarding on a fault-free run


def test_same_seed_same_counts():
    a, b = (run_scale(1, requests=15, clients=3, seed=9).to_json() for _ in range(2))
    a.pop("wall_s")
    b.pop("wall_s")
    assert a == b


RESULT_KEYS = {
    "f",
    "n",
    "certificates",
    "instances",
    "requests_committed",
    "mean_batch",
    "messages_per_instance",
    "bytes_per_instance",
    "messages_per_instance_per_replica",
    "other_messages_per_instance",
    "other_bytes_per_instance",
    "client_messages_per_instance",
    "client_bytes_per_instance",
    "certificate_bytes",
    "replica_by_type",
    "client_by_type",
    "all_to_all",
    "ratio_messages",
    "ratio_bytes",
    "virtual_ms",
    "wall_s",
}


def test_the_json_report_has_the_documented_keys(results: dict[int, ScaleResult]):
    report = ScaleReport(list(results.values())).to_json()
    assert set(report) == {"benchmark", "crypto", "certificates", "fast_path", "requests", "clients", "seed", "model", "results", "growth"}
    assert report["benchmark"] == "scale"
    for entry in report["results"]:
        assert set(entry) == RESULT_KEYS
        assert set(entry["all_to_all"]) == {
            "messages_per_instance",
            "bytes_per_instance",
            "messages_per_instance_per_replica",
            "preprepare_bytes",
            "vote_bytes",
            "prepared_certificate_bytes",
        }
        assert entry["certificate_bytes"] == 96
    assert set(report["growth"]) == {
        "linear_messages_exponent",
        "linear_bytes_exponent",
        "all_to_all_messages_exponent",
        "all_to_all_bytes_exponent",
    }


# ---- the command ----------------------------------------------------------------------------


def test_the_command_prints_the_table_and_writes_json(tmp_path: Path):
    out = tmp_path / "scale.json"
    result = CliRunner().invoke(
        main, ["bench", "scale", "--f", "1,2", "--requests", "12", "--clients", "3", "--json", str(out)],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "msgs/inst/n" in result.output and "a2a msgs/inst" in result.output
    assert "growth" in result.output
    report = json.loads(out.read_text())
    assert [r["n"] for r in report["results"]] == [4, 7]
    assert report["results"][1]["all_to_all"]["messages_per_instance"] == 84


def test_verbose_breaks_the_cost_down_by_message_type():
    result = CliRunner().invoke(scale, ["--f", "1", "--requests", "5", "-v"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "PrePrepare" in result.output and "Reply" in result.output


@pytest.mark.parametrize(
    "args",
    [["--f", "1,x"], ["--f", "0"], ["--f", ""], ["--requests", "0"], ["--crypto", "rsa"], ["--json", "/nonexistent/dir/out.json"]],
)
def test_usage_errors_exit_2(args: list[str]):
    result = CliRunner().invoke(scale, args)
    assert result.exit_code == 2, result.output


def test_bench_lists_scale_next_to_sig():
    result = CliRunner().invoke(main, ["bench", "--help"])
    assert result.exit_code == 0
    assert "scale" in result.output and "sig" in result.output
