"""``pbft report``: a whole run as one self-contained HTML file, to mail or attach to an issue.

Self-contained means the file needs nothing else to be read, on or off line: the CSS is inline,
every flow diagram is inline SVG, there is no script, no font or stylesheet link and no
``http(s)://`` reference anywhere (the SVG namespace attributes matplotlib writes are dropped:
the HTML parser puts an ``<svg>`` element in its namespace by itself).

Nothing here reads a database its own way. A set's transactions, final replica states and
agreement come from the set's report in the run index (the JSON report's object, the one
``pbft run`` printed its tables from); the tables are those very rich tables
(`render.transactions_table`, `render.replicas_table`: SmallBank customers, the ``≠`` of a
disagreeing replica, ``view*``) turned into HTML cell by cell. The view changes are
`views.view_changes_view`, the diagram is `flow.collect` + `flow.draw`, the run's summary is
`views.run_view`.

Everything that comes from the run (the scenario's path, client names, attacks, a worker's
traceback) is escaped with `html.escape`; matplotlib escapes the text it writes into the SVG.
"""

from __future__ import annotations

import html
import io
import re
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape as markup_escape
from rich.style import Style
from rich.table import Table
from rich.text import Text

from pbft_core.storage import RunIndex, set_dir, set_numbers_on_disk

from . import render, views
from .common import DEFAULT_DATA_DIR, check_output_file, is_stdout, make_console, write_output
from .flow import TYPE_COLOURS, FlowError, collect, draw
from .views import Target

# A flow with more arrows than this is drawn for its first part only (about 500 bytes of SVG an
# arrow: 1000 arrows keep a set near half a megabyte; set 10 of the official file has 540).
REPORT_ARROWS_MAX = 1000
# Steps of the search for that first part's end: the window is exact to 1/4096 of the set.
WINDOW_SEARCH_STEPS = 12
# Rich colours the tables use, as CSS colours readable on white.
CSS_COLOURS = {
    "green": "#17803d",
    "yellow": "#9a6700",
    "red": "#c62828",
    "magenta": "#a626a4",
    "cyan": "#0b7285",
}

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #1f2328; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { border-bottom: 2px solid #d0d7de; padding-bottom: 0.2em; margin-top: 2em; }
h3 { font-size: 1.05em; margin: 1.4em 0 0.4em; }
table { border-collapse: collapse; margin: 0.4em 0 0.8em; font-size: 0.9em; }
caption { text-align: left; font-weight: 600; padding: 0.2em 0; }
th, td { padding: 0.15em 0.7em; border-bottom: 1px solid #eaeef2; vertical-align: top; }
th { text-align: left; border-bottom: 2px solid #d0d7de; white-space: nowrap; }
td.r, th.r { text-align: right; font-variant-numeric: tabular-nums; }
table.facts th { border-bottom: 1px solid #eaeef2; font-weight: 600; }
.b { font-weight: 700; }
.dim { color: #6e7781; }
code, .mono { font-family: ui-monospace, "SF Mono", Menlo, Consolas, monospace; font-size: 0.9em; }
.set-header { font-size: 1.05em; }
.footer { white-space: pre-wrap; background: #f6f8fa; padding: 0.5em 0.8em; border-radius: 4px; }
.note { color: #6e7781; font-size: 0.9em; }
.legend span.swatch { display: inline-block; width: 1.6em; height: 0.35em; margin: 0 0.3em 0.15em 0.8em;
                      vertical-align: middle; }
.legend dt { font-weight: 600; float: left; clear: left; width: 3em; }
.legend dd { margin-left: 3.5em; }
nav a { margin-right: 0.8em; }
figure { margin: 0.5em 0; }
.flow { overflow-x: auto; border: 1px solid #eaeef2; }
.flow svg { width: 100%; height: auto; display: block; }
.newview { border-left: 3px solid #8b0000; padding-left: 0.8em; margin: 0.8em 0; }
""" + "".join(f".c-{name} {{ color: {colour}; }}\n" for name, colour in CSS_COLOURS.items())


def esc(value: Any) -> str:
    """Text from the run, safe in an element and in a quoted attribute."""
    return html.escape(str(value), quote=True)


# ---- rich tables as HTML -----------------------------------------------------------------------

# Renders `Text` cells into styled segments; the width only has to hold the longest cell.
_SEGMENTS = Console(width=10_000, color_system="truecolor", file=io.StringIO())


def _classes(style: Style | str | None) -> list[str]:
    if not style:
        return []
    style = Style.parse(style) if isinstance(style, str) else style
    classes = ["b"] if style.bold else []
    if style.dim:
        classes.append("dim")
    if style.color is not None and style.color.name in CSS_COLOURS:
        classes.append(f"c-{style.color.name}")
    return classes


def _cell_html(cell: Any) -> str:
    """A table cell: a `Text` keeps its colours as classes; anything else is plain text (never
    rich markup: a client named ``[bold]`` is those seven characters)."""
    if not isinstance(cell, Text):
        return esc(cell)
    parts = []
    # `Text.render` leaves the text's own style to the caller (rich applies it while laying out).
    base = _SEGMENTS.get_style(cell.style) if cell.style else Style()
    for segment in cell.render(_SEGMENTS, end=""):
        classes = _classes(base + segment.style)
        text = esc(segment.text)
        parts.append(f'<span class="{" ".join(classes)}">{text}</span>' if classes else text)
    return "".join(parts)


def table_html(table: Table, css_class: str) -> str:
    """`table` (one of the terminal's rich tables) as an HTML table with the same columns, cells,
    alignment and colours; its title becomes the caption."""
    right = [column.justify == "right" for column in table.columns]
    head = "".join(
        f"<th{' class=r' if r else ''}>{esc(column.header)}</th>"
        for column, r in zip(table.columns, right, strict=True)
    )
    columns = [list(column.cells) for column in table.columns]
    rows = []
    for i, row in enumerate(table.rows):
        classes = " ".join(_classes(row.style))  # type: ignore[arg-type]
        cells = "".join(
            f"<td{' class=r' if r else ''}>{_cell_html(column[i])}</td>"
            for column, r in zip(columns, right, strict=True)
        )
        rows.append((f'<tr class="{classes}">' if classes else "<tr>") + cells + "</tr>")
    title = table.title
    caption = f"<caption>{_cell_html(title)}</caption>" if title else ""
    return (
        f'<table class="{css_class}">{caption}<thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _facts(rows: list[tuple[str, str]]) -> str:
    """A two-column table of label → value; values are HTML already."""
    body = "".join(f"<tr><th>{esc(label)}</th><td>{value}</td></tr>" for label, value in rows)
    return f'<table class="facts"><tbody>{body}</tbody></table>'


# ---- the flow diagram as inline SVG -------------------------------------------------------------


def _window_end(target: Target, arrows_max: int, end_ms_max: float) -> float:
    """The largest end (ms into the set, to 1/4096 of `end_ms_max`) whose window from the start
    holds at most `arrows_max` arrows."""
    low, high = 0.0, end_ms_max
    for _ in range(WINDOW_SEARCH_STEPS):
        middle = (low + high) / 2
        try:
            fits = len(collect(target, end_ms=middle).arrows) <= arrows_max
        except FlowError:  # more than flow.ARROWS_MAX
            fits = False
        low, high = (middle, high) if fits else (low, middle)
    return low


def _inline_svg(figure: Any, prefix: str) -> str:
    """The figure as an ``<svg>`` element to put inside HTML: no XML prolog or DOCTYPE, no
    metadata or namespace URLs, and every id prefixed so that several diagrams in one page
    never share one (matplotlib numbers ``figure_1``, ``axes_1``, ... in each)."""
    import matplotlib
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    # A fixed salt makes the clip-path ids (hashes) the same on every run: reports can be diffed.
    with matplotlib.rc_context({"svg.hashsalt": "pbft-report", "svg.fonttype": "none"}):
        figure.savefig(buffer, format="svg", bbox_inches="tight",
                       metadata={"Creator": None, "Date": None, "Format": None, "Type": None})  # fmt: skip
    plt.close(figure)
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r'\s+xmlns(:xlink)?="[^"]*"', "", svg, count=2)
    svg = re.sub(r'(\sid=")([^"]+")', rf"\g<1>{prefix}\g<2>", svg)
    svg = re.sub(r"url\(#", f"url(#{prefix}", svg)
    return re.sub(r'(href=")#', rf"\g<1>#{prefix}", svg)


def flow_html(target: Target, duration_ms: float | None) -> str:
    """The set's flow diagram as a figure; a long set is drawn for its first `REPORT_ARROWS_MAX`
    arrows and the caption says how to draw the rest."""
    if not views.replica_ids(target.dir):
        return f'<p class="note">No replica databases in {esc(target.dir)}: nothing to draw.</p>'
    try:
        flow = collect(target)
        total: int | None = len(flow.arrows)
    except FlowError:  # more than flow.ARROWS_MAX
        flow, total = None, None
    window = ""
    caption = (
        "Time runs down; idle stretches are folded; the periodic Status gossip is counted in the "
        "title, not drawn."
    )
    if flow is None or len(flow.arrows) > REPORT_ARROWS_MAX:
        end_ms = _window_end(target, REPORT_ARROWS_MAX, duration_ms or 3_600_000.0)
        flow = collect(target, end_ms=end_ms)
        window = f" · 0–{end_ms:.0f} ms"
        of = f"of {total} " if total is not None else ""
        hint = (
            f"pbft inspect flow --run {target.run_id} --set {target.set_number} --from {end_ms:.0f}"
        )
        caption += (
            f" Only the first {end_ms:.0f} ms are drawn ({len(flow.arrows)} {of}messages); "
            f"<code>{esc(hint)}</code> draws the rest."
        )
    figure = draw(flow, f"message flow · {target.label}{window}")
    svg = _inline_svg(figure, f"s{target.set_number}-")
    return f'<figure><div class="flow">{svg}</div><figcaption class="note">{caption}</figcaption></figure>'


# ---- sections ------------------------------------------------------------------------------------


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(timestamp))


def _exit_text(run: dict[str, Any]) -> str:
    if run["exit_code"] is None:
        return "not recorded (still running, or killed)"
    return f"{run['exit_code']} ({run['ended'] or 'finished'})"


def summary_html(run: dict[str, Any], options: dict[str, Any], versions: str) -> str:
    sets = run["sets"]
    agree = "yes" if all(s["agreement"] for s in sets) else '<span class="b c-red">NO</span>'
    ended = ", ".join(
        f"{sum(s['ended_by'] == e for s in sets)} {e}" for e in ("completed", "stall", "failure")
    )
    options_text = ", ".join(f"{k} {v}" for k, v in options.items()) or "-"
    return _facts(
        [
            ("scenario", f'<span class="mono">{esc(run["scenario"] or "?")}</span>'),
            ("started", esc(_when(run["started_at"]))),
            ("finished", esc(_when(run["finished_at"]))),
            ("exit status", esc(_exit_text(run))),
            ("sets", f"{esc(', '.join(str(s['number']) for s in sets) or 'none')} ({esc(ended)})"),
            ("honest live replicas agree", agree),
            ("options", esc(options_text)),
            ("report written by", "<br>".join(esc(line) for line in versions.splitlines())),
        ]
    )


def legend_html() -> str:
    import matplotlib.colors

    statuses = "".join(
        f"<dt>{esc(code)}</dt><dd>{esc(meaning)}</dd>"
        for code, _, meaning in (part.partition(" ") for part in render.STATUS_LEGEND.split(" · "))
    )
    swatches = "".join(
        f'<span class="swatch" style="background:{matplotlib.colors.to_hex(colour)}"></span>{esc(name)}'
        for name, colour in TYPE_COLOURS.items()
    )
    outcomes = " · ".join(
        f'<span class="{" ".join(_classes(style))}">{esc(name)}</span>'
        for name, style in render.OUTCOME_STYLE.items()
    )
    return (
        '<section class="legend"><h2>Legend</h2>'
        f"<h3>Status of a sequence number at a replica</h3><dl>{statuses}</dl>"
        f"<h3>Message colours in the flow diagrams</h3><p>{swatches}"
        '<span class="swatch" style="background:#ff0000"></span>never received (red <code>x</code>)</p>'
        "<p class=note>A red diamond: a replica started a view change; a dashed dark red line across the "
        "lanes: a NEW-VIEW installed; ticks on a lane: that replica's status changes "
        "(<code>PP 1</code>, <code>C 1</code>, <code>E 1</code>).</p>"
        f"<h3>Transaction outcomes</h3><p>{outcomes}: committed (executed, the client accepted the "
        "result), failed (executed, refused by the bank: a final answer), unavailable (no answer "
        "before the set ended). A read marked <em>(ordered)</em> could not gather 2f+1 matching "
        "unordered replies and was ordered. <em>view*</em>: the replica was still changing views "
        "when the set ended.</p></section>"
    )


def _set_header(number: int, report: dict[str, Any] | None) -> str:
    if report is None:
        return f'<p class="set-header"><span class="b">Set {number}</span></p>'
    live = ", ".join(report["live"]) or "none"
    text = (
        f'<span class="b">Set {number}</span> · file line {esc(report["line"])} · live {esc(live)}'
    )
    down = [name for name, r in report["replicas"].items() if not r["live"]]
    if down:
        text += f" · disconnected {esc(', '.join(down))}"
    if report["byzantine"]:
        attacks = "; ".join(report["attacks"]) or "no attack"
        text += f' · <span class="c-magenta">byzantine {esc(", ".join(report["byzantine"]))} ({esc(attacks)})</span>'
    return f'<p class="set-header">{text}</p>'


def view_changes_html(data: dict[str, Any]) -> str:
    """Who started view changes and why, then every NEW-VIEW with who led it and its V and O."""
    parts = []
    if data["started"]:
        started = render.make_table("view changes started")
        for column in ("t ms", "replica", "to view", "reason"):
            started.add_column(column, justify="right" if column in ("t ms", "to view") else "left")
        for e in data["started"]:
            started.add_row(f"{e['t_ms']:.1f}", e["replica"], str(e["new_view"]), e["reason"])
        parts.append(table_html(started, "view-changes"))
    if not data["new_views"]:
        parts.append(
            '<p class="note">No NEW-VIEW in this set (it stayed in view 1, or no view change completed).</p>'
        )
    for nv in data["new_views"]:
        v_table = render.make_table("V: the 2f+1 VIEW-CHANGE messages")
        for column in ("from", "stable checkpoint", "prepared seqs"):
            v_table.add_column(column)
        for entry in nv["view_changes"]:
            v_table.add_row(
                entry["replica"],
                str(entry["checkpoint_seq"]),
                ",".join(map(str, entry["prepared"])) or "-",
            )
        o_table = render.make_table("O: re-proposed sequence numbers")
        o_table.add_column("seq", justify="right")
        o_table.add_column("requests")
        for p in nv["proposals"]:
            o_table.add_row(str(p["seq"]), render._requests_text(p["requests"]))
        if not nv["proposals"]:
            o_table.add_row("-", "(empty: nothing prepared above the checkpoint)")
        title = (
            f"NEW-VIEW v{nv['view']} · leader {nv['leader']} · installed by {', '.join(nv['installed_by'])}"
            f" · first at {nv['t_ms']:.1f} ms"
        )
        parts.append(
            f'<div class="newview"><p class="b c-cyan">{esc(title)}</p>'
            f"{table_html(v_table, 'view-change-set')}{table_html(o_table, 'proposals')}</div>"
        )
    return "".join(parts)


def _databases_html(target: Target) -> str:
    """Final replica states straight from the databases, for a set with no report (the run was
    interrupted while it played)."""
    table = render.make_table("replica databases")
    for column in ("replica", "role", "view", "exec", "balances"):
        table.add_column(column, justify="right" if column in ("view", "exec") else "left")
    for r in views.db_overview_view(target)["replicas"]:
        table.add_row(
            r["replica"],
            render._role_cell(r),
            render._view_text(r["view"], r["changing_view"]),
            render._cell(r["last_executed"]),
            render._balances_text(r["balances"]),
        )
    return table_html(table, "replicas")


def set_html(target: Target) -> str:
    report = target.report
    number = target.set_number
    parts = [
        f'<section class="set" id="set-{number}" data-set="{number}">',
        f"<h2>Set {number}</h2>",
    ]
    parts.append(_set_header(number or 0, report))
    if report is None:
        parts.append(
            '<p class="note">This set has no report: the run stopped while it played. Its replicas\' '
            "databases are shown as they were left.</p>"
        )
        parts.append(_databases_html(target))
    else:
        parts.append(f'<p class="footer">{_cell_html(render.set_footer(report))}</p>')
        parts.append("<h3>Transactions</h3>")
        parts.append(table_html(render.transactions_table(report), "transactions"))
        parts.append("<h3>Replicas: final state</h3>")
        parts.append(table_html(render.replicas_table(report), "replicas"))
    parts.append("<h3>View changes</h3>")
    parts.append(view_changes_html(views.view_changes_view(target)))
    parts.append("<h3>Message flow</h3>")
    duration_ms = report["duration_s"] * 1000 if report and report.get("duration_s") else None
    parts.append(flow_html(target, duration_ms))
    parts.append("</section>")
    return "\n".join(parts)


def set_targets(run_dir: Path) -> list[Target]:
    """Every set of the run, played or left on disk by an interrupted run, in number order."""
    with RunIndex(run_dir, read_only=True) as index:
        numbers = sorted({s["number"] for s in index.sets()} | set(set_numbers_on_disk(run_dir)))
        return [
            Target(set_dir(run_dir, n), "run", run_dir.name, n, index.set_report(n))
            for n in numbers
        ]


def build(run_dir: Path, versions: str) -> str:
    """The whole report of the run in `run_dir`, as one HTML document."""
    run = views.run_view(run_dir)
    with RunIndex(run_dir, read_only=True) as index:
        options = index.info().get("options", {})
    targets = set_targets(run_dir)
    title = f"pbft run {run['run_id']}"
    nav = " ".join(f'<a href="#set-{t.set_number}">set {t.set_number}</a>' for t in targets)
    body = "\n".join(set_html(t) for t in targets) or '<p class="note">This run played no set.</p>'
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f'<header><h1>{esc(title)}</h1><section class="summary">{summary_html(run, options, versions)}</section>'
        f"<nav>{nav}</nav></header>\n"
        f"{legend_html()}\n{body}\n"
        '<p class="note">Written by <code>pbft report</code> from the run\'s databases; '
        "<code>pbft inspect</code> shows the same facts and more (message logs, statuses, counters).</p>\n"
        "</body>\n</html>\n"
    )


# ---- the command ---------------------------------------------------------------------------------


@click.command("report")
@click.argument("run_id", metavar="[RUN]", required=False)
@click.option(
    "-o",
    "--output",
    type=click.Path(allow_dash=True, path_type=Path),
    default=Path("report.html"),
    show_default=True,
    help="The HTML file ('-': stdout).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DATA_DIR,
    envvar="PBFT_DATA_DIR",
    show_default=True,
    help="Where runs are stored (default ./.pbft, or $PBFT_DATA_DIR).",
)
@click.help_option("-h", "--help")
def report(run_id: str | None, output: Path, data_dir: Path) -> None:
    """One self-contained HTML file of RUN (an id or unique prefix; default: the latest run):
    each set's transactions, replica states, view changes and message flow."""
    from .main import _find_run, _versions

    run_dir = _find_run(data_dir, run_id, flag="RUN")
    check_output_file(output, "-o")
    write_output(output, build(run_dir, _versions()))
    where = "stdout" if is_stdout(output) else str(output)
    # With `-o -` the document owns stdout: the confirmation goes to stderr.
    make_console(stderr=is_stdout(output)).print(
        f"[dim]run {run_dir.name}[/dim] · report: {markup_escape(where)}"
    )
