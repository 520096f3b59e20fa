"""The interactive prompt `pbft run` offers after each set on a terminal.

It accepts the `pbft inspect` views on the set that just finished (same renderers, same SQLite
files) plus ``next`` and ``quit``.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from rich.console import Console

from . import render

HELP = """\
  log N [--all] [--tail K]   messages replica nN received and sent
  db [N]                     what the databases hold (all replicas, or nN in detail)
  status SEQ                 PP/P/C/E/X of sequence number SEQ at every replica
  view                       every NEW-VIEW of the set with V and O
  perf [N]                   throughput, latency and per-replica counters
  next                       go on with the next set (also: n, Enter on an empty line twice)
  quit                       stop the run here (also: q, Ctrl-D)"""


def parse_replica(text: str) -> int:
    value = text.strip().lower().removeprefix("n")
    if not value.isdigit():
        raise ValueError(f"not a replica: {text!r} (expected e.g. 3 or n3)")
    return int(value)


def run_command(
    console: Console, set_dir: Path, report: dict[str, Any] | None, words: list[str]
) -> None:
    """Run one inspect-style command on a finished set (shared by the session and tests)."""
    command, args = words[0].lower(), words[1:]
    if command == "log":
        if not args:
            raise ValueError("usage: log N [--all] [--tail K]")
        tail = None
        if "--tail" in args:
            i = args.index("--tail")
            tail = int(args[i + 1])
            del args[i : i + 2]
        show_all = "--all" in args
        args = [a for a in args if a != "--all"]
        render.render_log(console, set_dir, parse_replica(args[0]), show_all=show_all, tail=tail)
    elif command == "db":
        if args:
            render.render_db(console, set_dir, parse_replica(args[0]))
        else:
            render.render_db_overview(console, set_dir)
    elif command == "status":
        if not args or not args[0].isdigit():
            raise ValueError("usage: status SEQ")
        render.render_status(console, set_dir, int(args[0]))
    elif command == "view":
        render.render_view(console, set_dir)
    elif command == "perf":
        render.render_perf(console, set_dir, report, parse_replica(args[0]) if args else None)
    else:
        raise ValueError(f"unknown command {command!r}; type help")


def interact(console: Console, set_dir: Path, report: dict[str, Any], *, last: bool) -> bool:
    """Prompt until the user goes on; returns False if they chose to quit the run."""
    hint = "quit" if last else "next, quit"
    console.print(
        f"[dim]Inspect set {report['set']}: log N, db [N], status SEQ, view, perf [N], help; {hint}.[/dim]"
    )
    empty_lines = 0
    while True:
        try:
            line = console.input(f"[bold cyan]set {report['set']}>[/] ")
        except EOFError:
            console.print()
            return False
        try:
            words = shlex.split(line)
        except ValueError as exc:
            console.print(f"[red]{exc}[/red]")
            continue
        if not words:
            empty_lines += 1
            if empty_lines >= 2:
                return True
            continue
        empty_lines = 0
        command = words[0].lower()
        if command in ("next", "n", "continue", "c"):
            return True
        if command in ("quit", "q", "exit"):
            return False
        if command in ("help", "h", "?"):
            console.print(HELP)
            continue
        try:
            run_command(console, set_dir, report, words)
        except (ValueError, IndexError, FileNotFoundError) as exc:
            console.print(f"[red]{exc}[/red]")
