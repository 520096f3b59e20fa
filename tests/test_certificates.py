"""Certificates with real BLS keys: each kind verifies only as itself."""

from __future__ import annotations

import pytest

import thresh_sig
from pbft_core.certificates import commit_message, prepare_message
from pbft_core.config import ClusterConfig
from pbft_core.keys import ClusterKeys, NodeSecrets

CONFIG = ClusterConfig()


@pytest.fixture(scope="module")
def keys() -> ClusterKeys:
    return ClusterKeys.generate(CONFIG, ["A"], seed=b"certificates")


def test_all_n_fast_shares_make_a_fast_certificate_and_2f_plus_1_shares_a_threshold_one(keys):
    cryptos = {r: keys.replica_secrets[r].crypto() for r in CONFIG.replica_ids}
    message = prepare_message(1, 1, b"d" * 32)
    fast = {r: c.sign_fast_share(message) for r, c in cryptos.items()}
    aggregate = cryptos[1].aggregate_all(fast, message)
    assert aggregate is not None and cryptos[5].verify_aggregate(message, aggregate)
    shares = {r: cryptos[r].sign_share(message) for r in (2, 4, 5, 6, 7)}
    certificate, bad = cryptos[1].combine(shares, message)
    assert certificate is not None and not bad
    assert cryptos[3].verify_certificate(message, certificate)
    # Neither passes for the other, nor for another message.
    assert not cryptos[3].verify_aggregate(message, certificate)
    assert not cryptos[3].verify_certificate(message, aggregate)
    assert not cryptos[3].verify_certificate(commit_message(1, 1, b"d" * 32), certificate)


def test_2f_plus_1_threshold_shares_cannot_fake_the_fast_path(keys):
    """From 2f+1 shares of the threshold key anyone can interpolate all n of them; their sum
    must not pass as the n-of-n certificate. That is why the fast path has its own key."""
    crypto = keys.replica_secrets[1].crypto()
    message = prepare_message(1, 1, b"d" * 32)
    group = thresh_sig.GroupKey.from_bytes(keys.public.group)
    share_keys = [thresh_sig.KeyShare.from_bytes(keys.replica_secrets[r].key_share) for r in CONFIG.replica_ids]
    all_threshold_shares = [thresh_sig.sign_share(k, message) for k in share_keys]
    forged = bytes(thresh_sig.aggregate_all(group, all_threshold_shares))
    assert not crypto.verify_aggregate(message, forged)


def test_a_corrupted_share_is_named_by_the_optimistic_combine(keys):
    cryptos = {r: keys.replica_secrets[r].crypto() for r in CONFIG.replica_ids}
    message = commit_message(2, 7, b"e" * 32)
    shares = {r: cryptos[r].sign_share(message) for r in (1, 2, 3, 4, 5)}
    shares[3] = cryptos[3].sign_share(b"something else")
    certificate, bad = cryptos[1].combine(shares, message)
    assert certificate is None and bad == {3}


def test_node_secrets_round_trip_through_bytes_and_files(keys, tmp_path):
    secrets = keys.replica_secrets[4]
    assert NodeSecrets.from_bytes(secrets.to_bytes()) == secrets
    path = tmp_path / "n4.key"
    secrets.save(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert NodeSecrets.load(path) == secrets


def test_a_replicas_own_share_replayed_under_another_signer_is_refused(keys):
    """A replica remembers the points it made (no second decode); the memo must not let its own
    share pass as another replica's."""
    message = prepare_message(1, 1, b"d" * 32)
    n1 = keys.replica_secrets[1].crypto()
    own = n1.sign_share(message)
    assert n1.verify_share(1, message, own)
    assert not n1.verify_share(2, message, own)
    shares = {r: keys.replica_secrets[r].crypto().sign_share(message) for r in (3, 4, 5, 6)}
    certificate, bad = n1.combine({**shares, 2: own}, message)
    assert certificate is None and bad == {2}
