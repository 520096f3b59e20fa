"""The replica's write-ahead log: durable events on disk, and back.

A shell appends the durable events of each `Ready` (see `ready.DURABLE_EVENTS`) and commits
them *before* it sends that Ready's messages. After a crash (even ``kill -9``) it reads them
back in order and hands them to `Replica.restore`, which rebuilds a replica that has forgotten
nothing it voted for. Events are stored with the wire codec for the messages they contain, so
the log never holds pickles and a corrupt row is an error, not code execution.

To keep restarts fast the log is compacted at stable checkpoints: everything before the last
`CheckpointStable` that carries a snapshot is replaced by a `StateTransferred` of that snapshot
(the state it certifies), which restores to the same replica.
"""

from __future__ import annotations

import sqlite3
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import fields as dataclass_fields
from pathlib import Path

import msgpack

from .messages import CheckpointProof, NewView, Proof, decode, encode, unpack
from .ready import (
    DURABLE_EVENTS,
    Accepted,
    CheckpointStable,
    Event,
    Executed,
    NewViewInstalled,
    ProofStored,
    StateTransferred,
    ViewEntered,
)


class CorruptLogError(RuntimeError):
    pass


def _requests(batch: tuple) -> list[bytes]:
    return [encode(r) for r in batch]


def _batch(raw: list[bytes]) -> tuple:
    return tuple(decode(r) for r in raw)


def encode_event(event: Event, requests: Callable[[tuple], list[bytes]] = _requests) -> bytes:
    """`event` as a row; `requests` encodes a batch's requests (`DurableLog` remembers them)."""
    if isinstance(event, Accepted):
        body: list = ["accepted", event.view, event.seq, requests(event.batch)]
    elif isinstance(event, ProofStored):
        body = ["proof", encode(event.proof)]
    elif isinstance(event, ViewEntered):
        body = ["view", event.view, event.active]
    elif isinstance(event, NewViewInstalled):
        body = ["newview", encode(event.message)]
    elif isinstance(event, Executed):
        results = list(event.results)
        body = ["executed", event.seq, event.view, requests(event.batch), results, event.state_digest]
    elif isinstance(event, CheckpointStable):
        body = ["checkpoint", encode(event.proof), event.snapshot]
    elif isinstance(event, StateTransferred):
        body = ["transferred", encode(event.proof), event.snapshot]
    else:
        raise TypeError(f"not a durable event: {type(event).__name__}")
    return msgpack.packb(body, use_bin_type=True)


def decode_event(data: bytes) -> Event:
    try:
        kind, *fields = msgpack.unpackb(data, raw=False)
        if kind == "accepted":
            view, seq, batch = fields
            return Accepted(view, seq, _batch(batch))
        if kind == "proof":
            proof = decode(fields[0])
            assert isinstance(proof, Proof)
            return ProofStored(proof)
        if kind == "view":
            return ViewEntered(fields[0], fields[1])
        if kind == "newview":
            message = decode(fields[0])
            assert isinstance(message, NewView)
            return NewViewInstalled(message.view, message)
        if kind == "executed":
            seq, view, batch, results, digest = fields
            return Executed(seq, view, _batch(batch), tuple(results), digest)
        if kind in ("checkpoint", "transferred"):
            proof = decode(fields[0])
            assert isinstance(proof, CheckpointProof)
            if kind == "checkpoint":
                return CheckpointStable(proof, fields[1])
            return StateTransferred(proof, fields[1])
    except Exception as exc:  # a torn or foreign row: refuse to guess
        raise CorruptLogError(f"unreadable durable event: {exc}") from None
    raise CorruptLogError(f"unknown durable event kind {kind!r}")


def _seq_of(event: Event) -> int | None:
    if isinstance(event, Accepted | Executed):
        return event.seq
    if isinstance(event, ProofStored):
        return event.proof.seq
    return None


# Where a proof's sequence number sits in its wire array (after the tag).
_PROOF_SEQ = 1 + [f.name for f in dataclass_fields(Proof)].index("seq")


def _kind_and_seq(data: bytes) -> tuple[str, int | None]:
    """A row's kind and the sequence number `_seq_of` gives its event, without decoding the
    requests it holds."""
    try:
        kind, *fields = msgpack.unpackb(data, raw=False)
        if kind in ("accepted", "executed"):
            seq = fields[1] if kind == "accepted" else fields[0]
            if not isinstance(seq, int):
                raise TypeError(f"sequence number {seq!r}")
            return kind, seq
        if kind == "proof":
            # The proof's own batch stays undecoded too: its tag and seq field are read as is.
            wire = unpack(fields[0])
            seq = wire[_PROOF_SEQ] if wire[0] == Proof.TAG and len(wire) > _PROOF_SEQ else None
            if not isinstance(seq, int):
                raise TypeError(f"not a proof with a sequence number: {wire[:3]!r}")
            return kind, seq
    except Exception as exc:  # a torn or foreign row: refuse to guess
        raise CorruptLogError(f"unreadable durable event: {exc}") from None
    if not isinstance(kind, str):
        raise CorruptLogError(f"unknown durable event kind {kind!r}")
    return kind, None


def _compacted(log: list[bytes], checkpoint_at: int) -> list[bytes]:
    """The log with everything the checkpoint at ``log[checkpoint_at]`` subsumes replaced by
    its snapshot: the last view entered and NEW-VIEW installed, the snapshot as a state transfer, and every event
    about a later sequence number (votes cast before the checkpoint became stable)."""
    checkpoint = decode_event(log[checkpoint_at])
    assert isinstance(checkpoint, CheckpointStable) and checkpoint.snapshot is not None
    # Rows are classified by their kind and sequence number only: decoding every request of
    # every batch again was most of a TCP node's compaction cost (`load` still decodes all).
    heads = [_kind_and_seq(row) for row in log[:checkpoint_at]]
    views = [row for row, (kind, _) in zip(log, heads, strict=False) if kind == "view"]
    new_views = [row for row, (kind, _) in zip(log, heads, strict=False) if kind == "newview"]
    later = [row for row, (_, seq) in zip(log, heads, strict=False) if (seq or 0) > checkpoint.seq]
    base = encode_event(StateTransferred(checkpoint.proof, checkpoint.snapshot))
    return [*new_views[-1:], *views[-1:], base, *later, *log[checkpoint_at:]]


# Batches whose encoded requests a `DurableLog` keeps: a batch is logged when it is accepted and
# again when it is executed (the same tuple), a few instances later at most.
ENCODED_BATCHES_MAX = 64


class DurableLog:
    """Durable events of one replica in a SQLite table (WAL, synchronous=FULL)."""

    def __init__(self, path: Path | str) -> None:
        self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS durable (id INTEGER PRIMARY KEY AUTOINCREMENT, event BLOB NOT NULL)"
        )
        self._pending: list[bytes] = []
        self._compact_below: int | None = None
        # id(batch) -> (the batch, kept so that its id is not reused; its encoded requests)
        self._encoded: OrderedDict[int, tuple[tuple, list[bytes]]] = OrderedDict()

    @property
    def pending(self) -> int:
        """Events appended and not yet committed."""
        return len(self._pending)

    def _requests(self, batch: tuple) -> list[bytes]:
        """`_requests(batch)`, encoded once for the accepted and the executed event."""
        known = self._encoded.get(id(batch))
        if known is not None and known[0] is batch:
            return known[1]
        encoded = _requests(batch)
        self._encoded[id(batch)] = (batch, encoded)
        if len(self._encoded) > ENCODED_BATCHES_MAX:
            self._encoded.popitem(last=False)
        return encoded

    def append(self, events: Iterable[Event]) -> None:
        for event in events:
            if isinstance(event, DURABLE_EVENTS):
                self._pending.append(encode_event(event, self._requests))
                if isinstance(event, CheckpointStable) and event.snapshot is not None:
                    self._compact_below = len(self._pending) - 1

    def commit(self) -> None:
        """Make everything appended durable. Call before sending what those events caused."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        compact_at, self._compact_below = self._compact_below, None
        self.db.execute("BEGIN IMMEDIATE")
        try:
            if compact_at is not None:
                rows = [row[0] for row in self.db.execute("SELECT event FROM durable ORDER BY id")]
                pending = _compacted([*rows, *pending], len(rows) + compact_at)
                self.db.execute("DELETE FROM durable")
            self.db.executemany("INSERT INTO durable (event) VALUES (?)", [(p,) for p in pending])
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def load(self) -> list[Event]:
        return [decode_event(row[0]) for row in self.db.execute("SELECT event FROM durable ORDER BY id")]

    def close(self) -> None:
        self.db.close()
