"""Storage: a replica's database holds what happened, reads it back, and can rebuild the replica.

Also the node host (the shell-independent part of every process shell): it persists before it
sends, logs every message once, and never lets undecodable bytes reach the replica.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from pbft_core.attacks import Attack
from pbft_core.bank import Bank
from pbft_core.config import ClusterConfig
from pbft_core.messages import Reply, Request, encode
from pbft_core.ready import CheckpointStable, SlotStatus
from pbft_core.replica import Replica
from pbft_core.runtime.host import NodeHost, config_from_bytes, config_to_bytes
from pbft_core.runtime.simulator import Simulation, make_crypto
from pbft_core.storage import ReplicaStore, RunIndex, describe, find_run, list_runs
from tests.support import transfer

RING = [transfer(a, b, 1) for a, b in zip("ABCDEFGHIJ", "BCDEFGHIJA", strict=True)]


def _store_from_sim(sim: Simulation, r: int, path: Path) -> ReplicaStore:
    store = ReplicaStore(path)
    store.set_meta(replica=f"n{r}", honest=sim.nodes[r].honest, live=sim.nodes[r].live, attacks=[])
    for event in sim.nodes[r].events:
        store.record_event(1.0, event)
    replica = sim.replica(r)
    store.record_final(
        view=replica.view,
        view_active=replica.view_active,
        last_executed=replica.last_executed,
        stable_seq=replica.stable_seq,
        balances=dict(replica.bank.balances),
        metrics=dict(replica.metrics),
    )
    store.commit()
    return store


def test_a_replica_database_round_trips_its_state_log_checkpoints_and_new_views(
    tmp_path: Path,
) -> None:
    sim = Simulation(
        ClusterConfig(checkpoint_interval=5), seed=3, byzantine={1: (Attack("crash"),)}
    )
    sim.run_transactions(RING * 3)  # enough batches for a stable checkpoint or two
    replica = sim.replica(4)
    _store_from_sim(sim, 4, tmp_path / "n4.sqlite").close()

    with ReplicaStore(tmp_path / "n4.sqlite", read_only=True) as store:
        assert store.meta()["replica"] == "n4" and store.meta()["honest"] is True
        final = store.final()
        assert final == {
            "view": replica.view,
            "view_active": int(replica.view_active),
            "last_executed": replica.last_executed,
            "stable_seq": replica.stable_seq,
        }
        assert store.balances("final") == replica.bank.balances
        executed = store.executed()
        assert [e["seq"] for e in executed] == list(range(1, replica.last_executed + 1))
        by_seq = {e.seq: e for e in sim.nodes[4].executed.values()}
        for entry in executed:
            want = [(r.client, r.timestamp, r.op, list(r.args)) for r in by_seq[entry["seq"]].batch]
            got = [(q["client"], q["timestamp"], q["kind"], q["args"]) for q in entry["requests"]]
            assert got == want  # a no-op is []
        assert store.slot_status(1)["status"] == str(SlotStatus.EXECUTED)
        assert [h["status"] for h in store.status_history(1)][-1] == "E"
        assert store.slot_status(10_000) is None
        # The crashed leader forced a view change: NEW-VIEW v2 with its V and O is on disk.
        new_views = store.new_views()
        assert [nv["view"] for nv in new_views] == [2]
        assert new_views[0]["leader"] == "n2"
        assert len(new_views[0]["view_changes"]) == 5
        assert all(
            {"replica", "checkpoint_seq", "prepared"} <= set(vc)
            for vc in new_views[0]["view_changes"]
        )
        assert all({"seq", "requests"} <= set(p) for p in new_views[0]["proposals"])
        # A checkpoint every 5: balances recorded at each stable one.
        stable = [row["seq"] for row in store.checkpoints()]
        assert stable and all(seq % 5 == 0 for seq in stable)
        assert set(store.checkpoint_balances()) == set(stable)
        # Rows hold only what changed since the previous checkpoint; reads give complete states.
        snapshots = {
            e.seq: Bank.from_snapshot(e.snapshot).balances
            for e in sim.nodes[4].events
            if isinstance(e, CheckpointStable) and e.snapshot is not None
        }
        assert snapshots and all(store.checkpoint_balances()[s] == b for s, b in snapshots.items())
        assert all(store.balances("checkpoint", s) == b for s, b in snapshots.items())
        kinds = {e["kind"] for e in store.events()}
        assert {"view change started", "new view installed", "checkpoint stable"} <= kinds
        assert store.metrics()["executed.batches"] == replica.metrics["executed.batches"]


def test_describe_names_type_view_seq_and_summarises_requests() -> None:
    request = Request("A", 7, "transfer", ("A", "B", 3), False)
    info = describe(request)
    assert (info.type, info.view, info.seq) == ("Request", None, None)
    assert "A#7 transfer(A,B,3)" in info.summary


def test_run_index_lists_runs_and_finds_the_latest_and_by_prefix(tmp_path: Path) -> None:
    first = RunIndex.create(tmp_path, scenario="a.csv", options={})
    first.record_set(
        {
            "set": 2,
            "transactions": [
                {
                    "line": 3,
                    "client": "A",
                    "kind": "balance",
                    "args": ["A"],
                    "outcome": "committed",
                    "result": 10,
                    "latency_ms": 1.5,
                }
            ],
            "ended_by": "completed",
            "duration_s": 1.0,
            "agreement": {"ok": True},
        },
        started_at=1.0,
    )
    first.close()
    second = RunIndex.create(tmp_path, scenario="b.csv", options={})
    second.close()
    runs = list_runs(tmp_path)
    assert len(runs) == 2
    assert find_run(tmp_path) == max(runs)  # ids sort by start time
    assert find_run(tmp_path, first.run_id) == first.dir
    assert find_run(tmp_path, "no-such-run") is None
    with RunIndex(first.dir, read_only=True) as index:
        assert index.info()["scenario"] == "a.csv"
        assert index.sets()[0]["number"] == 2 and index.sets()[0]["agreement"]
        assert index.set_report(2)["transactions"][0]["result"] == 10
        assert index.set_report(9) is None


def test_config_crosses_a_process_boundary_as_bytes() -> None:
    config = ClusterConfig(checkpoint_interval=7, batch_size_max=3, fast_path=False)
    assert config_from_bytes(config_to_bytes(config)) == config


def test_the_host_commits_before_it_sends_and_logs_every_message_once(tmp_path: Path) -> None:
    config = ClusterConfig()
    replica_crypto, client_crypto = make_crypto("sim", 9, config, "A")
    store = ReplicaStore(tmp_path / "n1.sqlite")
    sent: list[tuple[int, bytes]] = []
    committed_rows_at_send: list[int] = []

    def send(to: int, data: bytes) -> None:
        # What a peer could see must already be on disk: count rows through another connection.
        with sqlite3.connect(tmp_path / "n1.sqlite") as other:
            committed_rows_at_send.append(
                other.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
            )
        sent.append((to, data))

    host = NodeHost(
        Replica(1, config, replica_crypto(1)),
        store,
        send,
        lambda c, d: None,
        links=frozenset({2, 3, 4, 5, 6, 7}),
    )
    request = Request("A", 1, "transfer", ("A", "B", 1), False)
    request = request.with_sig(client_crypto("A").sign(request.signing_payload()))
    host.on_client_bytes("A", encode(request), 1.0)
    assert host.tick_if_due(2.0)  # due at once: a new host ticks to arm its timers
    assert sent == []  # nothing leaves before flush
    host.flush()
    assert {to for to, _ in sent} == {2, 3, 4, 5, 6, 7}  # the leader's PRE-PREPARE to every backup
    assert min(committed_rows_at_send) >= 2  # the request in, the pre-prepare out
    rows = store.messages(exclude=("Status",))
    assert [(r["direction"], r["type"]) for r in rows] == [("in", "Request"), ("out", "PrePrepare")]
    assert rows[1]["peer"] == "n2,n3,n4,n5,n6,n7" and rows[1]["seq"] == 1

    host.on_peer_bytes(2, b"\xc1 not msgpack", 3.0)  # garbage never reaches the replica
    host.flush()
    assert host.decode_failures == 1
    assert store.messages()[-1]["note"].startswith("undecodable")
    store.close()


def test_a_disconnected_host_sends_nothing(tmp_path: Path) -> None:
    config = ClusterConfig()
    replica_crypto, _ = make_crypto("sim", 9, config, "A")
    sent: list[int] = []
    with ReplicaStore(tmp_path / "n5.sqlite") as store:
        host = NodeHost(
            Replica(5, config, replica_crypto(5)),
            store,
            lambda to, d: sent.append(to),
            lambda c, d: None,
        )
        host.tick_if_due(0.0)
        host.tick_if_due(1_000.0)  # status gossip is due, but there are no links
        host.flush()
        state = host.finish()
    assert sent == []
    assert state["last_executed"] == 0 and state["balances"]["A"] == 10


def test_a_host_with_a_commit_interval_lets_the_inspection_log_trail_until_due_and_at_finish(
    tmp_path: Path,
) -> None:
    config = ClusterConfig()
    replica_crypto, client_crypto = make_crypto("sim", 9, config, "A")
    store = ReplicaStore(tmp_path / "n1.sqlite")

    def committed_rows() -> int:
        with sqlite3.connect(tmp_path / "n1.sqlite") as other:
            return int(other.execute("SELECT COUNT(*) FROM messages").fetchone()[0])

    host = NodeHost(
        Replica(1, config, replica_crypto(1)),
        store,
        lambda to, data: None,
        lambda c, d: None,
        links=frozenset({2, 3, 4, 5, 6, 7}),
        store_commit_interval_ms=3_600_000.0,
        clock_ms=lambda: 5.0,  # the shell's clock; it does not move here
    )
    request = Request("A", 1, "transfer", ("A", "B", 1), False)
    host.on_client_bytes("A", encode(request.with_sig(client_crypto("A").sign(request.signing_payload()))), 1.0)
    host.flush()  # the first flush commits (nothing committed yet), then the interval runs
    first = committed_rows()
    assert first >= 1
    assert host.tick_if_due(2.0)  # due at once: a new host ticks to arm its timers
    host.on_peer_bytes(2, b"\xc1 not msgpack", 3.0)
    host.flush()
    assert committed_rows() == first  # not due: the rows wait in memory
    host.finish()
    assert committed_rows() > first  # finish always commits
    store.close()


def test_a_batch_s_replies_are_one_log_row_and_a_lone_reply_is_described_as_usual(tmp_path: Path) -> None:
    batch = [(c, Reply(1, c, 7, 2, 0, False, i, (), b"\x01" * 64), b"e" * 100) for i, c in enumerate("ABCDEF")]
    read = [("A", Reply(1, "A", 8, 2, 10, True, 0, (), b"\x02" * 64), b"e" * 90)]
    with ReplicaStore(tmp_path / "n2.sqlite") as store:
        store.log_replies(5.0, batch)
        store.log_replies(6.0, read)
        store.commit()
        rows = store.messages()
    assert [(r["direction"], r["type"], r["peer"], r["size"]) for r in rows] == [
        ("out", "Reply", "A,B,C,D,E,F", 600),
        ("out", "Reply", "A", 90),
    ]
    assert rows[0]["summary"] == "6 replies: A#7 -> 0; B#7 -> 0; C#7 -> 0; D#7 -> 0; +2 more"
    assert rows[1]["summary"] == "read A#8 -> 10"
