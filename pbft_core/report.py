"""The machine-readable report of a run (``pbft run --json FILE``) and the agreement check.

A set's report is assembled after its cluster stopped, from two sources: what the driver saw
(each transaction's outcome, result and latency, timings) and what each replica persisted in its
SQLite database (final state, executed log, installed NEW-VIEWs, counters). Reading the replica
side back from disk, rather than from memory, means the report, ``pbft inspect`` and the
interactive session all show the same facts.

The schema is documented in ``docs/json-report.md``; `REPORT_VERSION` changes when it does.

Agreement (the safety property the CLI checks and exits 1 on): all honest live replicas hold the
same balances and the same last executed sequence number, and no two honest replicas executed
different batches at the same sequence number. ``identical_logs`` is stricter: every honest live
replica's executed log is the same list (a replica that installed a certified snapshot has no
entries below it, so it can agree without having identical logs).
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import ACCOUNTS, ClusterConfig, replica_name
from .dispatch import Outcome, TransactionOutcome
from .scenario import ScenarioSet
from .storage import ReplicaStore, replica_db_file

if TYPE_CHECKING:
    from .runtime.set_run import SetResult

REPORT_VERSION = 1


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile: the smallest observed value such that at least `fraction`
    of the values are at most it (rank ``ceil(fraction * n)``, 1-based). No interpolation, so
    every value reported was observed; the median of ``[1, 2, 3, 4]`` is 2. None if empty.
    `pbft run --json` and `pbft bench smallbank` both report this one."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def transaction_json(outcome: TransactionOutcome, line: int | None) -> dict[str, Any]:
    finished = outcome.outcome != Outcome.UNAVAILABLE
    return {
        "line": line,
        "client": outcome.client,
        "kind": outcome.kind,
        "args": list(outcome.args),
        "outcome": str(outcome.outcome),
        "result": outcome.result if finished else None,
        "latency_ms": _round(outcome.latency_ms) if finished else None,
        "fell_back": outcome.fell_back,
    }


def replica_json(store: ReplicaStore, fallback_state: dict[str, Any] | None) -> dict[str, Any]:
    """One replica's entry, from its database (and the driver's last view of it if the
    database has no final state, e.g. after a worker failure)."""
    meta = store.meta()
    final = store.final()
    executed = store.executed()
    balances = store.balances("final") if final else {}
    if final is None and fallback_state is not None:
        final = {
            k: int(fallback_state[k])
            for k in ("view", "view_active", "last_executed", "stable_seq")
        }
        balances = dict(fallback_state.get("balances", {}))
    return {
        "honest": bool(meta.get("honest", True)),
        "live": bool(meta.get("live", True)),
        "attacks": list(meta.get("attacks", [])),
        "view": final["view"] if final else None,
        "view_active": bool(final["view_active"]) if final else None,
        "last_executed": final["last_executed"]
        if final
        else (executed[-1]["seq"] if executed else 0),
        "stable_seq": final["stable_seq"] if final else None,
        "balances": {a: balances[a] for a in sorted(balances)} if balances else None,
        "executed": [
            {"seq": e["seq"], "view": e["view"], "requests": e["requests"]} for e in executed
        ],
        "new_views": [nv["view"] for nv in store.new_views()],
        "checkpoints": [row["seq"] for row in store.checkpoints() if row["how"] == "stable"],
        "metrics": store.metrics(),
    }


def new_views_json(stores: dict[str, ReplicaStore]) -> list[dict[str, Any]]:
    """Every distinct NEW-VIEW installed in the set, with who installed it."""
    seen: dict[str, dict[str, Any]] = {}
    for name, store in stores.items():
        for nv in store.new_views():
            body = {k: nv[k] for k in ("view", "leader", "view_changes", "proposals")}
            key = json.dumps(body, sort_keys=True)
            entry = seen.setdefault(key, {**body, "installed_by": []})
            entry["installed_by"].append(name)
    return sorted(seen.values(), key=lambda e: (e["view"], e["leader"]))


def check_agreement(replicas: dict[str, dict[str, Any]]) -> dict[str, Any]:
    problems: list[str] = []
    honest_live = [n for n, r in replicas.items() if r["honest"] and r["live"]]
    if honest_live:
        ref_name = honest_live[0]
        ref = replicas[ref_name]
        for name in honest_live[1:]:
            other = replicas[name]
            if other["balances"] != ref["balances"]:
                problems.append(f"{name} balances differ from {ref_name}")
            if other["last_executed"] != ref["last_executed"]:
                problems.append(
                    f"{name} executed up to {other['last_executed']}, {ref_name} up to {ref['last_executed']}"
                )
    batches: dict[int, tuple[str, Any]] = {}
    for name, r in replicas.items():
        if not r["honest"]:
            continue
        for entry in r["executed"]:
            first = batches.setdefault(entry["seq"], (name, entry["requests"]))
            if first[1] != entry["requests"]:
                problems.append(
                    f"seq {entry['seq']}: {name} executed a different batch than {first[0]}"
                )
    logs = [[(e["seq"], e["requests"]) for e in replicas[n]["executed"]] for n in honest_live]
    return {
        "ok": not problems,
        "identical_logs": all(log == logs[0] for log in logs) if logs else True,
        "honest_live": honest_live,
        "problems": problems,
    }


def set_metrics(
    outcomes: list[TransactionOutcome], first_ms: float | None, last_ms: float | None
) -> dict[str, Any]:
    finished = [o for o in outcomes if o.outcome != Outcome.UNAVAILABLE]
    latencies = [o.latency_ms for o in finished if o.latency_ms is not None]
    span_s = (last_ms - first_ms) / 1000.0 if first_ms is not None and last_ms is not None else 0.0
    return {
        "committed": sum(o.outcome == Outcome.COMMITTED for o in outcomes),
        "failed": sum(o.outcome == Outcome.FAILED for o in outcomes),
        "unavailable": sum(o.outcome == Outcome.UNAVAILABLE for o in outcomes),
        "reads_fell_back": sum(o.fell_back for o in outcomes),
        "throughput_tps": _round(len(finished) / span_s, 2) if span_s > 0 else None,
        "window_s": _round(span_s) if first_ms is not None and last_ms is not None else None,
        "latency_ms": {
            "mean": _round(statistics.fmean(latencies)) if latencies else None,
            "p50": _round(percentile(latencies, 0.50)),
            "p99": _round(percentile(latencies, 0.99)),
            "max": _round(max(latencies)) if latencies else None,
        },
    }


def build_set_report(
    scenario_set: ScenarioSet, result: SetResult, config: ClusterConfig
) -> dict[str, Any]:
    """The report of one played set, from what the set driver returned."""
    set_dir = Path(result.set_dir)
    stores: dict[str, ReplicaStore] = {}
    try:
        for r in config.replica_ids:
            path = replica_db_file(set_dir, r)
            if path.exists():
                stores[replica_name(r)] = ReplicaStore(path, read_only=True)
        replicas = {
            name: replica_json(store, result.states.get(int(name[1:])))
            for name, store in stores.items()
        }
        new_views = new_views_json(stores)
    finally:
        for store in stores.values():
            store.close()
    lines = [t.line for t in scenario_set.transactions]
    metrics = set_metrics(result.outcomes, result.first_submit_ms, result.last_completion_ms)
    metrics.update(
        startup_s=_round(result.startup_s),
        run_s=_round(result.run_ms / 1000.0),
        settle_s=_round(result.settle_ms / 1000.0),
    )
    return {
        "set": scenario_set.number,
        "line": scenario_set.line,
        "live": [replica_name(r) for r in sorted(scenario_set.live)],
        "byzantine": [replica_name(r) for r in sorted(scenario_set.byzantine)],
        "attacks": [str(a) for a in scenario_set.attacks],
        "ended_by": result.ended_by,
        "failure": result.failure,
        "settled": result.settled,
        "duration_s": _round(result.duration_s),
        "transactions": [transaction_json(o, lines[o.index]) for o in result.outcomes],
        "replicas": replicas,
        "new_views": new_views,
        "agreement": check_agreement(replicas),
        "metrics": metrics,
    }


def run_report(info: dict[str, Any], sets: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "version": REPORT_VERSION,
        "run_id": info.get("id"),
        "scenario": info.get("scenario"),
        "started_at": info.get("started_at"),
        "options": info.get("options", {}),
        "accounts": list(ACCOUNTS),
        "sets": sets,
    }


def write_json(path: str | Path, report: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(report, indent=2) + "\n")
