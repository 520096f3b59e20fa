"""Rich renderers shared by `pbft run` (set summaries, the interactive session) and `pbft inspect`.

Everything here reads either a set's report object (the same dict the ``--json`` report holds)
or the SQLite files of a finished set (`ReplicaStore`, `RunIndex`); nothing talks to a running
cluster, so what the interactive session shows after a set is exactly what `pbft inspect`
shows later.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from pbft_core.config import ACCOUNTS, replica_name
from pbft_core.smallbank import (
    OPERATION_ARGUMENTS,
    checking,
    customer_name,
    operation_text,
    savings,
)
from pbft_core.storage import ReplicaStore, RunIndex, list_runs, replica_db_file

HIDDEN_BY_DEFAULT = ("Status",)  # periodic progress gossip: every replica, every 150 ms


def _table(title: str | None = None, **kwargs: Any) -> Table:
    return Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False, **kwargs)


def _fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _request_text(req: dict[str, Any]) -> str:
    args = req["args"]
    if req["kind"] == "transfer" and len(args) == 3:
        return f"{req['client']}#{req['timestamp']} {args[0]}→{args[1]} {args[2]}"
    text = operation_text(req["kind"], args)  # SendPayment(E, B, 10)
    if text is None:
        text = f"{req['kind']}({', '.join(str(a) for a in args)})"
    return f"{req['client']}#{req['timestamp']} {text}"


def _requests_text(requests: list[dict[str, Any]]) -> str:
    return "no-op" if not requests else "; ".join(_request_text(r) for r in requests)


def _txn_text(kind: str, args: list[Any]) -> str:
    if kind == "transfer" and len(args) == 3:
        return f"({args[0]}, {args[1]}, {args[2]})"
    text = operation_text(kind, args)  # SendPayment(E, B, 10)
    if text is not None:
        return text
    return "(" + ", ".join(str(a) for a in args) + ")"


# A SmallBank set's replica table shows this many customers (those its transactions name first);
# the money column still sums every balance.
CUSTOMER_COLUMNS_MAX = 10


def _balance_columns(report: dict[str, Any]) -> list[tuple[str, Any]]:
    """(title, balances -> cell text) per column of the replicas table: the ten accounts of the
    default bank, or for a SmallBank set savings + checking of the customers it names (what
    Balance returns) and the total money."""
    kinds = {t["kind"] for t in report["transactions"]}
    if not kinds & OPERATION_ARGUMENTS.keys():
        return [(a, lambda b, a=a: str(b.get(a, "-"))) for a in ACCOUNTS]
    named: dict[int, None] = {}
    for t in report["transactions"]:
        for kind, a in zip(OPERATION_ARGUMENTS.get(t["kind"], ()), t["args"], strict=False):
            if kind == "customer":
                named[int(a)] = None

    def total(b: dict[str, int], c: int) -> str:
        s, k = b.get(savings(c)), b.get(checking(c))
        return "-" if s is None or k is None else str(s + k)

    shown = sorted(named)[:CUSTOMER_COLUMNS_MAX]
    columns: list[tuple[str, Any]] = [
        (customer_name(c), lambda b, c=c: total(b, c)) for c in shown
    ]
    if len(named) > len(shown):
        columns.append((f"+{len(named) - len(shown)}", lambda _b: "…"))
    columns.append(("money", lambda b: str(sum(b.values())) if b else "-"))
    return columns


def _balances_text(balances: dict[str, int]) -> str:
    """``A9 B10`` for the bank's accounts; ``S5=1000 C5=990`` for SmallBank balances, whose
    names end in a digit (``C51000`` would be unreadable)."""
    return " ".join(f"{a}={b}" if a[-1:].isdigit() else f"{a}{b}" for a, b in balances.items())


# ---- set summary (pbft run) ------------------------------------------------------------------

OUTCOME_STYLE = {"committed": "green", "failed": "yellow", "unavailable": "red"}


def transactions_table(report: dict[str, Any]) -> Table:
    table = _table(f"Set {report['set']} — transactions")
    for name, justify in (
        ("#", "right"),
        ("line", "right"),
        ("client", "left"),
        ("transaction", "left"),
        ("outcome", "left"),
        ("result", "right"),
        ("latency ms", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for i, t in enumerate(report["transactions"], 1):
        result = "-" if t["result"] is None else str(t["result"])
        outcome = Text(t["outcome"], style=OUTCOME_STYLE.get(t["outcome"], ""))
        if t.get("fell_back"):
            outcome.append(" (ordered)", style="dim")
        table.add_row(
            str(i),
            str(t.get("line") or ""),
            t["client"],
            _txn_text(t["kind"], t["args"]),
            outcome,
            result,
            _fmt_ms(t["latency_ms"]),
        )
    return table


def _role(r: dict[str, Any]) -> Text:
    if not r["live"]:
        return Text("down", style="dim")
    if not r["honest"]:
        return Text("byzantine", style="magenta")
    return Text("honest")


def replicas_table(report: dict[str, Any]) -> Table:
    """Final state of every replica; honest live replicas that disagree are shown in red."""
    replicas = report["replicas"]
    honest_live = [n for n, r in replicas.items() if r["honest"] and r["live"]]
    votes = Counter(
        json.dumps([replicas[n]["balances"], replicas[n]["last_executed"]], sort_keys=True)
        for n in honest_live
    )
    majority = votes.most_common(1)[0][0] if votes else None
    table = _table(f"Set {report['set']} — replicas")
    table.add_column("replica")
    table.add_column("role")
    table.add_column("view", justify="right")
    table.add_column("exec", justify="right")
    columns = _balance_columns(report)
    for title, _ in columns:
        table.add_column(title, justify="right")
    for name, r in replicas.items():
        balances = r["balances"] or {}
        style = ""
        mark = ""
        if name in honest_live:
            key = json.dumps([r["balances"], r["last_executed"]], sort_keys=True)
            if key != majority:
                style, mark = "bold red", " ≠"
        elif not r["live"]:
            style = "dim"
        view = (
            "-"
            if r["view"] is None
            else str(r["view"]) + ("" if r.get("view_active", True) else "*")
        )
        table.add_row(
            name + mark,
            _role(r),
            view,
            str(r["last_executed"]),
            *[cell(balances) for _, cell in columns],
            style=style,
        )
    return table


def set_footer(report: dict[str, Any]) -> Text:
    m = report["metrics"]
    text = Text()
    ended = report["ended_by"]
    text.append(f"set {report['set']}: ", style="bold")
    if ended == "completed":
        text.append("every transaction has an outcome", style="green")
    elif ended == "stall":
        text.append(
            f"stalled: {m['unavailable']} unavailable (nothing completed for the stall timeout)",
            style="yellow",
        )
    else:
        first_line = (report.get("failure") or "").splitlines()[0] if report.get("failure") else ""
        text.append(f"worker failure: {first_line}", style="bold red")
    if ended != "stall":
        text.append(
            f" · {m['committed']} committed, {m['failed']} failed, {m['unavailable']} unavailable"
        )
    text.append(
        f"\n{report['duration_s']:.2f} s: startup {m['startup_s']:.2f}, run {m['run_s']:.2f},"
        f" settle {m['settle_s']:.2f}",
        style="dim",
    )
    agreement = report["agreement"]
    if agreement["ok"]:
        honest = len(agreement["honest_live"])
        if honest == 0:
            text.append("\nno honest live replica to compare", style="dim")
        elif honest == 1:
            text.append("\none honest live replica (nothing to compare)", style="dim")
        else:
            text.append(f"\nall {honest} honest live replicas agree", style="green")
        if not agreement["identical_logs"]:
            text.append(" (logs differ only below a transferred snapshot)", style="dim")
    else:
        text.append(
            "\nHONEST LIVE REPLICAS DISAGREE: " + "; ".join(agreement["problems"]), style="bold red"
        )
    if report["new_views"]:
        views = ", ".join(f"v{nv['view']} (leader {nv['leader']})" for nv in report["new_views"])
        text.append(f"\nnew views: {views}", style="cyan")
    details = (report.get("failure") or "").splitlines()[1:]
    if details:  # the worker's traceback, last
        text.append("\n" + "\n".join(details), style="dim")
    return text


def print_set_summary(console: Console, report: dict[str, Any]) -> None:
    console.print(transactions_table(report))
    console.print(replicas_table(report))
    console.print(set_footer(report))
    console.print()


# ---- inspect ---------------------------------------------------------------------------------


def _open(set_dir: Path, replica: int) -> ReplicaStore:
    path = replica_db_file(set_dir, replica)
    if not path.exists():
        raise FileNotFoundError(f"no database for {replica_name(replica)} in {set_dir}")
    return ReplicaStore(path, read_only=True)


def _replica_ids(set_dir: Path) -> list[int]:
    return sorted(int(p.stem[1:]) for p in set_dir.glob("n*.sqlite") if p.stem[1:].isdigit())


def render_log(
    console: Console,
    set_dir: Path,
    replica: int,
    *,
    show_all: bool = False,
    types: tuple[str, ...] = (),
    tail: int | None = None,
) -> None:
    """Every message replica `replica` received (←) and sent (→), in order."""
    with _open(set_dir, replica) as store:
        meta = store.meta()
        if types:
            rows = store.messages(types=types)
        else:
            rows = store.messages(exclude=() if show_all else HIDDEN_BY_DEFAULT)
        hidden = (
            0
            if show_all or types
            else sum(n for (_, t), n in store.message_counts().items() if t in HIDDEN_BY_DEFAULT)
        )
    shown = rows[-tail:] if tail else rows
    role = (
        "honest" if meta.get("honest", True) else "byzantine " + ", ".join(meta.get("attacks", []))
    )
    live = "live" if meta.get("live", True) else "disconnected"
    table = _table(f"{replica_name(replica)} message log — set {meta.get('set')} ({role}, {live})")
    for name, justify in (
        ("t ms", "right"),
        ("", "left"),
        ("peer", "left"),
        ("type", "left"),
        ("view", "right"),
        ("seq", "right"),
        ("digest", "left"),
        ("summary", "left"),
    ):
        table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for row in shown:
        arrow = Text("←", style="cyan") if row["direction"] == "in" else Text("→", style="green")
        summary = row["summary"] or ""
        if row["note"]:
            summary = f"{summary} [{row['note']}]".strip()
        table.add_row(
            f"{row['t_ms']:.1f}",
            arrow,
            row["peer"],
            row["type"],
            "" if row["view"] is None else str(row["view"]),
            "" if row["seq"] is None else str(row["seq"]),
            (row["digest"] or "")[:8],
            summary,
        )
    console.print(table)
    notes = [f"{len(rows)} messages"]
    if tail and len(rows) > tail:
        notes.append(f"last {tail} shown")
    if hidden:
        notes.append(f"{hidden} periodic Status gossip messages hidden (--all shows them)")
    console.print(Text(" · ".join(notes), style="dim"))


def render_db_overview(console: Console, set_dir: Path) -> None:
    """One line per replica database of the set: who it is, where it ended, what it holds."""
    table = _table(f"Databases of {set_dir}")
    for col in (
        "replica",
        "role",
        "view",
        "exec",
        "stable",
        "messages",
        "executed",
        "statuses",
        "new views",
    ):
        table.add_column(col, justify="left" if col in ("replica", "role") else "right")
    table.add_column("balances")
    for r in _replica_ids(set_dir):
        with _open(set_dir, r) as store:
            meta = store.meta()
            final = store.final() or {}
            counts = store.row_counts()
            balances = store.balances("final")
        role = _role(
            {
                "live": meta.get("live", True),
                "honest": meta.get("honest", True),
                "attacks": meta.get("attacks", []),
            }
        )
        table.add_row(
            replica_name(r),
            role,
            str(final.get("view", "-")),
            str(final.get("last_executed", "-")),
            str(final.get("stable_seq", "-")),
            str(counts["messages"]),
            str(counts["executed"]),
            str(counts["status_history"]),
            str(counts["new_views"]),
            _balances_text(balances),
        )
    console.print(table)


def render_db(console: Console, set_dir: Path, replica: int) -> None:
    """What replica `replica`'s database holds: state, executed log, checkpoints, view changes."""
    with _open(set_dir, replica) as store:
        meta = store.meta()
        final = store.final() or {}
        executed = store.executed()
        checkpoints = store.checkpoints()
        checkpoint_balances = store.checkpoint_balances()
        balances = store.balances("final")
        view_changes = store.view_changes()
        new_views = store.new_views()
        statuses = store.slot_statuses()
    info = _table(f"{replica_name(replica)} — {store.path}")
    info.add_column("key")
    info.add_column("value", overflow="fold")
    for key in (
        "run_id",
        "set",
        "replica",
        "honest",
        "live",
        "attacks",
        "live_set",
        "byzantine_set",
    ):
        if key in meta:
            info.add_row(
                key, json.dumps(meta[key]) if not isinstance(meta[key], str) else meta[key]
            )
    for key, value in final.items():
        info.add_row(key, str(value))
    info.add_row("balances", _balances_text(balances))
    console.print(info)

    ex = _table("executed (sequence → requests)")
    for col in ("seq", "view", "t ms", "requests", "results"):
        ex.add_column(
            col, justify="right" if col in ("seq", "view", "t ms") else "left", overflow="fold"
        )
    for e in executed:
        results = ", ".join("retransmission" if r is None else str(r) for r in e["results"]) or "-"
        ex.add_row(
            str(e["seq"]),
            str(e["view"]),
            f"{e['t_ms']:.1f}",
            _requests_text(e["requests"]),
            results,
        )
    console.print(ex)

    if statuses:
        st = _table("latest status per sequence number")
        for col in ("seq", "status", "view", "digest"):
            st.add_column(col)
        for row in statuses:
            st.add_row(str(row["seq"]), row["status"], str(row["view"]), row["digest"][:8])
        console.print(st)
    if checkpoints:
        cp = _table("checkpoints")
        for col in ("seq", "how", "state digest", "balances"):
            cp.add_column(col)
        for row in checkpoints:
            bal = checkpoint_balances.get(row["seq"], {})
            cp.add_row(
                str(row["seq"]),
                row["how"],
                row["state_digest"][:16],
                _balances_text(bal) or "-",
            )
        console.print(cp)
    if view_changes:
        vc = _table("view-change messages (sent → / received ←)")
        for col in ("t ms", "", "from", "new view", "checkpoint", "prepared", "pre-prepared"):
            vc.add_column(col)
        for v in view_changes:
            vc.add_row(
                f"{v['t_ms']:.1f}",
                "→" if v["direction"] == "out" else "←",
                v["replica"],
                str(v["new_view"]),
                str(v["checkpoint_seq"]),
                ",".join(map(str, v["prepared"])) or "-",
                ",".join(map(str, v["preprepared"])) or "-",
            )
        console.print(vc)
    if new_views:
        console.print(
            Text(
                f"{len(new_views)} NEW-VIEW installed (pbft inspect view shows them)", style="cyan"
            )
        )


def render_status(console: Console, set_dir: Path, seq: int) -> None:
    """PrintStatus: the status (PP/P/C/E/X) of sequence number `seq` at every replica."""
    table = _table(f"Status of sequence number {seq}")
    for col in ("replica", "role", "status", "view", "digest", "history (t ms)"):
        table.add_column(col)
    for r in _replica_ids(set_dir):
        with _open(set_dir, r) as store:
            meta = store.meta()
            row = store.slot_status(seq)
            history = store.status_history(seq)
        role = _role(
            {
                "live": meta.get("live", True),
                "honest": meta.get("honest", True),
                "attacks": meta.get("attacks", []),
            }
        )
        status = row["status"] if row else "X"
        style = {"E": "green", "C": "green", "P": "yellow", "PP": "yellow", "X": "dim"}.get(
            status, ""
        )
        table.add_row(
            replica_name(r),
            role,
            Text(status, style=style),
            str(row["view"]) if row else "-",
            (row["digest"] or "")[:8] if row else "-",
            " ".join(f"{h['status']}@{h['t_ms']:.0f}" for h in history) or "-",
        )
    console.print(table)


def render_view(console: Console, set_dir: Path) -> None:
    """Every NEW-VIEW message installed in the set, with V and O spelled out."""
    seen: dict[str, dict[str, Any]] = {}
    started: list[tuple[float, str, dict[str, Any]]] = []
    for r in _replica_ids(set_dir):
        with _open(set_dir, r) as store:
            for nv in store.new_views():
                body = {k: nv[k] for k in ("view", "leader", "view_changes", "proposals")}
                entry = seen.setdefault(
                    json.dumps(body, sort_keys=True),
                    {**body, "installed_by": [], "t_ms": nv["t_ms"]},
                )
                entry["installed_by"].append(replica_name(r))
            started.extend(
                (e["t_ms"], replica_name(r), e) for e in store.events(["view change started"])
            )
    if started:
        vc = _table("view changes started")
        for col in ("t ms", "replica", "to view", "reason"):
            vc.add_column(col)
        for t_ms, name, e in sorted(started, key=lambda x: x[0]):
            vc.add_row(f"{t_ms:.1f}", name, str(e["new_view"]), e["reason"])
        console.print(vc)
    if not seen:
        console.print(
            Text(
                "No NEW-VIEW in this set (it stayed in view 1 or no view change completed).",
                style="dim",
            )
        )
        return
    for nv in sorted(seen.values(), key=lambda e: e["view"]):
        v_table = _table("V: the 2f+1 VIEW-CHANGE messages", min_width=44)
        for col in ("from", "stable checkpoint", "prepared seqs"):
            v_table.add_column(col)
        for vc_entry in nv["view_changes"]:
            v_table.add_row(
                vc_entry["replica"],
                str(vc_entry["checkpoint_seq"]),
                ",".join(map(str, vc_entry["prepared"])) or "-",
            )
        o_table = _table("O: re-proposed sequence numbers", min_width=44)
        o_table.add_column("seq", justify="right")
        o_table.add_column("requests", overflow="fold")
        for p in nv["proposals"]:
            o_table.add_row(
                str(p["seq"]),
                Text(_requests_text(p["requests"]), style="dim" if not p["requests"] else ""),
            )
        if not nv["proposals"]:
            o_table.add_row("-", "(empty: nothing prepared above the checkpoint)")
        title = (
            f"NEW-VIEW v{nv['view']} from {nv['leader']} · installed by {', '.join(nv['installed_by'])}"
            f" · first at {nv['t_ms']:.1f} ms"
        )
        console.print(Panel(Group(v_table, o_table), title=title, title_align="left", expand=False))


PERF_COLUMNS = (
    ("in", None),
    ("out", None),
    ("batches", "executed.batches"),
    ("requests", "executed.requests"),
    ("fast", "commits.fast"),
    ("slow", "commits.slow"),
    ("fp timeouts", "fast_path.timeouts"),
    ("view ch.", "view_changes.started"),
    ("catch-up", "catch_up.entries"),
    ("dropped", "dropped"),
    ("cpu ms", "host.cpu_ms"),
)


def render_perf(
    console: Console, set_dir: Path, report: dict[str, Any] | None, replica: int | None = None
) -> None:
    """Throughput and latency of the set, and per-replica message and protocol counters."""
    if report is not None:
        m = report["metrics"]
        lat = m["latency_ms"]
        tp = "-" if m["throughput_tps"] is None else f"{m['throughput_tps']:.1f} tx/s"
        head = _table(f"Set {report['set']} — performance")
        head.add_column("metric")
        head.add_column("value", justify="right")
        head.add_row(
            "transactions",
            f"{m['committed']} committed, {m['failed']} failed, {m['unavailable']} unavailable",
        )
        head.add_row("throughput", tp)
        for key in ("mean", "p50", "p99", "max"):
            head.add_row(f"latency {key}", "-" if lat[key] is None else f"{lat[key]:.1f} ms")
        head.add_row(
            "wall time",
            f"{report['duration_s']:.2f} s (startup {m['startup_s']:.2f}, run {m['run_s']:.2f},"
            f" settle {m['settle_s']:.2f})",
        )
        console.print(head)
    ids = [replica] if replica is not None else _replica_ids(set_dir)
    table = _table("per replica")
    table.add_column("replica")
    for name, _ in PERF_COLUMNS:
        table.add_column(name, justify="right")
    details: dict[int, tuple[dict[str, int], dict[tuple[str, str], int]]] = {}
    for r in ids:
        with _open(set_dir, r) as store:
            metrics, counts = store.metrics(), store.message_counts()
        details[r] = (metrics, counts)
        cells = []
        for name, key in PERF_COLUMNS:
            if name in ("in", "out"):
                cells.append(str(sum(n for (d, _), n in counts.items() if d == name)))
            elif key == "dropped":
                cells.append(str(sum(v for k, v in metrics.items() if k.startswith("dropped."))))
            else:
                cells.append(str(metrics.get(key or "", 0)))
        table.add_row(replica_name(r), *cells)
    console.print(table)
    if replica is not None:
        metrics, counts = details[replica]
        by_type = _table(f"{replica_name(replica)} — messages by type")
        for col in ("type", "received", "sent"):
            by_type.add_column(col, justify="left" if col == "type" else "right")
        for t in sorted({t for _, t in counts}):
            by_type.add_row(t, str(counts.get(("in", t), 0)), str(counts.get(("out", t), 0)))
        console.print(by_type)
        mt = _table(f"{replica_name(replica)} — counters")
        mt.add_column("counter")
        mt.add_column("value", justify="right")
        for k, v in metrics.items():
            mt.add_row(k, str(v))
        console.print(mt)


def render_runs(console: Console, data_dir: Path) -> None:
    runs = list_runs(data_dir)
    if not runs:
        console.print(f"No runs under {data_dir}.")
        return
    table = _table(f"Runs under {data_dir} (latest last)")
    table.add_column("run id", no_wrap=True)
    table.add_column("scenario", overflow="fold")
    for col in ("sets", "completed", "stalled", "failed", "agree", "exit"):
        table.add_column(col, no_wrap=True)
    for run_dir in runs:
        with RunIndex(run_dir, read_only=True) as index:
            info, sets = index.info(), index.sets()
        numbers = ",".join(str(s["number"]) for s in sets) or "-"
        table.add_row(
            run_dir.name,
            str(info.get("scenario", "?")),
            numbers,
            str(sum(s["ended_by"] == "completed" for s in sets)),
            str(sum(s["ended_by"] == "stall" for s in sets)),
            str(sum(s["ended_by"] == "failure" for s in sets)),
            "yes" if all(s["agreement"] for s in sets) else Text("NO", style="bold red"),
            "running" if "exit_code" not in info else str(info["exit_code"]),
        )
    console.print(table)
