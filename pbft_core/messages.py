"""Protocol messages and their one canonical encoding.

Every message is a frozen dataclass. On the wire it is a msgpack array ``[tag, field, ...]`` in
field-declaration order; nested messages are nested arrays without a tag. Decoding is strict: the
array must have exactly the declared fields with the declared types and within the declared
limits, or `DecodeError` is raised. Nothing else (no pickle, no maps, no extension types) is ever
accepted from a peer.

Signed messages end with a ``sig`` field. What is signed is `signing_payload`: a domain tag
(``pbft/v1/<MessageName>``) followed by the canonical encoding of the message with ``sig``
emptied, so a signature over one message type, view, sequence number or digest can never be
replayed as another.
"""

from __future__ import annotations

import hashlib
import typing
from dataclasses import MISSING, dataclass, fields
from types import UnionType
from typing import Any, ClassVar, get_args, get_origin

import msgpack

from . import merkle, multisig

MESSAGE_SIZE_MAX = 8 * 1024 * 1024
# Fixed-size fields are checked to the byte when decoding, so no digest, signature, share or
# certificate from a peer can be larger (or smaller) than the real thing: buffers that hold them
# (early certificates, checkpoint votes, collected shares) are then bounded in bytes by their
# count, and no crypto wrapper ever sees a share where a certificate belongs.
DIGEST_SIZE = 32  # SHA-256
SIG_SIZE = 64  # Ed25519
CERT_SIZE = 96  # a BLS12-381 G2 point: every BLS certificate, whatever n and t
SHARE_SIZE = 106  # a BLS threshold share: signer index (2), group fingerprint (8), G2 point (96)
# What a certificate or share field may hold under either certificate scheme (`crypto`): a BLS
# point, or (``ed25519``) one Ed25519 signature per share and 65 bytes per signer of a
# certificate, for 1..multisig.SIGNERS_MAX signers. The lengths never overlap, so a wrapper of
# one scheme rejects the other's by size; which k a certificate must have is the crypto's check.
CERTIFICATE_SIZES = (CERT_SIZE, *multisig.CERTIFICATE_SIZES)
SHARE_SIZES = (SHARE_SIZE, multisig.SIGNATURE_SIZE)
# A client request's arguments: the largest operation (SmallBank's SendPayment) takes 3; with
# strings capped at STR_FIELD_MAX this bounds an encoded request to well under a kilobyte.
REQUEST_ARGS_MAX = 8
# A Merkle path for a batch of up to 2**32 replies.
MERKLE_PATH_MAX = 32
# One bytes field of a peer message (a state snapshot is the only large one): everything but
# the envelope of its frame.
BYTES_FIELD_MAX = MESSAGE_SIZE_MAX - 64 * 1024
STR_FIELD_MAX = 64
TUPLE_ITEMS_MAX = 10_000
INT_MIN, INT_MAX = -(2**63), 2**64 - 1

Result = int | str
Arg = int | str


class DecodeError(ValueError):
    """Bytes from a peer that are not exactly one well-formed message."""


@dataclass(frozen=True)
class Message:
    TAG: ClassVar[int] = 0
    # bytes field -> the lengths it may have on the wire (for a tuple of bytes: each item's).
    SIZES: ClassVar[dict[str, tuple[int, ...]]] = {}
    # tuple field -> the most items it may have on the wire (else TUPLE_ITEMS_MAX).
    ITEMS_MAX: ClassVar[dict[str, int]] = {}

    def encode(self) -> bytes:
        return encode(self)

    def signing_payload(self) -> bytes:
        wire = _to_wire(self)
        if _SIGNED[type(self)]:
            wire = [*wire[:-1], b""]  # ``sig`` is always the last field
        return _DOMAINS[type(self)] + _pack(wire)

    def with_sig(self, sig: bytes) -> typing.Self:
        """The same message signed. Built as the decoders build messages (every field is the
        checked value it was), not through ``dataclasses.replace``, which was the costliest step
        of signing a request after the signature itself; the wire form carries over."""
        assert _SIGNED[type(self)]
        signed = object.__new__(type(self))
        values = dict(self.__dict__)
        values.pop("_size", None)  # `request_bytes` of the unsigned message
        values["sig"] = sig
        wire = values.get("_wire")
        if wire is not None:
            values["_wire"] = [*wire[:-1], sig]  # ``sig`` is always the last field
        signed.__dict__.update(values)
        return signed


# ---- client-facing --------------------------------------------------------------------------


@dataclass(frozen=True)
class Request(Message):
    """A client operation. ``read_only`` requests are answered unordered (never executed)."""

    TAG: ClassVar[int] = 1
    SIZES: ClassVar[dict[str, tuple[int, ...]]] = {"sig": (SIG_SIZE,)}
    ITEMS_MAX: ClassVar[dict[str, int]] = {"args": REQUEST_ARGS_MAX}
    client: str
    timestamp: int
    op: str
    args: tuple[Arg, ...]
    read_only: bool
    sig: bytes = b""

    @property
    def key(self) -> tuple[str, int]:
        return (self.client, self.timestamp)


@dataclass(frozen=True)
class Reply(Message):
    """A replica's answer. Replies to one executed batch share one signature over the Merkle
    root of all of them (see `merkle`); ``index`` and ``path`` lead from this reply to it."""

    TAG: ClassVar[int] = 2
    SIZES: ClassVar[dict[str, tuple[int, ...]]] = {"path": (DIGEST_SIZE,), "sig": (SIG_SIZE,)}
    ITEMS_MAX: ClassVar[dict[str, int]] = {"path": MERKLE_PATH_MAX}
    view: int
    client: str
    timestamp: int
    replica: int
    result: Result
    read_only: bool
    index: int = 0
    path: tuple[bytes, ...] = ()
    sig: bytes = b""

    def leaf(self) -> bytes:
        return self.leaf_of(self.view, self.client, self.timestamp, self.replica, self.result, self.read_only)

    @staticmethod
    def leaf_of(view: int, client: str, timestamp: int, replica: int, result: Result, read_only: bool) -> bytes:
        return merkle.leaf_hash(_pack([view, client, timestamp, replica, result, read_only]))

    def signed_root(self) -> bytes | None:
        """What ``sig`` must sign for this reply to be authentic (None: malformed path)."""
        root = merkle.root_from_path(self.leaf(), self.index, self.path)
        return None if root is None else reply_root_payload(root)


def reply_root_payload(root: bytes) -> bytes:
    return b"pbft/v1/ReplyRoot/" + root


# ---- normal case (linear: backups talk to the collector, the collector to everyone) ---------


@dataclass(frozen=True)
class PrePrepare(Message):
    TAG: ClassVar[int] = 3
    SIZES: ClassVar[dict[str, tuple[int, ...]]] = {"digest": (DIGEST_SIZE,), "sig": (SIG_SIZE,)}
    view: int
    seq: int
    digest: bytes
    batch: tuple[Request, ...]
    replica: int
    ask: int = 1  # which prepare shares the leader asks for (`Ask`)
    sig: bytes = b""


class Ask:
    """Which prepare shares a PRE-PREPARE asks for (plain ints on the wire, as `ProofKind`)."""

    SLOW = 0  # the 2f+1 share: the collector will not wait for all n
    BOTH = 1  # both: it waits for all n, and falls back at once when they do not come
    FAST = 2  # the n-of-n share alone: the fast path has been working; a miss costs SLOW-PATH
    ALL = (SLOW, BOTH, FAST)


@dataclass(frozen=True)
class PrepareShare(Message):
    """A backup's vote for (prepare, v, s, d): the shares its PRE-PREPARE asked for (`Ask`),
    the 2f+1 `share` and/or the n-of-n `fast_share`, each empty when not asked for; after a
    SLOW-PATH, the 2f+1 share alone."""

    TAG: ClassVar[int] = 4
    SIZES: ClassVar[dict[str, tuple[int, ...]]] = {
        "digest": (DIGEST_SIZE,), "share": (0, *SHARE_SIZES), "fast_share": (0, *SHARE_SIZES), "sig": (SIG_SIZE,)
    }
    view: int
    seq: int
    digest: bytes
    share: bytes
    fast_share: bytes
    replica: int
    sig: bytes = b""


@dataclass(frozen=True)
class SlowPath(Message):
    """The collector gave up waiting for all n fast shares of (v, s, d): backups that voted
    with a fast share alone now send their 2f+1 share (`PrepareShare`)."""

    TAG: ClassVar[int] = 20
    SIZES: ClassVar[dict[str, tuple[int, ...]]] = {"digest": (DIGEST_SIZE,), "sig": (SIG_SIZE,)}
    view: int
    seq: int
    digest: bytes
    replica: int
    sig: bytes = b""


@dataclass(frozen=True)
class PrepareCertificate(Message):
    """2f+1 prepare shares made one certificate (a threshold signature, or the 2f+1 signatures)."""

    TAG: ClassVar[int] = 5
    SIZES: ClassVar[dict[str, tuple[int, ...]]] = {"digest": (DIGEST_SIZE,), "certificate": CERTIFICATE_SIZES, "sig": (SIG_SIZE,)}
    view: int
    seq: int
    digest: bytes
    certificate: bytes
    replica: int
    sig: bytes = b""


@dataclass(frozen=True)
class CommitShare(Message):
    TAG: ClassVar[int] = 6
    SIZES: ClassVar[dict[str, tuple[int, ...]]] = {"digest": (DIGEST_SIZE,), "share": SHARE_SIZES, "sig": (SIG_SIZE,)}
    view: int
    seq: int
    digest: bytes
    share: bytes
    replica: int
    sig: bytes = b""


@dataclass(frozen=True)
class CommitCertificate(Message):
    TAG: ClassVar[int] = 7
    SIZES: ClassVar[dict[str, tuple[int, ...]]] = {"digest": (DIGEST_SIZE,), "certificate": CERTIFICATE_SIZES, "sig": (SIG_SIZE,)}
    view: int
    seq: int
    digest: bytes
    certificate: bytes
    replica: int
    sig: bytes = b""


@dataclass(frozen=True)
class FastCommit(Message):
    """All n fast-path shares made one certificate (summed, or side by side): proof that every
    replica accepted (v, s, d).

    It implies a prepare certificate (n > 2f+1), so a fast-committed replica is also prepared.
    """

    TAG: ClassVar[int] = 8
    SIZES: ClassVar[dict[str, tuple[int, ...]]] = {"digest": (DIGEST_SIZE,), "aggregate": CERTIFICATE_SIZES, "sig": (SIG_SIZE,)}
    view: int
    seq: int
    digest: bytes
    aggregate: bytes
    replica: int
    sig: bytes = b""


# ---- checkpoints, catch-up ------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint(Message):
    TAG: ClassVar[int] = 9
    SIZES: ClassVar[dict[str, tuple[int, ...]]] = {
        "state_digest": (DIGEST_SIZE,), "share": SHARE_SIZES, "sig": (SIG_SIZE,)
    }
    seq: int
    state_digest: bytes
    share: bytes
    replica: int
    sig: bytes = b""


@dataclass(frozen=True)
class CheckpointProof(Message):
    """A stable checkpoint: 2f+1 checkpoint shares over (checkpoint, s, state digest) combined."""

    TAG: ClassVar[int] = 10
    SIZES: ClassVar[dict[str, tuple[int, ...]]] = {"state_digest": (DIGEST_SIZE,), "certificate": CERTIFICATE_SIZES}
    seq: int
    state_digest: bytes
    certificate: bytes


@dataclass(frozen=True)
class Status(Message):
    """Periodic progress gossip; a replica that sees a peer ahead fetches what it missed."""

    TAG: ClassVar[int] = 11
    SIZES: ClassVar[dict[str, tuple[int, ...]]] = {"sig": (SIG_SIZE,)}
    view: int
    last_executed: int
    stable_seq: int
    replica: int
    sig: bytes = b""


@dataclass(frozen=True)
class Fetch(Message):
    TAG: ClassVar[int] = 12
    SIZES: ClassVar[dict[str, tuple[int, ...]]] = {"sig": (SIG_SIZE,)}
    after_seq: int
    replica: int
    sig: bytes = b""


class ProofKind:
    """What the certificate of a `Proof` is: each is checked against its own key and message."""

    PREPARE = 0  # 2f+1 threshold signature over (prepare, v, s, d): prepared
    FAST = 1  # n-of-n aggregate over (prepare, v, s, d): prepared and committed
    COMMIT = 2  # 2f+1 threshold signature over (commit, v, s, d): committed (so also prepared)
    ALL = (PREPARE, FAST, COMMIT)
    COMMITTED = (FAST, COMMIT)


@dataclass(frozen=True)
class Proof(Message):
    """A batch with the certificate that proves it prepared or committed at (view, seq)."""

    TAG: ClassVar[int] = 13
    SIZES: ClassVar[dict[str, tuple[int, ...]]] = {"certificate": CERTIFICATE_SIZES}
    view: int
    seq: int
    batch: tuple[Request, ...]
    kind: int
    certificate: bytes


@dataclass(frozen=True)
class CatchUp(Message):
    """Answer to `Fetch`: a certified snapshot if the asker is below our stable checkpoint,
    then the committed entries above it."""

    TAG: ClassVar[int] = 14
    SIZES: ClassVar[dict[str, tuple[int, ...]]] = {"sig": (SIG_SIZE,)}
    checkpoint: CheckpointProof | None
    snapshot: bytes
    entries: tuple[Proof, ...]
    replica: int
    sig: bytes = b""


# ---- view change ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PrePrepared(Message):
    """The latest pre-prepare a replica accepted (and signed a share for) at seq."""

    TAG: ClassVar[int] = 16
    view: int
    seq: int
    batch: tuple[Request, ...]


@dataclass(frozen=True)
class ViewChange(Message):
    TAG: ClassVar[int] = 17
    SIZES: ClassVar[dict[str, tuple[int, ...]]] = {"sig": (SIG_SIZE,)}
    new_view: int
    checkpoint: CheckpointProof | None
    prepared: tuple[Proof, ...]
    preprepared: tuple[PrePrepared, ...]
    replica: int
    sig: bytes = b""


@dataclass(frozen=True)
class Proposal(Message):
    """One element of a NEW-VIEW's O: the batch re-proposed at seq (empty = no-op)."""

    TAG: ClassVar[int] = 18
    seq: int
    batch: tuple[Request, ...]


@dataclass(frozen=True)
class NewView(Message):
    TAG: ClassVar[int] = 19
    SIZES: ClassVar[dict[str, tuple[int, ...]]] = {"sig": (SIG_SIZE,)}
    view: int
    view_changes: tuple[ViewChange, ...]
    proposals: tuple[Proposal, ...]
    replica: int
    sig: bytes = b""


# ---- codec ----------------------------------------------------------------------------------

MESSAGE_TYPES: dict[int, type[Message]] = {}
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}
_WIRE_KINDS: dict[type, tuple[tuple[str, int], ...]] = {}
_WIRE_BUILDERS: dict[type, typing.Callable[[dict[str, Any]], list[Any]]] = {}
_CLASS_DECODERS: dict[type, typing.Callable[[Any], Message]] = {}
_SIGNED: dict[type, bool] = {}
_DOMAINS: dict[type, bytes] = {}


def batch_encoding(batch: tuple[Request, ...]) -> bytes:
    """The batch as it travels inside a PRE-PREPARE or a VIEW-CHANGE; what its digest hashes."""
    return _pack([_to_wire(r) for r in batch])


def batch_digest(batch: tuple[Request, ...], encoded: bytes | None = None) -> bytes:
    return hashlib.sha256(encoded if encoded is not None else batch_encoding(batch)).digest()


def batch_bytes(batch: tuple[Request, ...]) -> int:
    """The encoded size of a batch, as it travels inside a PRE-PREPARE or a VIEW-CHANGE."""
    return len(batch_encoding(batch))


def request_bytes(request: Request) -> int:
    """The encoded size of one request inside a batch, computed once per request object (as
    `_to_wire`): a leader asks it of every request three times (the budget check on arrival,
    the proposal queue, the batch it goes into)."""
    values = request.__dict__
    size = values.get("_size")
    if size is None:
        size = values["_size"] = len(_pack(_to_wire(request)))
    return size


def request_digest(request: Request) -> bytes:
    return hashlib.sha256(_pack(_to_wire(request))).digest()


def encode(message: Message) -> bytes:
    return _pack([message.TAG, *_to_wire(message)])


def decode(data: bytes) -> Message:
    """Decode one message from a peer, or raise `DecodeError` (never anything else)."""
    return decode_unpacked(unpack(data))


def unpack(data: bytes) -> list[Any]:
    """The first, structural half of `decode`: a tagged msgpack array within the limits, not yet
    checked field by field (a shell may look at a field before paying for the rest)."""
    if not isinstance(data, bytes | bytearray | memoryview) or len(data) > MESSAGE_SIZE_MAX:
        raise DecodeError("message too large or not bytes")
    try:
        obj = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            use_list=True,
            max_bin_len=BYTES_FIELD_MAX,
            max_str_len=BYTES_FIELD_MAX,
            max_array_len=TUPLE_ITEMS_MAX,
            max_map_len=0,
            max_ext_len=0,
        )
    except DecodeError:
        raise
    except Exception as exc:  # msgpack raises many unrelated types on garbage
        raise DecodeError(f"not msgpack: {type(exc).__name__}") from None
    if not isinstance(obj, list) or not obj or type(obj[0]) is not int:
        raise DecodeError("not a tagged message array")
    return obj


def decode_unpacked(obj: list[Any]) -> Message:
    """The second half of `decode`, for what `unpack` returned: every field checked."""
    cls = MESSAGE_TYPES.get(obj[0])
    if cls is None:
        raise DecodeError(f"unknown message tag {obj[0]}")
    try:
        return _from_wire(cls, obj[1:])
    except RecursionError:
        raise DecodeError("message nested too deeply") from None


def _pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def _to_wire(message: Message) -> list[Any]:
    """The message as a msgpack-ready list, computed once per message object.

    Messages are immutable, and one is encoded several times (to sign it, to send it, to hash
    the batch it is in), so the list is cached on the object. It must never be mutated.
    """
    values = message.__dict__
    cached = values.get("_wire")
    if cached is None:
        cached = values["_wire"] = _WIRE_BUILDERS[type(message)](values)
    return cached


def _compile_wire_builder(cls: type[Message]) -> typing.Callable[[dict[str, Any]], list[Any]]:
    """A straight-line builder of `cls`'s wire list from its field values, generated once.

    Scalars and tuples of scalars go to msgpack as they are (a tuple packs as an array); only
    nested messages need converting (see `_WIRE_KINDS`). A batch's replies are encoded one by
    one at every replica, so the generic loop over fields showed in profiles.
    """
    items = []
    for name, kind in _WIRE_KINDS[cls]:
        value = f"v[{name!r}]"
        if kind == _NESTED:
            items.append(f"None if {value} is None else to_wire({value})")
        elif kind == _NESTED_TUPLE:
            items.append(f"[to_wire(x) for x in {value}]")
        else:
            items.append(value)
    namespace: dict[str, Any] = {"to_wire": _to_wire}
    source = f"def build(v):\n    return [{', '.join(items)}]"
    exec(source, namespace)  # generated from the dataclass fields, nothing else
    build: typing.Callable[[dict[str, Any]], list[Any]] = namespace["build"]
    return build


_PLAIN, _NESTED, _NESTED_TUPLE = 0, 1, 2


def _wire_kind(tp: Any) -> int:
    """How a field of type `tp` becomes msgpack-ready: as is, or by converting messages in it."""
    if isinstance(tp, type) and issubclass(tp, Message):
        return _NESTED
    origin = get_origin(tp)
    if origin is tuple:
        if _wire_kind(get_args(tp)[0]) == _PLAIN:
            return _PLAIN
        assert _wire_kind(get_args(tp)[0]) == _NESTED, f"unsupported field type {tp!r}"
        return _NESTED_TUPLE
    if origin in (typing.Union, UnionType):
        kinds = {_wire_kind(o) for o in get_args(tp) if o is not type(None)}
        assert len(kinds) == 1 and _NESTED_TUPLE not in kinds, f"unsupported field type {tp!r}"
        return kinds.pop()
    return _PLAIN


def _from_wire(cls: type[Message], values: Any) -> Any:
    return _CLASS_DECODERS[cls](values)


# The inlined form of `_decoder_for`'s scalar checks: when a value is rejected, and why.
_SCALAR_CHECKS: dict[type, tuple[str, str]] = {
    int: ("type({v}) is not int or not INT_MIN <= {v} <= INT_MAX", "int"),
    bool: ("type({v}) is not bool", "bool"),
    bytes: ("type({v}) is not bytes", "bytes"),
    str: ("type({v}) is not str or len({v}) > STR_MAX", "short str"),
}


def _compile_decoder(cls: type[Message]) -> typing.Callable[[Any], Message]:
    """A straight-line decoder for `cls`, generated once (as dataclasses generate ``__init__``).

    Scalars, and tuples of scalars (a request's arguments, a Merkle path), are checked in line;
    a tuple of messages (a batch, a list of proofs) goes item by item to that class's own
    compiled decoder; what is left (an optional nested message, a result that is an int or a
    str) to the field decoder of `_decoder_for`. The message is built without the frozen
    dataclass's ``__init__`` (its fields are exactly the checked values). Decoding showed in
    every replica's profile, since each request is decoded by every replica inside its batch.
    """
    name = cls.__name__
    names = _FIELD_NAMES[cls]
    namespace: dict[str, Any] = {
        "DecodeError": DecodeError, "cls": cls, "new": object.__new__, "INT_MIN": INT_MIN,
        "INT_MAX": INT_MAX, "STR_MAX": STR_FIELD_MAX, "CLASS_DECODERS": _CLASS_DECODERS,
    }
    hints = typing.get_type_hints(cls)
    lines = [
        "def decode_fields(values):",
        f"    if type(values) is not list or len(values) != {len(names)}:",
        f"        raise DecodeError('{name}: expected {len(names)} fields')",
    ]
    for i, field_name in enumerate(names):
        where = f"{name}.{field_name}"
        tp = hints[field_name]
        lines.append(f"    v{i} = values[{i}]")
        item = get_args(tp)[0] if get_origin(tp) is tuple else None
        sizes = cls.SIZES.get(field_name)
        items_max = cls.ITEMS_MAX.get(field_name)
        if tp in _SCALAR_CHECKS:
            rejected, expected = _SCALAR_CHECKS[tp]
            lines.append(f"    if {rejected.format(v=f'v{i}')}:")
            lines.append(f"        raise DecodeError('{where}: expected {expected}')")
            if sizes is not None:
                assert tp is bytes, f"{where}: sizes are for bytes fields"
                namespace[f"sizes{i}"] = frozenset(sizes)
                lines.append(f"    if len(v{i}) not in sizes{i}:")
                lines.append(f"        raise DecodeError('{where}: expected {_sizes_text(sizes)} bytes')")
        elif item in _SCALAR_CHECKS or item == Arg:
            lines.append(f"    if type(v{i}) is not list:")
            lines.append(f"        raise DecodeError('{where}: expected array')")
            if items_max is not None:
                lines.append(f"    if len(v{i}) > {items_max}:")
                lines.append(f"        raise DecodeError('{where}: more than {items_max} items')")
            lines.append(f"    for x in v{i}:")
            if item == Arg:  # int | str
                int_rejected, _ = _SCALAR_CHECKS[int]
                str_rejected, _ = _SCALAR_CHECKS[str]
                lines.append(f"        if type(x) is int and ({int_rejected.format(v='x')}):")
                lines.append(f"            raise DecodeError('{where}: expected int')")
                lines.append(f"        if type(x) is not int and ({str_rejected.format(v='x')}):")
                lines.append(f"            raise DecodeError('{where}: expected short str')")
            else:
                rejected, expected = _SCALAR_CHECKS[item]
                lines.append(f"        if {rejected.format(v='x')}:")
                lines.append(f"            raise DecodeError('{where}: expected {expected}')")
                if sizes is not None:
                    assert item is bytes, f"{where}: sizes are for bytes items"
                    namespace[f"sizes{i}"] = frozenset(sizes)
                    lines.append(f"        if len(x) not in sizes{i}:")
                    lines.append(f"            raise DecodeError('{where}: expected {_sizes_text(sizes)} bytes')")
            lines.append(f"    v{i} = tuple(v{i})")
        elif isinstance(item, type) and issubclass(item, Message):
            namespace[f"item{i}"] = item  # its decoder is compiled by the time one is decoded
            lines.append(f"    if type(v{i}) is not list:")
            lines.append(f"        raise DecodeError('{where}: expected array')")
            if items_max is not None:
                lines.append(f"    if len(v{i}) > {items_max}:")
                lines.append(f"        raise DecodeError('{where}: more than {items_max} items')")
            lines.append(f"    dec = CLASS_DECODERS[item{i}]")
            lines.append("    try:")
            lines.append(f"        v{i} = tuple([dec(x) for x in v{i}])")
            lines.append("    except DecodeError as exc:")
            lines.append(f"        raise DecodeError(f'{where}: {{exc}}') from None")
        else:
            namespace[f"d{i}"] = _decoder_for(tp)
            lines.append("    try:")
            lines.append(f"        v{i} = d{i}(v{i})")
            lines.append("    except DecodeError as exc:")
            lines.append(f"        raise DecodeError(f'{where}: {{exc}}') from None")
    fields_dict = ", ".join(f"'{f}': v{i}" for i, f in enumerate(names))
    lines += [
        "    message = new(cls)",
        # The decoded list is exactly the message's wire form (see `_to_wire`).
        f"    message.__dict__.update({{{fields_dict}, '_wire': values}})",
        "    return message",
    ]
    exec("\n".join(lines), namespace)  # generated from the dataclass fields above, nothing else
    decode_fields: typing.Callable[[Any], Message] = namespace["decode_fields"]
    return decode_fields


def _sizes_text(sizes: tuple[int, ...]) -> str:
    if len(sizes) > 4:  # a certificate's: not a hundred numbers
        return f"{', '.join(str(size) for size in sizes[:3])}, …, {sizes[-1]}"
    return " or ".join(str(size) for size in sizes)


def _decoder_for(tp: Any) -> typing.Callable[[Any], Any]:
    """A checking decoder for a field `_compile_decoder` does not check in line."""
    if tp is bool:

        def dec_bool(v: Any) -> bool:
            if type(v) is not bool:
                raise DecodeError("expected bool")
            return v

        return dec_bool
    if tp is int:

        def dec_int(v: Any) -> int:
            if type(v) is not int or not INT_MIN <= v <= INT_MAX:
                raise DecodeError("expected int")
            return v

        return dec_int
    if tp is str:

        def dec_str(v: Any) -> str:
            if type(v) is not str or len(v) > STR_FIELD_MAX:
                raise DecodeError("expected short str")
            return v

        return dec_str
    if tp is bytes:

        def dec_bytes(v: Any) -> bytes:
            if type(v) is not bytes:
                raise DecodeError("expected bytes")
            return v

        return dec_bytes
    if isinstance(tp, type) and issubclass(tp, Message):

        def dec_nested(v: Any) -> Message:
            return _from_wire(tp, v)

        return dec_nested
    if get_origin(tp) in (typing.Union, UnionType):
        options = get_args(tp)
        if type(None) in options:
            inner = _decoder_for(next(o for o in options if o is not type(None)))
            return lambda v: None if v is None else inner(v)
        if set(options) == {int, str}:
            dec_i, dec_s = _decoder_for(int), _decoder_for(str)
            return lambda v: dec_i(v) if type(v) is int else dec_s(v)
    raise TypeError(f"unsupported field type {tp!r}")


def _compile_init(cls: type[Message]) -> typing.Callable[..., None]:
    """An ``__init__`` for `cls` that stores its fields straight into the instance dict.

    Same signature and defaults as the dataclass's own, which for a frozen class sets each
    field through ``object.__setattr__``: every replica builds a reply per request and every
    client a request per transaction, and that showed in their profiles. Frozen all the same:
    assignment after construction still raises.
    """
    params, stores, namespace = [], [], {}
    for i, f in enumerate(fields(cls)):
        if f.default is not MISSING:
            namespace[f"default{i}"] = f.default
            params.append(f"{f.name}=default{i}")
        else:
            params.append(f.name)
        stores.append(f"    d[{f.name!r}] = {f.name}")
    source = f"def __init__(self, {', '.join(params)}):\n    d = self.__dict__\n" + "\n".join(stores)
    exec(source, namespace)  # generated from the dataclass fields, nothing else
    init: typing.Callable[..., None] = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    return init


def _register() -> None:
    for cls in list(globals().values()):
        if isinstance(cls, type) and issubclass(cls, Message) and cls is not Message:
            assert cls.TAG not in MESSAGE_TYPES, cls
            MESSAGE_TYPES[cls.TAG] = cls
    for cls in MESSAGE_TYPES.values():
        hints = typing.get_type_hints(cls)
        _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
        _WIRE_KINDS[cls] = tuple((f.name, _wire_kind(hints[f.name])) for f in fields(cls))
        _WIRE_BUILDERS[cls] = _compile_wire_builder(cls)
        assert not any(f.default_factory is not MISSING for f in fields(cls)), cls
        cls.__init__ = _compile_init(cls)  # type: ignore[misc]
    for cls in MESSAGE_TYPES.values():
        assert set(cls.SIZES) | set(cls.ITEMS_MAX) <= set(_FIELD_NAMES[cls]), cls
        _CLASS_DECODERS[cls] = _compile_decoder(cls)
        _SIGNED[cls] = _FIELD_NAMES[cls][-1] == "sig"
        _DOMAINS[cls] = b"pbft/v1/" + cls.__name__.encode() + b"/"


_register()

# The messages of the agreement on one instance; everything else replicas send each other
# (checkpoints, status gossip, catch-up, view change) is not paid per instance.
ORDERING: tuple[type[Message], ...] = (
    PrePrepare,
    PrepareShare,
    PrepareCertificate,
    CommitShare,
    CommitCertificate,
    FastCommit,
)
# Messages a replica signs with its Ed25519 identity and that carry a ``replica`` sender field.
REPLICA_SIGNED: tuple[type[Message], ...] = (
    *ORDERING,
    Checkpoint,
    Status,
    Fetch,
    CatchUp,
    ViewChange,
    NewView,
    Reply,
)
