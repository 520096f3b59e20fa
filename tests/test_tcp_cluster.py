"""Seven `pbft node` processes on loopback: the TCP shell end to end.

One cluster for the module (starting seven processes is the expensive part). In order:

1. the `pbft client` command commits, reads and fails with certified answers (exit codes 0/3);
2. garbage, an oversized frame, a replayed frame and connections claiming another replica's or
   client's identity are refused and counted while the cluster keeps committing;
3. under a closed-loop load, ``kill -9`` a backup and then the leader, restart both on their
   data directories: every acknowledged transfer is in every replica's state, all seven agree
   (balances, state digest, executed log), money is conserved, and no replica ever accepted two
   different batches for one (view, sequence number), across its crash included.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from cli.main import main
from pbft_core.bank import OK, Bank
from pbft_core.clusterfile import ClusterFile, default_clients
from pbft_core.config import ClusterConfig
from pbft_core.durable import DurableLog
from pbft_core.messages import batch_digest
from pbft_core.ready import Accepted
from pbft_core.replica import Replica
from pbft_core.runtime.framing import (
    HANDSHAKE_FRAME_MAX,
    HEADER,
    KIND_QUERY,
    ROLE_CLIENT,
    ROLE_REPLICA,
    Dialer,
    HandshakeError,
    frame,
    read_frame,
)
from pbft_core.runtime.tcp import ClientPool, data_paths
from pbft_core.runtime.tcp_local import LocalCluster, local_cluster_file
from pbft_core.storage import ReplicaStore

pytestmark = [pytest.mark.process, pytest.mark.timeout(180)]

REPLICAS = list(range(1, 8))
TOTAL = 100  # ten accounts of 10


@pytest.fixture(scope="module")
def tcp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ClusterFile, LocalCluster]]:
    root = tmp_path_factory.mktemp("tcp")
    cluster = local_cluster_file(
        root / "cluster", ClusterConfig(), default_clients(), seed=b"test-tcp-cluster"
    )
    assert cluster.path is not None
    local = LocalCluster(cluster.path, root / "data", root / "logs", verbose=True)
    local.start_all(REPLICAS)
    try:
        states = asyncio.run(statuses(cluster, REPLICAS, wait_s=60.0))
        assert all(states[r] is not None for r in REPLICAS), _logs(local)
        yield cluster, local
    finally:
        local.stop_all()


def _logs(local: LocalCluster) -> str:
    return "\n".join(f"== n{r}\n{local.log_text(r)[-3000:]}" for r in REPLICAS)


async def statuses(
    cluster: ClusterFile, replicas: list[int], wait_s: float = 5.0
) -> dict[int, dict[str, Any] | None]:
    """Each replica's status over an authenticated client connection (None: no answer)."""
    pool = ClientPool(cluster, [cluster.load_secrets("J")])
    await pool.start()
    try:
        answers = await asyncio.gather(*(pool.status(r, wait_s) for r in replicas))
    finally:
        await pool.close()
    return dict(zip(replicas, answers, strict=True))


def client(cluster: ClusterFile, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        main, ["client", "--cluster", str(cluster.path), "--timeout", "20", *args]
    )
    return result.exit_code, result.output


# ---- 1. the client command -------------------------------------------------------------------


def test_the_client_command_prints_certified_results_with_exit_codes(
    tcp: tuple[ClusterFile, LocalCluster],
) -> None:
    cluster, _ = tcp
    code, output = client(cluster, "transfer", "A", "B", "3")
    assert code == 0, output
    assert output.startswith("committed  transfer A B 3: ok")
    assert "matching signed replies (ordered, quorum 3)" in output

    code, output = client(cluster, "balance", "A")
    assert code == 0, output
    assert output.startswith("committed  balance A: 7")
    assert "(read, quorum 5)" in output

    code, output = client(cluster, "transfer", "A", "B", "100")
    assert code == 3, output
    assert output.startswith("failed     transfer A B 100: failed")

    code, output = client(cluster, "--as", "nobody", "balance", "A")
    assert code == 2 and "no client 'nobody'" in output


# ---- 2. bad input ----------------------------------------------------------------------------


async def _raw(address: Any, data: bytes, wait_s: float = 5.0) -> bytes:
    """Send `data` on a fresh connection; everything the node sent back before closing."""
    reader, writer = await asyncio.open_connection(address.host, address.port)
    writer.write(data)
    await writer.drain()
    received = b""
    async with asyncio.timeout(wait_s):
        while chunk := await reader.read(65536):
            received += chunk
    writer.close()
    return received


async def _handshake(address: Any, dialer: Dialer) -> tuple[Any, Any, Any]:
    reader, writer = await asyncio.open_connection(address.host, address.port)
    hello = await read_frame(reader, HANDSHAKE_FRAME_MAX, 5.0)
    writer.write(frame(dialer.on_hello(hello)))
    accept = await read_frame(reader, HANDSHAKE_FRAME_MAX, 5.0)
    try:
        session = dialer.on_accept(accept)
    except HandshakeError:
        writer.close()
        raise
    return reader, writer, session


async def _attack_and_commit(cluster: ClusterFile) -> tuple[list[str], list[Any]]:
    """Throw bad input at n2 while clients keep committing; returns (refusals, completions)."""
    target = cluster.addresses[2]
    n2_key = cluster.public.replicas[2]
    secrets = {name: cluster.load_secrets(name).signing_seed for name in ("n5", "B", "C")}
    pool = ClientPool(cluster, [cluster.load_secrets(name) for name in "DEF"])
    await pool.start()
    load = asyncio.gather(
        *(pool.submit(name, "transfer", (name, "G", 1)) for name in "DEF"),
    )
    refusals: list[str] = []
    # Garbage inside a well-formed frame, and a header announcing an oversized frame.
    await _raw(target, frame(os.urandom(200)))
    await _raw(target, HEADER.pack(2**31))
    # n5 claiming to be n4, and C claiming to be B: they cannot sign as who they claim.
    for role, claimed, seed in ((ROLE_REPLICA, "n4", secrets["n5"]), (ROLE_CLIENT, "B", secrets["C"])):
        try:
            await _handshake(target, Dialer(role, {claimed: seed}, 2, n2_key))
        except HandshakeError as exc:
            refusals.append(str(exc))
    # A genuine client whose second frame is a replay of its first: the session rejects it.
    reader, writer, session = await _handshake(target, Dialer(ROLE_CLIENT, {"C": secrets["C"]}, 2, n2_key))
    sealed = frame(session.seal(KIND_QUERY))
    writer.write(sealed)
    answer = await read_frame(reader, 1 << 20, 5.0)
    assert session.open(answer)[:1] == b"S"
    writer.write(sealed)
    assert await asyncio.wait_for(reader.read(), 5.0) == b""  # n2 closed the connection
    writer.close()
    completions = list(await asyncio.wait_for(load, 30.0))
    completions += [await asyncio.wait_for(pool.submit("D", "transfer", ("D", "G", 1)), 30.0)]
    await pool.close()
    return refusals, completions


def test_garbage_replays_and_impersonation_are_refused_while_the_cluster_commits(
    tcp: tuple[ClusterFile, LocalCluster],
) -> None:
    cluster, local = tcp
    refusals, completions = asyncio.run(_attack_and_commit(cluster))
    assert len(refusals) == 2 and all("refused by n2" in r for r in refusals), refusals
    assert [c.result for c in completions] == [OK] * 4
    assert all(len(c.certified_by) >= 3 for c in completions)
    counters = asyncio.run(statuses(cluster, [2]))[2]["counters"]  # type: ignore[index]
    assert counters["handshake.garbage"] >= 1
    assert counters["frame.oversized"] >= 1
    assert counters["handshake.bad_identity"] >= 2
    assert counters["frame.bad_auth"] >= 1
    assert local.alive(2)


# ---- 3. kill -9 under load -------------------------------------------------------------------


async def _load_with_crashes(
    cluster: ClusterFile, local: LocalCluster
) -> tuple[list[tuple[str, int, Any]], list[str]]:
    """Ten closed-loop clients transfer in a ring while n3 (a backup) and then n1 (the leader)
    are killed with SIGKILL and restarted. Returns (acknowledged requests, timeline)."""
    names = list("ABCDEFGHIJ")
    pool = ClientPool(cluster, [cluster.load_secrets(n) for n in names])
    await pool.start()
    assert await pool.wait_connected(7, 10.0) == 7
    acked: list[tuple[str, int, Any]] = []
    stop = asyncio.Event()
    timeline: list[str] = []
    started = time.monotonic()

    def note(text: str) -> None:
        timeline.append(f"{time.monotonic() - started:6.2f}s {text} ({len(acked)} acked)")

    async def worker(i: int) -> None:
        name, target = names[i], names[(i + 1) % len(names)]
        while not stop.is_set():
            done = await asyncio.wait_for(pool.submit(name, "transfer", (name, target, 1)), 60.0)
            acked.append((name, done.completion.request.timestamp, done.result))

    workers = [asyncio.create_task(worker(i)) for i in range(len(names))]
    for delay, action, replica in (
        (1.5, "kill", 3),
        (1.0, "start", 3),
        (1.5, "kill", 1),
        (1.0, "start", 1),
        (3.0, "stop", 0),
    ):
        await asyncio.sleep(delay)
        if action == "kill":
            local.kill(replica)
        elif action == "start":
            local.start(replica)
        else:
            stop.set()
        note(f"{action} n{replica}" if replica else "load stops")
    await asyncio.wait_for(asyncio.gather(*workers), 90.0)
    note("every outstanding request answered")
    await pool.close()
    return acked, timeline


async def _converged(cluster: ClusterFile, timeout_s: float) -> dict[int, dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while True:
        states = await statuses(cluster, REPLICAS, wait_s=2.0)
        answered = {r: s for r, s in states.items() if s is not None}
        progress = {(s["last_executed"], s["state_digest"]) for s in answered.values()}
        if len(answered) == len(REPLICAS) and len(progress) == 1:
            return answered
        if time.monotonic() > deadline:
            raise AssertionError(f"replicas did not converge: { {r: s and (s['view'], s['last_executed']) for r, s in states.items()} }")
        await asyncio.sleep(0.3)


def test_kill_9_of_a_backup_and_then_the_leader_loses_no_acknowledged_transfer(
    tcp: tuple[ClusterFile, LocalCluster],
) -> None:
    cluster, local = tcp
    acked, timeline = asyncio.run(_load_with_crashes(cluster, local))
    context = "\n".join(timeline)
    assert len(acked) >= 20, context
    assert all(result == OK for _, _, result in acked), context  # a ring of 1s never overdraws

    live = asyncio.run(_converged(cluster, 30.0))
    balances = {r: s["balances"] for r, s in live.items()}
    assert all(b == balances[2] for b in balances.values()), balances
    assert sum(balances[2].values()) == TOTAL
    assert live[1]["view"] >= 2, "the leader was killed: the cluster must have changed view"

    # Clean shutdown: every node writes its final state and exits 0.
    assert local.stop_all() == dict.fromkeys(REPLICAS, 0), _logs(local)
    for r in (1, 3):
        assert "event=recovered" in local.log_text(r), f"n{r} did not recover from its log"

    executed_logs: dict[int, dict[int, list[tuple[str, int]]]] = {}
    executions: dict[int, list[tuple[str, int]]] = {}  # requests executed (not retransmissions)
    for r in REPLICAS:
        store_path, durable_path, _ = data_paths(local.data_dir, r)
        with ReplicaStore(store_path, read_only=True) as store:
            assert store.balances("final") == balances[2], f"n{r}"
            executed_logs[r] = {
                e["seq"]: [(q["client"], q["timestamp"]) for q in e["requests"]]
                for e in store.executed()
            }
            executions[r] = [
                (q["client"], q["timestamp"])
                for e in store.executed()
                for q, result in zip(e["requests"], e["results"], strict=True)
                if result is not None
            ]
        # Rebuilt from its write-ahead log, the replica holds every acknowledged request in its
        # reply table, the same balances, and never accepted two batches for one (view, seq).
        log = DurableLog(durable_path)
        events = log.load()
        log.close()
        replica = Replica.restore(r, cluster.config, cluster.load_secrets(f"n{r}").crypto(), events)
        assert replica.bank.balances == balances[2], f"n{r}"
        for name, timestamp, _ in acked:
            assert replica.bank.is_executed(name, timestamp), f"n{r} lost {name}@{timestamp}"
        accepted: dict[tuple[int, int], bytes] = {}
        for event in events:
            if isinstance(event, Accepted):
                digest = batch_digest(event.batch)
                key = (event.view, event.seq)
                assert accepted.setdefault(key, digest) == digest, f"n{r} equivocated at {key}"

    # Same batch at every sequence number wherever two replicas executed it.
    by_seq: dict[int, list[tuple[str, int]]] = {}
    for r, log_entries in executed_logs.items():
        for seq, batch in log_entries.items():
            assert by_seq.setdefault(seq, batch) == batch, f"n{r} executed another batch at {seq}"
    # Replicas that never crashed executed every acknowledged request exactly once.
    for r in (2, 4, 5, 6, 7):
        keys = executions[r]
        assert len(keys) == len(set(keys)), f"n{r} executed a request twice"
        assert {(n, t) for n, t, _ in acked} <= set(keys), f"n{r}"
    assert Bank.initial().total == TOTAL
