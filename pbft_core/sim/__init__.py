"""Deterministic simulation testing for pbft (VOPR, Jepsen-bank, Twins), on the sans-I/O core.

- `plan`: a seed's fault plan (workload, network, Byzantine identities, timed faults), as data.
- `adversary`: the random-message adversary (well-typed messages signed with a real key).
- `vopr`: run a plan (safety phase, then liveness phase), judge it, shrink a failure.
- `runner`: many seeds, in parallel, with a summary (what ``pbft simulate`` shows).

The invariants live in `pbft_core.invariants`; the simulator shell in
`pbft_core.runtime.simulator`. See ``docs/simulation.md``.
"""

from .plan import ALL_FAULTS, Plan, generate_plan
from .vopr import RunOptions, SeedResult, run_plan, run_seed, shrink

__all__ = ["ALL_FAULTS", "Plan", "RunOptions", "SeedResult", "generate_plan", "run_plan", "run_seed", "shrink"]
