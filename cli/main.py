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

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .common import DEFAULT_DATA_DIR, make_console, path_error_text
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
    "replica": "cli.bench_replica:replica",
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


# Exit codes every command shares (docs/cli.md): Ctrl-C as a shell reports SIGINT, a closed
# output (``pbft run ... | head``) as it reports SIGPIPE.
EXIT_INTERRUPTED = 130
EXIT_OUTPUT_CLOSED = 141


def silence_stdout() -> None:
    """Point stdout at /dev/null: the reader is gone, and Python's exit flush must not fail."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # not a real file (a test runner's buffer)
        pass
    finally:
        os.close(devnull)


class PbftGroup(click.Group):
    """The ``pbft`` group: turns what escapes a command into the documented exit codes, never a
    traceback: Ctrl-C exits 130, a closed output 141 (quietly), and a path the system refused
    (a directory that is a file, unwritable, ...) one ``error: PATH: why`` line and exit 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except BrokenPipeError:
            silence_stdout()
            ctx.exit(EXIT_OUTPUT_CLOSED)
        except OSError as exc:
            text = path_error_text(exc)
            if text is None:
                raise
            raise UsageFailure(text) from None


def _versions() -> str:
    """``pbft --version``: the program, the protocol and report formats, and what runs them."""
    import platform
    from importlib import metadata

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    return "\n".join(
        (
            f"pbft {version('pbft')}",
            "protocol pbft/v1 (wire domains), JSON report version 1, database schema 1",
            f"Python {platform.python_version()} ({platform.python_implementation()}, {platform.machine()})",
            f"blspy {version('blspy')} · PyNaCl {version('pynacl')} · click {version('click')} · rich {version('rich')}",
        )
    )


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(_versions())
        ctx.exit()


@click.group(cls=PbftGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show the versions of pbft, its protocol and formats, Python, blspy and PyNaCl.",
)
def main() -> None:
    """pbft: a Byzantine-fault-tolerant replicated bank (Linear PBFT, BLS threshold certificates)."""


# ---- run -------------------------------------------------------------------------------------


@main.command()
@click.argument("scenario", type=click.Path(path_type=Path))
@click.option(
    "--non-interactive", is_flag=True, help="Never prompt between sets (implied without a TTY)."
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(allow_dash=True, path_type=Path),
    help="Write the JSON report here ('-': stdout, once the run ends; the tables go to stderr).",
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
    "--certificates",
    type=click.Choice(["bls", "ed25519"]),
    default="bls",
    show_default=True,
    help="What a certificate is: one BLS threshold signature, or the collected Ed25519 signatures of its 2f+1 (fast path: n) signers.",
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
    certificates: str,
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
    from .common import check_output_file, check_writable_dir, is_stdout

    check_output_file(json_path, "--json")
    check_writable_dir(data_dir, "--data-dir")
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
        certificates=certificates,
    )
    sys.exit(play(make_console(stderr=is_stdout(json_path)), sets, options))


# ---- inspect ---------------------------------------------------------------------------------


def _data_dir_option(fn: Any) -> Any:
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=DEFAULT_DATA_DIR,
        envvar="PBFT_DATA_DIR",
        show_default=True,
        help=DATA_DIR_HELP + " A TCP node's --data-dir (its nK.sqlite files) works too.",
    )(fn)


def _json_option(fn: Any) -> Any:
    return click.option(
        "--json",
        "json_path",
        type=click.Path(allow_dash=True, path_type=Path),
        default=None,
        help="Write the view as JSON to this file instead of the table ('-': stdout).",
    )(fn)


def _target_options(fn: Any) -> Any:
    fn = _json_option(fn)
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
    return _data_dir_option(fn)


def _find_run(data_dir: Path, run_id: str | None, flag: str = "--run") -> Path:
    """The run `run_id` names (an id or a unique prefix; None: the latest); `flag` is how the
    user gave it, for the error (`--run` of inspect, `RUN` of report)."""
    from pbft_core.storage import list_runs

    runs = list_runs(data_dir)
    if not runs:
        if (data_dir / "runs").is_dir() or run_id is None:
            raise UsageFailure(f"no runs under {data_dir} (play one with `pbft run FILE`)")
        raise UsageFailure(f"no run {run_id!r} under {data_dir}: it holds no runs")
    if run_id is None:
        return runs[-1]
    exact = [p for p in runs if p.name == run_id]
    if exact:
        return exact[0]
    matches = [p for p in runs if p.name.startswith(run_id)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        names = ", ".join(p.name for p in matches[:10]) + (" …" if len(matches) > 10 else "")
        raise UsageFailure(f"{flag} {run_id!r} is ambiguous: {len(matches)} runs start with it ({names})")
    raise UsageFailure(f"no run {run_id!r} under {data_dir} (see `pbft runs`)")


def _resolve(data_dir: Path, run_id: str | None, set_number: int | None) -> Any:
    """The `views.Target` the options name: a set of a stored run, or a node's data directory."""
    from pbft_core.storage import RunIndex, set_dir, set_numbers_on_disk

    from .views import Target, replica_ids

    if data_dir.is_dir() and replica_ids(data_dir) and not (data_dir / "runs").is_dir():
        # A TCP node's data directory (`pbft node --data-dir`): its nK.sqlite files, no runs.
        if run_id is not None or set_number is not None:
            raise UsageFailure(f"{data_dir} is a node's data directory: it has no runs or sets")
        return Target(data_dir, "node")
    run_dir = _find_run(data_dir, run_id)
    with RunIndex(run_dir, read_only=True) as index:
        info = index.info()
        played = index.sets()
        on_disk = set_numbers_on_disk(run_dir)
        if set_number is None:
            if played:
                set_number = max(played, key=lambda s: s["started_at"])["number"]
            elif on_disk:
                set_number = on_disk[-1]
            elif info.get("ended") == "interrupted" or "exit_code" in info:
                raise UsageFailure(
                    f"run {run_dir.name} was {info.get('ended', 'stopped')} before its first set started"
                )
            else:
                raise UsageFailure(f"run {run_dir.name} has not started a set yet")
        if set_number not in on_disk:
            sets_text = ", ".join(map(str, on_disk)) or "none"
            raise UsageFailure(f"run {run_dir.name} has no set {set_number} (sets: {sets_text})")
        report = index.set_report(set_number)
    return Target(set_dir(run_dir, set_number), "run", run_dir.name, set_number, report)


def _replica_arg(value: str) -> int:
    from .session import parse_replica

    try:
        replica = parse_replica(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if not 1 <= replica <= 100:
        raise click.BadParameter(f"no replica {value!r}")
    return replica


class _InspectView:
    """What an inspect command needs around its view: the target (the prompt hands its own set in
    ``ctx.obj`` unless --run/--set/--data-dir name another), the console, and table or JSON."""

    def __init__(self, data_dir: Path, run_id: str | None, set_number: int | None) -> None:
        from click.core import ParameterSource

        ctx = click.get_current_context()
        obj = ctx.obj if isinstance(ctx.obj, dict) else {}
        named = any(
            ctx.get_parameter_source(p) is ParameterSource.COMMANDLINE
            for p in ("data_dir", "run_id", "set_number")
        )
        self.target = obj["target"] if "target" in obj and not named else _resolve(data_dir, run_id, set_number)
        self.console: Console = obj.get("console") or _console()

    def show(self, name: str, build: Any, render: Any, json_path: Path | None) -> None:
        from .views import ViewError, document

        try:
            data = build()
        except ViewError as exc:
            raise UsageFailure(str(exc)) from None
        if json_path is not None:
            from .common import check_output_file, write_output

            check_output_file(json_path, "--json")
            write_output(json_path, json.dumps(document(name, self.target, data), indent=2) + "\n")
            return
        self.console.print(f"[dim]{escape(self.target.label)}[/dim]")
        render(self.console, data)


def escape(text: str) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(text)


@main.group()
def inspect() -> None:
    """Look at what the replicas of a finished set (or a TCP node's data directory) did."""


@inspect.command("log")
@click.argument("replica")
@click.option("--all", "show_all", is_flag=True, help="Include the periodic Status gossip.")
@click.option(
    "--type", "types", multiple=True, help="Only these message types, any case (repeatable, or comma-separated)."
)
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
    json_path: Path | None,
) -> None:
    """Messages replica N received (←) and sent (→), in order (PrintLog)."""
    from . import render, views

    view = _InspectView(data_dir, run_id, set_number)
    r = _replica_arg(replica)
    view.show(
        "log",
        lambda: views.log_view(view.target, r, show_all=show_all, types=types, tail=tail),
        render.render_log,
        json_path,
    )


@inspect.command("db")
@click.argument("replica", required=False)
@_target_options
def inspect_db(
    replica: str | None, data_dir: Path, run_id: str | None, set_number: int | None, json_path: Path | None
) -> None:
    """What the databases hold: every replica at a glance, or replica N in detail (PrintDB)."""
    from . import render, views

    view = _InspectView(data_dir, run_id, set_number)
    if replica is None:
        where = str(view.target.dir)
        view.show(
            "db",
            lambda: views.db_overview_view(view.target),
            lambda console, data: render.render_db_overview(console, data, where),
            json_path,
        )
    else:
        r = _replica_arg(replica)
        view.show("db", lambda: views.db_view(view.target, r), render.render_db, json_path)


@inspect.command("status")
@click.argument("seq", type=click.IntRange(1))
@_target_options
def inspect_status(
    seq: int, data_dir: Path, run_id: str | None, set_number: int | None, json_path: Path | None
) -> None:
    """PP / P / C / E / X of sequence number SEQ at every replica (PrintStatus)."""
    from . import render, views

    view = _InspectView(data_dir, run_id, set_number)
    view.show("status", lambda: views.status_view(view.target, seq), render.render_status, json_path)


@inspect.command("view")
@_target_options
def inspect_view(data_dir: Path, run_id: str | None, set_number: int | None, json_path: Path | None) -> None:
    """View changes started, and every NEW-VIEW of the set with its V and O (PrintView)."""
    from . import render, views

    view = _InspectView(data_dir, run_id, set_number)
    view.show("view", lambda: views.view_changes_view(view.target), render.render_view, json_path)


@inspect.command("perf")
@click.argument("replica", required=False)
@_target_options
def inspect_perf(
    replica: str | None, data_dir: Path, run_id: str | None, set_number: int | None, json_path: Path | None
) -> None:
    """Throughput and latency of the set, and per-replica log rows and protocol counters."""
    from . import render, views

    view = _InspectView(data_dir, run_id, set_number)
    r = _replica_arg(replica) if replica else None
    view.show("perf", lambda: views.perf_view(view.target, r), render.render_perf, json_path)


@inspect.command("flow")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=Path("flow.svg"),
    show_default=True,
    help="The picture: .svg, .png or .pdf.",
)
@click.option("--from", "start_ms", type=float, default=None, help="Draw from this many ms into the set.")
@click.option("--to", "end_ms", type=float, default=None, help="Draw up to this many ms into the set.")
@click.option("--all", "show_all", is_flag=True, help="Draw the periodic Status gossip too.")
@_data_dir_option
@click.option("--run", "run_id", default=None, help="Run id or unique prefix (default: the latest run).")
@click.option("--set", "set_number", type=int, default=None, help="Set number (default: the last one played).")
def inspect_flow(
    output: Path,
    start_ms: float | None,
    end_ms: float | None,
    show_all: bool,
    data_dir: Path,
    run_id: str | None,
    set_number: int | None,
) -> None:
    """The set's message flow as a sequence diagram: a lane per replica, an arrow per message."""
    from .common import check_output_file
    from .flow import FlowError, render

    view = _InspectView(data_dir, run_id, set_number)
    check_output_file(output, "-o")
    if output.suffix.lower() not in (".svg", ".png", ".pdf"):
        raise UsageFailure(f"-o: {output} must end in .svg, .png or .pdf")
    try:
        render(view.target, output, start_ms=start_ms, end_ms=end_ms, show_all=show_all)
    except FlowError as exc:
        raise UsageFailure(str(exc)) from None
    view.console.print(f"[dim]{escape(view.target.label)}[/dim] · flow diagram: {escape(str(output))}")


# ---- runs, bench -----------------------------------------------------------------------------


@main.command()
@_data_dir_option
@_json_option
def runs(data_dir: Path, json_path: Path | None) -> None:
    """List the runs stored under the data directory."""
    from . import render, views

    data = views.runs_view(data_dir)
    if json_path is not None:
        from .common import check_output_file, write_output

        check_output_file(json_path, "--json")
        write_output(json_path, json.dumps(data, indent=2) + "\n")
        return
    render.render_runs(_console(), data)


@main.group(cls=_LazyBenchGroup)
def bench() -> None:
    """Benchmarks (sig: the thresh_sig package; scale: message cost against n; smallbank: throughput and latency; replica: CPU per request, node by node)."""


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

# ``pbft report`` (cli/report_html.py) pulls in rich and matplotlib: imported on use.
main.add_command(
    _LazyCommand(
        "report",
        "cli.report_html:report",
        "A run as one self-contained HTML file, to mail or attach.",
    )
)

# ``pbft smallbank generate``: its module imports only Click at import time.
from .bench_smallbank import smallbank as _smallbank  # noqa: E402

main.add_command(_smallbank)


if __name__ == "__main__":
    main()
