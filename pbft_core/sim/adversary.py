"""The random-message adversary: a Byzantine replica that sends well-typed nonsense.

Theory of operation. A protocol is most often broken not by the attacks someone thought of but
by a message nobody expected: a certificate for the wrong view, a checkpoint far ahead, a
status claiming progress that does not exist, a new view whose O is subtly off. This adversary
injects, at a random rate, messages that decode cleanly (every field has its declared type and
fits the codec's limits) but whose contents are arbitrary, and signs them with the Byzantine
replica's *real* key, so they pass authentication and reach the handlers.

Half the messages are **mutations** of recently observed traffic (any replica's, which a
Byzantine replica may see and replay): the sender becomes the adversary, one or two fields
change (integers nudged or replaced, digests and certificates swapped with other observed
ones or random bytes, batches shortened, duplicated or emptied), and the message is re-signed.
The rest are **fresh**: a random replica-signed message type with every field drawn by type,
integers mostly near the current view and sequence numbers so they land inside the windows the
replica accepts. Threshold-share fields are sometimes filled with the adversary's own valid share
over the message's (kind, view, seq, digest), so they also pass share verification.

Byzantine identities of one seed also **collude**: they share a ``plot`` (one dict per run),
and now and then each sends the same fabricated VIEW-CHANGE for the next view — identical
made-up pre-prepare reports (real client requests, the highest view the new view allows) for the
sequence numbers just above the cluster's progress. f identical reports are one short of what
NEW-VIEW's O may take from reports alone (f+1), which is exactly the margin under test.

Everything is drawn from the adversary's own seeded `random.Random`, so runs stay reproducible.
"""

from __future__ import annotations

import random
import typing
from collections import deque
from dataclasses import fields, replace
from types import UnionType
from typing import TYPE_CHECKING, Any

from ..certificates import checkpoint_message, commit_message, prepare_message
from ..messages import (
    DIGEST_SIZE,
    REPLICA_SIGNED,
    Checkpoint,
    CommitShare,
    Message,
    PrepareShare,
    PrePrepared,
    Reply,
    Request,
    ViewChange,
)

if TYPE_CHECKING:
    from ..runtime.simulator import Simulation

RECENT_MAX = 96
BATCH_MAX = 4
NESTED_MAX = 3
INT_FIELDS_NEAR = ("view", "new_view", "seq", "after_seq", "last_executed", "stable_seq", "timestamp")
TARGETS = tuple(t for t in REPLICA_SIGNED if t is not Reply)


class RandomMessageAdversary:
    """Injects random signed messages as Byzantine replica `replica_id` (see module docstring)."""

    def __init__(
        self, sim: Simulation, replica_id: int, rng: random.Random, rate_per_s: float,
        plot: dict[int, ViewChange] | None = None,
    ) -> None:
        self.sim = sim
        self.plot = plot if plot is not None else {}
        self.replica_id = replica_id
        self.rng = rng
        self.mean_gap_ms = 1000.0 / rate_per_s
        self.recent: deque[Message] = deque(maxlen=RECENT_MAX)
        self.requests: deque[Request] = deque(maxlen=RECENT_MAX)
        self.sent = 0
        self.until_ms: float | None = None

    # ---- driving -----------------------------------------------------------------------

    def start(self, at_ms: float) -> None:
        self.sim.send_hooks.append(self.observe)
        self.sim.at(at_ms + self.rng.expovariate(1.0 / self.mean_gap_ms), self.fire)

    def observe(self, source: str, to: int, message: Message) -> None:
        # Sampling keeps the cost flat however busy the network is.
        if self.rng.random() < 0.2:
            self.recent.append(message)
            batch = getattr(message, "batch", None)
            if batch:
                self.requests.extend(batch)
            elif isinstance(message, Request):
                self.requests.append(message)

    def fire(self, sim: Simulation) -> None:
        if self.until_ms is not None and sim.now >= self.until_ms:
            return
        node = sim.nodes[self.replica_id]
        if node.up:
            message = self.make()
            targets = [t for t in sim.config.replica_ids if t != self.replica_id]
            # Mostly one target (a Byzantine replica tells each peer something else), some broadcasts.
            chosen = targets if self.rng.random() < 0.3 else [self.rng.choice(targets)]
            data = message.encode()
            for to in chosen:
                sim.send_to_replica(node.address, to, data)
            self.sent += 1
            sim.counters["adversary"] = sim.counters.get("adversary", 0) + 1
        sim.at(sim.now + self.rng.expovariate(1.0 / self.mean_gap_ms), self.fire)

    # ---- making messages ---------------------------------------------------------------

    def make(self) -> Message:
        if self.requests and self.rng.random() < 0.1:
            return self._sign(self._conspire())
        if self.recent and self.rng.random() < 0.5:
            message = self._mutate(self.rng.choice(self.recent))
        else:
            message = self._fresh(self.rng.choice(TARGETS))
        return self._sign(message)

    def _conspire(self) -> ViewChange:
        """The accomplices' shared fabricated VIEW-CHANGE for the next view (see docstring)."""
        replica = self.sim.nodes[self.replica_id].inner
        new_view = replica.view + 1
        fabricated = self.plot.get(new_view)
        if fabricated is None:
            start = replica.last_executed + 1
            reports = tuple(
                PrePrepared(new_view - 1, seq, tuple(self.rng.sample(list(self.requests), min(2, len(self.requests)))))
                for seq in range(start, start + self.rng.randint(1, 3))
            )
            fabricated = self.plot[new_view] = ViewChange(new_view, None, (), reports, 0)
        return fabricated

    def _context(self) -> tuple[int, int]:
        replica = self.sim.nodes[self.replica_id].inner
        return replica.view, max(replica.last_executed, replica.next_seq)

    def _sign(self, message: Message) -> Message:
        crypto = self.sim.nodes[self.replica_id].crypto
        assert crypto is not None
        if isinstance(message, PrepareShare | CommitShare | Checkpoint) and self.rng.random() < 0.6:
            if isinstance(message, PrepareShare):
                vote = prepare_message(message.view, message.seq, message.digest)
                share = crypto.sign_share(vote)
                if hasattr(message, "fast_share"):  # the n-of-n fast-path share, when there is one
                    message = replace(message, fast_share=crypto.sign_fast_share(vote))
            elif isinstance(message, CommitShare):
                share = crypto.sign_share(commit_message(message.view, message.seq, message.digest))
            else:
                share = crypto.sign_share(checkpoint_message(message.seq, message.state_digest))
            message = replace(message, share=share)
        if hasattr(message, "replica"):
            message = replace(message, replica=self.replica_id)  # type: ignore[call-arg]
        if hasattr(message, "sig"):
            message = message.with_sig(crypto.sign(message.signing_payload()))
        return message

    def _mutate(self, message: Message) -> Message:
        names = [f.name for f in fields(message) if f.name not in ("replica", "sig")]
        if not names:
            return message
        changes = {}
        for name in self.rng.sample(names, min(len(names), self.rng.randint(1, 2))):
            tp = _hints(type(message))[name]
            changes[name] = self._mutate_value(name, getattr(message, name), tp)
        return replace(message, **changes)

    def _mutate_value(self, name: str, value: Any, tp: Any) -> Any:
        rng = self.rng
        if isinstance(value, bool):
            return not value
        if isinstance(value, int):
            return rng.choice([value + 1, value - 1, value + rng.randint(2, 12), 0, rng.randint(0, 2**32)])
        if isinstance(value, bytes):
            other = self._observed_bytes(name)
            if other is not None and rng.random() < 0.5:
                return other
            return rng.randbytes(len(value)) if value else rng.randbytes(DIGEST_SIZE)
        if isinstance(value, tuple):
            items = list(value)
            choice = rng.randrange(4)
            if choice == 0 or not items:
                return ()
            if choice == 1:
                return tuple(items[:-1])
            if choice == 2:
                return (*items, rng.choice(items))
            rng.shuffle(items)
            return tuple(items)
        if value is None:
            return self._fresh_value(name, tp, 0)
        if isinstance(value, Message):
            return None if _optional(tp) and rng.random() < 0.3 else self._mutate(value)
        return self._fresh_value(name, tp, 0)

    def _observed_bytes(self, name: str) -> bytes | None:
        candidates = [getattr(m, name) for m in self.recent if isinstance(getattr(m, name, None), bytes)]
        return self.rng.choice(candidates) if candidates else None

    def _fresh(self, cls: type[Message], depth: int = 0) -> Message:
        hints = _hints(cls)
        values = {f.name: self._fresh_value(f.name, hints[f.name], depth) for f in fields(cls)}
        return cls(**values)

    def _fresh_value(self, name: str, tp: Any, depth: int) -> Any:
        rng = self.rng
        if tp is bool:
            return rng.random() < 0.5
        if tp is int:
            view, seq = self._context()
            if name in ("view", "new_view"):
                return max(0, view + rng.randint(-1, 3))
            if name in INT_FIELDS_NEAR:
                return max(0, seq + rng.randint(-3, 6))
            if name == "kind":
                return rng.randint(0, 3)
            return rng.randint(0, 2**16)
        if tp is str:
            return rng.choice(["A", "B", "transfer", "balance", "", "Z" * 64])
        if tp is bytes:
            if name == "sig":
                return b""
            if name == "snapshot":
                return rng.randbytes(rng.randint(0, 64))
            other = self._observed_bytes(name)
            if other is not None and rng.random() < 0.5:
                return other
            return rng.randbytes(DIGEST_SIZE if "digest" in name else 96)
        origin = typing.get_origin(tp)
        if origin in (typing.Union, UnionType):
            options = [o for o in typing.get_args(tp) if o is not type(None)]
            if len(options) < len(typing.get_args(tp)) and (depth >= NESTED_MAX or rng.random() < 0.3):
                return None
            return self._fresh_value(name, rng.choice(options), depth)
        if origin is tuple:
            (item,) = typing.get_args(tp)[:1]
            if item is Request and self.requests and rng.random() < 0.9:
                return tuple(rng.choice(self.requests) for _ in range(rng.randint(0, BATCH_MAX)))
            if depth >= NESTED_MAX:
                return ()
            return tuple(self._fresh_value(name, item, depth + 1) for _ in range(rng.randint(0, BATCH_MAX)))
        if isinstance(tp, type) and issubclass(tp, Message):
            if tp is Request and self.requests:
                return rng.choice(self.requests)
            return self._fresh(tp, depth + 1)
        raise TypeError(f"no generator for {tp!r}")


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


def _optional(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, UnionType) and type(None) in typing.get_args(tp)


__all__ = ["RandomMessageAdversary"]
