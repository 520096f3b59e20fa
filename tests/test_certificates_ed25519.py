"""A cluster with ``certificates="ed25519"`` behaves as a BLS cluster does, at its own sizes.

Scenarios: the official scenario file plays to the same outcomes, balances and views on the
simulator under either scheme; seeded fault schedules keep every invariant; a worst-case
VIEW-CHANGE and NEW-VIEW still fit their budgets and a frame at n = 7 and n = 100; the cluster
file and key directories carry the scheme (old files mean BLS); the floor prices Ed25519; the
command line takes ``--certificates`` and compares both schemes in one run.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import main
from pbft_core import multisig
from pbft_core.clusterfile import ClusterFile, ClusterFileError, keygen
from pbft_core.config import ClusterConfig
from pbft_core.floor import CryptoBudget, CryptoCosts, measure_costs
from pbft_core.messages import (
    MESSAGE_SIZE_MAX,
    CheckpointProof,
    NewView,
    PrePrepared,
    Proof,
    ProofKind,
    Proposal,
    Request,
    ViewChange,
    batch_bytes,
)
from pbft_core.runtime.set_run import SetOptions
from pbft_core.runtime.sim_set import simulate_set
from pbft_core.scenario import parse_scenario_file
from pbft_core.sim.runner import Batch, run_seeds
from pbft_core.sim.vopr import RunOptions

OFFICIAL = Path(__file__).resolve().parent.parent / "data" / "official-f25.csv"  # = ../shared/scenarios/
ED25519 = ClusterConfig(certificates="ed25519")


# ---- the same protocol, another certificate ---------------------------------------------------


def outcome_table(config: ClusterConfig) -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = []
    for scenario_set in parse_scenario_file(OFFICIAL):
        sim, driver = simulate_set(scenario_set, SetOptions(config=config), seed=0)
        rows.append((scenario_set.number, driver.ended_by, [(o.outcome, o.result) for o in driver.outcomes]))
        for r, node in sorted(sim.nodes.items()):
            rows.append((r, node.inner.view, node.inner.last_executed, sorted(node.inner.bank.balances.items())))
    return rows


def test_the_official_file_plays_to_the_same_results_under_either_scheme():
    bls, ed25519 = outcome_table(ClusterConfig()), outcome_table(ED25519)
    assert ed25519 == bls
    set_1 = next(row for row in ed25519 if row[0] == 1 and len(row) == 3)
    assert set_1[2][-1] == ("committed", 14)  # E's balance read after set 1's transfers


def test_seeded_fault_schedules_keep_every_invariant_with_ed25519_certificates():
    options = RunOptions(crypto="sim", certificates="ed25519")
    for summary in (
        run_seeds(range(0, 25), Batch(f=1, requests=10, options=options), jobs=1),
        run_seeds(range(1000, 1010), Batch(f=2, requests=10, options=options), jobs=1),
    ):
        failures = summary.violations + summary.liveness_failures
        assert summary.seeds > 0 and not failures, [(r.seed, r.invariant, r.liveness) for r in failures]


def test_real_ed25519_keys_under_faults_keep_every_invariant():
    summary = run_seeds(range(0, 4), Batch(f=1, requests=8, options=RunOptions(crypto="real", certificates="ed25519")), jobs=1)
    assert summary.seeds == 4 and not summary.violations and not summary.liveness_failures


# ---- sizes and byte budgets ------------------------------------------------------------------------


@pytest.mark.parametrize(("f", "quorum_bytes", "fast_bytes"), [(1, 195, 260), (2, 325, 455), (33, 4355, 6500)])
def test_certificate_sizes_grow_65_bytes_a_signer(f, quorum_bytes, fast_bytes):
    config = ClusterConfig(f=f, certificates="ed25519")
    assert (config.certificate_bytes, config.fast_certificate_bytes) == (quorum_bytes, fast_bytes)
    assert ClusterConfig(f=f).certificate_bytes_max == 96


def worst_case_view_change(config: ClusterConfig, sender: int) -> ViewChange:
    """Every instance of the window prepared on the fast path (the largest certificate) and
    also reported pre-prepared, each with the largest batch a backup accepts."""
    batch: tuple[Request, ...] = ()
    for t in range(1, 10_000):
        grown = (*batch, Request(f"c{t % 97}", t, "transfer", ("A", "B", t), False, b"s" * 64))
        if batch_bytes(grown) > config.batch_bytes_max:
            break
        batch = grown
    assert batch_bytes(batch) > config.batch_bytes_max - 150
    stable = CheckpointProof(10**9, b"d" * 32, b"c" * config.certificate_bytes)
    low = stable.seq
    proofs = tuple(
        Proof(2**40, s, batch, ProofKind.FAST, b"a" * config.fast_certificate_bytes) for s in range(low + 1, low + config.window + 1)
    )
    reports = tuple(PrePrepared(2**40, s, batch) for s in range(low + 1, low + config.window + 1))
    return ViewChange(2**40 + 1, stable, proofs, reports, sender, b"s" * 64)


@pytest.mark.parametrize("f", [2, 33])
def test_a_worst_case_new_view_fits_one_frame_with_ed25519_certificates(f):
    config = ClusterConfig(f=f, certificates="ed25519")
    assert config.window >= config.checkpoint_interval and config.batch_bytes_max >= 512
    view_changes = tuple(worst_case_view_change(config, r) for r in range(1, config.quorum + 1))
    assert len(view_changes[0].encode()) <= config.view_change_bytes_max
    proposals = tuple(Proposal(p.seq, p.batch) for p in view_changes[0].prepared)
    new_view = NewView(2**40 + 1, view_changes, proposals, 1, b"s" * 64)
    assert len(new_view.encode()) <= MESSAGE_SIZE_MAX


def test_a_cluster_too_large_for_the_scheme_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="at most n = 100"):
        ClusterConfig(f=34, certificates="ed25519")
    with pytest.raises(ValueError, match="does not fit one frame"):
        ClusterConfig(f=33, certificates="ed25519", log_window=40)
    with pytest.raises(ValueError, match="certificates must be one of"):
        ClusterConfig(certificates="rsa")
    assert ClusterConfig(f=34).n == 103  # BLS is not bounded by it


# ---- keys and cluster files --------------------------------------------------------------------


def test_keygen_writes_the_scheme_and_no_bls_key_and_reads_it_back(tmp_path):
    cluster = keygen(tmp_path, ED25519, clients=["A"], seed=b"ed")
    text = (tmp_path / "cluster.toml").read_text()
    assert 'certificates = "ed25519"' in text and "threshold_keys" not in text
    loaded = ClusterFile.load(tmp_path / "cluster.toml")
    assert loaded.config.certificates == "ed25519" and loaded.public == cluster.public
    secrets = loaded.load_secrets("n3")
    assert secrets.key_share is None and secrets.fast_share is None
    crypto = secrets.crypto()
    assert len(crypto.sign_share(b"m")) == 64 and len(crypto.sign_fast_share(b"m")) == 64


def test_a_cluster_file_without_the_field_is_a_bls_cluster(tmp_path):
    keygen(tmp_path, ClusterConfig(), clients=["A"], seed=b"old")
    path = tmp_path / "cluster.toml"
    path.write_text(path.read_text().replace('certificates = "bls"\n', ""))
    loaded = ClusterFile.load(path)
    assert loaded.config.certificates == "bls"
    assert len(loaded.load_secrets("n2").crypto().sign_share(b"m")) == 106


def test_a_cluster_file_switched_to_ed25519_under_bls_keys_is_refused(tmp_path):
    keygen(tmp_path, ClusterConfig(), clients=["A"], seed=b"switch")
    path = tmp_path / "cluster.toml"
    path.write_text(path.read_text().replace('certificates = "bls"', 'certificates = "ed25519"'))
    with pytest.raises(ClusterFileError, match="threshold_keys"):
        ClusterFile.load(path)


def test_a_distributed_key_generation_is_refused_for_ed25519_certificates(tmp_path):
    with pytest.raises(ClusterFileError, match="need none"):
        keygen(tmp_path, ED25519, clients=["A"], dkg=True)


def test_pbft_keygen_takes_certificates(tmp_path):
    result = CliRunner().invoke(main, ["keygen", "--out", str(tmp_path), "--certificates", "ed25519", "--seed", "x"])
    assert result.exit_code == 0, result.output
    assert "ed25519 certificates" in result.output
    assert ClusterFile.load(tmp_path / "cluster.toml").config.certificates == "ed25519"


# ---- the floor -----------------------------------------------------------------------------------


def test_the_floor_prices_ed25519_certificates_in_signatures_only():
    costs = CryptoCosts(ed25519_sign_us=20.0, ed25519_verify_us=50.0, bls_sign_us=0.0, bls_verify_us=0.0, bls_combine_us=0.0, bls_aggregate_us=0.0)
    budget = CryptoBudget(ED25519, costs)
    n = ED25519.n
    # One request of a batch of one with the fast path, counted by hand (floor.py docstring).
    request = 20 + n * 50
    batch = (20 + (n - 1) * 50) + (n * 20 + (n - 1) * 70 + (n - 1) * 50 + 20 + (n - 1) * n * 50) + (n * 20 + 3 * 50)
    checkpoint = n * (20 + 4 * 50) / ED25519.checkpoint_interval
    assert budget.per_ordered_request_us(1.0) == pytest.approx(request + batch + checkpoint)
    assert set(costs.used_by(ED25519)) == {"ed25519_sign_us", "ed25519_verify_us"}
    slow = CryptoBudget(replace(ED25519, fast_path=False), costs)
    assert slow.per_ordered_request_us(1.0) > 0


def test_measuring_an_ed25519_cluster_times_no_bls():
    costs = measure_costs(ED25519, repeat=3)
    assert costs.ed25519_verify_us > 0 and costs.bls_verify_us == 0.0


# ---- the command line ----------------------------------------------------------------------------


def test_bench_scale_measures_both_schemes_side_by_side(tmp_path):
    out = tmp_path / "scale.json"
    result = CliRunner().invoke(
        main, ["bench", "scale", "--f", "1,2", "--requests", "12", "--clients", "3", "--certificates", "both", "--json", str(out)],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "certs" in result.output and "ed25519 growth" in result.output
    document = json.loads(out.read_text())
    assert document["certificates"] == ["bls", "ed25519"]
    bls, ed25519 = document["reports"]
    assert [r["certificate_bytes"] for r in bls["results"]] == [96, 96]
    assert [r["certificate_bytes"] for r in ed25519["results"]] == [multisig.certificate_size(4), multisig.certificate_size(7)]
    # Same messages, more bytes: the protocol is the same, only the certificates grew.
    for a, b in zip(bls["results"], ed25519["results"], strict=True):
        assert a["messages_per_instance"] == b["messages_per_instance"]
        assert b["bytes_per_instance"] > a["bytes_per_instance"]
        assert a["all_to_all"]["vote_bytes"] == pytest.approx(b["all_to_all"]["vote_bytes"], abs=2)


def test_an_unknown_scheme_is_a_usage_error():
    result = CliRunner().invoke(main, ["bench", "scale", "--certificates", "rsa"])
    assert result.exit_code == 2 and "--certificates" in result.output


# ---- on real processes ---------------------------------------------------------------------------

SMALL = """\
Set Number,Transactions,Live,Byzantine,Attack
1,"(A, B, 1)","[n1, n2, n3, n4, n5, n6, n7]",[],[]
,"(B, C, 2)",,,
,(C),,,
2,"(D, E, 3)","[n1, n2, n3, n4, n5, n6]",[n2],[sign]
,(E),,,
"""


@pytest.mark.process
@pytest.mark.timeout(120)
def test_pbft_run_on_pipes_with_ed25519_certificates_ends_as_bls_does_on_the_simulator(tmp_path):
    (tmp_path / "small.csv").write_text(SMALL)
    out = tmp_path / "out.json"
    result = CliRunner().invoke(
        main,
        ["run", str(tmp_path / "small.csv"), "--non-interactive", "--certificates", "ed25519",
         "--json", str(out), "--data-dir", str(tmp_path / "data"), "--seed", "3"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["options"]["certificates"] == "ed25519"
    for played, scenario_set in zip(report["sets"], parse_scenario_file(tmp_path / "small.csv"), strict=True):
        sim, driver = simulate_set(scenario_set, SetOptions(), seed=0)  # BLS, simulated
        assert played["ended_by"] == driver.ended_by == "completed"
        assert [(t["outcome"], t["result"]) for t in played["transactions"]] == [(o.outcome, o.result) for o in driver.outcomes]
        expected = sim.nodes[1].inner.bank.balances
        for name, replica in played["replicas"].items():
            if replica["honest"] and replica["live"]:
                assert replica["balances"] == expected, name
