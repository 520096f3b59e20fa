"""``pbft inspect flow``: a set's message flow as a sequence diagram (matplotlib, SVG or PNG).

One lane per replica and one for the clients, time running down. Every message a replica logged
as sent is an arrow from its lane at the send time to the receiver's lane at the time the
receiver logged it; a message no receiver logged (dropped on the way, sent to a crashed or
disconnected replica) ends in a red ``x`` half-way. Arrows are coloured by type; pre-prepares
carry their sequence number and batch size. View changes started are marked on their lane,
every NEW-VIEW is a line across the lanes, and each replica's status changes for a sequence
number (PP / P / C / E) are ticks on its lane. The periodic Status gossip is folded (counted in
the title) unless asked for, and ``--from/--to`` cut a window out of a long set.

Only the replicas' databases are read, so a set can be drawn long after it ran.
"""

from __future__ import annotations

import bisect
import io
import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pbft_core.config import replica_name

from .views import Target, open_store, replica_ids

CLIENTS_LANE = "clients"
# Colour per message type (matplotlib's tableau palette); any other type is grey.
TYPE_COLOURS = {
    "Request": "tab:gray",
    "Reply": "tab:olive",
    "PrePrepare": "tab:blue",
    "PrepareShare": "tab:cyan",
    "PrepareCertificate": "tab:green",
    "CommitShare": "tab:purple",
    "CommitCertificate": "tab:pink",
    "FastCommit": "tab:orange",
    "SlowPath": "coral",
    "Checkpoint": "tab:brown",
    "ViewChange": "tab:red",
    "NewView": "darkred",
    "Fetch": "gold",
    "CatchUp": "goldenrod",
    "Status": "lightgray",
}
FOLDED_TYPES = ("Status",)
# A receive logged this much before its send is still that message (two processes' clocks).
CLOCK_SLACK_MS = 2.0
ARROWS_MAX = 3000  # beyond this the picture is a smear: ask for a window


class FlowError(ValueError):
    """Nothing to draw, or too much without a window."""


@dataclass
class Arrow:
    sender: str
    receiver: str
    sent_ms: float
    received_ms: float | None  # None: no receiver logged it
    type: str
    label: str = ""


@dataclass
class Flow:
    lanes: list[str]
    roles: dict[str, str]
    arrows: list[Arrow] = field(default_factory=list)
    ticks: list[tuple[str, float, str]] = field(default_factory=list)  # lane, t, "PP s1"
    view_changes: list[tuple[str, float, int]] = field(default_factory=list)
    new_views: list[tuple[float, int, str]] = field(default_factory=list)
    folded: int = 0
    dark: list[str] = field(default_factory=list)  # "n7 → n6" links a Byzantine replica keeps dark


def collect(target: Target, *, start_ms: float | None = None, end_ms: float | None = None, show_all: bool = False) -> Flow:
    """The arrows, ticks and view changes of the target's replicas inside [start_ms, end_ms]."""
    ids = replica_ids(target.dir)
    if not ids:
        raise FlowError(f"no replica databases in {target.dir}")
    names = [replica_name(r) for r in ids]
    flow = Flow(lanes=[*names, CLIENTS_LANE], roles={})
    sends: list[tuple[str, Any]] = []
    # (receiver, sender, type) -> sorted receive times, each consumed by one send at most.
    receives: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    seen_nv: set[tuple[int, str]] = set()

    def inside(t: float) -> bool:
        return (start_ms is None or t >= start_ms) and (end_ms is None or t <= end_ms)

    for r, name in zip(ids, names, strict=True):
        with open_store(target.dir, r) as store:
            meta = store.meta()
            attacks = list(meta.get("attacks", []))
            if not meta.get("live", True):
                flow.roles[name] = "down"
            elif not meta.get("honest", True):
                flow.roles[name] = "byzantine: " + "; ".join(attacks)
                flow.dark += [f"{name} → {a[5:-1]}" for a in attacks if a.startswith("dark(")]
            else:
                flow.roles[name] = "honest"
            for row in store.messages():
                if row["type"] in FOLDED_TYPES and not show_all:
                    flow.folded += inside(row["t_ms"])
                    continue
                if row["direction"] == "out":
                    sends.append((name, row))
                else:
                    receives[(name, row["peer"], row["type"])].append(row["t_ms"])
            for h in store.db.execute("SELECT t_ms, seq, status FROM status_history ORDER BY id"):
                if inside(h["t_ms"]):
                    flow.ticks.append((name, h["t_ms"], f"{h['status']} {h['seq']}"))
            for e in store.events(["view change started"]):
                if inside(e["t_ms"]):
                    flow.view_changes.append((name, e["t_ms"], e["new_view"]))
            for nv in store.new_views():
                if inside(nv["t_ms"]) and (nv["view"], nv["leader"]) not in seen_nv:
                    seen_nv.add((nv["view"], nv["leader"]))
                    flow.new_views.append((nv["t_ms"], nv["view"], nv["leader"]))
    for times in receives.values():
        times.sort()
    for sender, row in sorted(sends, key=lambda s: s[1]["t_ms"]):
        t = row["t_ms"]
        label = ""
        if row["type"] == "PrePrepare":
            count = (row["summary"] or "").split(" ", 1)[0]
            label = f"s{row['seq']} v{row['view']}" + (f" ({count} req)" if count.isdigit() else " no-op")
        for peer in (row["peer"] or "").split(","):
            receiver = peer if peer in names else CLIENTS_LANE
            received = None
            if receiver != CLIENTS_LANE:
                times = receives.get((receiver, sender, row["type"]), [])
                i = bisect.bisect_left(times, t - CLOCK_SLACK_MS)
                if i < len(times):
                    received = times.pop(i)
            else:
                received = t
            if inside(t) or (received is not None and inside(received)):
                flow.arrows.append(Arrow(sender, receiver, t, received, row["type"], label))
                label = ""  # one label per broadcast
    # Requests come from clients, which have no database: their arrival is the arrow.
    for (receiver, sender, kind), times in receives.items():
        if sender not in names:
            flow.arrows.extend(Arrow(CLIENTS_LANE, receiver, t, t, kind) for t in times if inside(t))
    if len(flow.arrows) > ARROWS_MAX:
        raise FlowError(
            f"{len(flow.arrows)} messages are too many for one picture: draw a window with --from MS --to MS"
        )
    return flow


# Idle stretches longer than this are folded to `FOLDED_GAP` units, so a set that waits 600 ms
# for a timer does not push its interesting parts off the page.
IDLE_GAP_MS = 40.0
FOLDED_GAP = 8.0


class TimeAxis:
    """Set time → drawing position, with every idle stretch longer than `IDLE_GAP_MS` folded."""

    def __init__(self, times: list[float]) -> None:
        ts = sorted(set(times)) or [0.0]
        self.pieces: list[tuple[float, float]] = [(ts[0], 0.0)]  # (set time, position) of each piece
        self.folds: list[tuple[float, float]] = []  # (position, idle ms) of each fold
        position = 0.0
        for before, t in itertools.pairwise(ts):
            if t - before > IDLE_GAP_MS:
                position += FOLDED_GAP
                self.folds.append((position - FOLDED_GAP / 2, t - before))
                self.pieces.append((t, position))
            else:
                position += t - before
        self.end = position
        self._starts = [t for t, _ in self.pieces]

    def __call__(self, t: float) -> float:
        i = max(0, bisect.bisect_right(self._starts, t) - 1)
        start, position = self.pieces[i]
        return position + (t - start)


def draw(flow: Flow, title: str) -> Any:
    """A matplotlib figure of `flow` (time runs down)."""
    import matplotlib

    matplotlib.use("Agg")
    # SVG text stays text (searchable, small), not glyph outlines.
    matplotlib.rcParams["svg.fonttype"] = "none"
    import matplotlib.pyplot as plt

    times = [a.sent_ms for a in flow.arrows] + [a.received_ms for a in flow.arrows if a.received_ms is not None]
    times += [t for _, t, _ in flow.ticks] + [t for t, _, _ in flow.new_views]
    times += [t for _, t, _ in flow.view_changes]
    y = TimeAxis(times)
    low, high = 0.0, y.end
    span = max(high - low, 1.0)
    height = min(40.0, 4.0 + 0.03 * (len(flow.arrows) + len(flow.ticks) / 3))
    figure, axes = plt.subplots(figsize=(2.0 + 1.5 * len(flow.lanes), height))
    x = {lane: i for i, lane in enumerate(flow.lanes)}
    for lane, i in x.items():
        role = flow.roles.get(lane, "")
        colour = "magenta" if role.startswith("byzantine") else "lightgray" if role == "down" else "black"
        axes.axvline(i, color=colour, linewidth=1.2 if colour != "lightgray" else 0.6, zorder=0)
        axes.text(i, low - 0.04 * span, f"{lane}\n{role}" if role and role != "honest" else lane,
                  ha="center", va="bottom", fontsize=8, color=colour)  # fmt: skip
    used: set[str] = set()
    for a in flow.arrows:
        colour = TYPE_COLOURS.get(a.type, "dimgray")
        x0, x1 = x[a.sender], x[a.receiver]
        if a.received_ms is None:  # never logged by its receiver: lost or refused before the log
            mid = (x0 + x1) / 2
            axes.annotate("", xy=(mid, y(a.sent_ms) + 0.01 * span), xytext=(x0, y(a.sent_ms)),
                          arrowprops={"arrowstyle": "-", "color": "red", "linestyle": "--", "linewidth": 0.8})  # fmt: skip
            axes.plot([mid], [y(a.sent_ms) + 0.01 * span], marker="x", color="red", markersize=5)
            used.add("lost")
            continue
        axes.annotate("", xy=(x1, y(a.received_ms)), xytext=(x0, y(a.sent_ms)),
                      arrowprops={"arrowstyle": "->", "color": colour, "linewidth": 0.8, "shrinkA": 0, "shrinkB": 0})  # fmt: skip
        used.add(a.type)
        if a.label:
            axes.text(x0 + 0.08, y(a.sent_ms), a.label, fontsize=7, color=colour, va="bottom")
    for lane, t, text in flow.ticks:
        axes.plot([x[lane] - 0.06, x[lane] + 0.06], [y(t), y(t)], color="black", linewidth=1)
        axes.text(x[lane] - 0.08, y(t), text, fontsize=6, ha="right", va="center")
    for lane, t, view in flow.view_changes:
        axes.plot([x[lane]], [y(t)], marker="D", color="tab:red", markersize=5)
        axes.text(x[lane] + 0.08, y(t), f"view change → v{view}", fontsize=7, color="tab:red", va="center")
    for t, view, leader in flow.new_views:
        axes.axhline(y(t), color="darkred", linestyle="--", linewidth=1)
        axes.text(len(flow.lanes) - 0.5, y(t), f"NEW-VIEW v{view} ({leader})", fontsize=8, color="darkred",
                  ha="right", va="bottom")  # fmt: skip
    from matplotlib.lines import Line2D

    handles = [Line2D([0], [0], color=TYPE_COLOURS.get(t, "dimgray"), label=t) for t in sorted(used - {"lost"})]
    if "lost" in used:
        handles.append(Line2D([0], [0], color="red", linestyle="--", marker="x", label="never received"))
    axes.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    for position, idle_ms in y.folds:
        axes.axhspan(position - FOLDED_GAP / 3, position + FOLDED_GAP / 3, color="whitesmoke", zorder=-1)
        axes.text(-0.65, position, f"… {idle_ms:.0f} ms without messages …", fontsize=7, color="gray", va="center")
    axes.set_yticks([position for _, position in y.pieces], [f"{t:.0f}" for t, _ in y.pieces], fontsize=7)
    axes.set_ylim(high + 0.03 * span, low - 0.08 * span)
    axes.set_xlim(-0.7, len(flow.lanes) - 0.3)
    axes.set_xticks([])
    axes.set_ylabel("ms since the set started (idle stretches folded)")
    notes = []
    if flow.folded:
        notes.append(f"{flow.folded} Status gossip messages folded (--all draws them)")
    if flow.dark:
        notes.append("dark links: " + ", ".join(flow.dark))
    axes.set_title(title + ("\n" + " · ".join(notes) if notes else ""), fontsize=10, loc="left")
    figure.tight_layout()
    return figure


def render(target: Target, path: Path | None, *, start_ms: float | None = None, end_ms: float | None = None,
           show_all: bool = False, image_format: str = "svg") -> bytes:  # fmt: skip
    """Draw the target's flow; write it to `path` (format from its suffix) and return the bytes."""
    import matplotlib.pyplot as plt

    flow = collect(target, start_ms=start_ms, end_ms=end_ms, show_all=show_all)
    window = "" if start_ms is None and end_ms is None else f" · {start_ms or 0:g}–{end_ms if end_ms is not None else '…'} ms"
    figure = draw(flow, f"message flow · {target.label}{window}")
    if path is not None and path.suffix.lower() in (".png", ".svg", ".pdf"):
        image_format = path.suffix.lower()[1:]
    buffer = io.BytesIO()
    figure.savefig(buffer, format=image_format, dpi=110, bbox_inches="tight")
    plt.close(figure)
    data = buffer.getvalue()
    if path is not None:
        path.write_bytes(data)
    return data
