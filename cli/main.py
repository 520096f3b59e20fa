"""The ``pbft`` command line (Click + rich).

``pbft run`` plays a scenario file set by set on real replica processes (the pipes shell),
persists every replica's database, prints a quiet tabular summary per set and, on a terminal,
offers an interactive prompt after each set. ``pbft inspect`` renders those databases later;
``pbft runs`` lists runs. See ``docs/cli.md``.

Exit codes: 0 success; 1 a set ended with honest live replicas disagreeing or a worker failure;
2 bad usage or a malformed scenario file (reported as ``error: FILE:LINE: message`` before any
process starts).

Heavy modules (rich, the protocol, the runtime) are imported inside the commands: the pipes
shell spawns its workers with the ``spawn`` start method, which re-imports the main script in
every worker, so this module must stay cheap to import.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .common import DEFAULT_DATA_DIR, make_console
from .errors import UsageFailure

if TYPE_CHECKING:
    from rich.console import Console

DATA_DIR_HELP = "Where runs are stored (default ./.pbft, or $PBFT_DATA_DIR)."


def _console() -> Console:
    return make_console()


# ``pbft bench`` subcommands: name → "module:attribute" of a click command, imported on use.
BENCH_COMMANDS: dict[str, str] = {
    "sig": "thresh_sig.bench:cli",
    "scale": "cli.bench_scale:scale",
    "smallbank": "cli.bench_smallbank:bench_smallbank",
}


class _LazyBenchGroup(click.Group):
    """``pbft bench``: subcommands (`BENCH_COMMANDS`) are imported only when used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *BENCH_COMMANDS})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is not None or name not in BENCH_COMMANDS:
            return command
        import importlib

        module, attribute = BENCH_COMMANDS[name].split(":")
        loaded: click.Command = getattr(importlib.import_module(module), attribute)
        return loaded


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pbft", prog_name="pbft")
def main() -> None:
    """pbft: a Byzantine-fault-tolerant replicated bank (Linear PBFT, BLS threshold certificates)."""


# ---- run -------------------------------------------------------------------------------------


@main.command()
@click.argument("scenario", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--non-interactive", is_flag=True, help="Never prompt between sets (implied without a TTY)."
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the JSON report here.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DATA_DIR,
    envvar="PBFT_DATA_DIR",
    show_default=True,
    help=DATA_DIR_HELP,
)
@click.option(
    "--sets", "set_spec", default="all", show_default=True, help="Sets to play, e.g. 1,3-5."
)
@click.option(
    "--transport",
    type=click.Choice(["pipes", "tcp"]),
    default="pipes",
    show_default=True,
    help="How replicas talk: one process per replica linked by pipes, or one `pbft node` process per replica over loopback TCP.",
)
@click.option(
    "--fast-path/--no-fast-path",
    default=True,
    show_default=True,
    help="Commit in one round when all n replicas answer.",
)
@click.option(
    "--checkpoint-interval",
    type=click.IntRange(1, 10_000),
    default=10,
    show_default=True,
    help="Sequence numbers between checkpoints (K).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 10_000),
    default=64,
    show_default=True,
    help="Most requests the leader puts in one batch.",
)
@click.option(
    "--stall-timeout",
    type=click.FloatRange(0.1, 3600),
    default=3.0,
    show_default=True,
    help="Seconds without any completed transaction after which a set ends.",
)
@click.option(
    "--seed",
    type=int,
    default=None,
    help="Derive every set's keys from this seed (reproducible keys).",
)
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Show protocol events (view changes, new views, checkpoints, drops).",
)
def run(
    scenario: Path,
    non_interactive: bool,
    json_path: Path | None,
    data_dir: Path,
    set_spec: str,
    transport: str,
    fast_path: bool,
    checkpoint_interval: int,
    batch_size: int,
    stall_timeout: float,
    seed: int | None,
    verbose: bool,
) -> None:
    """Play SCENARIO.csv set by set, each on a fresh cluster of seven replica processes."""
    from pbft_core.scenario import ScenarioError, parse_scenario_file, select_sets

    # Everything is checked before any process starts.
    try:
        all_sets = parse_scenario_file(scenario)
    except ScenarioError as exc:
        raise UsageFailure(str(exc)) from None
    except OSError as exc:
        raise UsageFailure(f"{scenario}: {exc.strerror or exc}") from None
    try:
        sets = select_sets(all_sets, set_spec)
    except ValueError as exc:
        raise UsageFailure(f"--sets: {exc}") from None
    if not sets:
        raise UsageFailure(f"{scenario}: no sets to play")
    if json_path is not None and not json_path.parent.is_dir():
        raise UsageFailure(f"--json: directory {json_path.parent} does not exist")
    from .runner import RunOptions, play

    options = RunOptions(
        scenario=scenario,
        data_dir=data_dir,
        json_path=json_path,
        interactive=not non_interactive and sys.stdin.isatty() and sys.stdout.isatty(),
        fast_path=fast_path,
        checkpoint_interval=checkpoint_interval,
        batch_size=batch_size,
        stall_timeout_s=stall_timeout,
        seed=seed,
        verbose=verbose,
        transport=transport,
    )
    sys.exit(play(_console(), sets, options))


# ---- inspect ---------------------------------------------------------------------------------


def _target_options(fn: Any) -> Any:
    fn = click.option(
        "--set",
        "set_number",
        type=int,
        default=None,
        help="Set number (default: the last one played).",
    )(fn)
    fn = click.option(
        "--run", "run_id", default=None, help="Run id or unique prefix (default: the latest run)."
    )(fn)
    fn = click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=DEFAULT_DATA_DIR,
        envvar="PBFT_DATA_DIR",
        show_default=True,
        help=DATA_DIR_HELP,
    )(fn)
    return fn


def _resolve(
    data_dir: Path, run_id: str | None, set_number: int | None
) -> tuple[Path, int, dict[str, Any] | None]:
    """(set directory, set number, the set's report if the run index has it)."""
    from pbft_core.storage import RunIndex, find_run, set_dir, set_numbers_on_disk

    run_dir = find_run(data_dir, run_id)
    if run_dir is None:
        if run_id is None:
            raise UsageFailure(f"no runs under {data_dir} (play one with `pbft run FILE`)")
        raise UsageFailure(f"no run {run_id!r} under {data_dir} (see `pbft runs`)")
    with RunIndex(run_dir, read_only=True) as index:
        played = index.sets()
        on_disk = set_numbers_on_disk(run_dir)
        if set_number is None:
            if played:
                set_number = max(played, key=lambda s: s["started_at"])["number"]
            elif on_disk:
                set_number = on_disk[-1]
            else:
                raise UsageFailure(f"run {run_dir.name} has no sets yet")
        if set_number not in on_disk:
            sets_text = ", ".join(map(str, on_disk)) or "none"
            raise UsageFailure(f"run {run_dir.name} has no set {set_number} (sets: {sets_text})")
        report = index.set_report(set_number)
    return set_dir(run_dir, set_number), set_number, report


def _replica_arg(value: str) -> int:
    from .session import parse_replica

    try:
        replica = parse_replica(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if not 1 <= replica <= 7:
        raise click.BadParameter(f"no replica n{replica} (n1..n7)")
    return replica


def _header(console: Console, set_dir: Path, set_number: int) -> None:
    console.print(f"[dim]run {set_dir.parent.name} · set {set_number}[/dim]")


@main.group()
def inspect() -> None:
    """Look at what the replicas of a finished set did (reads their SQLite files)."""


@inspect.command("log")
@click.argument("replica")
@click.option("--all", "show_all", is_flag=True, help="Include the periodic Status gossip.")
@click.option("--type", "types", multiple=True, help="Only these message types (repeatable).")
@click.option("--tail", type=click.IntRange(1), default=None, help="Only the last N messages.")
@_target_options
def inspect_log(
    replica: str,
    show_all: bool,
    types: tuple[str, ...],
    tail: int | None,
    data_dir: Path,
    run_id: str | None,
    set_number: int | None,
) -> None:
    """Messages replica N received (←) and sent (→), in order (PrintLog)."""
    from . import render

    set_dir, number, _ = _resolve(data_dir, run_id, set_number)
    console = _console()
    _header(console, set_dir, number)
    render.render_log(
        console, set_dir, _replica_arg(replica), show_all=show_all, types=types, tail=tail
    )


@inspect.command("db")
@click.argument("replica", required=False)
@_target_options
def inspect_db(
    replica: str | None, data_dir: Path, run_id: str | None, set_number: int | None
) -> None:
    """What the databases hold: every replica at a glance, or replica N in detail (PrintDB)."""
    from . import render

    set_dir, number, _ = _resolve(data_dir, run_id, set_number)
    console = _console()
    _header(console, set_dir, number)
    if replica is None:
        render.render_db_overview(console, set_dir)
    else:
        render.render_db(console, set_dir, _replica_arg(replica))


@inspect.command("status")
@click.argument("seq", type=click.IntRange(1))
@_target_options
def inspect_status(seq: int, data_dir: Path, run_id: str | None, set_number: int | None) -> None:
    """PP / P / C / E / X of sequence number SEQ at every replica (PrintStatus)."""
    from . import render

    set_dir, number, _ = _resolve(data_dir, run_id, set_number)
    console = _console()
    _header(console, set_dir, number)
    render.render_status(console, set_dir, seq)


@inspect.command("view")
@_target_options
def inspect_view(data_dir: Path, run_id: str | None, set_number: int | None) -> None:
    """Every NEW-VIEW of the set with its parameters (PrintView)."""
    from . import render

    set_dir, number, _ = _resolve(data_dir, run_id, set_number)
    console = _console()
    _header(console, set_dir, number)
    render.render_view(console, set_dir)


@inspect.command("perf")
@click.argument("replica", required=False)
@_target_options
def inspect_perf(
    replica: str | None, data_dir: Path, run_id: str | None, set_number: int | None
) -> None:
    """Throughput, latency, and per-replica message and protocol counters."""
    from . import render

    set_dir, number, report = _resolve(data_dir, run_id, set_number)
    console = _console()
    _header(console, set_dir, number)
    render.render_perf(console, set_dir, report, _replica_arg(replica) if replica else None)


# ---- runs, bench -----------------------------------------------------------------------------


@main.command()
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DATA_DIR,
    envvar="PBFT_DATA_DIR",
    show_default=True,
    help=DATA_DIR_HELP,
)
def runs(data_dir: Path) -> None:
    """List the runs stored under the data directory."""
    from . import render

    render.render_runs(_console(), data_dir)


@main.group(cls=_LazyBenchGroup)
def bench() -> None:
    """Benchmarks (sig: the thresh_sig package; scale: message cost against n; smallbank: throughput and latency)."""


# keygen / node / client (TCP deployment) live in their own module; it imports only Click.
from .tcp_commands import register as _register_tcp_commands  # noqa: E402

_register_tcp_commands(main)


class _LazyCommand(click.Command):
    """A command whose module is imported only when it runs (or shows its ``--help``)."""

    def __init__(self, name: str, target: str, short_help: str) -> None:
        super().__init__(name, short_help=short_help, add_help_option=False)
        self.target = target  # "module:attribute" of the real click command

    def load(self) -> click.Command:
        import importlib

        module, attribute = self.target.split(":")
        command: click.Command = getattr(importlib.import_module(module), attribute)
        return command

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any) -> click.Context:
        # The group invokes ``sub_ctx.command``: the real command, with its own options.
        return self.load().make_context(info_name, args, parent=parent, **extra)


# ``pbft simulate`` (cli/simulate.py) pulls in the simulator and rich: imported on use.
main.add_command(
    _LazyCommand(
        "simulate",
        "cli.simulate:simulate",
        "Seeded fault schedules, invariants checked after every message.",
    )
)

# ``pbft smallbank generate``: its module imports only Click at import time.
from .bench_smallbank import smallbank as _smallbank  # noqa: E402

main.add_command(_smallbank)


if __name__ == "__main__":
    main()
