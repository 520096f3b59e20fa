"""TCP framing, the authenticated handshake, and the encrypted session that follows it.

Theory of operation
-------------------
**Frames.** A TCP stream carries frames: a 4-byte big-endian length, then that many bytes.
The length is checked *before* anything is read or buffered: a frame above the limit (a few
MiB during the handshake, the codec's `MESSAGE_SIZE_MAX` plus session overhead afterwards)
closes the connection. A reader that has seen a frame's header must receive its body within a
deadline, so a slow-loris peer cannot pin a connection (and its buffer) forever; the whole
handshake has a deadline too. Idle time *between* frames of an authenticated peer is fine.

**Handshake** (three frames; the acceptor is the listening replica, the dialer is a replica
or a client process)::

    acceptor → dialer   HELLO   [proto, "hello", acceptor id, nonce_a, eph_a]
    dialer → acceptor   AUTH    [proto, "auth", role, names, nonce_d, eph_d, sigs]
    acceptor → dialer   ACCEPT  [proto, "accept", sig_a]      (or [proto, "refused", why])

``role`` is ``"replica"`` (exactly one name, ``"n<j>"``, j ≠ the acceptor) or ``"client"``
(one or more client names: a client pool proves every identity it speaks for on one
connection). ``eph_*`` are fresh X25519 keys, ``nonce_*`` 32 random bytes. Both sides sign
the same transcript hash T over (proto, acceptor id, nonce_a, eph_a, role, names, nonce_d,
eph_d), each with a role-specific domain tag: every dialer identity signs
``pbft-tcp/3/dialer/`` + T with its Ed25519 identity key, the acceptor signs
``pbft-tcp/3/acceptor/`` + T with its own. Verification uses only the public keys of the
cluster file. So a peer that claims another replica's identity cannot produce the signature;
a recorded handshake cannot be replayed (the other side's nonce and ephemeral key are fresh);
a dialer checks that it reached the replica it dialed, not whoever answers at that address.

**Session.** Both sides derive two keys (one per direction) from the X25519 shared secret and
T. Every later frame is ``SecretBox(key).encrypt(payload, nonce = frame counter)`` without the
nonce on the wire: the receiver expects counter 0, 1, 2, ... So a frame that was altered,
injected, reordered or replayed fails to open; the receiver drops it, counts it and closes the
connection (a TCP stream that lost sync cannot be trusted again; the peer reconnects).
Protocol messages inside stay signed end to end as before; the session adds confidentiality
and makes a hijacked or replayed stream useless.

A session payload starts with a kind byte: ``M`` a protocol message (wire codec), ``B``
several protocol messages (each a 4-byte big-endian length and a message, back to back: what
one link was handed in one turn of the sender's loop, sealed and written as one frame, as the
pipes shell does), ``Q`` a status query (clients only), ``S`` a status answer (msgpack map).
A ``B`` payload is checked before any of its messages is used: every length within the
payload, none zero, nothing left over (`split_messages`); each message inside is then treated
exactly as if it had come in its own ``M`` frame (a client's may only be REQUESTs).

**Hostile peers.** Every bound is checked before the work it bounds. A client connection reads
frames of at most `CLIENT_FRAME_BYTES_MAX` (a request is small; the codec's 8 MiB limit is for
replicas' batches and snapshots), and `peek_message_tag` reads a message's tag from the msgpack
array header without decoding the body, so a client's frame that is not a REQUEST is refused
before the codec sees it. Nothing a malformed handshake contains escapes `Acceptor` or `Dialer`
as anything but a `HandshakeError` (names are parsed as strict ASCII: ``"²".isdigit()`` is
true in Python).

Everything here is sans-I/O except `read_frame`, which reads one frame from an asyncio
`StreamReader` with the size limit and the body deadline (the handshake's), and `read_frames`,
which reads whatever has arrived and returns every whole frame in it, with the same limit and
deadline, split by the sans-I/O `FrameSplitter` (a session's: one wake-up per read, not two
per frame).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import msgpack
from nacl.bindings import crypto_scalarmult
from nacl.exceptions import BadSignatureError, CryptoError
from nacl.public import PrivateKey
from nacl.secret import SecretBox
from nacl.signing import SigningKey, VerifyKey

from ..messages import MESSAGE_SIZE_MAX
from .packing import pack

# 2: payloads of kind B (several messages in one frame). 3: PRE-PREPARE's `ask` field and the
# SLOW-PATH message (docs/protocol.md). Nodes of different versions refuse each other's
# handshake instead of dropping each other's messages as undecodable.
PROTOCOL = "pbft-tcp/3"
HEADER = struct.Struct(">I")
HEADER_SIZE = HEADER.size
# A message inside a B payload: its length, then its bytes.
ITEM_HEADER = HEADER
ITEM_HEADER_SIZE = ITEM_HEADER.size
SEAL_OVERHEAD = SecretBox.MACBYTES
# Payload kind byte + the MAC on top of the largest protocol message.
FRAME_SIZE_MAX = MESSAGE_SIZE_MAX + 1 + SEAL_OVERHEAD
# What a client may send in one frame: a REQUEST or a status query. An honest request is a client
# name, a timestamp, an operation and a few short arguments, a few hundred bytes; 64 KiB leaves
# ample room and bounds what an authenticated client can make a replica decrypt and decode per
# frame (a frame at the codec's MESSAGE_SIZE_MAX took 2.5 s of CPU and 550 MB to decode).
CLIENT_FRAME_BYTES_MAX = 64 * 1024
# The request inside such a frame, once the kind byte and the MAC are taken off.
CLIENT_REQUEST_BYTES_MAX = CLIENT_FRAME_BYTES_MAX - 1 - SEAL_OVERHEAD
# An AUTH frame of a client pool carries one name and one signature per identity (at most
# ~140 bytes each). Handshake frames come from unauthenticated peers: with the cap on
# concurrent handshakes this bounds what strangers can make a replica buffer (64 MiB).
CLIENT_IDENTITIES_MAX = 4096
HANDSHAKE_FRAME_MAX = 1024 * 1024
NAME_CHARS_MAX = 64
REASON_CHARS_MAX = 200
NONCE_SIZE = 32
KEY_SIZE = 32
SIGNATURE_SIZE = 64

# A message as a shell holds it: bytes, or a view into a received payload.
Buffer = bytes | memoryview

KIND_MESSAGE = b"M"
KIND_MESSAGES = b"B"
KIND_QUERY = b"Q"
KIND_STATE = b"S"

ROLE_REPLICA = "replica"
ROLE_CLIENT = "client"


class FrameError(Exception):
    """The peer broke the framing or the session; `reason` is a short metric name."""

    reason = "frame.error"


class FrameTooLarge(FrameError):
    reason = "frame.oversized"


class FrameTimeout(FrameError):
    reason = "frame.timeout"


class SessionError(FrameError):
    """A frame that does not open under the session key: altered, injected or replayed."""

    reason = "frame.bad_auth"


class HandshakeError(FrameError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class PeerMisbehaved(FrameError):
    """An authenticated peer sent what its role never sends (a client's non-request message,
    an unknown payload kind): the connection is closed and `reason` counted."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


# ---- frames --------------------------------------------------------------------------------


def frame(body: bytes) -> bytes:
    """Length-prefix `body` (the caller checks sizes against the peer's limits)."""
    return HEADER.pack(len(body)) + body


async def read_frame(reader: asyncio.StreamReader, size_max: int, body_timeout_s: float) -> bytes:
    """Read one frame. Raises `FrameTooLarge` (before reading the body), `FrameTimeout` (the body
    did not arrive in time), or `asyncio.IncompleteReadError` (the peer closed)."""
    header = await reader.readexactly(HEADER_SIZE)
    (size,) = HEADER.unpack(header)
    if size > size_max:
        raise FrameTooLarge(f"frame of {size} bytes (limit {size_max})")
    try:
        async with asyncio.timeout(body_timeout_s):
            return await reader.readexactly(size)
    except TimeoutError:
        raise FrameTimeout(f"frame body of {size} bytes not received in {body_timeout_s} s") from None


# What one read asks the stream for. Every frame already received in a chunk is split off at
# once (`FrameSplitter`), so a burst costs one wake-up of the reader, not two per frame.
READ_CHUNK_BYTES = 256 * 1024


class FrameSplitter:
    """Frames out of a byte stream that arrives in chunks of any size (sans-I/O).

    `feed` returns the bodies of the frames a chunk completed, in order. A header announcing more
    than `size_max` raises `FrameTooLarge` as soon as its four bytes are in, before another byte
    of that frame is kept, so what is held is at most one partial frame within the limit (plus
    what arrived with it in the same chunk). `awaiting_body` says that a header has been read
    whose body is not complete: the caller's deadline for the body runs while it is true.
    """

    def __init__(self, size_max: int) -> None:
        self.size_max = size_max
        # The start of the next frame: chunks kept as they came (joined once it is complete,
        # so a large frame arriving in many chunks is copied once, not once per chunk).
        self._chunks: list[bytes] = []
        self._held = 0
        self._need = 0  # header + body bytes of the frame whose header is in, or 0 (none)

    @property
    def awaiting_body(self) -> bool:
        return self._need > 0

    @property
    def buffered(self) -> int:
        """Bytes received and not yet returned as part of a frame."""
        return self._held

    def feed(self, data: bytes) -> list[bytes]:
        if self._chunks:
            self._chunks.append(data)
            self._held += len(data)
            if self._held < self._need:
                return []
            data = b"".join(self._chunks)
            self._chunks = []
        bodies: list[bytes] = []
        at, end = 0, len(data)
        unpack_header = HEADER.unpack_from
        self._need = 0
        while end - at >= HEADER_SIZE:
            (size,) = unpack_header(data, at)
            if size > self.size_max:
                self._held = 0
                raise FrameTooLarge(f"frame of {size} bytes (limit {self.size_max})")
            stop = at + HEADER_SIZE + size
            if stop > end:
                self._need = stop - at
                break
            bodies.append(data[at + HEADER_SIZE : stop])
            at = stop
        if at < end:
            self._chunks.append(data[at:] if at else data)
        self._held = end - at
        return bodies


async def read_frames(reader: asyncio.StreamReader, frames: FrameSplitter, body_timeout_s: float) -> list[bytes]:
    """Read until at least one whole frame is in; every frame that is. Raises like `read_frame`
    (`FrameTooLarge`, `FrameTimeout` when a body is not complete `body_timeout_s` after this call
    began waiting for it, `asyncio.IncompleteReadError` when the peer closed)."""
    deadline: float | None = None
    while True:
        if frames.awaiting_body:
            if deadline is None:
                deadline = asyncio.get_running_loop().time() + body_timeout_s
            try:
                async with asyncio.timeout_at(deadline):
                    data = await reader.read(READ_CHUNK_BYTES)
            except TimeoutError:
                raise FrameTimeout(f"frame body not received in {body_timeout_s} s") from None
        else:
            data = await reader.read(READ_CHUNK_BYTES)
        if not data:
            raise asyncio.IncompleteReadError(b"", None)
        bodies = frames.feed(data)
        if bodies:
            return bodies


def join_messages(messages: Iterable[Buffer]) -> bytes:
    """The payload (kind byte included) that carries `messages`: ``M`` + the message if there is
    exactly one, else ``B`` + each message's length and bytes. The caller keeps the result within
    the receiver's frame limit (`batch_messages`)."""
    items = list(messages)
    assert items and all(items), "one or more non-empty messages"
    if len(items) == 1:
        return KIND_MESSAGE + items[0]
    pack_header = ITEM_HEADER.pack
    return KIND_MESSAGES + b"".join(pack_header(len(m)) + m for m in items)


def batch_messages(messages: Iterable[Buffer], payload_bytes_max: int) -> list[list[Buffer]]:
    """`messages` in order, cut into runs whose `join_messages` payload is at most
    `payload_bytes_max` bytes (a message too large for any run goes alone: the receiver's limit
    is then the sender's problem, as for a single ``M`` frame)."""
    runs: list[list[Buffer]] = []
    run: list[Buffer] = []
    size = 1  # the kind byte
    for message in messages:
        grown = size + ITEM_HEADER_SIZE + len(message)
        if run and grown > payload_bytes_max:
            runs.append(run)
            run, grown = [], 1 + ITEM_HEADER_SIZE + len(message)
        run.append(message)
        size = grown
    if run:
        runs.append(run)
    return runs


def split_messages(payload: bytes | memoryview) -> list[memoryview]:
    """The messages of a ``B`` payload (kind byte included), as views into it. Raises
    `PeerMisbehaved` ("frame.bad_batch") unless the payload is exactly a sequence of non-empty,
    length-prefixed messages: nothing is used from a payload that does not parse whole."""
    view = memoryview(payload)
    if view[:1] != KIND_MESSAGES:
        raise PeerMisbehaved("frame.bad_batch", "not a B payload")
    items: list[memoryview] = []
    at, end = 1, len(view)
    unpack_header = ITEM_HEADER.unpack_from
    while at < end:
        if end - at < ITEM_HEADER_SIZE:
            raise PeerMisbehaved("frame.bad_batch", f"a B payload ends inside a length, at byte {at}")
        (size,) = unpack_header(view, at)
        at += ITEM_HEADER_SIZE
        if size == 0 or size > end - at:
            raise PeerMisbehaved("frame.bad_batch", f"a B payload holds a message of {size} bytes with {end - at} left")
        items.append(view[at : at + size])
        at += size
    if not items:
        raise PeerMisbehaved("frame.bad_batch", "an empty B payload")
    return items


def peek_message_tag(data: bytes | memoryview) -> int | None:
    """The tag of the wire-codec message `data` holds, read from its first bytes only, or None
    if it does not start like one (a msgpack array whose first item is a small int).

    The codec writes ``[tag, field, ...]`` and tags are small, so a message starts with an array
    header (fixarray ``0x90``-``0x9f``, array16 ``0xdc`` + 2 bytes, array32 ``0xdd`` + 4 bytes)
    followed by a positive fixint. Reading two to six bytes lets a shell refuse a message of the
    wrong kind before paying for decoding its body (which can be megabytes)."""
    if len(data) < 2:
        return None
    head = data[0]
    if 0x90 <= head <= 0x9F:
        if head == 0x90:
            return None  # an empty array has no tag
        at = 1
    elif head == 0xDC:
        at = 3
    elif head == 0xDD:
        at = 5
    else:
        return None
    if len(data) <= at or data[at] > 0x7F:
        return None
    return data[at]


# ---- session -------------------------------------------------------------------------------


class Session:
    """Authenticated encryption of the frames of one connection, one key per direction."""

    def __init__(self, send_key: bytes, receive_key: bytes) -> None:
        self._send = SecretBox(send_key)
        self._receive = SecretBox(receive_key)
        self.sent = 0
        self.received = 0

    @staticmethod
    def _nonce(counter: int) -> bytes:
        return counter.to_bytes(SecretBox.NONCE_SIZE, "big")

    def seal(self, payload: bytes) -> bytes:
        sealed = self._send.encrypt(payload, self._nonce(self.sent)).ciphertext
        self.sent += 1
        return sealed

    def open(self, body: bytes) -> bytes:
        try:
            payload = self._receive.decrypt(body, self._nonce(self.received))
        except CryptoError:
            raise SessionError(f"frame {self.received} does not authenticate") from None
        self.received += 1
        return payload


# ---- handshake -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PeerIdentity:
    """Who the other end proved to be."""

    role: str  # ROLE_REPLICA | ROLE_CLIENT
    names: tuple[str, ...]  # ("n3",) for a replica; client names for a client connection

    @property
    def replica(self) -> int | None:
        return replica_of_name(self.names[0]) if self.role == ROLE_REPLICA else None

    @property
    def label(self) -> str:
        if len(self.names) == 1:
            return self.names[0]
        return f"{self.names[0]}+{len(self.names) - 1}"


def replica_of_name(name: str) -> int | None:
    """3 for ``"n3"``; None for anything else. Strict ASCII: ``str.isdigit`` accepts ``"²"``
    and ``int`` then raises on it, so a handshake naming ``"n²"`` was a traceback per connection."""
    digits = name[1:]
    if name[:1] != "n" or not digits or len(digits) > 6 or not (digits.isascii() and digits.isdigit()):
        return None
    replica = int(digits)
    return replica if str(replica) == digits else None  # one spelling per replica: no "n01"


def _unpack(data: bytes, what: str) -> list[Any]:
    try:
        obj = msgpack.unpackb(
            data,
            raw=False,
            max_map_len=0,
            max_ext_len=0,
            max_array_len=CLIENT_IDENTITIES_MAX,
            max_bin_len=KEY_SIZE * 2,
            max_str_len=REASON_CHARS_MAX,
        )
    except Exception as exc:  # msgpack raises many unrelated types on garbage
        raise HandshakeError("handshake.garbage", f"{what}: not msgpack ({type(exc).__name__})") from None
    if not isinstance(obj, list) or len(obj) < 2 or obj[0] != PROTOCOL:
        raise HandshakeError("handshake.garbage", f"{what}: not a {PROTOCOL} frame")
    return obj


def _bytes_of(value: Any, size: int, what: str) -> bytes:
    if type(value) is not bytes or len(value) != size:
        raise HandshakeError("handshake.garbage", f"{what}: expected {size} bytes")
    return value


def _transcript(
    acceptor: int,
    nonce_a: bytes,
    eph_a: bytes,
    role: str,
    names: Iterable[str],
    nonce_d: bytes,
    eph_d: bytes,
) -> bytes:
    body = pack([PROTOCOL, acceptor, nonce_a, eph_a, role, list(names), nonce_d, eph_d])
    return hashlib.blake2b(body, digest_size=32, person=b"pbft-tcp-hs").digest()


def _dialer_payload(transcript: bytes) -> bytes:
    return f"{PROTOCOL}/dialer/".encode() + transcript


def _acceptor_payload(transcript: bytes) -> bytes:
    return f"{PROTOCOL}/acceptor/".encode() + transcript


def _session_keys(private: PrivateKey, peer_public: bytes, transcript: bytes) -> tuple[bytes, bytes]:
    """(dialer→acceptor key, acceptor→dialer key)."""
    try:
        shared = crypto_scalarmult(bytes(private), peer_public)
    except Exception:  # libsodium refuses low-order points (an all-zero secret)
        raise HandshakeError("handshake.bad_key", "degenerate ephemeral key") from None
    to_acceptor = hashlib.blake2b(shared + transcript, digest_size=32, person=b"pbft-tcp-d2a").digest()
    to_dialer = hashlib.blake2b(shared + transcript, digest_size=32, person=b"pbft-tcp-a2d").digest()
    return to_acceptor, to_dialer


def _verify(key: VerifyKey | None, payload: bytes, sig: bytes) -> bool:
    if key is None:
        return False
    try:
        key.verify(payload, sig)
    except (BadSignatureError, ValueError, TypeError):
        return False
    return True


class Acceptor:
    """The listening replica's side of one handshake (sans-I/O)."""

    def __init__(
        self,
        replica_id: int,
        signing_seed: bytes,
        replica_keys: Mapping[int, bytes],
        client_keys: Mapping[str, bytes],
        *,
        random_bytes: Callable[[int], bytes] = os.urandom,
        verify_keys: dict[str, VerifyKey] | None = None,
    ) -> None:
        self.replica_id = replica_id
        self._signing = SigningKey(signing_seed)
        self._replica_keys = replica_keys
        self._client_keys = client_keys
        # Parsed verify keys by name, shared across handshakes (a pool proves many identities).
        self._verify_keys = verify_keys if verify_keys is not None else {}
        self._nonce = random_bytes(NONCE_SIZE)
        self._ephemeral = PrivateKey.generate()
        self._eph_public = bytes(self._ephemeral.public_key)

    def hello(self) -> bytes:
        return pack([PROTOCOL, "hello", self.replica_id, self._nonce, self._eph_public])

    def _verify_key(self, name: str, raw: bytes | None) -> VerifyKey | None:
        key = self._verify_keys.get(name)
        if key is None and raw is not None:
            key = self._verify_keys[name] = VerifyKey(raw)
        return key

    def on_auth(self, data: bytes) -> tuple[bytes, PeerIdentity, Session]:
        """Check the dialer's AUTH; returns (the ACCEPT frame body, who it is, the session).
        Raises `HandshakeError` and nothing else (send `refusal(exc)` before closing, if you like)."""
        try:
            return self._on_auth(data)
        except HandshakeError:
            raise
        except Exception as exc:  # whatever slipped past the checks is still the stranger's garbage
            raise HandshakeError("handshake.garbage", f"auth: {type(exc).__name__}") from None

    def _on_auth(self, data: bytes) -> tuple[bytes, PeerIdentity, Session]:
        obj = _unpack(data, "auth")
        if len(obj) != 7 or obj[1] != "auth":
            raise HandshakeError("handshake.garbage", "auth: wrong shape")
        _, _, role, names, nonce_d, eph_d, sigs = obj
        nonce_d = _bytes_of(nonce_d, NONCE_SIZE, "auth nonce")
        eph_d = _bytes_of(eph_d, KEY_SIZE, "auth ephemeral key")
        if (
            not isinstance(names, list)
            or not isinstance(sigs, list)
            or not names
            or len(names) != len(sigs)
            or not all(type(n) is str and 0 < len(n) <= NAME_CHARS_MAX for n in names)
            or len(set(names)) != len(names)
        ):
            raise HandshakeError("handshake.garbage", "auth: names and signatures do not match up")
        if role == ROLE_REPLICA:
            replica = replica_of_name(names[0]) if len(names) == 1 else None
            if replica is None or replica not in self._replica_keys or replica == self.replica_id:
                raise HandshakeError("handshake.unknown_identity", f"no replica {names!r} to be")
            raw_keys: list[bytes | None] = [self._replica_keys[replica]]
        elif role == ROLE_CLIENT:
            raw_keys = [self._client_keys.get(n) for n in names]
            if any(k is None for k in raw_keys):
                raise HandshakeError("handshake.unknown_identity", "unknown client identity")
        else:
            raise HandshakeError("handshake.garbage", f"auth: unknown role {role!r}")
        transcript = _transcript(
            self.replica_id, self._nonce, self._eph_public, role, names, nonce_d, eph_d
        )
        payload = _dialer_payload(transcript)
        for name, raw, sig in zip(names, raw_keys, sigs, strict=True):
            sig = _bytes_of(sig, SIGNATURE_SIZE, "auth signature")
            if not _verify(self._verify_key(f"{role}/{name}", raw), payload, sig):
                raise HandshakeError("handshake.bad_identity", f"{role} {name}: signature does not verify")
        to_acceptor, to_dialer = _session_keys(self._ephemeral, eph_d, transcript)
        accept = pack(
            [PROTOCOL, "accept", self._signing.sign(_acceptor_payload(transcript)).signature]
        )
        return accept, PeerIdentity(role, tuple(names)), Session(to_dialer, to_acceptor)

    @staticmethod
    def refusal(error: HandshakeError) -> bytes:
        return pack([PROTOCOL, "refused", str(error)[:REASON_CHARS_MAX]])


class Dialer:
    """A connecting replica's or client's side of one handshake (sans-I/O)."""

    def __init__(
        self,
        role: str,
        identities: Mapping[str, bytes],
        expected_replica: int,
        replica_key: bytes,
        *,
        random_bytes: Callable[[int], bytes] = os.urandom,
        signing_keys: Mapping[str, SigningKey] | None = None,
    ) -> None:
        """`identities` maps each name this connection speaks for to its Ed25519 seed;
        `replica_key` is the identity key of `expected_replica`, the replica being dialed."""
        assert role in (ROLE_REPLICA, ROLE_CLIENT) and identities
        self.role = role
        self.names = sorted(identities)
        self._signing = signing_keys or {n: SigningKey(s) for n, s in identities.items()}
        self.expected_replica = expected_replica
        self._replica_key = VerifyKey(replica_key)
        self._nonce = random_bytes(NONCE_SIZE)
        self._ephemeral = PrivateKey.generate()
        self._eph_public = bytes(self._ephemeral.public_key)
        self._transcript: bytes | None = None
        self._keys: tuple[bytes, bytes] | None = None

    def on_hello(self, data: bytes) -> bytes:
        """Check the acceptor's HELLO; returns the AUTH frame body. Raises `HandshakeError` and
        nothing else: whoever answers at a replica's address may be hostile."""
        try:
            return self._on_hello(data)
        except HandshakeError:
            raise
        except Exception as exc:
            raise HandshakeError("handshake.garbage", f"hello: {type(exc).__name__}") from None

    def _on_hello(self, data: bytes) -> bytes:
        obj = _unpack(data, "hello")
        if len(obj) != 5 or obj[1] != "hello" or type(obj[2]) is not int:
            raise HandshakeError("handshake.garbage", "hello: wrong shape")
        acceptor = obj[2]
        if acceptor != self.expected_replica:
            raise HandshakeError(
                "handshake.wrong_replica",
                f"dialed n{self.expected_replica} but n{acceptor} answered",
            )
        nonce_a = _bytes_of(obj[3], NONCE_SIZE, "hello nonce")
        eph_a = _bytes_of(obj[4], KEY_SIZE, "hello ephemeral key")
        transcript = _transcript(
            acceptor, nonce_a, eph_a, self.role, self.names, self._nonce, self._eph_public
        )
        self._transcript = transcript
        self._keys = _session_keys(self._ephemeral, eph_a, transcript)
        payload = _dialer_payload(transcript)
        sigs = [self._signing[n].sign(payload).signature for n in self.names]
        return pack([PROTOCOL, "auth", self.role, self.names, self._nonce, self._eph_public, sigs])

    def on_accept(self, data: bytes) -> Session:
        """Check the acceptor's ACCEPT (its signature over the transcript); returns the session.
        Raises `HandshakeError` and nothing else."""
        assert self._transcript is not None and self._keys is not None, "on_hello first"
        try:
            return self._on_accept(data)
        except HandshakeError:
            raise
        except Exception as exc:
            raise HandshakeError("handshake.garbage", f"accept: {type(exc).__name__}") from None

    def _on_accept(self, data: bytes) -> Session:
        assert self._transcript is not None and self._keys is not None
        obj = _unpack(data, "accept")
        if obj[1] == "refused" and len(obj) == 3:
            raise HandshakeError("handshake.refused", f"refused by n{self.expected_replica}: {obj[2]}")
        if len(obj) != 3 or obj[1] != "accept":
            raise HandshakeError("handshake.garbage", "accept: wrong shape")
        sig = _bytes_of(obj[2], SIGNATURE_SIZE, "accept signature")
        if not _verify(self._replica_key, _acceptor_payload(self._transcript), sig):
            raise HandshakeError(
                "handshake.bad_identity", f"n{self.expected_replica} did not prove its identity"
            )
        to_acceptor, to_dialer = self._keys
        return Session(to_acceptor, to_dialer)
