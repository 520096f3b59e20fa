"""Targeted attacks on one replica, each the reproduction of an audit finding (issue 11).

Each test drives honest replicas in process, message by message, with what a Byzantine replica
or a malicious client can actually produce: its own real key, genuine messages it observed, and
any bytes it likes. Each failed on the code before its fix.
"""

from __future__ import annotations

import pytest

from pbft_core.bank import BALANCE_MAX, FAILED, OK, Bank
from pbft_core.certificates import Certifier, checkpoint_message, prepare_message
from pbft_core.client import Client
from pbft_core.config import ClusterConfig
from pbft_core.messages import (
    MESSAGE_SIZE_MAX,
    Ask,
    CatchUp,
    CheckpointProof,
    DecodeError,
    FastCommit,
    Fetch,
    NewView,
    PrePrepare,
    PrePrepared,
    Reply,
    Request,
    SlowPath,
    ViewChange,
    batch_bytes,
    batch_digest,
    decode,
)
from pbft_core.replica import NEW_VIEWS_KEPT, Replica
from pbft_core.runtime.simulator import make_crypto
from pbft_core.viewchange import check_view_change, select_proposals

CONFIG = ClusterConfig()
CLIENTS = "ABCDEFGHIJ"
replica_crypto, client_crypto = make_crypto("sim", 11, CONFIG, CLIENTS)


def signed(message, signer: int):
    return message.with_sig(replica_crypto(signer).sign(message.signing_payload()))


def request(client: str, timestamp: int, *args) -> Request:
    r = Request(client, timestamp, "transfer", args or (client, "B", 1), False)
    return r.with_sig(client_crypto(client).sign(r.signing_payload()))


def view_change(sender: int, new_view: int, reports=(), signer: int | None = None) -> ViewChange:
    return signed(ViewChange(new_view, None, (), tuple(reports), sender), signer or sender)


def new_view(view: int, vcs: list[ViewChange], proposals=None) -> NewView:
    proposals = select_proposals(CONFIG, vcs) if proposals is None else proposals
    leader = CONFIG.leader_of(view)
    return signed(NewView(view, tuple(vcs), tuple(proposals), leader), leader)


def fast_commit(view: int, seq: int, digest: bytes) -> FastCommit:
    message = prepare_message(view, seq, digest)
    shares = {r: replica_crypto(r).sign_fast_share(message) for r in CONFIG.replica_ids}
    aggregate = replica_crypto(1).aggregate_all(shares, message)
    assert aggregate is not None
    return signed(FastCommit(view, seq, digest, aggregate, CONFIG.leader_of(view)), CONFIG.leader_of(view))


BATCH = (request("A", 1),)


# ---- finding 1: a NEW-VIEW speaking for its receiver -----------------------------------------


def test_a_new_view_cannot_carry_a_view_change_forged_in_the_name_of_its_receiver():
    """Given batch B fast-committed at seq 1 in view 1 (every honest replica accepted it, so
    each honest VIEW-CHANGE reports it), when Byzantine n2, leading view 2, hands n4 a NEW-VIEW
    whose V holds the two Byzantine reports, a report forged "from n4" that omits B and two
    genuine ones, then n4 refuses it: B would have had only two reporters and been erased."""
    reported = (PrePrepared(1, 1, BATCH),)
    forged = view_change(4, 2, signer=2)  # n2 signs "n4's" view change
    vcs = [view_change(1, 2), view_change(2, 2), forged, view_change(5, 2, reported), view_change(6, 2, reported)]
    assert select_proposals(CONFIG, vcs) == ()  # what the forgery is for: B is gone
    n4 = Replica(4, CONFIG, replica_crypto(4))

    n4.step(new_view(2, vcs), 0.0)

    assert n4.metrics["dropped.new-view carries a forged view change"] == 1
    assert n4.view == 1
    # With n4's real view change in its place, B is re-proposed at seq 1 and installed.
    vcs[2] = view_change(4, 2, reported)
    n4.step(new_view(2, vcs), 1.0)
    assert n4.view == 2 and n4.slots[1].batch == BATCH


def test_a_new_view_cannot_re_propose_a_request_its_client_never_signed():
    """Given f+1 signed reports of a transfer whose client signature is all zeros, when the
    new leader re-proposes it in O, then the receiver refuses the NEW-VIEW instead of
    executing money moves the client never signed."""
    unsigned = Request("A", 1, "transfer", ("A", "B", 9), False, bytes(64))
    bad = (PrePrepared(1, 1, (unsigned,)),)
    vcs = [view_change(r, 2, bad) for r in (1, 2, 3)] + [view_change(r, 2) for r in (5, 6)]
    n4 = Replica(4, CONFIG, replica_crypto(4))

    n4.step(new_view(2, vcs), 0.0)

    assert n4.metrics["dropped.new-view re-proposes an invalid batch"] == 1
    assert n4.view == 1 and 1 not in n4.slots


# ---- finding 2: a replica's own bytes sent back -----------------------------------------------


@pytest.fixture(scope="module")
def real_crypto():
    replica, _ = make_crypto("real", 5, ClusterConfig(f=1), "A")
    return replica(2)


def test_a_replicas_own_share_where_a_certificate_goes_and_the_reverse_are_just_invalid(real_crypto):
    """Given a replica's own checkpoint share and own certificate (peers know both bytes: they
    are broadcast), when they come back in each other's place, then verification says no
    instead of raising out of `step`."""
    message = checkpoint_message(10, bytes(32))
    own_share = real_crypto.sign_share(message)
    shares = {r: make_crypto("real", 5, ClusterConfig(f=1), "A")[0](r).sign_share(message) for r in (1, 3)}
    certificate, _ = real_crypto.combine({2: own_share, **shares}, message)
    assert certificate is not None

    assert real_crypto.verify_certificate(message, own_share) is False
    assert real_crypto.verify_aggregate(message, own_share) is False
    assert real_crypto.verify_share(2, message, certificate) is False
    assert real_crypto.combine({2: certificate, 1: own_share, 3: own_share}, message)[0] is None
    assert real_crypto.verify_certificate(message, b"\x01" * 96) is False
    assert real_crypto.verify_share(2, message, b"\xff" * 106) is False


def test_the_codec_refuses_a_share_in_a_certificate_field():
    """The same attack one layer out: a share (106 bytes) cannot even decode as a certificate."""
    share = replica_crypto(2).sign_share(prepare_message(1, 1, bytes(32)))
    message = signed(FastCommit(1, 1, bytes(32), share, 1), 1)
    with pytest.raises(DecodeError, match=r"FastCommit\.aggregate: expected 96, 65, 130, …, 6500 bytes"):
        decode(message.encode())


# ---- finding 3: results beyond 64 bits -------------------------------------------------------


def test_no_operation_can_push_a_balance_or_a_result_past_the_64_bit_range():
    """Given SmallBank customers near the top of the range, when a client deposits, pays,
    amalgamates or reads past it, then the operation fails and the state still snapshots."""
    bank = Bank.initial("smallbank:3")
    bank.balances["C0"] = BALANCE_MAX - 5
    bank.balances["S1"] = BALANCE_MAX
    assert bank.apply("deposit_checking", (0, 6)) == FAILED
    assert bank.apply("deposit_checking", (0, 5)) == OK
    assert bank.apply("send_payment", (2, 0, 1)) == FAILED
    assert bank.apply("transact_savings", (1, 1)) == FAILED
    assert bank.apply("amalgamate", (1, 0)) == FAILED
    assert bank.apply("sb_balance", (1,)) == FAILED  # savings + checking is past the range
    assert Bank.from_snapshot(bank.snapshot()).balances == bank.balances

    plain = Bank()
    plain.balances["B"] = BALANCE_MAX
    assert plain.apply("transfer", ("A", "B", 1)) == FAILED


# ---- finding 4: byte budgets ------------------------------------------------------------------


def test_a_request_no_batch_could_carry_is_refused_at_the_door():
    """Given a long window (so a small batch budget), when a client sends a request of
    multi-byte strings larger than any batch may be, then the leader drops it unproposed."""
    config = ClusterConfig(log_window=400)
    huge = Request("A", 1, "transfer", tuple("€" * 64 for _ in range(8)), False)
    huge = huge.with_sig(client_crypto("A").sign(huge.signing_payload()))
    assert batch_bytes((huge,)) > config.batch_bytes_max
    leader = Replica(1, config, replica_crypto(1))

    ready = leader.step(huge, 0.0)
    ready = leader.tick(1.0)

    assert leader.metrics["dropped.request too large"] == 1
    assert not ready.to_replicas and not leader.pending


def test_a_leader_splits_its_proposals_to_the_batch_budget_and_backups_refuse_larger_ones():
    config = ClusterConfig(log_window=400)  # budget of about 1.4 kB: 14 or so small requests
    leader = Replica(1, config, replica_crypto(1))
    for i, client in enumerate(CLIENTS * 4):
        leader.step(request(client, 1 + i // len(CLIENTS)), 0.0)
    ready = leader.tick(1.0)
    batches = {m.seq: m.batch for _, m in ready.to_replicas if isinstance(m, PrePrepare)}
    # Full batches (by bytes) pipeline; the partial rest waits for an instance to finish.
    assert len(batches) >= 2 and all(batch_bytes(b) <= config.batch_bytes_max for b in batches.values())
    assert sum(len(b) for b in batches.values()) + len(leader.proposal_queue) == 4 * len(CLIENTS)
    assert batch_bytes(leader.proposal_queue and tuple(leader.pending[k] for k in leader.proposal_queue)) <= config.batch_bytes_max

    oversized = tuple(request(c, 9) for c in CLIENTS) * 2
    assert batch_bytes(oversized) > config.batch_bytes_max
    backup = Replica(2, config, replica_crypto(2))
    backup.step(signed(PrePrepare(1, 1, batch_digest(oversized), oversized, 1), 1), 0.0)
    assert backup.metrics["dropped.batch too large"] == 1


def test_a_byzantine_leader_filling_the_window_cannot_make_a_view_change_undeliverable():
    """Given a Byzantine leader that fills the whole window with the largest batches a backup
    accepts (copies of genuine requests), when the backup changes view, then its VIEW-CHANGE
    fits the view-change budget, and a NEW-VIEW of 2f+1 such view changes fits one frame."""
    config = ClusterConfig()
    pad = tuple(request(c, t) for t in range(1, 40) for c in CLIENTS)
    batch: tuple[Request, ...] = ()
    for r in pad:
        if batch_bytes((*batch, r)) > config.batch_bytes_max or len(batch) == config.batch_size_max:
            break
        batch = (*batch, r)
    backup = Replica(2, config, replica_crypto(2))
    for seq in range(1, config.window + 1):
        backup.step(signed(PrePrepare(1, seq, batch_digest(batch), batch, 1), 1), 0.0)
    assert len(backup.slots) == config.window
    ready = backup.tick(10_000.0)  # the execution timer fires: VIEW-CHANGE to view 2

    vc = next(m for _, m in ready.to_replicas if isinstance(m, ViewChange))
    assert len(vc.preprepared) == config.window
    assert len(vc.encode()) <= config.view_change_bytes_max
    assert check_view_change(vc, config, Certifier(replica_crypto(3))) is None
    others = [signed(ViewChange(2, None, (), vc.preprepared, r), r) for r in (3, 4, 5, 6)]
    nv = signed(NewView(2, (vc, *others), select_proposals(config, [vc, *others]), 2), 2)
    assert len(nv.encode()) <= MESSAGE_SIZE_MAX


def test_a_bloated_view_change_is_refused_before_its_certificates_are_checked():
    config = ClusterConfig()
    wide = tuple("€" * 64 for _ in range(8))  # the largest arguments the codec lets through
    filler = tuple(request(c, t, *wide) for t in range(1, 4) for c in CLIENTS)
    reports = tuple(PrePrepared(1, seq, filler) for seq in range(1, config.window + 1))
    bloated = view_change(3, 2, reports)
    assert len(bloated.encode()) > config.view_change_bytes_max
    n4 = Replica(4, config, replica_crypto(4))
    n4.step(bloated, 0.0)
    assert n4.metrics["dropped.view change too large"] == 1
    assert 2 not in n4.view_changes


def test_a_catch_up_never_outgrows_a_frame_and_a_large_snapshot_still_fits():
    """A 200,000-customer SmallBank snapshot (about 4.6 MB) is sent in one CATCH-UP."""
    snapshot = Bank.initial("smallbank:200000").snapshot()
    assert len(snapshot) > 4 * 1024 * 1024
    proof = CheckpointProof(10, Bank.digest_of(snapshot), bytes(96))
    catch_up = signed(CatchUp(proof, snapshot, (), 3), 3)
    assert decode(catch_up.encode()).snapshot == snapshot


# ---- finding 5: memory bounded in bytes -------------------------------------------------------


def test_only_certificates_that_verify_wait_for_their_pre_prepare():
    backup = Replica(2, CONFIG, replica_crypto(2))
    digest = batch_digest(BATCH)
    bogus = signed(FastCommit(1, 1, digest, bytes(96), 1), 1)
    backup.step(bogus, 0.0)
    assert backup.metrics["dropped.bad certificate"] == 1
    assert not backup.slots.get(1) or not backup.slots[1].early

    backup.step(fast_commit(1, 1, digest), 1.0)
    assert len(backup.slots[1].early) == 1


def test_a_liar_keeps_one_view_change_above_the_current_view_not_one_per_view():
    n4 = Replica(4, CONFIG, replica_crypto(4))
    for view in range(2, 2 + CONFIG.n * 4):
        n4.step(view_change(3, view), 0.0)
    held = [v for v, by in n4.view_changes.items() if 3 in by]
    assert held == [1 + CONFIG.n * 4]


def test_only_the_latest_new_views_are_kept():
    n3 = Replica(3, CONFIG, replica_crypto(3))
    for view in range(2, 2 + 3 * NEW_VIEWS_KEPT):
        n3.step(new_view(view, [view_change(r, view) for r in (3, 4, 5, 6, 7)]), float(view))
    assert n3.view == 1 + 3 * NEW_VIEWS_KEPT
    # (view 10's NEW-VIEW would come from n3 itself, so n3 installs every view but that one)
    assert [nv.view for nv in n3.new_views] == [9, 11, 12, 13][-NEW_VIEWS_KEPT:]


def test_one_client_cannot_fill_a_replicas_pending_table():
    from pbft_core.intake import PENDING_PER_CLIENT_MAX

    backup = Replica(2, CONFIG, replica_crypto(2))
    for timestamp in range(1, 3 * PENDING_PER_CLIENT_MAX):
        backup.step(request("A", timestamp), 0.0)
    backup.step(request("B", 1), 0.0)
    assert sum(1 for client, _ in backup.pending if client == "A") == PENDING_PER_CLIENT_MAX
    assert ("B", 1) in backup.pending


# ---- finding 7: censorship --------------------------------------------------------------------


def test_a_leader_that_orders_everything_but_one_request_is_suspected_in_time():
    """Given backup n2 holding A's request since t=0, when the leader keeps ordering other
    clients' requests (one executed every 200 ms), then n2 still starts a view change one
    execution timeout after A's request arrived."""
    timeout = CONFIG.timers.execution_timeout_ms
    n2 = Replica(2, CONFIG, replica_crypto(2))
    n2.step(request("A", 1), 0.0)
    for seq, client in enumerate("BCDEFGH", start=1):
        at = 200.0 * seq - 150.0
        if at >= timeout:
            break
        batch = (request(client, 1),)
        digest = batch_digest(batch)
        n2.step(signed(PrePrepare(1, seq, digest, batch, 1), 1), at)
        n2.step(fast_commit(1, seq, digest), at + 1)
        n2.tick(at + 2)
        assert n2.last_executed == seq and n2.view == 1
    n2.tick(timeout)
    assert n2.view == 2 and not n2.view_active


# ---- finding 9: the client's view --------------------------------------------------------------


def test_one_reply_with_a_huge_view_cannot_pin_the_clients_view():
    client = Client("A", CONFIG, client_crypto("A"))
    ready = client.submit("transfer", ("A", "B", 1), 0.0)
    sent = ready.to_replicas[0][1]
    views = {1: 2**64 - 7, 2: 1, 3: 1}  # n1 lies
    for replica, view in views.items():
        reply = Reply(view, "A", sent.timestamp, replica, OK, False)
        payload = reply.signed_root()
        assert payload is not None
        done = client.step(reply.with_sig(replica_crypto(replica).sign(payload)), 5.0)
    assert done.completed is not None
    assert client.view == 1


# ---- finding 10: FETCH amplification ---------------------------------------------------------


def test_a_fetch_flood_gets_one_answer_per_period_and_the_same_signed_answer():
    n3 = Replica(3, CONFIG, replica_crypto(3))
    for seq, client in enumerate("ABC", start=1):
        batch = (request(client, 1),)
        n3.step(signed(PrePrepare(1, seq, batch_digest(batch), batch, 1), 1), 0.0)
        n3.step(fast_commit(1, seq, batch_digest(batch)), 0.0)
    assert n3.last_executed == 3
    fetch = signed(Fetch(0, 5), 5)
    answers = [m for t in range(100) for _, m in n3.step(fetch, float(t)).to_replicas if isinstance(m, CatchUp)]
    period = CONFIG.timers.status_interval_ms / 2
    assert len(answers) == 100 // period + (100 % period > 0)
    later = [m for _, m in n3.step(fetch, 500.0).to_replicas if isinstance(m, CatchUp)]
    assert later == [answers[0]]  # nothing changed: the same signed answer, not a new one
    assert n3.metrics["catch_up.fetches_refused"] == 100 - len(answers)


def test_a_restarted_backup_gives_its_recovered_requests_a_whole_timeout_from_its_restart():
    """Given a backup that accepted A's request at t=0 and crashed, when it restarts from its
    durable events on a clock that reads 10 s, then it suspects the leader one execution
    timeout after the restart, not at once (the pre-crash arrival time means nothing now)."""
    timeout = CONFIG.timers.execution_timeout_ms
    n2 = Replica(2, CONFIG, replica_crypto(2))
    batch = (request("A", 1),)
    ready = n2.step(signed(PrePrepare(1, 1, batch_digest(batch), batch, 1), 1), 0.0)
    restored = Replica.restore(2, CONFIG, replica_crypto(2), ready.events)
    assert ("A", 1) in restored.pending

    restored.tick(10_000.0)
    assert restored.view == 1
    restored.tick(10_000.0 + timeout - 1)
    assert restored.view == 1
    restored.tick(10_000.0 + timeout)
    assert restored.view == 2 and not restored.view_active


def test_a_pre_prepare_asking_for_an_unknown_kind_of_share_is_dropped_unvoted():
    """Given a Byzantine leader whose PRE-PREPARE's `ask` is none of the three kinds, when a
    backup receives it, then it is dropped and the backup signs nothing for it."""
    backup = Replica(2, CONFIG, replica_crypto(2))
    batch = (request("A", 1),)
    ready = backup.step(signed(PrePrepare(1, 1, batch_digest(batch), batch, 1, 7), 1), 0.0)
    assert backup.metrics["dropped.unknown ask"] == 1 and ready.to_replicas == []


def test_slow_path_from_a_backup_or_for_another_batch_makes_no_one_sign():
    """Given a backup that voted with its fast share alone, when a SLOW-PATH comes from a
    replica that is not the leader, or names another digest, then no 2f+1 share is signed; the
    leader's own SLOW-PATH for the slot gets exactly one."""
    backup = Replica(2, CONFIG, replica_crypto(2))
    batch = (request("A", 1),)
    digest = batch_digest(batch)
    [(_, vote)] = backup.step(signed(PrePrepare(1, 1, digest, batch, 1, Ask.FAST), 1), 0.0).to_replicas
    assert vote.fast_share and not vote.share
    assert backup.step(signed(SlowPath(1, 1, digest, 3), 3), 1.0).to_replicas == []
    assert backup.metrics["dropped.not from the leader"] == 1
    assert backup.step(signed(SlowPath(1, 1, bytes(32), 1), 1), 2.0).to_replicas == []
    [(to, late)] = backup.step(signed(SlowPath(1, 1, digest, 1), 1), 3.0).to_replicas
    assert to == 1 and late.share and not late.fast_share
    assert backup.step(signed(SlowPath(1, 1, digest, 1), 1), 4.0).to_replicas == []  # a replay: nothing more
