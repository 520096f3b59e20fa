"""``pbft bench smallbank`` over several combinations: the sweep's options, summary and outputs.

A sweep measures every combination of ``--clients`` × ``--transport`` × ``--certificates``
(each with its ``--repeat`` runs, on its own fresh cluster, exactly as a single run is
measured: `cli.bench_smallbank`). This module holds what is new about having several: parsing
the lists, one summary row per combination (with the TCP / pipes ratio), the summary as a rich
table and as GitHub markdown (so the tables in README and docs/benchmarks.md are pasted from the
tool, not typed), the sweep's JSON document and its PNG.

Everything here but the plot works on report dicts (the JSON of one run, docs/benchmarks.md), so
it can be tested without starting a process. Like ``cli.main``, it imports only Click at import
time.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import UsageFailure

if TYPE_CHECKING:
    from rich.console import Console

# `--clients` bounds: one client per benchmark client key `pbft keygen --clients` can deal.
CLIENTS_MIN, CLIENTS_MAX = 1, 4096
TRANSPORTS = ("pipes", "tcp")


def parse_clients(text: str) -> list[int]:
    """``64`` or a comma list ``1,32,64``: the client counts to measure, in that order (a
    repeated one once)."""
    parts = [part.strip() for part in text.split(",")]
    try:
        counts = [int(part) for part in parts]
    except ValueError:
        counts = []
    if not counts or any(not CLIENTS_MIN <= c <= CLIENTS_MAX for c in counts):
        raise UsageFailure(f"--clients: expected a whole number from {CLIENTS_MIN} to {CLIENTS_MAX} or a comma list of them (1,32,64), not {text!r}")
    return list(dict.fromkeys(counts))


def parse_transports(text: str) -> list[str]:
    """``pipes``, ``tcp``, ``both`` or a comma list: the transports to measure, in that order."""
    names = [part.strip() for part in text.split(",")]
    transports = list(TRANSPORTS) if names == ["both"] else names
    if not transports or any(t not in TRANSPORTS for t in transports):
        raise UsageFailure(f"--transport: expected {', '.join(TRANSPORTS)}, both or a comma list, not {text!r}")
    return list(dict.fromkeys(transports))


def combinations(clients: list[int], transports: list[str], schemes: list[str]) -> list[tuple[int, str, str]]:
    """(clients, transport, certificates) in the order they run. Client count outermost: the
    transports and schemes compared at one client count are measured one right after the other,
    so a shared machine's drift over a long sweep falls between rows of the table, not inside
    the tcp / pipes ratio."""
    return [(c, t, s) for c in clients for s in schemes for t in transports]


# ---- the summary -------------------------------------------------------------------------------


def summary_rows(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (transport, certificates, clients) of `reports` (one report each, a
    ``--repeat`` one being its median run), grouped by transport, then scheme, in the order
    they first appear, clients ascending; a tcp row has the ratio of its throughput to the pipes
    row with the same clients and scheme (``tcp_over_pipes``; null without one)."""
    rows = [_row(report) for report in reports]
    transports = list(dict.fromkeys(row["transport"] for row in rows))
    schemes = list(dict.fromkeys(row["certificates"] for row in rows))
    rows.sort(key=lambda row: (transports.index(row["transport"]), schemes.index(row["certificates"]), row["clients"]))
    pipes = {(row["clients"], row["certificates"]): row for row in rows if row["transport"] == "pipes"}
    for row in rows:
        base = pipes.get((row["clients"], row["certificates"])) if row["transport"] == "tcp" else None
        if base is not None and base["throughput_tps"]:
            row["tcp_over_pipes"] = round(row["throughput_tps"] / base["throughput_tps"], 3)
    return rows


def _row(report: dict[str, Any]) -> dict[str, Any]:
    cfg = report["config"]
    lat = report["latency_ms"]
    return {
        "transport": cfg.get("transport", "pipes"),
        "certificates": cfg.get("certificates", "bls"),
        "clients": cfg["clients"],
        "durability": cfg.get("durability"),
        "runs": len(report.get("repeats", ())) or 1,
        "throughput_tps": report["throughput_tps"],
        "ordered_tps": report["ordered_tps"],
        "latency_p50_ms": lat["p50"],
        "latency_p90_ms": lat["p90"],
        "latency_p99_ms": lat["p99"],
        "mean_batch": report["mean_batch"],
        "fast_path_share": report["fast_path_share"],
        "cpu_ms_per_tx": report["cpu_ms_per_tx"],
        "bytes_per_request": report["bytes_per_request"],
        "floor_tps": report["floor_tps"],
        "achieved_over_floor": report["achieved_over_floor"],
        "tcp_over_pipes": None,
        "run_dir": report["run_dir"],
    }


def sweep_document(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON of a run of several combinations (docs/json-report.md): every combination's
    report in the order they ran, then the summary rows."""
    return {"benchmark": "smallbank", "sweep": reports, "summary": summary_rows(reports)}


def _number(value: float | None, spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def _cells(row: dict[str, Any], with_ratio: bool) -> list[str]:
    cells = [
        row["transport"], row["certificates"], str(row["clients"]),
        _number(row["throughput_tps"], ",.0f"),
        f"{row['latency_p50_ms']:.1f} / {row['latency_p90_ms']:.1f} / {row['latency_p99_ms']:.1f}",
        _number(row["mean_batch"], ".1f"),
        _number(100 * row["fast_path_share"], ".1f", "%"),
        _number(row["cpu_ms_per_tx"], ".2f"),
        _number(row["floor_tps"], ",.0f"),
        _number(row["achieved_over_floor"], ".2f"),
    ]  # fmt: skip
    if with_ratio:
        cells.append(_number(row["tcp_over_pipes"], ".2f"))
    return cells


SUMMARY_COLUMNS = ("transport", "certificates", "clients", "tx/s", "p50 / p90 / p99 (ms)", "mean batch", "fast path", "CPU ms/tx", "floor tx/s", "achieved / floor")


def _columns(rows: list[dict[str, Any]]) -> tuple[list[str], bool]:
    # The ratio column only where there is a ratio: a pipes-only table has no use for it.
    with_ratio = any(row["tcp_over_pipes"] is not None for row in rows)
    return [*SUMMARY_COLUMNS, *(["tcp / pipes"] if with_ratio else [])], with_ratio


def render_summary(console: Console, rows: list[dict[str, Any]]) -> None:
    from rich.table import Table

    runs = max(row["runs"] for row in rows)
    each = f", the median of {runs} runs each" if runs > 1 else ""
    table = Table(title=f"SmallBank: {len(rows)} combinations{each}", title_justify="left", header_style="bold")
    columns, with_ratio = _columns(rows)
    cells = [_cells(row, with_ratio) for row in rows]
    for i, name in enumerate(columns):
        name = "certs" if name == "certificates" else name
        # Fixed widths, headers wrapped on their words: left to itself rich shrinks every column
        # of a wide table alike and cuts the numbers (eleven columns in 120 characters).
        width = max([*(len(row[i]) for row in cells), *(len(word) for word in name.split())])
        table.add_column(name, justify="left" if i < 2 else "right", width=width)
    for row in cells:
        table.add_row(*row)
    console.print(table)


def _median_cost(reports: list[dict[str, Any]], key: str) -> float | None:
    values = [r["crypto_costs_us"][key] for r in reports if key in r.get("crypto_costs_us", {})]
    return statistics.median(values) if values else None


def markdown_table(reports: list[dict[str, Any]], command: str) -> str:
    """The summary of `reports` as a GitHub-markdown table under one line naming the machine,
    the primitives' measured costs and `command`, the options that reproduce it."""
    rows = summary_rows(reports)
    first = reports[0]
    machine = first["machine"]
    cfg = first["config"]
    costs = []
    for key, name in (("ed25519_verify_us", "Ed25519 verify"), ("bls_verify_us", "BLS verify")):
        value = _median_cost(reports, key)
        if value is not None:
            costs.append(f"{name} {value:,.0f} µs")
    measured = f"; {', '.join(costs)} (the runs' floor measurements, median)" if costs else ""
    day = str(first.get("generated_at", ""))[:10]
    when = f" on {day}" if day else ""
    header = (
        f"SmallBank, n = {cfg['n']} (f = {cfg['f']}), {machine['cores']} cores ({machine['processor']}), "
        f"Python {machine['python']}{measured}{when}: `{command}`"
    )
    columns, with_ratio = _columns(rows)
    lines = [header, "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cells(row, with_ratio)) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def run_line(label: str, report: dict[str, Any]) -> str:
    """One finished run of a sweep, as a line above the progress bar (and in a captured log)."""
    lat = report["latency_ms"]
    ratio = _number(report["achieved_over_floor"], ".2f")
    return (
        f"{label}: {report['throughput_tps']:,.0f} tx/s, p50 {lat['p50']:.1f} ms, batch {report['mean_batch']:.1f}, "
        f"fast path {100 * report['fast_path_share']:.1f}%, {ratio} of the floor [dim]({Path(report['run_dir']).name})[/]"
    )


# ---- the plot ----------------------------------------------------------------------------------


def plot_sweep(reports: list[dict[str, Any]], path: Path) -> None:
    """Two panels, one line per (transport, certificates): committed tx/s against clients, and
    p50 latency against tx/s (the throughput-latency curve, each point labelled with its
    clients)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summary_rows(reports)
    lines: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        lines.setdefault((row["transport"], row["certificates"]), []).append(row)
    schemes = list(dict.fromkeys(row["certificates"] for row in rows))
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for (transport, scheme), points in lines.items():
        # A colour per scheme, TCP dashed and pipes solid: the two transports of one scheme
        # read as a pair.
        style = {"color": f"C{schemes.index(scheme)}", "linestyle": "--" if transport == "tcp" else "-", "marker": "o", "label": f"{transport}, {scheme}"}
        throughput = [p["throughput_tps"] for p in points]
        left.plot([p["clients"] for p in points], throughput, **style)
        right.plot(throughput, [p["latency_p50_ms"] for p in points], **style)
        for p in points:
            right.annotate(str(p["clients"]), (p["throughput_tps"], p["latency_p50_ms"]), textcoords="offset points", xytext=(4, 4), fontsize=7)
    left.set_xlabel("clients")
    left.set_xticks(sorted({row["clients"] for row in rows}))
    left.set_xlim(left=0)
    left.set_ylabel("committed tx/s")
    left.set_ylim(bottom=0, top=1.1 * max(1.0, *(row["throughput_tps"] for row in rows)))
    left.set_title("Throughput against clients")
    left.legend()
    right.set_xlabel("committed tx/s")
    right.set_ylabel("latency p50 (ms)")
    # Room on the right and at the top for the last point's label.
    right.set_xlim(0, 1.1 * max(1.0, *(row["throughput_tps"] for row in rows)))
    right.set_ylim(0, 1.1 * max(1.0, *(row["latency_p50_ms"] for row in rows)))
    right.set_title("Latency against throughput (points: clients)")
    right.legend()
    cfg = reports[0]["config"]
    runs = max(row["runs"] for row in rows)
    each = f", median of {runs} runs" if runs > 1 else ""
    figure.suptitle(f"SmallBank, n={cfg['n']}, {cfg['duration_s']:.0f} s per point{each}, {reports[0]['machine']['cores']} cores, Python {reports[0]['machine']['python']}")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
