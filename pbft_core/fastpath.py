"""The collector's fast-path policy: how long to wait for all n prepare shares, and when not to.

Theory of operation. With all n shares the collector sends one FAST-COMMIT and every replica
commits after one round; with 2f+1 it must run a second (commit) round. Waiting for the last
shares is free when everyone answers and costs a whole timer when someone does not, so:

- the wait adapts to how long the last shares took recently (concord-bft's rule: mean + 2σ of
  the recent waits, clamped to [`fast_path_timeout_min_ms`, `fast_path_timeout_max_ms`]);
- the collector remembers the outcome of its last few attempts (a timer that expired, or an
  aggregate that did not verify, is a miss); with `FAST_PATH_GIVE_UP` misses among the last
  `FAST_PATH_OUTCOMES` it stops waiting (a replica is down, dark or slow on purpose) and only
  probes every `FAST_PATH_PROBE_EVERY`-th sequence number until the fast path works again.
"""

from __future__ import annotations

import math
from collections import Counter, deque

from .config import Timers
from .messages import Ask

FAST_PATH_HISTORY = 32  # recent waits for the last shares
FAST_PATH_OUTCOMES = 4
FAST_PATH_GIVE_UP = 3
FAST_PATH_PROBE_EVERY = 8


class FastPathPolicy:
    def __init__(self, timers: Timers, metrics: Counter[str]) -> None:
        self.timers = timers
        self.metrics = metrics
        self._waits_ms: deque[float] = deque(maxlen=FAST_PATH_HISTORY)
        self._missed: deque[bool] = deque(maxlen=FAST_PATH_OUTCOMES)  # True: a miss

    def record_wait(self, wait_ms: float) -> None:
        """How long the last shares took after the 2f+1-th."""
        self._waits_ms.append(wait_ms)

    def hit(self) -> None:
        self._missed.append(False)

    def miss(self) -> None:
        self._missed.append(True)

    def worth_waiting(self, seq: int) -> bool:
        if sum(self._missed) < FAST_PATH_GIVE_UP:
            return True
        if seq % FAST_PATH_PROBE_EVERY == 0:
            return True
        self.metrics["fast_path.skipped"] += 1
        return False

    def ask(self, seq: int) -> int:
        """Which prepare shares the PRE-PREPARE at `seq` asks for (`collector` docstring)."""
        if not self.worth_waiting(seq):
            return Ask.SLOW
        if len(self._missed) == FAST_PATH_OUTCOMES and not any(self._missed):
            return Ask.FAST
        return Ask.BOTH

    def wait_ms(self) -> float:
        """concord-bft's rule: mean + 2σ of recent waits for the last shares, clamped."""
        if len(self._waits_ms) < 2:
            return self.timers.fast_path_timeout_max_ms
        waits = self._waits_ms
        # Plain floats: `statistics.pstdev` is exact (fractions) and showed in the leader's profile.
        mean = sum(waits) / len(waits)
        deviation = math.sqrt(sum((w - mean) ** 2 for w in waits) / len(waits))
        wait = mean + 2 * deviation
        return min(max(wait, self.timers.fast_path_timeout_min_ms), self.timers.fast_path_timeout_max_ms)
