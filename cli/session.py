"""The interactive prompt `pbft run` offers after each set on a terminal.

A prompt line is a `pbft inspect` command line without the ``pbft inspect``: it is parsed by the
Click commands of `pbft inspect` themselves (same options, same checks, same error messages), run
on the set that just finished unless ``--run``/``--set``/``--data-dir`` name another, plus
``next``, ``quit`` and ``help``. Line editing and history come from the standard readline module
where Python has it (arrow keys, Ctrl-R, Ctrl-L; history in ``<data-dir>/prompt_history``).
"""

from __future__ import annotations

import contextlib
import shlex
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from .views import Target

HELP = """\
  log N [--all] [--type T] [--tail K]   messages replica nN received and sent
  db [N]                                what the databases hold (all replicas, or nN in detail)
  status SEQ                            PP/P/C/E/X of sequence number SEQ at every replica
  view                                  view changes and every NEW-VIEW of the set with V and O
  perf [N]                              throughput, latency and per-replica counters
  flow [-o FILE] [--from MS --to MS]    the set's message flow as a sequence diagram
  COMMAND --help                        every option (--json FILE, --run, --set, ...)
  next                                  go on with the next set (also: n, Enter on an empty line twice)
  quit                                  stop the run here (also: q, Ctrl-D)"""

HISTORY_LENGTH_MAX = 1000


def parse_replica(text: str) -> int:
    value = text.strip().lower().removeprefix("n")
    if not value.isdigit():
        raise ValueError(f"not a replica: {text!r} (expected e.g. 3 or n3)")
    return int(value)


def inspect_commands() -> dict[str, click.Command]:
    from .main import inspect

    return dict(inspect.commands)


def run_command(console: Console, target: Target, words: list[str]) -> int:
    """Run one prompt line (an inspect command and its arguments) on `target`; returns the
    command's exit code. Usage errors are printed the way `pbft inspect` words them."""
    commands = inspect_commands()
    name, args = words[0].lower(), words[1:]
    command = commands.get(name)
    if command is None:
        console.print(f"[red]unknown command {name!r}[/red]; commands: {', '.join(commands)}, next, quit, help")
        return 2
    try:
        result = command.main(
            args, prog_name=name, standalone_mode=False, obj={"target": target, "console": console}
        )
    except click.exceptions.Exit as exc:  # --help
        return exc.exit_code
    except click.ClickException as exc:
        console.print(f"[red]error:[/red] {escape(exc.format_message())}")
        return exc.exit_code
    return result if isinstance(result, int) else 0


class _LineEditor:
    """readline history for the prompt, kept across runs (when the platform has readline)."""

    def __init__(self, history: Path | None) -> None:
        try:
            import readline
        except ImportError:  # Windows without pyreadline: plain input() still works
            self.readline = None
            return
        self.readline = readline
        self.history = history
        readline.set_history_length(HISTORY_LENGTH_MAX)
        readline.parse_and_bind("tab: complete")
        names = [*inspect_commands(), "next", "quit", "help"]
        readline.set_completer(lambda text, state: ([n for n in names if n.startswith(text)] + [None])[state])
        if history is not None and history.is_file():
            with contextlib.suppress(OSError):
                readline.read_history_file(history)

    def save(self) -> None:
        if self.readline is not None and self.history is not None:
            # A read-only data directory: history is a convenience, not worth an error.
            with contextlib.suppress(OSError):
                self.readline.write_history_file(self.history)


def interact(
    console: Console, target: Target, set_number: int, *, last: bool, history: Path | None = None
) -> bool:
    """Prompt until the user goes on; returns False if they chose to quit the run."""
    hint = "quit" if last else "next, quit"
    console.print(
        f"[dim]Inspect set {set_number}: log N, db [N], status SEQ, view, perf [N], flow, help; {hint}.[/dim]"
    )
    editor = _LineEditor(history)
    empty_lines = 0
    try:
        while True:
            try:
                # input() (not console.input) so readline edits the line; the prompt is plain.
                line = input(f"set {set_number}> ")
            except EOFError:
                console.print()
                return False
            try:
                words = shlex.split(line)
            except ValueError as exc:
                console.print(f"[red]error:[/red] {exc}")
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
                console.print(HELP, markup=False)
                continue
            run_command(console, target, words)
    finally:
        editor.save()
