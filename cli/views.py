"""What each ``pbft inspect`` view shows, as plain data: the one source of its table and its
``--json`` document (docs/json-report.md, "Inspect views").

A view reads the SQLite files of one *target*: a set of a stored run (``.pbft/runs/<id>/set-K``)
or a TCP node's data directory (the ``nK.sqlite`` files `pbft node` writes). Nothing here talks
to a running cluster, so the interactive session after a set and a later ``pbft inspect`` show
the same facts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pbft_core.config import replica_name
from pbft_core.messages import MESSAGE_TYPES
from pbft_core.storage import ReplicaStore, RunIndex, list_runs, replica_db_file

# Version of every inspect view's JSON document; fields are only ever added within a version.
VIEWS_VERSION = 1
HIDDEN_BY_DEFAULT = ("Status",)  # periodic progress gossip: every replica, every 150 ms
# Message types a log row can have: every protocol message, and "?" for input that never
# decoded (the row's note says why).
MESSAGE_TYPE_NAMES = tuple(sorted(cls.__name__ for cls in MESSAGE_TYPES.values()))
# A throughput over a shorter window than this says more about timer resolution than load.
RATE_WINDOW_MIN_S = 1.0


class ViewError(ValueError):
    """A view cannot be shown as asked (a replica without a database, an unknown type)."""


@dataclass(frozen=True)
class Target:
    """What a view reads: a directory of replica databases, and where it comes from."""

    dir: Path
    kind: str  # "run" (a set of a stored run) or "node" (a TCP node's data directory)
    run_id: str | None = None
    set_number: int | None = None
    report: dict[str, Any] | None = None  # the set's report from the run index, if recorded

    @property
    def label(self) -> str:
        if self.kind == "node":
            return f"node data in {self.dir}"
        return f"run {self.run_id} · set {self.set_number}"

    def source_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "dir": str(self.dir), "run_id": self.run_id, "set": self.set_number}


def replica_ids(directory: Path) -> list[int]:
    return sorted(int(p.stem[1:]) for p in directory.glob("n*.sqlite") if p.stem[1:].isdigit())


def open_store(directory: Path, replica: int) -> ReplicaStore:
    path = replica_db_file(directory, replica)
    if not path.exists():
        present = ", ".join(replica_name(r) for r in replica_ids(directory)) or "none"
        raise ViewError(f"no database for {replica_name(replica)} in {directory} (replicas: {present})")
    return ReplicaStore(path, read_only=True)


def document(view: str, target: Target, body: dict[str, Any]) -> dict[str, Any]:
    """The envelope every view's JSON shares."""
    return {"version": VIEWS_VERSION, "view": view, "source": target.source_json(), **body}


def role_json(meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "honest": bool(meta.get("honest", True)),
        "live": bool(meta.get("live", True)),
        "attacks": list(meta.get("attacks", [])),
    }


def normalise_types(types: tuple[str, ...]) -> tuple[str, ...]:
    """Message type names in any case (``preprepare``), checked against the protocol's."""
    by_lower = {name.lower(): name for name in (*MESSAGE_TYPE_NAMES, "?")}
    out = []
    for text in types:
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            name = by_lower.get(part.lower())
            if name is None:
                raise ViewError(f"--type: no message type {part!r}; types: {', '.join(MESSAGE_TYPE_NAMES)}")
            out.append(name)
    return tuple(dict.fromkeys(out))


# ---- the views -------------------------------------------------------------------------------


def log_view(
    target: Target, replica: int, *, show_all: bool = False, types: tuple[str, ...] = (), tail: int | None = None
) -> dict[str, Any]:
    wanted = normalise_types(types)
    with open_store(target.dir, replica) as store:
        meta = store.meta()
        if wanted:
            rows = store.messages(types=wanted)
        else:
            rows = store.messages(exclude=() if show_all else HIDDEN_BY_DEFAULT)
        counts = store.message_counts()
    hidden = 0 if show_all or wanted else sum(n for (_, t), n in counts.items() if t in HIDDEN_BY_DEFAULT)
    shown = rows[-tail:] if tail else rows
    return {
        "replica": replica_name(replica),
        "set": meta.get("set"),
        **role_json(meta),
        "total": len(rows),
        "hidden_status": hidden,
        "types": list(wanted),
        "messages": [
            {
                "t_ms": row["t_ms"],
                "direction": row["direction"],
                "peer": row["peer"],
                "type": row["type"],
                "view": row["view"],
                "seq": row["seq"],
                "digest": row["digest"],
                "size": row["size"],
                "summary": row["summary"] or "",
                "note": row["note"],
            }
            for row in shown
        ],
    }


def db_overview_view(target: Target) -> dict[str, Any]:
    replicas = []
    for r in replica_ids(target.dir):
        with open_store(target.dir, r) as store:
            meta, final, counts = store.meta(), store.final() or {}, store.row_counts()
            balances = store.balances("final")
        replicas.append(
            {
                "replica": replica_name(r),
                **role_json(meta),
                "view": final.get("view"),
                "changing_view": None if "view_active" not in final else not final["view_active"],
                "last_executed": final.get("last_executed"),
                "stable_seq": final.get("stable_seq"),
                "rows": counts,
                "balances": balances,
            }
        )
    return {"replicas": replicas}


def db_view(target: Target, replica: int) -> dict[str, Any]:
    with open_store(target.dir, replica) as store:
        meta = store.meta()
        final = store.final() or {}
        checkpoint_balances = store.checkpoint_balances()
        body = {
            "replica": replica_name(replica),
            "path": str(store.path),
            "meta": {k: v for k, v in meta.items() if k != "config"},
            "final": None
            if not final
            else {
                "view": final.get("view"),
                "changing_view": not final.get("view_active", 1),
                "last_executed": final.get("last_executed"),
                "stable_seq": final.get("stable_seq"),
            },
            "balances": store.balances("final"),
            "executed": [
                {k: e[k] for k in ("seq", "view", "t_ms", "requests", "results", "state_digest")}
                for e in store.executed()
            ],
            "statuses": [
                {"seq": s["seq"], "status": s["status"], "view": s["view"], "digest": s["digest"]}
                for s in store.slot_statuses()
            ],
            "checkpoints": [
                {
                    "seq": c["seq"],
                    "how": c["how"],
                    "state_digest": c["state_digest"],
                    "t_ms": c["t_ms"],
                    "balances": checkpoint_balances.get(c["seq"], {}),
                }
                for c in store.checkpoints()
            ],
            "view_changes": store.view_changes(),
            "new_views": store.new_views(),
        }
    return body


def status_view(target: Target, seq: int) -> dict[str, Any]:
    replicas = []
    for r in replica_ids(target.dir):
        with open_store(target.dir, r) as store:
            meta = store.meta()
            row = store.slot_status(seq)
            history = store.status_history(seq)
        replicas.append(
            {
                "replica": replica_name(r),
                **role_json(meta),
                "status": row["status"] if row else "X",
                "view": row["view"] if row else None,
                "digest": (row["digest"] or None) if row else None,
                "history": [{"status": h["status"], "view": h["view"], "t_ms": h["t_ms"]} for h in history],
            }
        )
    return {"seq": seq, "replicas": replicas}


def view_changes_view(target: Target) -> dict[str, Any]:
    seen: dict[str, dict[str, Any]] = {}
    started: list[dict[str, Any]] = []
    for r in replica_ids(target.dir):
        name = replica_name(r)
        with open_store(target.dir, r) as store:
            for nv in store.new_views():
                body = {k: nv[k] for k in ("view", "leader", "view_changes", "proposals")}
                entry = seen.setdefault(
                    json.dumps(body, sort_keys=True), {**body, "installed_by": [], "t_ms": nv["t_ms"]}
                )
                entry["installed_by"].append(name)
                entry["t_ms"] = min(entry["t_ms"], nv["t_ms"])
            started.extend(
                {"t_ms": e["t_ms"], "replica": name, "new_view": e["new_view"], "reason": e["reason"]}
                for e in store.events(["view change started"])
            )
    return {
        "started": sorted(started, key=lambda e: (e["t_ms"], e["replica"])),
        "new_views": sorted(seen.values(), key=lambda e: (e["view"], e["t_ms"])),
    }


# Per-replica figures of `perf`: (JSON key, counter name or a rule below).
PERF_FIGURES = (
    ("log_rows_in", "log rows in"),
    ("log_rows_out", "log rows out"),
    ("batches_executed", "executed.batches"),
    ("requests_executed", "executed.requests"),
    ("commits_fast", "commits.fast"),
    ("commits_slow", "commits.slow"),
    ("fast_path_timeouts", "fast_path.timeouts"),
    ("fast_path_misses", "fast_path.misses"),
    ("view_changes_started", "view_changes.started"),
    ("catch_up_entries", "catch_up.entries"),
    ("dropped", "dropped.*"),
    ("cpu_ms", "host.cpu_ms"),
)


def perf_view(target: Target, replica: int | None = None) -> dict[str, Any]:
    report = target.report
    set_part = None
    if report is not None:
        m = report["metrics"]
        window_s = m.get("window_s")
        if window_s is None and m["throughput_tps"]:  # a report from before window_s existed
            window_s = round((m["committed"] + m["failed"]) / m["throughput_tps"], 3)
        set_part = {
            "committed": m["committed"],
            "failed": m["failed"],
            "unavailable": m["unavailable"],
            "window_s": window_s,
            # A rate over a few milliseconds is noise: none below RATE_WINDOW_MIN_S.
            "throughput_tps": m["throughput_tps"]
            if window_s is None or window_s >= RATE_WINDOW_MIN_S
            else None,
            "latency_ms": m["latency_ms"],
            "duration_s": report["duration_s"],
            "startup_s": m["startup_s"],
            "run_s": m["run_s"],
            "settle_s": m["settle_s"],
        }
    replicas = []
    for r in [replica] if replica is not None else replica_ids(target.dir):
        with open_store(target.dir, r) as store:
            metrics, counts = store.metrics(), store.message_counts()
        figures: dict[str, Any] = {"replica": replica_name(r)}
        for key, source in PERF_FIGURES:
            if source.startswith("log rows"):
                direction = source.rsplit(" ", 1)[1]
                figures[key] = sum(n for (d, _), n in counts.items() if d == direction)
            elif source == "dropped.*":
                figures[key] = sum(v for k, v in metrics.items() if k.startswith("dropped."))
            else:
                figures[key] = metrics.get(source, 0)
        if replica is not None:
            figures["log_rows_by_type"] = {
                t: {"in": counts.get(("in", t), 0), "out": counts.get(("out", t), 0)}
                for t in sorted({t for _, t in counts})
            }
            figures["counters"] = metrics
        replicas.append(figures)
    return {"set": set_part, "replicas": replicas}


def run_view(run_dir: Path) -> dict[str, Any]:
    """One run as `pbft runs` lists it (and `pbft report` heads its page with)."""
    with RunIndex(run_dir, read_only=True) as index:
        info, sets = index.info(), index.sets()
    return {
        "run_id": run_dir.name,
        "scenario": info.get("scenario"),
        "started_at": info.get("started_at"),
        "finished_at": info.get("finished_at"),
        "exit_code": info.get("exit_code"),
        "ended": info.get("ended", "finished" if "exit_code" in info else None),
        "sets": [{k: s[k] for k in ("number", "ended_by", "agreement", "duration_s")} for s in sets],
    }


def runs_view(data_dir: Path) -> dict[str, Any]:
    runs = [run_view(run_dir) for run_dir in list_runs(data_dir)]
    return {"version": VIEWS_VERSION, "view": "runs", "data_dir": str(data_dir), "runs": runs}
