"""The wire codec: one canonical encoding, strict decoding, domain-separated signatures."""

from __future__ import annotations

import dataclasses
import re

import msgpack
import pytest

from pbft_core.messages import (
    MESSAGE_TYPES,
    Ask,
    CheckpointProof,
    DecodeError,
    NewView,
    PrepareShare,
    PrePrepare,
    PrePrepared,
    Proof,
    Proposal,
    Reply,
    Request,
    Status,
    ViewChange,
    batch_digest,
    decode,
    encode,
    request_bytes,
)

REQUEST = Request("A", 7, "transfer", ("A", "B", 3), False, b"s" * 64)
BATCH = (REQUEST, Request("B", 1, "balance", ("B",), False, b"t" * 64))
SAMPLES = [
    REQUEST,
    Reply(2, "A", 7, 3, "ok", False, 0, (), b"r" * 64),
    Reply(2, "A", 7, 3, 14, True, 1, (b"h" * 32,), b"r" * 64),
    PrePrepare(1, 5, batch_digest(BATCH), BATCH, 1, Ask.FAST, b"p" * 64),
    PrepareShare(1, 5, b"d" * 32, b"x" * 106, b"y" * 106, 4, b"q" * 64),
    ViewChange(
        3,
        CheckpointProof(10, b"h" * 32, b"c" * 96),
        (Proof(2, 11, BATCH, 0, b"c" * 96),),
        (PrePrepared(2, 12, ()),),
        5,
        b"v" * 64,
    ),
    NewView(3, (), (Proposal(11, BATCH), Proposal(12, ())), 3, b"n" * 64),
    Status(1, 0, 0, 2, b"z" * 64),
]


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: type(m).__name__)
def test_every_message_round_trips_to_an_equal_message_and_identical_bytes(message):
    data = encode(message)
    assert decode(data) == message
    assert encode(decode(data)) == data


def test_every_message_type_has_a_unique_tag():
    assert len(MESSAGE_TYPES) == len({cls.__name__ for cls in MESSAGE_TYPES.values()})


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",
        msgpack.packb({"tag": 1}),
        msgpack.packb([]),
        msgpack.packb([999]),
        msgpack.packb([1, "A", 7]),  # too few fields
        msgpack.packb([1, "A", "7", "transfer", ["A", "B", 3], False, b""]),  # str for int
        msgpack.packb([1, "A", 7, "transfer", ["A", "B", 3.5], False, b""]),  # float arg
        msgpack.packb([1, "A" * 65, 7, "transfer", [], False, b""]),  # oversized name
        msgpack.packb([1, "A", -(2**63) - 1 + 1, "transfer", [], False, b""])[:-1],
        encode(REQUEST)[:-5],
        encode(REQUEST) + b"\x00",
        b"\x91" * 100_000,  # deeply nested arrays
    ],
)
def test_malformed_bytes_are_rejected_with_decode_error_only(data):
    with pytest.raises(DecodeError):
        decode(data)


def test_oversized_messages_are_rejected_before_parsing():
    with pytest.raises(DecodeError):
        decode(b"\x00" * (9 * 1024 * 1024))


def test_signing_payloads_are_domain_separated_by_type_and_fields():
    share = PrepareShare(1, 5, b"d" * 32, b"x" * 96, b"", 4)
    assert share.signing_payload().startswith(b"pbft/v1/PrepareShare/")
    assert share.signing_payload() != PrepareShare(2, 5, b"d" * 32, b"x" * 96, b"", 4).signing_payload()
    # The signature itself is never part of what is signed.
    assert share.signing_payload() == share.with_sig(b"\x01" * 64).signing_payload()


def test_a_batch_digest_commits_to_order_and_content():
    assert batch_digest(BATCH) != batch_digest(tuple(reversed(BATCH)))
    assert batch_digest(()) != batch_digest((REQUEST,))


def _request_wire(args: list) -> list:
    return ["A", 7, "transfer", args, False, b"s" * 64]


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (["A", True], "Request.args: expected short str"),  # a bool is not an int here
        (["A", 1.5], "Request.args: expected short str"),
        (["A", "x" * 65], "Request.args: expected short str"),
        (["A", [1]], "Request.args: expected short str"),
        ("AB", "Request.args: expected array"),
    ],
)
def test_a_request_argument_of_the_wrong_kind_is_refused_inside_a_batch_too(args, why):
    alone = msgpack.packb([Request.TAG, *_request_wire(args)], use_bin_type=True)
    with pytest.raises(DecodeError, match=f"^{re.escape(why)}"):
        decode(alone)
    batch = [_request_wire(["A", "B", 3]), _request_wire(args)]
    pre_prepare = msgpack.packb([PrePrepare.TAG, 1, 5, b"d" * 32, batch, 1, Ask.BOTH, b"p" * 64], use_bin_type=True)
    with pytest.raises(DecodeError, match=f"^PrePrepare\\.batch: {re.escape(why)}"):
        decode(pre_prepare)


def test_a_merkle_path_holds_bytes_only():
    wire = [Reply.TAG, 2, "A", 7, 3, "ok", False, 0, [b"h" * 32, "h"], b"r" * 64]
    with pytest.raises(DecodeError, match=r"^Reply\.path: expected bytes"):
        decode(msgpack.packb(wire, use_bin_type=True))


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: type(m).__name__)
def test_signing_gives_the_same_message_and_encoding_as_building_it_signed(message):
    unsigned = dataclasses.replace(message, sig=b"")
    payload = unsigned.signing_payload()  # caches the unsigned wire form, which signing reuses
    signed = unsigned.with_sig(message.sig)
    assert signed == message and hash(signed) == hash(message)
    assert encode(signed) == encode(message)
    assert signed.signing_payload() == payload == message.signing_payload()
    assert unsigned.sig == b""  # the unsigned message is left as it was


def test_messages_stay_frozen_and_keep_their_defaults():
    request = Request("A", 1, "balance", ("A",), True)
    assert request.sig == b""
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.timestamp = 2  # type: ignore[misc]


def test_a_request_s_size_is_its_encoding_s_and_signing_it_does_not_carry_the_unsigned_size_over():
    unsigned = dataclasses.replace(REQUEST, sig=b"")
    assert request_bytes(unsigned) == len(msgpack.packb(msgpack.unpackb(encode(unsigned))[1:], use_bin_type=True))
    signed = unsigned.with_sig(b"s" * 64)
    assert request_bytes(signed) == request_bytes(unsigned) + 64  # a 64-byte bin instead of an empty one
    assert request_bytes(signed) == request_bytes(REQUEST)
