"""Rich renderers shared by `pbft run` (set summaries, the interactive session) and `pbft inspect`.

Everything here reads either a set's report object (the same dict the ``--json`` report holds)
or the SQLite files of a finished set (`ReplicaStore`, `RunIndex`); nothing talks to a running
cluster, so what the interactive session shows after a set is exactly what `pbft inspect`
shows later.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from pbft_core.config import ACCOUNTS
from pbft_core.smallbank import (
    OPERATION_ARGUMENTS,
    checking,
    customer_name,
    operation_text,
    savings,
)


def make_table(title: str | None = None, **kwargs: Any) -> Table:
    """The one table style of every `pbft` command: a rule under the header, the title on the
    left and never wrapped (the table is at least as wide as its title)."""
    kwargs.setdefault("min_width", len(title) if title else None)
    return Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False, **kwargs)


_table = make_table


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
    return _role_cell(r)


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


# ---- inspect: each renders one view's data (cli/views.py), the same dict --json prints -------


def _role_cell(r: dict[str, Any]) -> Text:
    """``honest``, ``down``, or ``byzantine`` with what it does (``byzantine: time; dark(n6)``)."""
    if not r["live"]:
        return Text("down", style="dim")
    if not r["honest"]:
        attacks = "; ".join(r.get("attacks") or [])
        return Text(f"byzantine: {attacks}" if attacks else "byzantine", style="magenta")
    return Text("honest")


def render_log(console: Console, data: dict[str, Any], tail: int | None = None) -> None:
    """Every message a replica received (←) and sent (→), in order."""
    role = _role_cell(data).plain
    live = "live" if data["live"] else "disconnected"
    table = _table(f"{data['replica']} message log — set {data['set']} ({role}, {live})")
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
    for row in data["messages"]:
        arrow = Text("←", style="cyan") if row["direction"] == "in" else Text("→", style="green")
        summary = row["summary"]
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
            Text(summary),
        )
    console.print(table)
    notes = [f"{data['total']} messages"]
    if len(data["messages"]) < data["total"]:
        notes.append(f"last {len(data['messages'])} shown")
    if data["hidden_status"]:
        notes.append(f"{data['hidden_status']} periodic Status gossip messages hidden (--all shows them)")
    console.print(Text(" · ".join(notes), style="dim"))


def render_db_overview(console: Console, data: dict[str, Any], where: str) -> None:
    """One line per replica database: who it is, where it ended, what it holds."""
    table = _table(f"Databases in {where}")
    for col in ("replica", "role", "view", "exec", "stable", "messages", "executed", "statuses", "new views"):
        table.add_column(col, justify="left" if col in ("replica", "role") else "right")
    table.add_column("balances")
    for r in data["replicas"]:
        table.add_row(
            r["replica"],
            _role_cell(r),
            _view_text(r["view"], r["changing_view"]),
            _cell(r["last_executed"]),
            _cell(r["stable_seq"]),
            str(r["rows"]["messages"]),
            str(r["rows"]["executed"]),
            str(r["rows"]["status_history"]),
            str(r["rows"]["new_views"]),
            _balances_text(r["balances"]),
        )
    console.print(table)
    console.print(Text(VIEW_STAR_NOTE, style="dim"))


VIEW_STAR_NOTE = "view*: still changing views when it stopped (no NEW-VIEW installed yet)"


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def _view_text(view: int | None, changing: bool | None) -> str:
    return "-" if view is None else f"{view}{'*' if changing else ''}"


# Replica facts of `db N` as people read them (the database's meta keys are JSON names).
META_LABELS = {
    "run_id": "run",
    "set": "set",
    "replica": "replica",
    "transport": "transport",
    "durability": "durability",
}


def render_db(console: Console, data: dict[str, Any]) -> None:
    """What one replica's database holds: state, executed log, checkpoints, view changes."""
    meta, final = data["meta"], data["final"]
    info = _table(f"{data['replica']} — {data['path']}", show_header=False)
    info.add_column("")
    info.add_column("", overflow="fold")
    for key, label in META_LABELS.items():
        if key in meta:
            info.add_row(label, str(meta[key]))
    info.add_row("role", _role_cell(role_of(meta)))
    if "live_set" in meta:
        info.add_row("live replicas", ", ".join(meta["live_set"]) or "none")
    if meta.get("byzantine_set"):
        info.add_row("byzantine replicas", ", ".join(meta["byzantine_set"]))
    if final is None:
        info.add_row("final state", "not recorded (the replica did not stop cleanly)")
    else:
        changing = " (still changing views)" if final["changing_view"] else ""
        info.add_row("view", f"{final['view']}{changing}")
        info.add_row("last executed", str(final["last_executed"]))
        info.add_row("stable checkpoint", str(final["stable_seq"]))
    info.add_row("balances", _balances_text(data["balances"]) or "-")
    console.print(info)

    ex = _table("executed (sequence → requests)")
    for col in ("seq", "view", "t ms", "requests", "results"):
        ex.add_column(col, justify="right" if col in ("seq", "view", "t ms") else "left", overflow="fold")
    for e in data["executed"]:
        results = ", ".join("retransmission" if r is None else str(r) for r in e["results"]) or "-"
        ex.add_row(str(e["seq"]), str(e["view"]), f"{e['t_ms']:.1f}", _requests_text(e["requests"]), results)
    console.print(ex)
    if data["statuses"]:
        st = _table("latest status per sequence number")
        for col in ("seq", "status", "view", "digest"):
            st.add_column(col)
        for row in data["statuses"]:
            st.add_row(str(row["seq"]), row["status"], str(row["view"]), (row["digest"] or "")[:8])
        console.print(st)
        console.print(Text(STATUS_LEGEND, style="dim"))
    if data["checkpoints"]:
        cp = _table("checkpoints")
        for col in ("seq", "how", "state digest", "balances"):
            cp.add_column(col)
        for row in data["checkpoints"]:
            cp.add_row(str(row["seq"]), row["how"], row["state_digest"][:16], _balances_text(row["balances"]) or "-")
        console.print(cp)
    if data["view_changes"]:
        vc = _table("view-change messages (sent → / received ←)")
        for col in ("t ms", "", "from", "new view", "checkpoint", "prepared", "pre-prepared"):
            vc.add_column(col)
        for v in data["view_changes"]:
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
    if data["new_views"]:
        console.print(Text(f"{len(data['new_views'])} NEW-VIEW installed (pbft inspect view shows them)", style="cyan"))


def role_of(meta: dict[str, Any]) -> dict[str, Any]:
    return {"live": meta.get("live", True), "honest": meta.get("honest", True), "attacks": meta.get("attacks", [])}


STATUS_LEGEND = (
    "PP pre-prepared · P prepared (slow path) · C committed · E executed · "
    "X nothing for this sequence number at that replica"
)
STATUS_STYLE = {"E": "green", "C": "green", "P": "yellow", "PP": "yellow", "X": "dim"}


def render_status(console: Console, data: dict[str, Any]) -> None:
    """PrintStatus: the status (PP/P/C/E/X) of one sequence number at every replica."""
    table = _table(f"Status of sequence number {data['seq']}")
    for col in ("replica", "role", "status", "view", "digest", "history (t ms)"):
        table.add_column(col)
    for r in data["replicas"]:
        table.add_row(
            r["replica"],
            _role_cell(r),
            Text(r["status"], style=STATUS_STYLE.get(r["status"], "")),
            _cell(r["view"]),
            (r["digest"] or "-")[:8],
            " ".join(f"{h['status']}@{h['t_ms']:.0f}" for h in r["history"]) or "-",
        )
    console.print(table)
    console.print(Text(STATUS_LEGEND, style="dim"))


def render_view(console: Console, data: dict[str, Any]) -> None:
    """Who started view changes, then every NEW-VIEW installed, with V and O spelled out."""
    if data["started"]:
        vc = _table("view changes started")
        for col in ("t ms", "replica", "to view", "reason"):
            vc.add_column(col)
        for e in data["started"]:
            vc.add_row(f"{e['t_ms']:.1f}", e["replica"], str(e["new_view"]), e["reason"])
        console.print(vc)
    if not data["new_views"]:
        console.print(Text("No NEW-VIEW in this set (it stayed in view 1 or no view change completed).", style="dim"))
        return
    for nv in data["new_views"]:
        v_table = _table("V: the 2f+1 VIEW-CHANGE messages", min_width=44)
        for col in ("from", "stable checkpoint", "prepared seqs"):
            v_table.add_column(col)
        for entry in nv["view_changes"]:
            v_table.add_row(entry["replica"], str(entry["checkpoint_seq"]), ",".join(map(str, entry["prepared"])) or "-")
        o_table = _table("O: re-proposed sequence numbers", min_width=44)
        o_table.add_column("seq", justify="right")
        o_table.add_column("requests", overflow="fold")
        for p in nv["proposals"]:
            o_table.add_row(str(p["seq"]), Text(_requests_text(p["requests"]), style="" if p["requests"] else "dim"))
        if not nv["proposals"]:
            o_table.add_row("-", "(empty: nothing prepared above the checkpoint)")
        title = (
            f"NEW-VIEW v{nv['view']} from {nv['leader']} · installed by {', '.join(nv['installed_by'])}"
            f" · first at {nv['t_ms']:.1f} ms"
        )
        console.print(Panel(Group(v_table, o_table), title=title, title_align="left", expand=False))


# `perf` columns: (header, the views.perf_view key).
PERF_COLUMNS = (
    ("log in", "log_rows_in"),
    ("log out", "log_rows_out"),
    ("batches", "batches_executed"),
    ("requests", "requests_executed"),
    ("fast", "commits_fast"),
    ("slow", "commits_slow"),
    ("fp timeouts", "fast_path_timeouts"),
    ("view ch.", "view_changes_started"),
    ("catch-up", "catch_up_entries"),
    ("dropped", "dropped"),
    ("cpu ms", "cpu_ms"),
)
PERF_LEGEND = (
    "log in / log out: rows of the replica's message log (a broadcast is one row, the replies of "
    "one batch are one row); the other columns are its protocol counters: batches and requests "
    "executed, fast and slow commits, fast-path timeouts, view changes started, catch-up entries "
    "applied, messages dropped, process CPU time"
)


def render_perf(console: Console, data: dict[str, Any]) -> None:
    """Throughput and latency of the set, and per-replica log rows and protocol counters."""
    s = data["set"]
    if s is not None:
        lat = s["latency_ms"]
        head = _table("performance of the set (as the clients saw it)")
        head.add_column("metric")
        head.add_column("value", justify="right")
        head.add_row("transactions", f"{s['committed']} committed, {s['failed']} failed, {s['unavailable']} unavailable")
        window = s.get("window_s")
        if s["throughput_tps"] is not None:
            over = f" over {window:.2f} s" if window is not None else ""
            head.add_row("throughput", f"{s['throughput_tps']:.1f} tx/s{over}")
        elif window is not None:
            head.add_row("throughput", f"- (every outcome came within {window:.2f} s: too short for a rate)")
        else:
            head.add_row("throughput", "-")
        for key in ("mean", "p50", "p99", "max"):
            head.add_row(f"latency {key}", "-" if lat[key] is None else f"{lat[key]:.1f} ms")
        head.add_row(
            "wall time",
            f"{s['duration_s']:.2f} s (startup {s['startup_s']:.2f}, run {s['run_s']:.2f}, settle {s['settle_s']:.2f})",
        )
        console.print(head)
    table = _table("per replica")
    table.add_column("replica")
    for name, _ in PERF_COLUMNS:
        table.add_column(name, justify="right")
    for r in data["replicas"]:
        table.add_row(r["replica"], *[str(r[key]) for _, key in PERF_COLUMNS])
    console.print(table)
    console.print(Text(PERF_LEGEND, style="dim"))
    if len(data["replicas"]) == 1 and "counters" in data["replicas"][0]:
        r = data["replicas"][0]
        by_type = _table(f"{r['replica']} — message log rows by type")
        for col in ("type", "received", "sent"):
            by_type.add_column(col, justify="left" if col == "type" else "right")
        for t, n in r["log_rows_by_type"].items():
            by_type.add_row(t, str(n["in"]), str(n["out"]))
        console.print(by_type)
        mt = _table(f"{r['replica']} — protocol counters")
        mt.add_column("counter")
        mt.add_column("value", justify="right")
        for k, v in r["counters"].items():
            mt.add_row(k, str(v))
        console.print(mt)


def render_runs(console: Console, data: dict[str, Any]) -> None:
    if not data["runs"]:
        console.print(f"No runs under {data['data_dir']}.")
        return
    table = _table(f"Runs under {data['data_dir']} (latest last)")
    table.add_column("run id", no_wrap=True)
    table.add_column("scenario", overflow="fold")
    for col in ("sets", "completed", "stalled", "failed", "agree", "exit"):
        table.add_column(col, no_wrap=True)
    for run in data["runs"]:
        sets = run["sets"]
        if run["exit_code"] is None:
            exit_text: str | Text = "running"
        elif run["ended"] not in (None, "finished"):
            exit_text = f"{run['exit_code']} ({run['ended']})"
        else:
            exit_text = str(run["exit_code"])
        table.add_row(
            run["run_id"],
            str(run["scenario"] or "?"),
            ",".join(str(s["number"]) for s in sets) or "-",
            str(sum(s["ended_by"] == "completed" for s in sets)),
            str(sum(s["ended_by"] == "stall" for s in sets)),
            str(sum(s["ended_by"] == "failure" for s in sets)),
            "yes" if all(s["agreement"] for s in sets) else Text("NO", style="bold red"),
            exit_text,
        )
    console.print(table)
    console.print(Text("exit: the run's exit code (docs/cli.md); running: not finished, or killed", style="dim"))
