"""Byzantine behaviours, as a layer around an honest replica.

`ByzantineReplica` has the replica's driver API (``step``/``tick`` → `Ready`). It feeds the
honest replica what a faulty one would act on and transforms what the honest one wants sent;
the protocol code itself has no notion of being faulty. The attacks (DESIGN §4):

- ``sign``: every signature and threshold share it sends is invalid.
- ``crash``: as leader it pre-prepares but ignores prepare shares (so it never becomes prepared
  nor sends a certificate) and never sends NEW-VIEW; as backup it sends no prepare shares and
  ignores certificates (never prepared). It answers no read-only request and does no catch-up.
- ``dark(targets)``: it sends nothing to the targets.
- ``time``: as leader it holds every message it sends for a fixed fraction of the execution
  timeout before releasing it.
- ``equivocation(targets)``: as leader its pre-prepare for sequence s goes to the targets, and
  the same batch as s+1 to everyone else (re-signed with its real key).
"""

from __future__ import annotations

import heapq
from dataclasses import replace
from itertools import count
from typing import Protocol

from .attacks import ATTACK_KINDS, Attack
from .messages import (
    CatchUp,
    CommitCertificate,
    FastCommit,
    Message,
    NewView,
    PrepareCertificate,
    PrepareShare,
    PrePrepare,
    Reply,
)
from .ready import Dropped, Ready
from .replica import Replica


def _corrupt(data: bytes) -> bytes:
    return bytes(b ^ 0x5A for b in data) if data else b"\x00"


class ByzantineReplica:
    """A replica that performs `attacks`; same driver API as `Replica`."""

    def __init__(self, honest: Replica, attacks: tuple[Attack, ...]) -> None:
        unknown = [a.kind for a in attacks if a.kind not in ATTACK_KINDS]
        assert not unknown, f"unknown attacks {unknown}"
        self.honest = honest
        self.attacks = attacks
        self.kinds = {a.kind for a in attacks}
        self.dark_to = {t for a in attacks if a.kind == "dark" for t in a.targets}
        self.equivocate_to = {t for a in attacks if a.kind == "equivocation" for t in a.targets}
        self._held: list[tuple[float, int, Ready]] = []
        self._order = count()

    def __getattr__(self, name: str) -> object:
        # Inspection (view, bank, slots, metrics, ...) sees the honest replica's state.
        return getattr(self.honest, name)

    # ---- driver API ----------------------------------------------------------------------

    def step(self, message: Message, now_ms: float) -> Ready:
        if self._ignores(message):
            ready = self.honest.tick(now_ms)
            ready.events.append(
                Dropped("crash: ignored", type(message).__name__, str(getattr(message, "replica", "?")))
            )
        else:
            ready = self.honest.step(message, now_ms)
        return self._outgoing(ready, now_ms)

    def tick(self, now_ms: float) -> Ready:
        return self._outgoing(self.honest.tick(now_ms), now_ms)

    # ---- inputs --------------------------------------------------------------------------

    def _ignores(self, message: Message) -> bool:
        if "crash" not in self.kinds:
            return False
        if isinstance(message, CatchUp):
            return True  # no catch-up, whatever its role
        if self.honest.is_leader and self.honest.view_active:
            return isinstance(message, PrepareShare)
        # A backup, or the would-be leader of a view change still under way: never prepared.
        return isinstance(message, PrepareCertificate | FastCommit | CommitCertificate)

    # ---- outputs -------------------------------------------------------------------------

    def _outgoing(self, ready: Ready, now_ms: float) -> Ready:
        ready.to_replicas = [
            (to, m) for to, message in ready.to_replicas for m in self._transform(to, message)
        ]
        ready.to_clients = [
            (to, self._sign_attack(m))
            for to, m in ready.to_clients
            if not ("crash" in self.kinds and isinstance(m, Reply) and m.read_only)
        ]
        if "time" in self.kinds and self.honest.is_leader and (ready.to_replicas or ready.to_clients):
            delay = self.honest.config.timers.execution_timeout_ms * self.honest.config.timers.time_attack_fraction
            held = Ready(ready.to_replicas, ready.to_clients)
            heapq.heappush(self._held, (now_ms + delay, next(self._order), held))
            ready.to_replicas, ready.to_clients = [], []
        while self._held and self._held[0][0] <= now_ms:
            _, _, held = heapq.heappop(self._held)
            ready.to_replicas.extend(held.to_replicas)
            ready.to_clients.extend(held.to_clients)
        if self._held:
            release = self._held[0][0]
            ready.wake_at_ms = release if ready.wake_at_ms is None else min(ready.wake_at_ms, release)
        return ready

    def _transform(self, to: int, message: Message) -> list[Message]:
        if to in self.dark_to:
            return []
        if "crash" in self.kinds and isinstance(message, PrepareShare | NewView):
            return []
        if self.equivocate_to and isinstance(message, PrePrepare) and to not in self.equivocate_to:
            shifted = replace(message, seq=message.seq + 1, sig=b"")
            message = shifted.with_sig(self.honest.crypto.sign(shifted.signing_payload()))
        return [self._sign_attack(message)]

    def _sign_attack(self, message: Message) -> Message:
        if "sign" not in self.kinds:
            return message
        changes: dict[str, bytes] = {}
        for name in ("sig", "share", "fast_share", "certificate", "aggregate"):
            value = getattr(message, name, None)
            if isinstance(value, bytes):
                changes[name] = _corrupt(value)
        return replace(message, **changes)


class ScheduledByzantine:
    """A replica that runs honestly until ``onset_ms``, then performs its attacks.

    Same driver API as `Replica`; inspection reaches the honest replica inside, as with
    `ByzantineReplica` (whose ``time`` attack may still hold messages: ticks release them).
    """

    def __init__(self, honest: Replica, attacks: tuple[Attack, ...], onset_ms: float) -> None:
        self.honest = honest
        self.attacks = attacks
        self.onset_ms = onset_ms
        self.byzantine = ByzantineReplica(honest, attacks)

    def __getattr__(self, name: str) -> object:
        return getattr(self.honest, name)

    def step(self, message: Message, now_ms: float) -> Ready:
        if now_ms < self.onset_ms:
            return self.honest.step(message, now_ms)
        return self.byzantine.step(message, now_ms)

    def tick(self, now_ms: float) -> Ready:
        if now_ms < self.onset_ms:
            ready = self.honest.tick(now_ms)
            # Wake at the onset, so a `time` attacker starts holding messages on schedule.
            ready.wake_at_ms = self.onset_ms if ready.wake_at_ms is None else min(ready.wake_at_ms, self.onset_ms)
            return ready
        return self.byzantine.tick(now_ms)


class Node(Protocol):
    """What every shell drives: an honest `Replica` or one of the Byzantine wrappers around one.
    ``honest`` is the honest replica inside (a `Replica` is its own), for inspection."""

    @property
    def honest(self) -> Replica: ...
    def step(self, message: Message, now_ms: float) -> Ready: ...
    def tick(self, now_ms: float) -> Ready: ...


def make_node(honest: Replica, attacks: tuple[Attack, ...], onset_ms: float = 0.0) -> Node:
    """`honest` performing `attacks` from `onset_ms` on (itself, with no attacks)."""
    if not attacks:
        return honest
    if onset_ms <= 0:
        return ByzantineReplica(honest, attacks)
    return ScheduledByzantine(honest, attacks, onset_ms)
