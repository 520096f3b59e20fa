"""The attacks a scenario file can give its Byzantine replicas (DESIGN §4), by name.

Only the names and their targets live here, so reading a scenario file never imports the
replica; what each attack does is `faults`'.
"""

from __future__ import annotations

from dataclasses import dataclass

ATTACK_KINDS = ("sign", "crash", "dark", "time", "equivocation")
TARGETED_ATTACKS = frozenset({"dark", "equivocation"})  # these name the replicas they target


@dataclass(frozen=True)
class Attack:
    """One attack a Byzantine replica performs; ``targets`` only for dark / equivocation."""

    kind: str
    targets: tuple[int, ...] = ()

    def __str__(self) -> str:
        if not self.targets:
            return self.kind
        return f"{self.kind}(" + ", ".join(f"n{t}" for t in self.targets) + ")"
