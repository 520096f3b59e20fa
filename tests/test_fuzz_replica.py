"""Fuzzing replicas with a Byzantine peer: well-typed messages with arbitrary fields, signed with
n4's real key, are delivered to the honest replicas of a running f=1 cluster. No exception may
escape a replica, no invariant may break, and the cluster must still serve clients afterwards.

The fields are drawn so they land where replicas look: views and sequence numbers near the
cluster's, digests, certificates and requests taken from a real run of the same seed, and
threshold shares that are n4's own valid shares over what the message claims.
"""

from __future__ import annotations

import dataclasses
import typing
from types import UnionType
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pbft_core.certificates import checkpoint_message, commit_message, prepare_message
from pbft_core.config import ClusterConfig
from pbft_core.dispatch import Outcome
from pbft_core.invariants import InvariantChecker
from pbft_core.messages import (
    CERT_SIZE,
    DIGEST_SIZE,
    REPLICA_SIGNED,
    SHARE_SIZE,
    SIG_SIZE,
    Checkpoint,
    CommitShare,
    Message,
    PrepareShare,
    Reply,
    Request,
)
from pbft_core.runtime.simulator import Simulation
from tests.support import transfer

CONFIG = ClusterConfig(f=1, checkpoint_interval=2)
BYZANTINE = 4
SEED = 17
WARM_UP = [transfer(a, b, 1) for a, b in zip("ABCDE", "BCDEA", strict=True)]
AFTER = [transfer("F", "G", 2), transfer("G", "H", 3)]


def cluster() -> tuple[Simulation, InvariantChecker]:
    """An f=1 cluster that has executed a few batches and taken checkpoints; n4 is Byzantine."""
    sim = Simulation(CONFIG, seed=SEED, keep_events=False)
    checker = InvariantChecker.attach(sim)
    sim.nodes[BYZANTINE].honest = False
    return sim, checker


def observed() -> tuple[dict[str, list[bytes]], list[Request]]:
    """Byte fields by name, and requests, from a clean run of the same cluster."""
    sim, _ = cluster()
    seen: dict[str, list[bytes]] = {}
    requests: list[Request] = []

    def record(source: str, to: int, message: Message) -> None:
        for field in dataclasses.fields(message):
            value = getattr(message, field.name)
            if isinstance(value, bytes) and value and field.name != "sig":
                pool = seen.setdefault(field.name, [])
                if value not in pool and len(pool) < 40:
                    pool.append(value)
        requests.extend(r for r in getattr(message, "batch", ()) if r not in requests)

    sim.send_hooks.append(record)
    sim.run_transactions(WARM_UP)
    return seen, requests


SEEN, REQUESTS = observed()


def field_strategy(name: str, tp: Any, depth: int) -> st.SearchStrategy[Any]:
    if tp is bool:
        return st.booleans()
    if tp is int:
        if name in ("view", "new_view"):
            return st.integers(0, 4)
        if name == "replica":
            return st.integers(0, 5)
        return st.one_of(st.integers(0, 12), st.integers(-1, 2**40))
    if tp is str:
        return st.sampled_from(["A", "B", "transfer", "balance", "", "Z"])
    if tp is bytes:
        pool = SEEN.get(name, [])
        # Mostly the sizes the codec lets through (digest, certificate, share), so the bytes
        # reach the replica; sometimes any size, which the codec must refuse.
        sized = st.sampled_from([DIGEST_SIZE, CERT_SIZE, SHARE_SIZE, SIG_SIZE])
        arbitrary = st.one_of(
            sized.flatmap(lambda size: st.binary(min_size=size, max_size=size)), st.binary(max_size=120)
        )
        return st.one_of(st.sampled_from(pool), arbitrary) if pool else arbitrary
    origin = typing.get_origin(tp)
    if origin is tuple:
        item = typing.get_args(tp)[0]
        if item is Request:
            return st.lists(st.sampled_from(REQUESTS), max_size=3).map(tuple)
        return st.lists(field_strategy(name, item, depth + 1), max_size=0 if depth >= 2 else 2).map(tuple)
    if origin in (typing.Union, UnionType):
        options = typing.get_args(tp)
        inner = [field_strategy(name, o, depth) for o in options if o is not type(None)]
        return st.one_of(*([st.none()] if type(None) in options else []), *inner)
    if tp is Request:
        return st.sampled_from(REQUESTS)
    if isinstance(tp, type) and issubclass(tp, Message):
        return message_strategy(tp, depth + 1)
    raise TypeError(f"no strategy for {tp!r}")


def message_strategy(cls: type[Message], depth: int = 0) -> st.SearchStrategy[Message]:
    hints = typing.get_type_hints(cls)
    return st.builds(cls, **{f.name: field_strategy(f.name, hints[f.name], depth) for f in dataclasses.fields(cls)})


BYZANTINE_MESSAGE = st.one_of(*(message_strategy(cls) for cls in REPLICA_SIGNED if cls is not Reply))


def signed_by_byzantine(sim: Simulation, message: Message, valid_shares: bool) -> Message:
    crypto = sim.nodes[BYZANTINE].crypto
    assert crypto is not None
    if valid_shares and isinstance(message, PrepareShare):
        vote = prepare_message(message.view, message.seq, message.digest)
        message = dataclasses.replace(message, share=crypto.sign_share(vote), fast_share=crypto.sign_fast_share(vote))
    elif valid_shares and isinstance(message, CommitShare):
        message = dataclasses.replace(message, share=crypto.sign_share(commit_message(message.view, message.seq, message.digest)))
    elif valid_shares and isinstance(message, Checkpoint):
        message = dataclasses.replace(message, share=crypto.sign_share(checkpoint_message(message.seq, message.state_digest)))
    message = dataclasses.replace(message, replica=BYZANTINE)  # type: ignore[call-arg]
    return message.with_sig(crypto.sign(message.signing_payload()))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    st.lists(
        st.tuples(BYZANTINE_MESSAGE, st.sampled_from([1, 2, 3]), st.booleans(), st.sampled_from([0, 1, 2])),
        min_size=1,
        max_size=12,
    )
)
def test_a_byzantine_peer_cannot_crash_break_or_stall_honest_replicas(attack: list[tuple[Message, int, bool, int]]):
    # Given a cluster that has done some work
    sim, checker = cluster()
    sim.run_transactions(WARM_UP, settle_ms=50.0)
    # When n4 sends its nonsense (at three moments: before, during and after new requests)
    for message, target, valid_shares, phase in attack:
        data = signed_by_byzantine(sim, message, valid_shares).encode()
        sim.at(sim.now + 1.0 + 20.0 * phase, lambda s, t=target, d=data: s.send_to_replica(f"n{BYZANTINE}", t, d))
    results = sim.run_transactions(AFTER, stall_timeout_ms=20_000)
    # Then no exception escaped (run_transactions would raise), every invariant held after
    # every message (the checker raises), and the honest replicas still serve clients.
    assert [r.outcome for r in results] == [Outcome.COMMITTED, Outcome.COMMITTED]
    assert checker.checks > 0
