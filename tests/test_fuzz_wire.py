"""Fuzzing the wire codec: whatever bytes arrive, `decode` yields a valid message or raises
`DecodeError` — never any other exception — and every message it yields re-encodes canonically.

Inputs: arbitrary bytes; every message type with arbitrary well-typed fields; valid encodings
with bytes flipped, cut, inserted or spliced; and valid encodings whose msgpack structure had one
element replaced by a value of another type.
"""

from __future__ import annotations

import dataclasses
import typing
from types import UnionType
from typing import Any

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pbft_core.messages import (
    INT_MAX,
    INT_MIN,
    MESSAGE_TYPES,
    STR_FIELD_MAX,
    DecodeError,
    Message,
    decode,
    encode,
)

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NESTING_MAX = 2


def field_strategy(tp: Any, depth: int, sizes: tuple[int, ...] | None = None) -> st.SearchStrategy[Any]:
    """Any value of type `tp` the codec accepts (ints in range, short strings, bytes of the
    field's fixed sizes)."""
    if tp is bool:
        return st.booleans()
    if tp is int:
        return st.one_of(st.integers(0, 20), st.integers(INT_MIN, INT_MAX))
    if tp is str:
        return st.one_of(st.sampled_from(["A", "B", "transfer", "balance"]), st.text(max_size=STR_FIELD_MAX))
    if tp is bytes:
        if sizes is not None:
            return st.sampled_from(sizes).flatmap(lambda size: st.binary(min_size=size, max_size=size))
        return st.one_of(st.binary(max_size=8), st.binary(min_size=32, max_size=32), st.binary(min_size=96, max_size=96))
    origin = typing.get_origin(tp)
    if origin is tuple:
        item = field_strategy(typing.get_args(tp)[0], depth + 1, sizes)
        return st.lists(item, max_size=0 if depth >= NESTING_MAX else 3).map(tuple)
    if origin in (typing.Union, UnionType):
        options = typing.get_args(tp)
        inner = [field_strategy(o, depth) for o in options if o is not type(None)]
        return st.one_of(*([st.none()] if type(None) in options else []), *inner)
    if isinstance(tp, type) and issubclass(tp, Message):
        return message_strategy(tp, depth + 1)
    raise TypeError(f"no strategy for {tp!r}")


def message_strategy(cls: type[Message], depth: int = 0) -> st.SearchStrategy[Message]:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    return st.builds(cls, **{name: field_strategy(hints[name], depth, cls.SIZES.get(name)) for name in names})


ANY_MESSAGE = st.one_of(*(message_strategy(cls) for cls in MESSAGE_TYPES.values()))


def decodes_cleanly(data: bytes) -> Message | None:
    """The property: a message (that re-encodes to itself) or DecodeError; nothing else."""
    try:
        message = decode(data)
    except DecodeError:
        return None
    assert isinstance(message, Message)
    again = encode(message)
    assert decode(again) == message
    return message


@FUZZ
@given(st.binary(max_size=512))
def test_arbitrary_bytes_decode_to_a_message_or_a_decode_error(data: bytes):
    decodes_cleanly(data)


@FUZZ
@given(ANY_MESSAGE)
def test_every_well_typed_message_round_trips_to_identical_bytes(message: Message):
    data = encode(message)
    assert decode(data) == message
    assert encode(decode(data)) == data


@st.composite
def damaged(draw: st.DrawFn) -> bytes:
    data = bytearray(encode(draw(ANY_MESSAGE)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "splice"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "cut":
            del data[at : at + draw(st.integers(1, 16))]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:
            data[at:] = encode(draw(ANY_MESSAGE))[at:]
    return bytes(data)


@FUZZ
@given(damaged())
def test_damaged_valid_messages_decode_to_a_message_or_a_decode_error(data: bytes):
    decodes_cleanly(data)


PACKABLE_INTS = st.integers(-(2**63), 2**64 - 1)
OTHER_VALUES = st.one_of(
    st.none(), st.booleans(), PACKABLE_INTS, st.floats(), st.text(max_size=80), st.binary(max_size=40),
    st.lists(PACKABLE_INTS, max_size=3), st.dictionaries(st.text(max_size=3), PACKABLE_INTS, max_size=2),
)


@st.composite
def retyped(draw: st.DrawFn) -> bytes:
    """A valid message's msgpack tree with one node (not the tag) replaced by another value."""
    tree = msgpack.unpackb(encode(draw(ANY_MESSAGE)), raw=False)
    paths: list[tuple[int, ...]] = []

    def walk(node: Any, path: tuple[int, ...]) -> None:
        if isinstance(node, list):
            for i, child in enumerate(node):
                if path or i:  # keep the tag: retyping it is the arbitrary-bytes case
                    paths.append((*path, i))
                walk(child, (*path, i))

    walk(tree, ())
    if paths:
        *parent_path, index = draw(st.sampled_from(paths))
        parent = tree
        for i in parent_path:
            parent = parent[i]
        parent[index] = draw(OTHER_VALUES)
    return msgpack.packb(tree, use_bin_type=True)


@FUZZ
@given(retyped())
def test_messages_with_a_field_of_the_wrong_type_decode_to_a_message_or_a_decode_error(data: bytes):
    decodes_cleanly(data)
