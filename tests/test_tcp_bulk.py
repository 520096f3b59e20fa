"""The TCP shell's per-message costs cut in bulk: frames split out of whole chunks, a turn's
messages joined in one pass and written by the pump without waking a writer task, the
write-ahead log compacted without decoding every request again, and a client pool's timers left
armed when a reply does not move the deadline.

`FrameSplitter` is checked against the frames that went in, for every way of cutting the stream
into chunks (one byte at a time, across headers, many frames in one chunk), and keeps the limits
`read_frame` has: an oversized header is refused before its body, a body that stops arriving
times out, an EOF inside a frame is an incomplete read. Compaction must keep exactly the rows the
decode-everything classification kept.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from pathlib import Path
from typing import cast

import msgpack
import pytest

from pbft_core.attacks import Attack
from pbft_core.client import ClientReady
from pbft_core.clusterfile import Address, keygen
from pbft_core.config import ClusterConfig
from pbft_core.durable import CorruptLogError, _kind_and_seq, _seq_of, decode_event, encode_event
from pbft_core.ready import DURABLE_EVENTS, NewViewInstalled, ViewEntered
from pbft_core.runtime.framing import (
    HEADER,
    HEADER_SIZE,
    KIND_MESSAGE,
    ROLE_REPLICA,
    FrameSplitter,
    FrameTimeout,
    FrameTooLarge,
    PeerIdentity,
    Session,
    frame,
    join_messages,
    read_frames,
    split_messages,
)
from pbft_core.runtime.simulator import Simulation
from pbft_core.runtime.tcp import ClientPool, limits
from pbft_core.runtime.tcp.links import Connection, Outbox, coalesce
from pbft_core.runtime.tcp_local import free_ports
from tests.support import transfer

# ---- frames split out of chunks --------------------------------------------------------------

BODIES = [b"one", b"", b"three" * 50, bytes(range(256)) * 10, b"x"]
STREAM = b"".join(frame(body) for body in BODIES)


def _chunks(data: bytes, sizes: itertools.cycle[int]) -> list[bytes]:
    out, at = [], 0
    while at < len(data):
        size = next(sizes)
        out.append(data[at : at + size])
        at += size
    return out


@pytest.mark.parametrize("sizes", [[1], [2, 3], [4], [5, 1, 7], [4100], [len(STREAM)], [3, 3000, 1]])
def test_frames_come_out_whole_and_in_order_however_the_stream_is_cut(sizes: list[int]) -> None:
    splitter = FrameSplitter(4096)
    out: list[bytes] = []
    for chunk in _chunks(STREAM, itertools.cycle(sizes)):
        out.extend(splitter.feed(chunk))
    assert out == BODIES
    assert splitter.buffered == 0 and not splitter.awaiting_body


def test_a_chunk_holding_several_frames_and_the_start_of_the_next_returns_the_whole_ones() -> None:
    splitter = FrameSplitter(64)
    tail = frame(b"later")
    assert splitter.feed(frame(b"a") + frame(b"bc") + tail[:6]) == [b"a", b"bc"]
    # The next frame's header is in and two of its five bytes: the body deadline runs.
    assert splitter.awaiting_body and splitter.buffered == 6
    assert splitter.feed(tail[6:]) == [b"later"]
    assert not splitter.awaiting_body and splitter.buffered == 0


def test_half_a_header_is_held_without_a_body_deadline() -> None:
    splitter = FrameSplitter(64)
    assert splitter.feed(b"\x00\x00") == []
    assert not splitter.awaiting_body and splitter.buffered == 2
    assert splitter.feed(b"\x00\x01z") == [b"z"]


def test_an_oversized_header_is_refused_before_its_body_even_after_whole_frames() -> None:
    splitter = FrameSplitter(16)
    with pytest.raises(FrameTooLarge):
        splitter.feed(frame(b"fine") + HEADER.pack(17))
    # Arriving a byte at a time, it is refused with its fourth byte.
    splitter = FrameSplitter(16)
    header = HEADER.pack(2**30)
    for byte in header[:3]:
        assert splitter.feed(bytes([byte])) == []
    with pytest.raises(FrameTooLarge):
        splitter.feed(header[3:])


def _reader(data: bytes, eof: bool = True) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    if eof:
        reader.feed_eof()
    return reader


def test_read_frames_returns_what_arrived_and_ends_like_read_frame() -> None:
    async def go() -> None:
        splitter = FrameSplitter(4096)
        reader = _reader(STREAM + frame(b"cut short")[:7])
        assert await read_frames(reader, splitter, 1.0) == BODIES
        with pytest.raises(asyncio.IncompleteReadError):
            await read_frames(reader, splitter, 1.0)
        with pytest.raises(FrameTooLarge):
            await read_frames(_reader(HEADER.pack(17), eof=False), FrameSplitter(16), 1.0)

    asyncio.run(go())


def test_a_body_that_stops_arriving_times_out_and_half_a_header_does_not() -> None:
    async def go() -> None:
        with pytest.raises(FrameTimeout):
            await read_frames(_reader(HEADER.pack(10) + b"12345", eof=False), FrameSplitter(16), 0.05)
        # Between frames an authenticated peer may be idle: only the caller's own timeout ends it.
        reader = _reader(b"\x00\x00", eof=False)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await read_frames(reader, FrameSplitter(16), 0.05)

    asyncio.run(go())


# ---- the write-ahead log's compaction --------------------------------------------------------


def _durable_rows() -> list[bytes]:
    """Every durable event of a run with a view change (views, NEW-VIEWs, proofs, checkpoints)."""
    sim = Simulation(ClusterConfig(checkpoint_interval=5), seed=31, byzantine={1: (Attack("crash"),)})
    sim.run_transactions([transfer(a, b, 1) for a, b in zip("ABCDEFGHIJ", "BCDEFGHIJA", strict=True)] * 4)
    events = [e for r in range(2, 8) for e in sim.nodes[r].events if isinstance(e, DURABLE_EVENTS)]
    return [encode_event(e) for e in events]


def test_a_row_is_classified_as_its_decoded_event_would_be() -> None:
    rows = _durable_rows()
    kinds = set()
    for row in rows:
        event = decode_event(row)
        kind, seq = _kind_and_seq(row)
        kinds.add(kind)
        assert seq == _seq_of(event)
        assert (kind == "view") == isinstance(event, ViewEntered)
        assert (kind == "newview") == isinstance(event, NewViewInstalled)
    assert {"accepted", "proof", "executed", "view", "newview", "checkpoint"} <= kinds


@pytest.mark.parametrize(
    "row",
    [b"\xc1", msgpack.packb(["accepted", 0, "seven", []]), msgpack.packb(["proof", b"junk"]), msgpack.packb([7])],
)
def test_an_unreadable_row_stops_compaction_as_it_stops_a_restart(row: bytes) -> None:
    with pytest.raises(CorruptLogError):
        _kind_and_seq(row)


# ---- the client pool's timers ----------------------------------------------------------------


def test_a_reply_that_leaves_the_deadline_where_it_was_keeps_the_armed_timer(tmp_path: Path) -> None:
    config = ClusterConfig(f=1)
    addresses = {r: Address("127.0.0.1", p) for r, p in zip(config.replica_ids, free_ports(config.n), strict=True)}
    cluster = keygen(tmp_path / "cluster", config, clients=["A"], addresses=addresses, seed=b"timers")

    async def go() -> list[object]:
        pool = ClientPool(cluster, [cluster.load_secrets("A")])
        pool._loop = asyncio.get_running_loop()  # not started: nothing is dialed or sent
        seen: list[object] = []
        for wake_at_ms in (500.0, 500.0, 900.0, None):
            pool._perform("A", ClientReady(wake_at_ms=wake_at_ms))
            armed = pool._timers.get("A")
            seen.append(armed and (armed[0], armed[1], armed[0].cancelled()))
        return seen

    first, same, moved, none = asyncio.run(go())
    assert first is not None and first[1] == 500.0
    assert same == first  # the same handle, still armed
    assert moved is not None and moved[0] is not first[0] and moved[1] == 900.0 and first[0].cancelled()
    assert none is None


# ---- the writer's one-pass join --------------------------------------------------------------


def test_a_turn_of_messages_only_is_one_b_payload_byte_for_byte_as_join_messages_builds_it() -> None:
    messages = [b"a", b"bc" * 100, bytes(3000)]
    payloads = [KIND_MESSAGE + m for m in messages]
    joined = join_messages(messages)
    assert coalesce(payloads, len(joined)) == [joined]
    assert [bytes(m) for m in split_messages(joined)] == messages
    # One byte less and the run is cut where `batch_messages` cuts it.
    cut = coalesce(payloads, len(joined) - 1)
    assert len(cut) == 2 and [bytes(m) for p in cut for m in _messages_of(p)] == messages


def _messages_of(payload: bytes) -> list[bytes]:
    return [payload[1:]] if payload[:1] == KIND_MESSAGE else [bytes(m) for m in split_messages(payload)]


# ---- direct writes without writer wake-ups ---------------------------------------------------


class _Transport:
    def __init__(self, buffered: int) -> None:
        self.buffered = buffered

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return self.buffered


class _Writer:
    def __init__(self, buffered: int) -> None:
        self.transport = _Transport(buffered)
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)


def _direct_connection(buffered: int) -> tuple[Connection, _Writer]:
    key = bytes(32)
    writer = _Writer(buffered)
    outbox = Outbox(Counter(), "out.test", wake_writer=False)
    connection = Connection(
        cast(asyncio.StreamReader, None), cast(asyncio.StreamWriter, writer), Session(key, key),
        PeerIdentity(ROLE_REPLICA, ("n2",)), outbox,
    )  # fmt: skip
    return connection, writer


def test_what_the_pump_queues_wakes_no_writer_and_leaves_in_one_write() -> None:
    async def go() -> tuple[bool, bool, list[bytes], bool]:
        connection, writer = _direct_connection(buffered=0)
        connection.send(KIND_MESSAGE + b"one")
        connection.send(KIND_MESSAGE + b"two")
        woken = connection.outbox.ready.is_set()
        return woken, connection.write_now(), writer.written, connection.outbox.ready.is_set()

    woken, wrote, written, woken_after = asyncio.run(go())
    assert not woken and wrote and not woken_after
    assert len(written) == 1
    key = bytes(32)
    body = Session(key, key).open(written[0][HEADER_SIZE:])
    assert [bytes(m) for m in split_messages(body)] == [b"one", b"two"]


def test_a_backed_up_peer_gets_what_is_queued_from_the_writer_task_instead() -> None:
    async def go() -> tuple[bool, list[bytes], bool, int]:
        connection, writer = _direct_connection(buffered=limits.DIRECT_WRITE_BUFFERED_MAX + 1)
        connection.send(KIND_MESSAGE + b"one")
        return connection.write_now(), writer.written, connection.outbox.ready.is_set(), len(connection.outbox)

    wrote, written, handed_over, queued = asyncio.run(go())
    assert not wrote and written == [] and handed_over and queued == 1
