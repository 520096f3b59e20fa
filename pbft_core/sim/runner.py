"""Many seeds: run them (in parallel), shrink and save the failures, summarise.

Theory of operation. Seeds are independent, so `run_seeds` farms them out to worker processes
(``jobs``; 1 runs in-process) and gathers `SeedResult`s in seed order, whatever order they
finish in, so a summary is a deterministic function of its arguments (wall-clock figures
aside). Failing seeds are then shrunk (at most ``shrink_max`` of them, preferring one per
distinct failure, since shrinking costs many runs) and written as replayable trace files.

`Summary.to_json` is the ``--json`` report: ``seeds``, ``violations`` (seed, invariant, detail,
trace file), ``liveness_failures`` (seed, reason, trace file), and per-fault ``fault_counts``
(injections: messages dropped/duplicated/spiked, partitions, crashes, Byzantine identities per
attack, adversary messages) and ``fault_seeds`` (how many seeds used each fault). A batch run
with a targeted ``adversary`` (`strategies`) also reports escaped exceptions apart from the
other violations, and the peak memory of each honest replica over all its seeds (`memory`).
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .plan import ALL_FAULTS, generate_plan
from .vopr import RunOptions, SeedResult, run_plan, shrink, write_failure

SHRINK_BUDGET_S = 60.0


@dataclass(frozen=True)
class Batch:
    f: int = 2
    requests: int = 20
    faults: tuple[str, ...] = ALL_FAULTS
    options: RunOptions = field(default_factory=RunOptions)
    adversary: str | None = None  # a targeted attack of `strategies`


@dataclass
class Summary:
    seeds: int = 0
    start: int = 0
    f: int = 2
    requests: int = 0
    crypto: str = "sim"
    faults: tuple[str, ...] = ALL_FAULTS
    wall_s: float = 0.0
    results: list[SeedResult] = field(default_factory=list)
    adversary: str | None = None

    @property
    def seeds_per_s(self) -> float:
        return self.seeds / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def violations(self) -> list[SeedResult]:
        return [r for r in self.results if r.invariant is not None]

    @property
    def liveness_failures(self) -> list[SeedResult]:
        return [r for r in self.results if r.invariant is None and r.liveness is not None]

    @property
    def exceptions(self) -> list[SeedResult]:
        """Seeds where an exception escaped protocol code (also among `violations`)."""
        return [r for r in self.results if r.invariant == "exception"]

    def peak_memory(self) -> dict[str, int]:
        """Per honest replica address, the highest peak of any seed (bytes, estimated)."""
        peaks: dict[str, int] = {}
        for result in self.results:
            for address, size in result.peak_memory.items():
                peaks[address] = max(peaks.get(address, 0), size)
        return dict(sorted(peaks.items(), key=lambda item: int(item[0].strip("n'"))))

    def peak_buffer(self) -> str:
        """Where the highest peak of all was: seed, replica and its largest buffer."""
        top = max(self.results, key=lambda r: max(r.peak_memory.values(), default=0), default=None)
        if top is None or not top.peak_memory:
            return ""
        return f"seed {top.seed}: {top.peak_buffer}"

    def fault_counts(self) -> dict[str, int]:
        counts = {name: 0 for name in ALL_FAULTS}
        for result in self.results:
            for name, value in result.counts.items():
                counts[name] = counts.get(name, 0) + value
        return counts

    def fault_seeds(self) -> dict[str, int]:
        seeds = {name: 0 for name in ALL_FAULTS}
        for result in self.results:
            for name in result.faults:
                seeds[name] = seeds.get(name, 0) + 1
        return seeds

    def to_json(self) -> dict[str, Any]:
        completed = sum(r.completed for r in self.results)
        requested = sum(r.requests for r in self.results)
        return {
            "seeds": self.seeds,
            "start": self.start,
            "f": self.f,
            "requests_per_seed": self.requests,
            "crypto": self.crypto,
            "faults_enabled": list(self.faults),
            "wall_s": round(self.wall_s, 3),
            "seeds_per_s": round(self.seeds_per_s, 3),
            "violations": [
                {"seed": r.seed, "invariant": r.invariant, "detail": r.detail, "trace_file": r.trace_file, "shrunk": r.shrunk}
                for r in self.violations
            ],
            "liveness_failures": [
                {"seed": r.seed, "reason": r.liveness, "trace_file": r.trace_file, "shrunk": r.shrunk}
                for r in self.liveness_failures
            ],
            "liveness": {
                "seeds_live": self.seeds - len(self.liveness_failures) - len(self.violations),
                "requests_completed": completed,
                "requests": requested,
            },
            "fault_counts": self.fault_counts(),
            "fault_seeds": self.fault_seeds(),
            "messages_delivered": sum(r.delivered for r in self.results),
            **(
                {
                    "adversary": self.adversary,
                    "exceptions": [{"seed": r.seed, "detail": r.detail} for r in self.exceptions],
                    "peak_memory_bytes": self.peak_memory(),
                    "peak_memory_where": self.peak_buffer(),
                }
                if self.adversary
                else {}
            ),
        }


def _plan(seed: int, batch: Batch) -> Any:
    return generate_plan(seed, f=batch.f, requests=batch.requests, faults=batch.faults, adversary=batch.adversary)


def _run_one(seed: int, batch: Batch) -> SeedResult:
    return run_plan(_plan(seed, batch), batch.options)


def _shrink_one(seed: int, batch: Batch, failure: SeedResult, directory: str, budget_s: float) -> SeedResult:
    plan = _plan(seed, batch)
    small, small_result = shrink(plan, failure, batch.options, budget_s=budget_s) if budget_s > 0 else (plan, failure)
    path = write_failure(Path(directory), small, small_result, batch.options, original=plan)
    failure.trace_file = str(path)
    failure.shrunk = {
        "byzantine": len(small.byzantine),
        "events": len(small.events),
        "requests": len(small.requests),
        "detail": small_result.detail or small_result.liveness,
    }
    return failure


def run_seeds(
    seeds: Iterable[int],
    batch: Batch,
    *,
    jobs: int = 1,
    on_result: Callable[[SeedResult], None] | None = None,
    trace_dir: Path | None = None,
    shrink_max: int = 5,
    shrink_budget_s: float = SHRINK_BUDGET_S,
    on_shrink: Callable[[SeedResult], None] | None = None,
) -> Summary:
    seeds = list(seeds)
    started = time.perf_counter()
    summary = Summary(
        seeds=len(seeds), start=seeds[0] if seeds else 0, f=batch.f, requests=batch.requests,
        crypto=batch.options.crypto, faults=tuple(batch.faults), adversary=batch.adversary,
    )
    results: dict[int, SeedResult] = {}
    if jobs <= 1:
        for seed in seeds:
            result = _run_one(seed, batch)
            results[seed] = result
            if on_result:
                on_result(result)
    else:
        context = multiprocessing.get_context("spawn" if batch.options.crypto == "real" else None)
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            futures = {pool.submit(_run_one, seed, batch): seed for seed in seeds}
            from concurrent.futures import as_completed

            for future in as_completed(futures):
                result = future.result()
                results[result.seed] = result
                if on_result:
                    on_result(result)
    summary.results = [results[s] for s in seeds]
    summary.wall_s = time.perf_counter() - started  # seeds/s counts running seeds, not shrinking
    failures = [r for r in summary.results if not r.ok]
    if trace_dir is not None and failures:
        # One seed per distinct failure first, then the rest; only `shrink_max` are shrunk.
        seen: set[Any] = set()
        firsts = [r for r in failures if not (r.failure_key() in seen or seen.add(r.failure_key()))]
        order = firsts + [r for r in failures if r not in firsts]
        budgets = [shrink_budget_s if i < shrink_max else 0.0 for i in range(len(order))]
        if jobs <= 1:
            for r, budget in zip(order, budgets, strict=True):
                _shrink_one(r.seed, batch, r, str(trace_dir), budget)
                if on_shrink:
                    on_shrink(r)
        else:
            with ProcessPoolExecutor(max_workers=jobs) as pool:
                futures = [
                    pool.submit(_shrink_one, r.seed, batch, r, str(trace_dir), budget)
                    for r, budget in zip(order, budgets, strict=True)
                ]
                for r, future in zip(order, futures, strict=True):
                    done = future.result()
                    r.trace_file, r.shrunk = done.trace_file, done.shrunk
                    if on_shrink:
                        on_shrink(r)
    return summary


__all__ = ["Batch", "Summary", "run_seeds"]
