"""The TCP shell's parts, in process: frames, the handshake, the session, the cluster file, and
a replica node poked with bad input (slow-loris, garbage) and a small in-process cluster."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from pbft_core.bank import OK
from pbft_core.clusterfile import (
    Address,
    ClusterFile,
    ClusterFileError,
    default_clients,
    keygen,
)
from pbft_core.config import ClusterConfig
from pbft_core.runtime import tcp
from pbft_core.runtime.framing import (
    CLIENT_FRAME_BYTES_MAX,
    HEADER,
    KIND_MESSAGE,
    ROLE_CLIENT,
    ROLE_REPLICA,
    Acceptor,
    Dialer,
    FrameTimeout,
    FrameTooLarge,
    HandshakeError,
    Session,
    SessionError,
    frame,
    join_messages,
    peek_message_tag,
    read_frame,
    replica_of_name,
)
from pbft_core.runtime.tcp import (
    ClientPool,
    HandshakeSlots,
    ReplicaNode,
    TokenBucket,
    client_connections_budget,
    client_frame_bytes_max,
)
from pbft_core.runtime.tcp_local import free_ports

SEEDS = {name: bytes([i]) * 32 for i, name in enumerate(["n1", "n2", "n3", "n4", "A", "B"], 1)}
REPLICA_KEYS = {int(n[1:]): bytes(SigningKey(s).verify_key) for n, s in SEEDS.items() if n[0] == "n"}
CLIENT_KEYS = {n: bytes(SigningKey(s).verify_key) for n, s in SEEDS.items() if n[0] != "n"}


def acceptor(replica: int = 1) -> Acceptor:
    return Acceptor(replica, SEEDS[f"n{replica}"], REPLICA_KEYS, CLIENT_KEYS)


def dialer(role: str, names: dict[str, bytes], target: int = 1, target_key: bytes | None = None) -> Dialer:
    return Dialer(role, names, target, target_key or REPLICA_KEYS[target])


def shake(a: Acceptor, d: Dialer) -> tuple[Session, Session, object]:
    accept, identity, server = a.on_auth(d.on_hello(a.hello()))
    return server, d.on_accept(accept), identity


# ---- frames --------------------------------------------------------------------------------


def _reader(data: bytes, eof: bool = True) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    if eof:
        reader.feed_eof()
    return reader


def test_frames_round_trip_and_the_size_limit_is_checked_before_the_body() -> None:
    async def go() -> None:
        reader = _reader(frame(b"one") + frame(b"") + frame(b"three"))
        assert [await read_frame(reader, 16, 1.0) for _ in range(3)] == [b"one", b"", b"three"]
        with pytest.raises(asyncio.IncompleteReadError):
            await read_frame(reader, 16, 1.0)
        # Only the header of the oversized frame is there: the limit fires without waiting.
        with pytest.raises(FrameTooLarge):
            await read_frame(_reader(HEADER.pack(17), eof=False), 16, 1.0)

    asyncio.run(go())


def test_a_frame_body_that_trickles_in_too_slowly_times_out() -> None:
    async def go() -> None:
        reader = _reader(HEADER.pack(10) + b"12345", eof=False)
        with pytest.raises(FrameTimeout):
            await read_frame(reader, 16, 0.05)

    asyncio.run(go())


# ---- handshake -----------------------------------------------------------------------------


def test_a_replica_and_a_client_pool_authenticate_and_get_working_sessions() -> None:
    server, peer, identity = shake(acceptor(1), dialer(ROLE_REPLICA, {"n3": SEEDS["n3"]}))
    assert identity.role == ROLE_REPLICA and identity.replica == 3  # type: ignore[attr-defined]
    assert server.open(peer.seal(b"to n1")) == b"to n1"
    assert peer.open(server.seal(b"to n3")) == b"to n3"

    server, peer, identity = shake(acceptor(2), dialer(ROLE_CLIENT, {"A": SEEDS["A"], "B": SEEDS["B"]}, 2))
    assert identity.names == ("A", "B") and identity.replica is None  # type: ignore[attr-defined]
    assert server.open(peer.seal(b"x")) == b"x"


@pytest.mark.parametrize(
    ("role", "claimed", "signer", "reason"),
    [
        (ROLE_REPLICA, "n2", "n3", "handshake.bad_identity"),  # n3 claims to be n2
        (ROLE_CLIENT, "A", "B", "handshake.bad_identity"),  # B claims to be A
        (ROLE_REPLICA, "n1", "n1", "handshake.unknown_identity"),  # n1 dialing itself
        (ROLE_REPLICA, "n9", "n3", "handshake.unknown_identity"),  # no such replica
        (ROLE_CLIENT, "Z", "A", "handshake.unknown_identity"),  # no such client
        (ROLE_CLIENT, "n2", "n2", "handshake.unknown_identity"),  # a replica key is no client
    ],
)
def test_nobody_gets_in_as_someone_else(role: str, claimed: str, signer: str, reason: str) -> None:
    a = acceptor(1)
    with pytest.raises(HandshakeError) as caught:
        a.on_auth(dialer(role, {claimed: SEEDS[signer]}).on_hello(a.hello()))
    assert caught.value.reason == reason
    assert Acceptor.refusal(caught.value)  # something to tell the dialer before closing


def test_the_dialer_checks_it_reached_the_replica_it_dialed() -> None:
    # Someone else answers at n1's address.
    with pytest.raises(HandshakeError) as caught:
        dialer(ROLE_CLIENT, {"A": SEEDS["A"]}, 1).on_hello(acceptor(2).hello())
    assert caught.value.reason == "handshake.wrong_replica"
    # n2 pretends to be n1: it cannot sign n1's part of the transcript.
    impostor = Acceptor(1, SEEDS["n2"], REPLICA_KEYS, CLIENT_KEYS)
    d = dialer(ROLE_CLIENT, {"A": SEEDS["A"]}, 1)
    accept, _, _ = impostor.on_auth(d.on_hello(impostor.hello()))
    with pytest.raises(HandshakeError) as caught:
        d.on_accept(accept)
    assert caught.value.reason == "handshake.bad_identity"


def test_a_recorded_handshake_cannot_be_replayed_to_a_new_connection() -> None:
    d = dialer(ROLE_REPLICA, {"n3": SEEDS["n3"]})
    recorded_auth = d.on_hello(acceptor(1).hello())
    with pytest.raises(HandshakeError) as caught:
        acceptor(1).on_auth(recorded_auth)  # fresh nonce and ephemeral key on the acceptor's side
    assert caught.value.reason == "handshake.bad_identity"


def test_replayed_altered_or_reordered_frames_do_not_open() -> None:
    server, peer, _ = shake(acceptor(1), dialer(ROLE_REPLICA, {"n4": SEEDS["n4"]}))
    first, second = peer.seal(b"first"), peer.seal(b"second")
    assert server.open(first) == b"first"
    with pytest.raises(SessionError):
        server.open(first)  # replay
    tampered = bytes([second[0] ^ 1]) + second[1:]
    with pytest.raises(SessionError):
        server.open(tampered)
    _, peer2, _ = shake(acceptor(1), dialer(ROLE_REPLICA, {"n4": SEEDS["n4"]}))
    server2, _, _ = shake(acceptor(1), dialer(ROLE_REPLICA, {"n4": SEEDS["n4"]}))
    with pytest.raises(SessionError):
        server2.open(peer2.seal(b"another session's key"))
    s_a, p_a, _ = shake(acceptor(1), dialer(ROLE_REPLICA, {"n4": SEEDS["n4"]}))
    one, two = p_a.seal(b"1"), p_a.seal(b"2")
    with pytest.raises(SessionError):
        s_a.open(two)  # out of order
    assert s_a.open(one) == b"1"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_never_raises_anything_but_a_handshake_error(data: bytes) -> None:
    with pytest.raises(HandshakeError):
        acceptor(1).on_auth(data)
    with pytest.raises(HandshakeError):
        dialer(ROLE_CLIENT, {"A": SEEDS["A"]}).on_hello(data)


def test_a_non_ascii_or_odd_replica_name_is_a_handshake_error_not_a_traceback() -> None:
    assert [replica_of_name(n) for n in ("n1", "n7", "n12")] == [1, 7, 12]
    for odd in ("n²", "n٣", "n１", "n01", "n", "x1", "n-1", "n 1", "n1234567", ""):
        assert replica_of_name(odd) is None, odd
        a = acceptor(1)
        with pytest.raises(HandshakeError) as caught:
            a.on_auth(dialer(ROLE_REPLICA, {odd or "?": SEEDS["n3"]}).on_hello(a.hello()))
        assert caught.value.reason == "handshake.unknown_identity"


def test_a_hostile_acceptor_cannot_make_a_dialer_raise_anything_but_a_handshake_error() -> None:
    import msgpack

    d = dialer(ROLE_CLIENT, {"A": SEEDS["A"]}, 1)
    d.on_hello(acceptor(1).hello())
    for accept in (
        msgpack.packb(["pbft-tcp/1", "refused"]),  # too short to say why
        msgpack.packb(["pbft-tcp/1", ["accept"], b"x"]),
        msgpack.packb(["pbft-tcp/1", "accept", "not bytes"]),
    ):
        with pytest.raises(HandshakeError):
            d.on_accept(accept)


# ---- peeking at a message's tag --------------------------------------------------------------


def test_the_tag_is_read_from_the_first_bytes_of_any_array_size() -> None:
    import msgpack

    from pbft_core.messages import Request, encode

    request = Request("A", 1, "transfer", ("A", "B", 1), False, bytes(64))
    assert peek_message_tag(encode(request)) == Request.TAG
    assert peek_message_tag(msgpack.packb([11] + [0] * 20)) == 11  # array16
    assert peek_message_tag(msgpack.packb([12] + [0] * 70_000)) == 12  # array32
    assert peek_message_tag(memoryview(KIND_MESSAGE + encode(request))[1:]) == Request.TAG
    for garbage in (b"", b"\x91", b"\x90\x01", b"\x91\xcc\x05", b"\x91\xff", b"\xc1\x01", b"\xdc\x00", b"\x01\x02"):
        assert peek_message_tag(garbage) is None, garbage


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=12))
def test_peeking_at_garbage_never_raises(data: bytes) -> None:
    tag = peek_message_tag(data)
    assert tag is None or 0 <= tag <= 0x7F


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 127), st.lists(st.integers(0, 2**32) | st.binary(max_size=8), max_size=40))
def test_peeking_agrees_with_decoding(tag: int, fields: list[object]) -> None:
    import msgpack

    assert peek_message_tag(msgpack.packb([tag, *fields])) == tag


def test_the_client_frame_limit_admits_every_request_a_replica_accepts_and_no_more() -> None:
    from pbft_core.messages import Request, encode, request_bytes

    for f in (0, 1, 2, 3):
        config = ClusterConfig(f=f)
        limit = client_frame_bytes_max(config)
        assert limit <= CLIENT_FRAME_BYTES_MAX
        # The largest request the replica orders (`batch_bytes_max`) fits one client frame.
        args: tuple[str, ...] = ()
        while True:
            bigger = Request("c" * 64, 2**63 - 1, "t" * 64, (*args, "x" * 64), False, bytes(64))
            if request_bytes(bigger) > config.batch_bytes_max:
                break
            request, args = bigger, bigger.args  # type: ignore[assignment]
        # Sealed and framed as a client pool sends it, the request is read whole by
        # `read_frame` at the client limit ...
        session = Session(bytes(32), bytes(32))
        assert asyncio.run(_read_back(frame(session.seal(join_messages([encode(request)]))), limit))
        # ... and the next larger one, which no replica would order, is refused unread.
        with pytest.raises(FrameTooLarge):
            asyncio.run(_read_back(frame(session.seal(join_messages([encode(bigger)]))), limit))
    # A request at the codec's own limit (8 MiB) is far beyond any client frame.
    assert CLIENT_FRAME_BYTES_MAX <= 64 * 1024


# ---- connection slots and rate limits (sans I/O) ---------------------------------------------


def test_a_source_at_its_handshake_cap_evicts_its_own_oldest_not_anyone_else() -> None:
    slots = HandshakeSlots(total_max=6, per_source_max=3)
    assert slots.admit("10.0.0.9", "honest") == []
    assert [slots.admit("6.6.6.6", f"idle{i}") for i in range(3)] == [[], [], []]
    assert slots.admit("6.6.6.6", "idle3") == [("idle0", "conn.evicted_source_busy")]
    assert slots.pending("6.6.6.6") == 3 and slots.pending("10.0.0.9") == 1
    slots.release("honest")
    slots.release("honest")  # idempotent
    assert len(slots) == 3


def test_a_full_table_evicts_from_the_busiest_source_and_spares_replica_hosts() -> None:
    slots = HandshakeSlots(total_max=4, per_source_max=4, replica_hosts=frozenset({"10.0.0.2"}))
    slots.admit("10.0.0.2", "n2")
    slots.admit("10.0.0.2", "n2-again")
    slots.admit("6.6.6.6", "a")
    slots.admit("7.7.7.7", "b")
    # Every source but the replica host holds one; the replica host holds two but is spared.
    victims = slots.admit("8.8.8.8", "c")
    assert victims == [("a", "conn.evicted_busy")]
    assert len(slots) == 4
    # Once only replica-host handshakes are left, the busiest source pays.
    slots = HandshakeSlots(total_max=2, per_source_max=4, replica_hosts=frozenset({"1.1.1.1", "2.2.2.2"}))
    slots.admit("1.1.1.1", "x")
    slots.admit("2.2.2.2", "y")
    assert slots.admit("1.1.1.1", "z") == [("x", "conn.evicted_busy")]


def test_the_token_bucket_allows_a_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate_per_s=10.0, burst=3, now_s=100.0)
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(100.05) is False  # half a token
    assert bucket.take(100.11) is True
    assert [bucket.take(200.0) for _ in range(4)] == [True, True, True, False]  # capped at the burst


def test_client_connections_fit_the_file_descriptors_left_for_replica_links() -> None:
    assert client_connections_budget(20_000) == tcp.CLIENT_CONNECTIONS_MAX
    small = client_connections_budget(1024)
    assert 0 < small < tcp.CLIENT_CONNECTIONS_MAX
    assert small + tcp.PENDING_HANDSHAKES_MAX + tcp.FILE_DESCRIPTORS_RESERVED <= 1024
    assert client_connections_budget(100) == 0


# ---- cluster file ----------------------------------------------------------------------------


def test_keygen_writes_a_cluster_file_that_loads_back_and_private_secrets(tmp_path: Path) -> None:
    addresses = {r: Address(f"10.0.0.{r}", 7000 + r) for r in range(1, 8)}
    cluster = keygen(tmp_path, ClusterConfig(checkpoint_interval=5), clients=default_clients(2), addresses=addresses, seed=b"x")
    loaded = ClusterFile.load(tmp_path / "cluster.toml")
    assert loaded.config == cluster.config and loaded.config.checkpoint_interval == 5
    assert loaded.addresses == addresses
    assert loaded.public == cluster.public
    assert loaded.clients == sorted([*"ABCDEFGHIJ", "c0", "c1"])
    for name in ("n3", "A", "c1"):
        path = loaded.secrets_path(name)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert loaded.load_secrets(name).name == name
    with pytest.raises(ClusterFileError, match="exists"):
        keygen(tmp_path, ClusterConfig(), clients=["A"])


def test_a_cluster_file_with_typos_or_foreign_keys_is_refused(tmp_path: Path) -> None:
    keygen(tmp_path / "a", ClusterConfig(), clients=["A"], seed=b"a")
    keygen(tmp_path / "b", ClusterConfig(), clients=["A"], seed=b"b")
    path = tmp_path / "a" / "cluster.toml"
    text = path.read_text()
    path.write_text(text.replace("checkpoint_interval", "checkpoint_intervall"))
    with pytest.raises(ClusterFileError, match="unknown key"):
        ClusterFile.load(path)
    path.write_text(text)
    cluster = ClusterFile.load(path)
    with pytest.raises(ClusterFileError, match="another cluster"):
        cluster.load_secrets("n1", tmp_path / "b" / "n1" / "secrets.key")
    with pytest.raises(ClusterFileError, match="secrets of n2"):
        cluster.load_secrets("n1", tmp_path / "a" / "n2" / "secrets.key")
    assert Address.parse("[::1]:5001") == Address("::1", 5001)
    with pytest.raises(ClusterFileError):
        Address.parse("no-port")


# ---- a node in process -----------------------------------------------------------------------


def _cluster(tmp_path: Path, f: int = 1) -> ClusterFile:
    config = ClusterConfig(f=f)
    ports = free_ports(config.n)
    addresses = {r: Address("127.0.0.1", p) for r, p in zip(config.replica_ids, ports, strict=True)}
    return keygen(tmp_path / "cluster", config, clients=list("ABCDEFGHIJ"), addresses=addresses, seed=b"inproc")


def _node(cluster: ClusterFile, r: int, data: Path) -> ReplicaNode:
    return ReplicaNode(cluster, r, cluster.load_secrets(f"n{r}"), data)


def test_slow_loris_garbage_and_oversized_frames_are_dropped_and_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tcp.limits, "HANDSHAKE_TIMEOUT_S", 0.3)
    cluster = _cluster(tmp_path)

    async def go() -> dict[str, int]:
        node = _node(cluster, 1, tmp_path / "data")
        await node.start()
        address = cluster.addresses[1]
        try:
            # Connects and says nothing; connects and sends half a header; sends 5 of 100 bytes.
            idle = await asyncio.open_connection(address.host, address.port)
            half = await asyncio.open_connection(address.host, address.port)
            half[1].write(b"\x00\x00")
            trickle = await asyncio.open_connection(address.host, address.port)
            trickle[1].write(HEADER.pack(100) + b"12345")
            garbage = await asyncio.open_connection(address.host, address.port)
            garbage[1].write(frame(os.urandom(64)))
            huge = await asyncio.open_connection(address.host, address.port)
            huge[1].write(HEADER.pack(2**30))
            for reader, _ in (idle, half, trickle, garbage, huge):
                async with asyncio.timeout(3.0):
                    while await reader.read(65536):
                        pass  # the hello, maybe a refusal, then EOF: the node hung up
            # ... and it still serves a genuine client.
            pool = ClientPool(cluster, [cluster.load_secrets("A")])
            await pool.start()
            status = await pool.status(1, 3.0)
            await pool.close()
            assert status is not None and status["replica"] == 1
            return dict(node.counters)
        finally:
            node.request_stop()
            await node.serve()

    counters = asyncio.run(go())
    assert counters["handshake.timeout"] == 3
    assert counters["handshake.garbage"] == 1
    assert counters["frame.oversized"] == 1
    assert counters["conn.authenticated.client"] == 1


def test_an_in_process_cluster_commits_and_a_restarted_node_recovers_its_state(tmp_path: Path) -> None:
    cluster = _cluster(tmp_path)  # f = 1: four replicas

    async def go() -> tuple[list[object], dict[str, object], dict[str, object]]:
        nodes = {r: _node(cluster, r, tmp_path / "data") for r in cluster.config.replica_ids}
        for node in nodes.values():
            await node.start()
        pool = ClientPool(cluster, [cluster.load_secrets(c) for c in "ABC"])
        await pool.start()
        results = [await asyncio.wait_for(pool.submit("A", "transfer", ("A", "B", 2)), 20)]
        results += await asyncio.wait_for(
            asyncio.gather(pool.submit("B", "transfer", ("B", "C", 5)), pool.submit("C", "balance", ("D",), read_only=True)),
            20,
        )
        # Stop n4 cleanly and bring it back on the same data directory.
        nodes[4].request_stop()
        before = await nodes[4].serve()
        nodes[4] = _node(cluster, 4, tmp_path / "data")
        await nodes[4].start()
        after = nodes[4].status()
        await pool.close()
        for node in nodes.values():
            node.request_stop()
            await node.serve()
        return results, before, after

    results, before, after = asyncio.run(go())
    assert [r.result for r in results] == [OK, OK, 10]  # type: ignore[attr-defined]
    assert after["balances"] == before["balances"]
    assert after["last_executed"] == before["last_executed"] and after["recovered_events"] > 0


def test_a_node_refuses_a_data_directory_in_use_or_written_for_another_cluster(tmp_path: Path) -> None:
    from pbft_core.runtime.tcp import NodeStartError

    cluster = _cluster(tmp_path)
    other = keygen(tmp_path / "other", cluster.config, clients=["A"], addresses=cluster.addresses, seed=b"other")

    async def go() -> None:
        node = _node(cluster, 2, tmp_path / "data")
        await node.start()
        try:
            with pytest.raises(NodeStartError, match="locked"):
                await _node(cluster, 2, tmp_path / "data").start()
        finally:
            node.request_stop()
            await node.serve()
        with pytest.raises(NodeStartError, match="another cluster"):
            await _node(other, 2, tmp_path / "data").start()
        again = _node(cluster, 2, tmp_path / "data")  # the right cluster still starts
        await again.start()
        again.request_stop()
        await again.serve()

    asyncio.run(go())


# ---- the commands' usage errors --------------------------------------------------------------


def test_keygen_node_and_client_commands_fail_cleanly_on_bad_usage(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from cli.main import main

    def invoke(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(main, list(args))
        return result.exit_code, result.output

    out = tmp_path / "cluster"
    port = free_ports(1)[0]
    code, output = invoke("keygen", "--out", str(out), "--clients", "2", "--base-port", str(port), "--seed", "s")
    assert code == 0 and "n = 7, f = 2, 12 clients" in output
    code, output = invoke("keygen", "--out", str(out))
    assert code == 2 and output.startswith("error: ") and "--force" in output
    code, output = invoke("keygen", "--out", str(tmp_path / "x"), "--hosts", "a,b")
    assert code == 2 and "needs 7" in output
    toml = str(out / "cluster.toml")
    code, output = invoke("node", "--id", "9", "--cluster", toml)
    assert code == 2 and "replicas 1..7" in output
    code, output = invoke("node", "--id", "1", "--cluster", toml, "--key", str(out / "n2" / "secrets.key"))
    assert code == 2 and "secrets of n2" in output
    code, output = invoke("node", "--id", "1", "--cluster", str(tmp_path / "missing.toml"))
    assert code == 2 and "missing.toml" in output
    # Nobody is listening: the request is unavailable (exit 4), after --timeout.
    code, output = invoke("client", "--cluster", toml, "--timeout", "0.5", "transfer", "A", "B", "1")
    assert code == 4 and "unavailable" in output


async def _read_back(data: bytes, size_max: int) -> bytes:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return await read_frame(reader, size_max, body_timeout_s=1.0)
