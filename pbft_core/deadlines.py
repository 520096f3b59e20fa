"""Every timer a replica sets, in one table.

A replica never reads a clock: the shell feeds it `tick(now_ms)`, and the `Ready` it returns
says when it next wants one (`wake_at_ms`, the earliest deadline here). Adding a timer is one
member of `Timer` and one handler in `Replica._timer_handlers`; `tick` fires due timers in the
order the members are declared.
"""

from __future__ import annotations

import enum


class Timer(enum.StrEnum):  # a str enum: hashed in C, and these are dict keys on every tick
    STATUS = "status"  # gossip progress; fetch from a peer ahead if stuck
    PROPOSE = "propose"  # leader: queued requests go out
    FAST_PATH = "fast_path"  # collector: the earliest slot whose wait for all n shares is over
    PREPARE_SHARE = "prepare_share"  # backup: a fast path that did not complete gets 2f+1 shares
    EXECUTION = "execution"  # backup: the oldest pending request waited a whole timeout
    VIEW_CHANGE_RESEND = "view_change_resend"  # re-send VIEW-CHANGE until a NEW-VIEW arrives
    NEW_VIEW = "new_view"  # a view change that did not complete moves to the next view


class Deadlines:
    def __init__(self) -> None:
        self._at_ms: dict[Timer, float] = {}

    def get(self, timer: Timer) -> float | None:
        return self._at_ms.get(timer)

    def set(self, timer: Timer, at_ms: float | None) -> None:
        if at_ms is None:
            self._at_ms.pop(timer, None)
        else:
            self._at_ms[timer] = at_ms

    def set_earlier(self, timer: Timer, at_ms: float) -> None:
        """Move `timer` to `at_ms` unless it is already due sooner."""
        current = self._at_ms.get(timer)
        if current is None or at_ms < current:
            self._at_ms[timer] = at_ms

    def pop_due(self, timer: Timer, now_ms: float) -> bool:
        """True (and the timer cleared) if `timer` is due at `now_ms`."""
        at_ms = self._at_ms.get(timer)
        if at_ms is None or now_ms < at_ms:
            return False
        del self._at_ms[timer]
        return True

    def earliest(self) -> float | None:
        return min(self._at_ms.values()) if self._at_ms else None
