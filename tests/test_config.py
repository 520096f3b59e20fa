"""Named quorums and why they are what they are."""

from itertools import combinations

import pytest

from pbft_core.config import ClusterConfig


@pytest.mark.parametrize("f", [1, 2, 3])
def test_any_two_quorums_share_an_honest_replica(f):
    config = ClusterConfig(f=f)
    replicas = set(config.replica_ids)
    smallest_overlap = min(
        len(set(a) & set(b))
        for a in combinations(replicas, config.quorum)
        for b in [tuple(sorted(replicas))[: config.quorum]]
    )
    assert smallest_overlap >= f + 1
    assert config.fast_quorum == config.n
    assert config.reply_quorum == config.join_quorum == f + 1


def test_leaders_rotate_round_robin_from_n1():
    config = ClusterConfig()
    assert [config.leader_of(v) for v in range(1, 10)] == [1, 2, 3, 4, 5, 6, 7, 1, 2]
