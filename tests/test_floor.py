"""The cryptographic floor (`pbft_core.floor`): the cost model with hand-made costs, no timing.

Each primitive is priced alone (one at 1 µs, the others at 0) so that the per-request and
per-batch costs count how many times the model uses it; the counts are the ones the module
docstring lists for the normal case with the fast path.
"""

from __future__ import annotations

import itertools
from dataclasses import fields

import pytest

from pbft_core.config import ClusterConfig
from pbft_core.floor import CryptoBudget, CryptoCosts, measure_costs

CONFIG = ClusterConfig()  # n = 7, f = 2, K = 10
BLS_PRIMITIVES = ("bls_sign_us", "bls_verify_us", "bls_combine_us", "bls_aggregate_us", "bls_decode_us")
N, F, K = CONFIG.n, CONFIG.f, CONFIG.checkpoint_interval

# Costs measured on a 2-core development machine, rounded (µs).
COSTS = CryptoCosts(
    ed25519_sign_us=50.0,
    ed25519_verify_us=130.0,
    bls_sign_us=750.0,
    bls_verify_us=2400.0,
    bls_combine_us=900.0,
    bls_aggregate_us=40.0,
    bls_decode_us=150.0,
)


def only(primitive: str, config: ClusterConfig = CONFIG) -> CryptoBudget:
    """A budget where `primitive` costs 1 µs and everything else is free."""
    costs = CryptoCosts(**{f.name: float(f.name == primitive) for f in fields(CryptoCosts)})
    return CryptoBudget(config, costs)


def per_batch(budget: CryptoBudget) -> float:
    """The per-batch part: the cost at batch 1 minus the per-request part (batch → ∞)."""
    return budget.per_ordered_request_us(1) - per_request(budget)


def per_request(budget: CryptoBudget) -> float:
    c, n = budget.costs, budget.config.n
    return c.ed25519_sign_us + n * c.ed25519_verify_us


def test_the_default_cluster_is_seven_replicas():
    assert (N, F, K) == (7, 2, 10)
    assert CONFIG.read_quorum == 2 * F + 1


def test_the_per_request_cost_falls_as_the_batch_grows_and_tends_to_the_per_request_part():
    budget = CryptoBudget(CONFIG, COSTS)
    costs = [budget.per_ordered_request_us(b) for b in (1, 2, 4, 8, 16, 64, 256, 10_000, 1e9)]
    assert all(a > b for a, b in itertools.pairwise(costs))
    floor = COSTS.ed25519_sign_us + N * COSTS.ed25519_verify_us  # client signs, n replicas verify
    assert costs[-1] == pytest.approx(floor, rel=1e-6)
    assert all(c > floor for c in costs)
    # The per-batch part is amortised exactly: cost(b) = per_request + per_batch / b.
    batch_part = budget.per_ordered_request_us(1) - floor
    for b in (1, 3, 64, 1000):
        assert budget.per_ordered_request_us(b) == pytest.approx(floor + batch_part / b)


def test_a_batch_below_one_request_counts_as_one():
    budget = CryptoBudget(CONFIG, COSTS)
    assert budget.per_ordered_request_us(0) == budget.per_ordered_request_us(1)
    assert budget.per_ordered_request_us(0.5) == budget.per_ordered_request_us(1)


def test_per_request_cryptography_is_one_client_signature_and_n_verifications():
    assert per_request(only("ed25519_sign_us")) == 1
    assert only("ed25519_sign_us").per_ordered_request_us(1e12) == pytest.approx(1)
    assert only("ed25519_verify_us").per_ordered_request_us(1e12) == pytest.approx(N)
    for bls in BLS_PRIMITIVES:
        assert only(bls).per_ordered_request_us(1e12) == pytest.approx(0, abs=1e-6)


def test_per_batch_counts_follow_the_docstring():
    # Ed25519 signatures: PRE-PREPARE (1), n-1 PREPARE-SHARE messages, FAST-COMMIT (1), and one
    # signed reply root per replica (n).
    assert per_batch(only("ed25519_sign_us")) == pytest.approx(1 + (N - 1) + 1 + N)
    # Ed25519 verifications: n-1 backups check the PRE-PREPARE, the leader the n-1 PREPARE-SHAREs,
    # n-1 backups the FAST-COMMIT, and the client side f+1 reply roots.
    assert per_batch(only("ed25519_verify_us")) == pytest.approx(3 * (N - 1) + F + 1)
    # BLS shares: one fast-path share per replica (its 2f+1 share only if the fast path fails),
    # plus one checkpoint share per replica every K batches.
    assert per_batch(only("bls_sign_us")) == pytest.approx(N + N / K)
    # BLS verifications: the leader checks the aggregate, n-1 backups check it in FAST-COMMIT,
    # and every replica checks the checkpoint certificate every K batches.
    assert per_batch(only("bls_verify_us")) == pytest.approx(1 + (N - 1) + N / K)
    # Combining 2f+1 shares happens only for checkpoints (every replica, every K batches).
    assert per_batch(only("bls_combine_us")) == pytest.approx(N / K)
    # One n-of-n aggregate per batch, at the leader.
    assert per_batch(only("bls_aggregate_us")) == pytest.approx(1)
    # Points received as bytes: the leader decodes the n fast shares, n-1 backups the aggregate
    # in FAST-COMMIT, and every replica 2f+1 checkpoint shares every K batches.
    assert per_batch(only("bls_decode_us")) == pytest.approx(N + (N - 1) + N * (2 * F + 1) / K)


def test_without_the_fast_path_two_certificate_rounds_are_priced():
    slow = CONFIG.with_changes(fast_path=False)
    # Per round: n shares signed, n-1 share messages signed and checked, 2f+1 shares decoded and
    # combined, one certificate signed and checked by n-1 backups; two rounds, plus the
    # PRE-PREPARE, the reply roots and the checkpoint every K batches as with the fast path.
    assert per_batch(only("bls_sign_us", slow)) == pytest.approx(2 * N + N / K)
    assert per_batch(only("bls_combine_us", slow)) == pytest.approx(2 + N / K)
    assert per_batch(only("bls_verify_us", slow)) == pytest.approx(2 * (1 + (N - 1)) + N / K)  # collector + backups
    assert per_batch(only("bls_decode_us", slow)) == pytest.approx(2 * ((2 * F + 1) + (N - 1)) + N * (2 * F + 1) / K)
    assert per_batch(only("bls_aggregate_us", slow)) == 0
    assert per_batch(only("ed25519_sign_us", slow)) == pytest.approx(1 + 2 * ((N - 1) + 1) + N)
    # With the measured-like costs the slow path needs more cryptography per batch.
    assert CryptoBudget(slow, COSTS).per_ordered_request_us(16) > CryptoBudget(CONFIG, COSTS).per_ordered_request_us(16)


def test_checkpoints_are_spread_over_the_checkpoint_interval():
    rare = CryptoBudget(CONFIG.with_changes(checkpoint_interval=1000), COSTS)
    often = CryptoBudget(CONFIG.with_changes(checkpoint_interval=1), COSTS)
    default = CryptoBudget(CONFIG, COSTS)
    assert often.per_ordered_request_us(8) > default.per_ordered_request_us(8) > rare.per_ordered_request_us(8)
    checkpoint = N * (
        COSTS.bls_sign_us + (2 * F + 1) * COSTS.bls_decode_us + COSTS.bls_combine_us + COSTS.bls_verify_us
    )
    assert often.per_ordered_request_us(1) - rare.per_ordered_request_us(1) == pytest.approx(
        checkpoint * (1 - 1 / 1000)
    )


def test_a_bigger_cluster_costs_more_per_request():
    small = CryptoBudget(ClusterConfig(f=1), COSTS)
    large = CryptoBudget(ClusterConfig(f=4), COSTS)
    for b in (1, 16, 1e9):
        assert large.per_ordered_request_us(b) > small.per_ordered_request_us(b)
    assert per_batch(only("ed25519_sign_us", ClusterConfig(f=4))) == pytest.approx(1 + 12 + 1 + 13)


def test_reads_cost_a_client_signature_n_verifications_and_signatures_and_2f_plus_1_checks():
    # Client signs; n replicas verify it and each signs its reply; the client verifies 2f+1.
    assert only("ed25519_sign_us").per_read_us() == 1 + N
    assert only("ed25519_verify_us").per_read_us() == N + (2 * F + 1)
    for bls in BLS_PRIMITIVES:
        assert only(bls).per_read_us() == 0
    budget = CryptoBudget(CONFIG, COSTS)
    expected = COSTS.ed25519_sign_us + N * (COSTS.ed25519_verify_us + COSTS.ed25519_sign_us) + 5 * COSTS.ed25519_verify_us
    assert budget.per_read_us() == pytest.approx(expected)
    # No BLS, but nothing is amortised either (every replica signs each read's reply on its
    # own): cheaper than an ordered request alone in its batch, dearer than one in a huge batch.
    assert budget.per_ordered_request_us(1e9) < budget.per_read_us() < budget.per_ordered_request_us(1)


def test_the_floor_scales_linearly_with_cores():
    budget = CryptoBudget(CONFIG, COSTS)
    one = budget.floor_tps(16, 0.15, 1)
    assert one > 0
    for cores in (2, 4, 64):
        assert budget.floor_tps(16, 0.15, cores) == pytest.approx(cores * one)


def test_the_floor_is_the_inverse_of_the_mean_cost_per_transaction():
    budget = CryptoBudget(CONFIG, COSTS)
    ordered, read = budget.per_ordered_request_us(16), budget.per_read_us()
    assert budget.floor_tps(16, 0.0, 2) == pytest.approx(2e6 / ordered)
    assert budget.floor_tps(16, 1.0, 2) == pytest.approx(2e6 / read)
    assert budget.floor_tps(16, 0.15, 2) == pytest.approx(2e6 / (0.85 * ordered + 0.15 * read))
    # Cheaper reads and bigger batches both raise the floor.
    assert budget.floor_tps(16, 0.15, 2) > budget.floor_tps(16, 0.0, 2)
    assert budget.floor_tps(64, 0.15, 2) > budget.floor_tps(16, 0.15, 2) > budget.floor_tps(1, 0.15, 2)


def test_costs_as_dict_rounds_to_hundredths():
    costs = CryptoCosts(1.234, 2.345, 3.456, 4.567, 5.678, 6.789, 7.891)
    assert costs.as_dict() == {
        "ed25519_sign_us": 1.23,
        "ed25519_verify_us": 2.35,
        "bls_sign_us": 3.46,
        "bls_verify_us": 4.57,
        "bls_combine_us": 5.68,
        "bls_aggregate_us": 6.79,
        "bls_decode_us": 7.89,
    }


def test_measure_costs_returns_positive_numbers():
    costs = measure_costs(CONFIG)
    for name, value in costs.as_dict().items():
        assert value > 0, name
    budget = CryptoBudget(CONFIG, costs)
    assert budget.floor_tps(8, 0.15, 2) > 0
