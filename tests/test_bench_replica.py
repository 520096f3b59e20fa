"""`pbft bench replica`: CPU per ordered request, node by node, without transport."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from cli.main import main
from pbft_core.config import ClusterConfig
from pbft_core.runtime.replica_cost import measure_replica_cost


def test_every_instance_commits_on_the_fast_path_and_every_phase_is_charged_to_its_node(tmp_path: Path):
    cost = measure_replica_cost(ClusterConfig(state="smallbank:100"), batch=4, batches=3, store_dir=tmp_path)
    assert cost.fast_commits == 3
    given = {(p.node, p.phase) for p in cost.phases}
    # What each node is handed in the normal case with the fast path, and nothing else.
    assert {("leader", "Request"), ("leader", "PrepareShare"), ("leader", "tick")} <= given
    assert {("backup", "PrePrepare"), ("backup", "FastCommit")} <= given
    assert {("client", "submit"), ("client", "reply")} <= given
    assert not {p for p in given if p[0] == "backup" and p[1] in ("Request", "PrepareShare")}
    for phase in cost.phases:
        assert 0.0 <= phase.crypto_us <= phase.total_us
    # Every replica verifies every client signature: n Ed25519 verifications per request at least.
    leader_crypto = cost.node_total("leader")[1]
    backup_crypto = cost.node_total("backup")[1]
    assert leader_crypto > 0 and backup_crypto > 0
    assert cost.cluster_total_us() > leader_crypto + 6 * backup_crypto


def test_the_command_compares_both_schemes_and_writes_json(tmp_path: Path):
    out = tmp_path / "replica.json"
    result = CliRunner().invoke(
        main, ["bench", "replica", "--batch", "4", "--batches", "2", "--certificates", "both", "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "side by side" in result.output
    document = json.loads(out.read_text())
    assert document["benchmark"] == "replica"
    assert [r["certificates"] for r in document["reports"]] == ["bls", "ed25519"]
    for report in document["reports"]:
        assert report["fast_commits"] == report["batches"] == 2
        assert report["cluster_us_per_request"] > 0
        assert {"node", "phase", "total_us", "crypto_us"} == set(report["phases"][0])


def test_profiling_two_schemes_at_once_is_a_usage_error(tmp_path: Path):
    result = CliRunner().invoke(
        main, ["bench", "replica", "--certificates", "both", "--profile", str(tmp_path / "p.prof")]
    )
    assert result.exit_code == 2
    assert "one scheme at a time" in result.output
