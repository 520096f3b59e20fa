"""Peak memory per replica, estimated by sampling the deep size of its buffers.

Theory of operation. Every `interval_ms` of virtual time (and once at the end) `MemoryProbe`
walks each replica instance's state — every attribute of the `Replica` (slots with their
batches, certificates and early messages, pending requests, view changes, new views, checkpoint
votes, snapshots, verification caches, the bank and its reply table...) plus the caches of its
certifier and crypto object — and sums ``sys.getsizeof`` over every object reachable from them,
each object counted once per replica per sample. The configuration, the keys and the handler
table are left out: they are the same size on every replica and in every run. The per-replica
peak over the run is what the summary reports, with the buffer that was largest at that peak.

It is an estimate of Python heap bytes, not of RSS: allocator overhead, interpreter state and
objects shared between replicas in this one process (the simulator hands every receiver the
same decoded message) are counted as a separate process would hold them (once per replica),
which is what a deployment pays. Between samples a buffer could peak and shrink unseen; the
attacks measured here build up over many samples.

Messages are frozen, so the size of one (with everything it holds) is computed once and
remembered by identity for the rest of the run; only the containers around them are walked
again at each sample.
"""

from __future__ import annotations

import sys
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..messages import Message

if TYPE_CHECKING:
    from ..runtime.simulator import Simulation

MEMORY_INTERVAL_MS = 250.0
SKIPPED_ATTRIBUTES = frozenset({"config", "crypto", "certifier", "_handlers", "metrics", "name", "id"})
LEAVES = (bytes, str, int, float, bool, type(None), bytearray)


class _Sizer:
    def __init__(self) -> None:
        # id -> (message, size): the message is kept so its id cannot be reused meanwhile.
        self.messages: dict[int, tuple[Message, int]] = {}

    def size(self, obj: Any, seen: set[int]) -> int:
        """Deep size of `obj`, skipping objects already in `seen` (which it extends)."""
        total = 0
        stack = [obj]
        while stack:
            item = stack.pop()
            key = id(item)
            if key in seen:
                continue
            seen.add(key)
            if isinstance(item, LEAVES):
                total += sys.getsizeof(item)
            elif isinstance(item, Message):
                known = self.messages.get(key)
                if known is None:
                    known = self.messages[key] = (item, self.size(item.__dict__, set()) + sys.getsizeof(item))
                total += known[1]
            elif isinstance(item, dict):
                total += sys.getsizeof(item)
                stack.extend(item.keys())
                stack.extend(item.values())
            elif isinstance(item, list | tuple | set | frozenset | deque):
                total += sys.getsizeof(item)
                stack.extend(item)
            elif callable(item):
                total += sys.getsizeof(item)  # deferred work: the closure's state is the replica's
            elif hasattr(item, "__dict__"):
                total += sys.getsizeof(item) + sys.getsizeof(item.__dict__)
                stack.extend(item.__dict__.values())
            elif hasattr(item, "__slots__"):
                total += sys.getsizeof(item)
                stack.extend(getattr(item, name) for name in item.__slots__ if hasattr(item, name))
            else:
                total += sys.getsizeof(item)
        return total


@dataclass
class ReplicaMemory:
    peak_bytes: int = 0
    largest: str = ""  # the biggest buffer at the peak
    largest_bytes: int = 0


@dataclass
class MemoryProbe:
    sim: Simulation
    interval_ms: float = MEMORY_INTERVAL_MS
    replicas: dict[str, ReplicaMemory] = field(default_factory=dict)
    samples: int = 0

    def __post_init__(self) -> None:
        self._sizer = _Sizer()

    def start(self) -> None:
        def sample(sim: Simulation) -> None:
            self.sample()
            sim.at(sim.now + self.interval_ms, sample)

        self.sim.at(self.sim.now + self.interval_ms, sample)

    def sample(self) -> None:
        self.samples += 1
        for _key, node in self.sim.all_instances():
            buffers = self.buffers(node.inner)
            total = sum(buffers.values())
            record = self.replicas.setdefault(node.address, ReplicaMemory())
            if total > record.peak_bytes:
                name, size = max(buffers.items(), key=lambda item: item[1])
                record.peak_bytes, record.largest, record.largest_bytes = total, name, size

    def buffers(self, replica: Any) -> dict[str, int]:
        """Bytes per attribute of one replica (attributes reachable from two count once)."""
        seen: set[int] = set()
        sizes = {
            name: self._sizer.size(value, seen)
            for name, value in sorted(vars(replica).items())
            if name not in SKIPPED_ATTRIBUTES
        }
        for owner in ("certifier", "crypto"):
            holder = getattr(replica, owner, None)
            for name, value in sorted(getattr(holder, "__dict__", {}).items()):
                if isinstance(value, dict | set | list | deque) and "key" not in name:  # caches, not keys
                    sizes[f"{owner}.{name}"] = self._sizer.size(value, seen)
        return sizes

    def peaks(self, honest_only: bool = True) -> dict[str, int]:
        honest = {node.address for _k, node in self.sim.all_instances() if node.honest}
        return {a: m.peak_bytes for a, m in sorted(self.replicas.items()) if a in honest or not honest_only}


__all__ = ["MEMORY_INTERVAL_MS", "MemoryProbe", "ReplicaMemory"]
