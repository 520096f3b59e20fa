"""A TCP replica node against hostile peers (issue 11, findings 6, 8, 10 and 11): every attack is
bounded before it costs anything, dropped and counted, and the node keeps serving.

Each test starts replica n1 of a four-replica cluster in process (its peers need not run: what
is attacked is n1's shell), throws one kind of bad input at it over loopback, checks the counter
that names the refusal, and then checks a genuine client is still served. The last test does all
of it to a running four-replica cluster and then commits a transfer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgpack
import pytest

from pbft_core.bank import OK, Bank
from pbft_core.clusterfile import Address, ClusterFile, keygen
from pbft_core.config import ClusterConfig
from pbft_core.messages import Reply
from pbft_core.runtime import host as host_module
from pbft_core.runtime import tcp
from pbft_core.runtime.framing import (
    HANDSHAKE_FRAME_MAX,
    HEADER,
    KIND_MESSAGE,
    KIND_QUERY,
    KIND_STATE,
    ROLE_CLIENT,
    ROLE_REPLICA,
    Dialer,
    HandshakeError,
    Session,
    frame,
    read_frame,
)
from pbft_core.runtime.tcp import ClientPool, ReplicaNode
from pbft_core.runtime.tcp_local import free_ports

pytestmark = pytest.mark.timeout(120)

Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def _cluster(tmp_path: Path) -> ClusterFile:
    config = ClusterConfig(f=1)
    ports = free_ports(config.n)
    addresses = {r: Address("127.0.0.1", p) for r, p in zip(config.replica_ids, ports, strict=True)}
    return keygen(tmp_path / "cluster", config, clients=list("ABCDEFGHIJ"), addresses=addresses, seed=b"hostile")


def _run_against_n1(
    tmp_path: Path, attack: Callable[[ClusterFile, ReplicaNode], Awaitable[Any]]
) -> tuple[Any, dict[str, int], list[dict[str, Any]]]:
    """Start n1, run `attack`, then check a genuine client still gets n1's status. Returns (what
    the attack returned, n1's counters, every error the event loop's handler saw)."""
    cluster = _cluster(tmp_path)
    loop_errors: list[dict[str, Any]] = []

    async def go() -> tuple[Any, dict[str, int]]:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, context: loop_errors.append(context))
        node = ReplicaNode(cluster, 1, cluster.load_secrets("n1"), tmp_path / "data")
        await node.start()
        try:
            result = await attack(cluster, node)
            pool = ClientPool(cluster, [cluster.load_secrets("J")])
            await pool.start()
            try:
                status = await pool.status(1, 5.0)
            finally:
                await pool.close()
            assert status is not None and status["replica"] == 1, "n1 stopped serving"
            return result, dict(node.counters)
        finally:
            node.request_stop()
            await node.serve()

    result, counters = asyncio.run(go())
    return result, counters, loop_errors


async def _connect(cluster: ClusterFile, dialer: Dialer, replica: int = 1) -> tuple[Stream, Session]:
    address = cluster.addresses[replica]
    reader, writer = await asyncio.open_connection(address.host, address.port)
    hello = await read_frame(reader, HANDSHAKE_FRAME_MAX, 5.0)
    writer.write(frame(dialer.on_hello(hello)))
    accept = await read_frame(reader, HANDSHAKE_FRAME_MAX, 5.0)
    try:
        session = dialer.on_accept(accept)
    except HandshakeError:
        writer.close()
        raise
    return (reader, writer), session


def _dialer(cluster: ClusterFile, role: str, name: str, replica: int = 1) -> Dialer:
    return Dialer(role, {name: cluster.load_secrets(name).signing_seed}, replica, cluster.public.replicas[replica])


async def _closed_by_peer(reader: asyncio.StreamReader, timeout_s: float = 3.0) -> bool:
    """Whether the node hung up within `timeout_s` (whatever it sent before is skipped)."""
    try:
        async with asyncio.timeout(timeout_s):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except ConnectionError:
        pass
    return True


def _spy_on_decoding(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the size of every message the node's host decodes."""
    decoded: list[int] = []
    real = host_module.decode

    def spy(data: bytes) -> Any:
        decoded.append(len(data))
        return real(data)

    monkeypatch.setattr(host_module, "decode", spy)
    return decoded


# ---- finding 6: CPU and memory before a frame is known to be a request --------------------------


def test_a_client_frame_above_the_client_limit_is_refused_before_its_body_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded = _spy_on_decoding(monkeypatch)

    async def attack(cluster: ClusterFile, _node: ReplicaNode) -> tuple[bool, bool]:
        # 200 KB is far below the codec's 8 MiB but far above any request.
        (reader, writer), session = await _connect(cluster, _dialer(cluster, ROLE_CLIENT, "A"))
        writer.write(frame(session.seal(KIND_MESSAGE + bytes(200_000))))
        big_closed = await _closed_by_peer(reader)
        writer.close()
        # Only the header is needed to refuse: announce 8 MiB and send nothing more.
        (reader, writer), session = await _connect(cluster, _dialer(cluster, ROLE_CLIENT, "B"))
        writer.write(HEADER.pack(8 * 1024 * 1024))
        header_closed = await _closed_by_peer(reader)
        writer.close()
        return big_closed, header_closed

    (big_closed, header_closed), counters, errors = _run_against_n1(tmp_path, attack)
    assert big_closed and header_closed
    assert counters["frame.oversized"] == 2
    assert not any(size >= 200_000 for size in decoded)
    assert not errors


def test_a_client_message_that_is_not_a_request_is_refused_without_being_decoded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded = _spy_on_decoding(monkeypatch)
    # A well-formed STATUS (tag 11, replica gossip), a message of no known type, and a payload
    # of a kind a client never sends.
    status_message = msgpack.packb([11, 0, 0, 0, 1, bytes(64)])
    unknown_tag = msgpack.packb([127, "x" * 1000])

    async def attack(cluster: ClusterFile, _node: ReplicaNode) -> list[bool]:
        closed = []
        for name, payload in (
            ("A", KIND_MESSAGE + status_message),
            ("B", KIND_MESSAGE + unknown_tag),
            ("C", KIND_STATE + msgpack.packb({"view": 0})),
        ):
            (reader, writer), session = await _connect(cluster, _dialer(cluster, ROLE_CLIENT, name))
            writer.write(frame(session.seal(payload)))
            closed.append(await _closed_by_peer(reader))
            writer.close()
        return closed

    closed, counters, errors = _run_against_n1(tmp_path, attack)
    assert closed == [True, True, True]
    assert counters["client.not_request"] == 2
    assert counters["frame.unexpected_kind"] == 1
    assert decoded == []  # not one of them reached the codec
    assert not errors


def test_a_replica_message_of_no_known_type_is_dropped_before_decoding_and_the_link_stays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded = _spy_on_decoding(monkeypatch)

    async def attack(cluster: ClusterFile, _node: ReplicaNode) -> bool:
        (reader, writer), session = await _connect(cluster, _dialer(cluster, ROLE_REPLICA, "n2"))
        writer.write(frame(session.seal(KIND_MESSAGE + msgpack.packb([127, bytes(100_000)]))))
        writer.write(frame(session.seal(KIND_QUERY)))  # replicas do not ask for status
        still_open = not await _closed_by_peer(reader, 0.5)
        writer.close()
        return still_open

    still_open, counters, errors = _run_against_n1(tmp_path, attack)
    assert still_open  # a replica link is worth keeping: the frame is dropped, not the link
    assert counters["frame.unknown_tag"] == 1
    assert counters["frame.unexpected_kind"] == 1
    assert decoded == []
    assert not errors


# ---- finding 8: connection slots ------------------------------------------------------------


def test_idle_unauthenticated_sockets_cannot_lock_a_client_out(tmp_path: Path) -> None:
    async def attack(cluster: ClusterFile, _node: ReplicaNode) -> None:
        address = cluster.addresses[1]
        idle = [await asyncio.open_connection(address.host, address.port) for _ in range(80)]
        await asyncio.sleep(0.2)
        # Every slot was taken by a socket that will sit silent for the whole handshake timeout
        # (5 s); a genuine client must get in well before that.
        pool = ClientPool(cluster, [cluster.load_secrets("A")])
        await pool.start()
        try:
            assert await pool.status(1, 2.0) is not None, "a client was locked out by idle sockets"
        finally:
            await pool.close()
            for _, writer in idle:
                writer.close()

    _, counters, errors = _run_against_n1(tmp_path, attack)
    assert counters["conn.evicted_source_busy"] >= 80 - 16
    assert counters.get("conn.refused_busy", 0) == 0
    assert not errors


def test_one_client_identity_cannot_hold_more_than_its_connection_cap(tmp_path: Path) -> None:
    async def attack(cluster: ClusterFile, node: ReplicaNode) -> tuple[list[bool], int]:
        streams = [await _connect(cluster, _dialer(cluster, ROLE_CLIENT, "A")) for _ in range(6)]
        await asyncio.sleep(0.2)
        closed = [await _closed_by_peer(reader, 0.3) for (reader, _), _ in streams]
        # The newest connection is the one that is served.
        (reader, writer), session = streams[-1]
        writer.write(frame(session.seal(KIND_QUERY)))
        answer = session.open(await read_frame(reader, 1 << 20, 5.0))
        assert answer[:1] == KIND_STATE
        clients = len(node.client_connections)
        for (_, writer), _ in streams:
            writer.close()
        return closed, clients

    (closed, clients), counters, errors = _run_against_n1(tmp_path, attack)
    assert closed == [True, True, False, False, False, False]  # the two oldest were evicted
    assert clients == 4
    assert counters["conn.evicted_client_identity"] == 2
    assert not errors


def test_clients_filling_every_client_slot_do_not_keep_a_replica_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tcp.limits, "CLIENT_CONNECTIONS_MAX", 3)

    async def attack(cluster: ClusterFile, node: ReplicaNode) -> tuple[bool, bool]:
        streams = [await _connect(cluster, _dialer(cluster, ROLE_CLIENT, name)) for name in "ABC"]
        (reader, writer), _ = await _connect(cluster, _dialer(cluster, ROLE_CLIENT, "D"))
        refused = await _closed_by_peer(reader)
        writer.close()
        (reader, writer), _ = await _connect(cluster, _dialer(cluster, ROLE_REPLICA, "n3"))
        await asyncio.sleep(0.1)
        replica_in = 3 in node.inbound
        writer.close()
        for (_, w), _ in streams:
            w.close()
        await asyncio.sleep(0.1)  # the closed client slots free up before the final check
        return refused, replica_in

    (refused, replica_in), counters, _ = _run_against_n1(tmp_path, attack)
    assert refused and replica_in
    assert counters["conn.refused_clients_max"] == 1


# ---- finding 10: status queries ---------------------------------------------------------------


def test_status_queries_are_rate_limited_cached_and_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    digests: list[int] = []
    real_digest = Bank.digest

    def counting_digest(bank: Bank) -> bytes:
        digests.append(len(bank.balances))
        return real_digest(bank)

    monkeypatch.setattr(Bank, "digest", counting_digest)

    async def attack(cluster: ClusterFile, node: ReplicaNode) -> tuple[int, int, list[bytes]]:
        assert node.host is not None
        # A large state: 100,000 accounts (a SmallBank of 50,000 customers is this size).
        node.host.replica.bank.balances.update({f"S{i}": 10 for i in range(100_000)})
        digests.clear()
        (reader, writer), session = await _connect(cluster, _dialer(cluster, ROLE_CLIENT, "A"))
        writer.write(b"".join(frame(session.seal(KIND_QUERY)) for _ in range(200)))
        answers: list[bytes] = []
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1.0):
                while True:
                    answers.append(session.open(await read_frame(reader, 1 << 24, 5.0)))
        writer.close()
        return len(digests), len(answers), answers

    (built, answered, answers), counters, _ = _run_against_n1(tmp_path, attack)
    assert answered <= 60, "200 queries in a burst were all answered"
    assert counters["status.rate_limited"] >= 140
    assert built <= 3, "the whole state was hashed again for every query"
    assert all(len(a) <= 64 * 1024 for a in answers), max(len(a) for a in answers)
    status = msgpack.unpackb(answers[0][1:], raw=False)
    assert status["accounts"] == 100_000 + 10 and status["balances_truncated"] is True
    assert len(status["balances"]) <= 64


def test_a_client_pool_whose_query_was_dropped_still_gets_the_next_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One query per half second, no burst: the second query below is dropped by the node.
    monkeypatch.setattr(tcp.limits, "STATUS_QUERIES_PER_S", 2.0)
    monkeypatch.setattr(tcp.limits, "STATUS_QUERY_BURST", 1)

    async def attack(cluster: ClusterFile, _node: ReplicaNode) -> list[bool]:
        pool = ClientPool(cluster, [cluster.load_secrets("A")])
        await pool.start()
        try:
            first = await pool.status(1, 5.0)
            dropped = await pool.status(1, 0.2)
            await asyncio.sleep(0.5)  # a token again
            third = await pool.status(1, 2.0)  # must not be swallowed by the abandoned waiter
            return [first is not None, dropped is None, third is not None]
        finally:
            await pool.close()

    result, counters, _ = _run_against_n1(tmp_path, attack)
    assert result == [True, True, True]
    assert counters["status.rate_limited"] == 1


# ---- finding 11: small ones ---------------------------------------------------------------------


def test_a_non_ascii_digit_in_a_handshake_is_refused_and_counted_not_a_traceback(tmp_path: Path) -> None:
    async def attack(cluster: ClusterFile, _node: ReplicaNode) -> list[str]:
        refusals = []
        seed = cluster.load_secrets("n2").signing_seed
        for name in ("n²", "n٣", "n01"):
            dialer = Dialer(ROLE_REPLICA, {name: seed}, 1, cluster.public.replicas[1])
            with pytest.raises(HandshakeError) as caught:
                await _connect(cluster, dialer)
            refusals.append(caught.value.reason)
        return refusals

    refusals, counters, errors = _run_against_n1(tmp_path, attack)
    assert refusals == ["handshake.refused"] * 3  # told why, before the node hung up
    assert counters["handshake.unknown_identity"] == 3
    assert not errors, errors


def test_a_client_pool_keeps_only_authentic_matching_replies(tmp_path: Path) -> None:
    cluster = _cluster(tmp_path)

    async def go() -> int:
        pool = ClientPool(cluster, [cluster.load_secrets("A")])
        await pool.start()  # no replica is running: the request waits in the links' outboxes
        try:
            pool.submit("A", "transfer", ("A", "B", 1))
            outstanding = pool.clients["A"].outstanding
            assert outstanding is not None
            timestamp = outstanding.request.timestamp
            # A replica floods the client: forged signatures for the outstanding request, and
            # replies to requests it never made.
            for i in range(2000):
                reply = Reply(0, "A", timestamp if i % 2 else timestamp + i, 1, OK, False, 0, (), bytes(64))
                pool._on_payload(1, KIND_MESSAGE + reply.encode())
            return len(pool._outstanding["A"].replies)
        finally:
            await pool.close()

    assert asyncio.run(go()) == 0


# ---- finding 5: a live cluster keeps committing through all of it -------------------------------


def test_a_cluster_under_every_attack_keeps_committing(tmp_path: Path) -> None:
    cluster = _cluster(tmp_path)

    async def go() -> tuple[list[Any], dict[str, int], list[dict[str, Any]]]:
        errors: list[dict[str, Any]] = []
        asyncio.get_running_loop().set_exception_handler(lambda _loop, context: errors.append(context))
        nodes = [
            ReplicaNode(cluster, r, cluster.load_secrets(f"n{r}"), tmp_path / "data")
            for r in cluster.config.replica_ids
        ]
        for node in nodes:
            await node.start()
        pool = ClientPool(cluster, [cluster.load_secrets(c) for c in "ABC"])
        await pool.start()
        try:
            results = [await asyncio.wait_for(pool.submit("A", "transfer", ("A", "B", 1)), 20)]
            address = cluster.addresses[1]
            idle = [await asyncio.open_connection(address.host, address.port) for _ in range(40)]
            for payload in (KIND_MESSAGE + bytes(100_000), KIND_MESSAGE + msgpack.packb([11, 0]), KIND_STATE):
                (reader, writer), session = await _connect(cluster, _dialer(cluster, ROLE_CLIENT, "D"))
                writer.write(frame(session.seal(payload)))
                assert await _closed_by_peer(reader)
                writer.close()
            (reader, writer), session = await _connect(cluster, _dialer(cluster, ROLE_CLIENT, "E"))
            writer.write(b"".join(frame(session.seal(KIND_QUERY)) for _ in range(500)))
            with pytest.raises(HandshakeError):
                await _connect(cluster, Dialer(ROLE_REPLICA, {"n²": bytes(32)}, 1, cluster.public.replicas[1]))
            flood = [await _connect(cluster, _dialer(cluster, ROLE_CLIENT, "F")) for _ in range(8)]
            results += await asyncio.wait_for(
                asyncio.gather(
                    pool.submit("B", "transfer", ("B", "C", 2)),
                    pool.submit("C", "balance", ("A",), read_only=True),
                ),
                30,
            )
            for _, w in [*idle, (reader, writer), *(s for s, _ in flood)]:
                w.close()
            statuses = await asyncio.gather(*(pool.status(r, 5.0) for r in cluster.config.replica_ids))
            assert all(s is not None for s in statuses)
            return results, dict(nodes[0].counters), errors
        finally:
            await pool.close()
            for node in nodes:
                node.request_stop()
                await node.serve()

    results, counters, errors = asyncio.run(go())
    assert [r.result for r in results] == [OK, OK, 9]
    for reason in (
        "conn.evicted_source_busy",
        "frame.oversized",
        "client.not_request",
        "frame.unexpected_kind",
        "status.rate_limited",
        "handshake.unknown_identity",
        "conn.evicted_client_identity",
    ):
        assert counters[reason] >= 1, reason
    assert not errors, errors
