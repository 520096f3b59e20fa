"""The load generator's bookkeeping, without processes: what counts as inside the measured
window, and which replies a closed-loop client may skip decoding."""

from __future__ import annotations

import pytest

from pbft_core.client import Client, Completion
from pbft_core.config import ClusterConfig
from pbft_core.messages import DecodeError, Reply, Request, decode_unpacked, encode, unpack
from pbft_core.runtime.loadgen import LoadOptions, WindowTally
from pbft_core.runtime.pipes import awaited as _awaited
from pbft_core.runtime.simulator import make_crypto
from pbft_core.smallbank_workload import WorkloadSpec

OPTIONS = LoadOptions(ClusterConfig(), WorkloadSpec(), warmup_s=1.0, duration_s=2.0)
REQUEST = Request("c0", 1, "sb_balance", (3,), True)


def completion(latency_ms: float, result: int | str = "ok", *, fell_back: bool = False) -> Completion:
    return Completion(REQUEST, result, latency_ms, 1, fell_back)


def test_only_completions_inside_the_window_count_and_none_is_submitted_after_it():
    tally = WindowTally(OPTIONS)
    assert tally.record("send_payment", completion(5.0), 999.0)  # warm-up: not counted, go on
    assert tally.record("sb_balance", completion(7.0, 2000), 1000.0)  # the window opens
    assert tally.record("write_check", completion(9.0, "failed", fell_back=True), 2999.0)
    assert not tally.record("amalgamate", completion(11.0), 3000.0)  # closed: stop submitting
    assert tally.latencies_ms == [7.0, 9.0]
    assert tally.completed_at_s == [0.0, 1.999]
    assert tally.results == {"read": 1, "failed": 1}
    assert tally.by_op == {"sb_balance": 1, "write_check": 1}
    assert tally.fell_back == 1


def test_the_result_holds_window_differences_of_replicas_that_answered_twice():
    tally = WindowTally(OPTIONS)
    before = {1: {"commits.fast": 10, "cpu_ms": 1000}, 2: {"commits.fast": 10, "cpu_ms": 900}}
    after = {1: {"commits.fast": 25, "cpu_ms": 3500}, 3: {"commits.fast": 40, "cpu_ms": 9000}}
    result = tally.result(before, after, generator_cpu_s=0.5, startup_s=1.0)
    assert result.replica_counters == {1: {"commits.fast": 15, "cpu_ms": 2500}}
    assert result.cpu_s == {"n1": 2.5, "load generator": 0.5}


def _reply(timestamp: int) -> list:
    return unpack(encode(Reply(1, "c0", timestamp, 2, 2000, True)))


def test_a_client_decodes_only_replies_that_may_answer_its_outstanding_request():
    config = ClusterConfig()
    _, client_crypto = make_crypto("sim", 1, config, ["c0"])
    client = Client("c0", config, client_crypto("c0"), first_timestamp=7)
    assert not _awaited(client, _reply(7))  # nothing outstanding
    client.submit("sb_balance", (3,), 0.0, read_only=True)
    assert _awaited(client, _reply(7))
    assert not _awaited(client, _reply(6))  # a late reply to the previous request
    # Too short to hold a timestamp, or not a reply: left to the strict checks, which refuse it.
    assert _awaited(client, [Reply.TAG, 1])
    assert _awaited(client, [Request.TAG, "c0", 6])
    with pytest.raises(DecodeError):
        decode_unpacked([Reply.TAG, 1])
