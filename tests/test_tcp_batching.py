"""The TCP shell's batched frames: several protocol messages in one sealed ``B`` payload.

Unit tests of the framing helpers (`join_messages`, `batch_messages`, `split_messages`) and of
the writer's `coalesce`; then a node under attack: a client's ``B`` frame with anything but
REQUESTs in it, or one that does not parse, closes the connection before any of its messages
is decoded, and a replica's is refused whole; a genuine client's requests in one ``B`` frame
are all served.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgpack
import pytest

from pbft_core.messages import Request, encode
from pbft_core.runtime.framing import (
    ITEM_HEADER,
    KIND_MESSAGE,
    KIND_MESSAGES,
    KIND_QUERY,
    ROLE_CLIENT,
    ROLE_REPLICA,
    PeerMisbehaved,
    batch_messages,
    frame,
    join_messages,
    split_messages,
)
from pbft_core.runtime.tcp import ClientPool, ReplicaNode
from pbft_core.runtime.tcp.links import coalesce
from tests.test_tcp_hostile import (
    _closed_by_peer,
    _connect,
    _dialer,
    _run_against_n1,
    _spy_on_decoding,
)

# ---- framing ---------------------------------------------------------------------------------


def test_one_message_is_an_m_payload_and_several_a_b_payload_that_splits_back() -> None:
    assert join_messages([b"abc"]) == KIND_MESSAGE + b"abc"
    messages = [b"a", b"bc" * 100, bytes(70_000)]
    payload = join_messages(messages)
    assert payload[:1] == KIND_MESSAGES
    assert [bytes(m) for m in split_messages(payload)] == messages


@pytest.mark.parametrize(
    "payload",
    [
        KIND_MESSAGES,  # nothing in it
        KIND_MESSAGES + b"\x00\x00",  # ends inside a length
        KIND_MESSAGES + ITEM_HEADER.pack(0),  # an empty message
        KIND_MESSAGES + ITEM_HEADER.pack(5) + b"abcd",  # longer than what is left
        KIND_MESSAGES + ITEM_HEADER.pack(1) + b"a" + b"\x00",  # a stray byte after the last
        KIND_MESSAGE + b"abc",  # not a B payload
    ],
)
def test_a_b_payload_that_does_not_parse_whole_is_refused(payload: bytes) -> None:
    with pytest.raises(PeerMisbehaved) as caught:
        split_messages(payload)
    assert caught.value.reason == "frame.bad_batch"


def test_runs_of_messages_stay_in_order_within_the_payload_limit() -> None:
    messages = [bytes([i]) * (10 + i) for i in range(50)]
    limit = 120
    runs = batch_messages(messages, limit)
    assert [m for run in runs for m in run] == messages
    assert all(len(join_messages(run)) <= limit for run in runs if len(run) > 1)
    assert len(runs) > 1
    # A message larger than the limit goes alone (the receiver's limit decides), not dropped.
    assert batch_messages([b"x", bytes(500), b"y"], 100) == [[b"x"], [bytes(500)], [b"y"]]


def test_the_writer_joins_runs_of_messages_and_keeps_queries_in_place() -> None:
    m = [KIND_MESSAGE + bytes([i]) * 3 for i in range(4)]
    out = coalesce([m[0], m[1], KIND_QUERY, m[2], KIND_QUERY, m[3]], 1 << 20)
    assert out[1] == KIND_QUERY and out[3] == KIND_QUERY
    assert [bytes(x) for x in split_messages(out[0])] == [m[0][1:], m[1][1:]]
    assert out[2] == m[2] and out[4] == m[3]  # a run of one stays an M payload
    assert coalesce([], 100) == []


# ---- a node under attack ---------------------------------------------------------------------


def _request(client: str, timestamp: int) -> bytes:
    return encode(Request(client, timestamp, "transfer", ("A", "B", 1), False, bytes(64)))


def test_a_client_b_frame_with_a_message_that_is_not_a_request_closes_the_connection_undecoded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded = _spy_on_decoding(monkeypatch)
    status_message = msgpack.packb([11, 0, 0, 0, 1, bytes(64)])

    async def attack(cluster, _node: ReplicaNode) -> list[bool]:
        closed = []
        for name, payload in (
            # a request, then a STATUS: refused before the codec sees either
            ("A", join_messages([_request("A", 1), status_message])),
            # lengths that do not add up
            ("B", KIND_MESSAGES + ITEM_HEADER.pack(1000) + _request("B", 1)),
        ):
            (reader, writer), session = await _connect(cluster, _dialer(cluster, ROLE_CLIENT, name))
            writer.write(frame(session.seal(payload)))
            closed.append(await _closed_by_peer(reader))
            writer.close()
        return closed

    closed, counters, errors = _run_against_n1(tmp_path, attack)
    assert closed == [True, True]
    assert counters["client.not_request"] == 1
    assert counters["frame.bad_batch"] == 1
    assert decoded == []
    assert not errors


def test_a_replica_b_frame_that_does_not_parse_is_refused_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded = _spy_on_decoding(monkeypatch)
    status_message = msgpack.packb([11, 0, 0, 0, 1, bytes(64)])

    async def attack(cluster, _node: ReplicaNode) -> bool:
        (reader, writer), session = await _connect(cluster, _dialer(cluster, ROLE_REPLICA, "n2"))
        bad = join_messages([status_message, status_message]) + b"\x00"  # a stray byte at the end
        writer.write(frame(session.seal(bad)))
        closed = await _closed_by_peer(reader)
        writer.close()
        return closed

    closed, counters, errors = _run_against_n1(tmp_path, attack)
    assert closed  # the peer reconnects, as after any broken frame
    assert counters["frame.bad_batch"] == 1
    assert decoded == []  # not even the well-formed first message was used
    assert not errors


def test_requests_of_many_clients_in_one_b_frame_are_all_answered(tmp_path: Path) -> None:
    """Four replicas (f = 1); a pool of ten clients submits at once: its requests to n1 leave
    as B frames, and every client gets its certified answer."""
    from tests.test_tcp_hostile import _cluster

    cluster = _cluster(tmp_path)
    names = list("ABCDEFGHIJ")

    async def go() -> list[object]:
        nodes = [
            ReplicaNode(cluster, r, cluster.load_secrets(f"n{r}"), tmp_path / f"data{r}")
            for r in cluster.config.replica_ids
        ]
        for node in nodes:
            await node.start()
        pool = ClientPool(cluster, [cluster.load_secrets(n) for n in names])
        try:
            await pool.start()
            assert await pool.wait_connected(cluster.config.n, 10.0) == cluster.config.n
            futures = [pool.submit(n, "transfer", (n, "A" if n != "A" else "B", 1)) for n in names]
            done = await asyncio.wait_for(asyncio.gather(*futures), 30.0)
            batched = nodes[0].counters["out.direct_writes"]
            assert batched > 0
            return [d.result for d in done]
        finally:
            await pool.close()
            for node in nodes:
                node.request_stop()
                await node.serve()

    results = asyncio.run(go())
    assert len(results) == len(names) and all(r is not None for r in results)
