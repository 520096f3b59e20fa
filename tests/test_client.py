"""The client: f+1 matching authentic replies for writes, 2f+1 for reads, batched reply roots."""

from __future__ import annotations

import os
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from pbft_core import merkle
from pbft_core.client import Client
from pbft_core.config import ClusterConfig
from pbft_core.messages import Reply, reply_root_payload
from pbft_core.runtime.simulator import make_crypto

CONFIG = ClusterConfig()
replica_crypto, client_crypto = make_crypto("sim", 3, CONFIG, "ABC")


def signed_batch(replica: int, replies: list[Reply]) -> list[Reply]:
    root, paths = merkle.build([r.leaf() for r in replies])
    sig = replica_crypto(replica).sign(reply_root_payload(root))
    return [replace(r, index=i, path=paths[i], sig=sig) for i, r in enumerate(replies)]


def reply(replica: int, client: str = "A", result="ok", view: int = 1) -> Reply:
    other = Reply(view, "B", 9, replica, "ok", False)
    return signed_batch(replica, [other, Reply(view, client, 1, replica, result, False)])[1]


def test_a_write_completes_on_f_plus_1_matching_authentic_replies_and_learns_the_view():
    client = Client("A", CONFIG, client_crypto("A"))
    ready = client.submit("transfer", ("A", "B", 1), 0.0)
    assert [to for to, _ in ready.to_replicas] == [1]
    assert client.step(reply(1, view=2), 1.0).completed is None
    assert client.step(reply(1, view=2), 1.0).completed is None  # the same replica twice
    assert client.step(reply(2, view=2), 2.0).completed is None
    done = client.step(reply(3, view=2), 2.0).completed  # f + 1 = 3
    assert done is not None and done.result == "ok" and client.view == 2


def test_replies_that_disagree_or_are_forged_do_not_count():
    client = Client("A", CONFIG, client_crypto("A"))
    client.submit("transfer", ("A", "B", 1), 0.0)
    assert client.step(reply(1, result="failed"), 1.0).completed is None
    tampered = replace(reply(2), result="failed")  # signature covers another result
    assert client.step(tampered, 1.0).completed is None
    assert client.metrics["replies.bad_signature"] == 1
    assert client.step(reply(3), 1.0).completed is None
    assert client.step(reply(4), 1.0).completed is None
    assert client.step(reply(5), 1.0).completed is not None


def test_a_read_needs_2f_plus_1_matching_and_falls_back_to_ordering_on_timeout():
    client = Client("A", CONFIG, client_crypto("A"))
    ready = client.submit("balance", ("A",), 0.0, read_only=True)
    assert len(ready.to_replicas) == CONFIG.n
    for r in range(1, 5):
        answer = signed_batch(r, [Reply(1, "A", 1, r, 10, True)])[0]
        assert client.step(answer, 1.0).completed is None
    fallback = client.tick(CONFIG.timers.read_timeout_ms + 1)
    assert [to for to, _ in fallback.to_replicas] == [1]
    assert fallback.to_replicas[0][1].read_only is False


def test_a_timed_out_write_is_broadcast_to_every_replica():
    client = Client("A", CONFIG, client_crypto("A"))
    client.submit("transfer", ("A", "B", 1), 0.0)
    ready = client.tick(CONFIG.timers.client_timeout_ms + 1)
    assert sorted(to for to, _ in ready.to_replicas) == list(CONFIG.replica_ids)


@given(st.integers(1, 40), st.data())
def test_every_leaf_proves_membership_and_no_leaf_proves_it_at_another_index(count, data):
    leaves = [merkle.leaf_hash(os.urandom(4)) for _ in range(count)]
    root, paths = merkle.build(leaves)
    i = data.draw(st.integers(0, count - 1))
    assert merkle.root_from_path(leaves[i], i, paths[i]) == root
    j = data.draw(st.integers(0, count - 1))
    if leaves[j] != leaves[i]:
        assert merkle.root_from_path(leaves[j], i, paths[i]) != root
