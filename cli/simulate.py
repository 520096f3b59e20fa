"""``pbft simulate``: seeded fault-injection runs of the real protocol code (VOPR / Twins).

Runs N seeds, each a safety phase under faults then a liveness phase on a healed network (see
`pbft_core.sim.vopr`), with a progress bar and a summary of what was injected and what broke;
``--replay SEED -v`` reruns one seed exactly and prints its event trace, and ``--replay-file``
reruns a saved (shrunk) failure. ``--adversary NAME|all`` runs targeted attacks
(`pbft_core.sim.strategies`) instead of the random Byzantine faults, one summary row per attack
(violations, liveness failures, escaped exceptions, peak memory per replica). Also runnable
without the `pbft` entry point as ``python -m cli.simulate``.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pbft_core.sim.plan import ALL_FAULTS, Plan, generate_plan
from pbft_core.sim.runner import Batch, Summary, run_seeds
from pbft_core.sim.strategies import STRATEGIES
from pbft_core.sim.vopr import LIVENESS_BOUND_MS, RunOptions, SeedResult, load_failure, run_plan

from .common import is_stdout, make_console, write_output
from .render import make_table  # the one table style of every command

DEFAULT_TRACE_DIR = Path(".pbft/simulate")


def _parse_faults(value: str | None) -> tuple[str, ...]:
    """``all`` (default), ``none``, a list (``loss,twins``), or exclusions (``all,-twins``)."""
    if value is None or value.strip() in ("", "all"):
        return ALL_FAULTS
    chosen: list[str] = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        if item == "all":
            chosen.extend(ALL_FAULTS)
        elif item == "none":
            continue
        elif item.startswith("-"):
            chosen = (
                [c for c in chosen if c != item[1:]]
                if chosen
                else [c for c in ALL_FAULTS if c != item[1:]]
            )
        elif item in ALL_FAULTS:
            chosen.append(item)
        else:
            raise click.BadParameter(
                f"unknown fault {item!r}; choose from {', '.join(ALL_FAULTS)}",
                param_hint="--faults",
            )
    return tuple(dict.fromkeys(chosen))


@click.command("simulate")
@click.option(
    "--seeds",
    "seed_count",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="How many seeds to run.",
)
@click.option("--start", type=int, default=0, show_default=True, help="First seed.")
@click.option(
    "--f",
    "f",
    type=click.IntRange(1, 3),
    default=2,
    show_default=True,
    help="Faults tolerated (n = 3f+1 replicas).",
)
@click.option(
    "--requests",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Client requests per seed.",
)
@click.option(
    "--faults",
    "faults_spec",
    default="all",
    show_default=True,
    help=f"Faults to inject: all, none, a list or exclusions (all,-twins). Menu: {', '.join(ALL_FAULTS)}.",
)
@click.option(
    "--crypto",
    type=click.Choice(["real", "sim"]),
    default="real",
    show_default=True,
    help="real: Ed25519 + BLS threshold signatures. sim: keyed hashes, simulation only, much faster.",
)
@click.option(
    "--certificates",
    type=click.Choice(["bls", "ed25519"]),
    default="bls",
    show_default=True,
    help="The cluster's certificate scheme: BLS threshold signatures, or collected Ed25519 signatures.",
)
@click.option(
    "--json",
    "json_out",
    type=click.Path(allow_dash=True, path_type=Path),
    help="Write the summary as JSON ('-': stdout; the tables go to stderr).",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes (default: CPU count).",
)
@click.option(
    "--trace-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_TRACE_DIR,
    show_default=True,
    help="Where failing seeds' shrunk traces are written.",
)
@click.option(
    "--shrink-max",
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    help="Failures to shrink (the rest are saved unshrunk).",
)
@click.option(
    "--liveness-bound-ms",
    type=float,
    default=LIVENESS_BOUND_MS,
    show_default=True,
    help="Virtual time after the heal within which every request must complete.",
)
@click.option(
    "--replay",
    "replay_seed",
    type=int,
    default=None,
    help="Rerun one seed exactly and print its trace.",
)
@click.option(
    "--replay-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Rerun a saved failure (a trace file) and print its trace.",
)
@click.option(
    "--adversary",
    default=None,
    help=f"Targeted attack instead of random Byzantine faults: all, or one of {', '.join(STRATEGIES)}.",
)
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="-v: protocol and fault events; -vv: every delivered message too.",
)
def simulate(
    seed_count: int,
    start: int,
    f: int,
    requests: int,
    faults_spec: str,
    crypto: str,
    certificates: str,
    json_out: Path | None,
    jobs: int | None,
    trace_dir: Path,
    shrink_max: int,
    liveness_bound_ms: float,
    replay_seed: int | None,
    replay_file: Path | None,
    adversary: str | None,
    verbose: int,
) -> None:
    """Deterministic simulation: many seeded fault schedules, invariants checked after every message."""
    console = make_console(stderr=is_stdout(json_out))
    faults = _parse_faults(faults_spec)
    options = RunOptions(crypto=crypto, liveness_bound_ms=liveness_bound_ms, certificates=certificates)
    if crypto == "real":
        _require_real_crypto()
    if replay_seed is not None or replay_file is not None:
        if replay_file is not None:
            plan, document = load_failure(replay_file)
            options = RunOptions(
                crypto=document.get("crypto", crypto),
                liveness_bound_ms=liveness_bound_ms,
                certificates=document.get("certificates", certificates),
            )
        else:
            if adversary == "all":
                raise click.BadParameter("replay one adversary at a time", param_hint="--adversary")
            plan = generate_plan(replay_seed, f=f, requests=requests, faults=faults, adversary=adversary)  # type: ignore[arg-type]
        result = _replay(console, plan, options, verbose)
        sys.exit(0 if result.ok else 1)

    jobs = jobs or os.cpu_count() or 1
    if adversary is not None:
        _simulate_adversaries(
            console, adversary, f, requests, faults, options, range(start, start + seed_count), jobs,
            trace_dir, shrink_max, json_out,
        )
        return
    batch = Batch(f=f, requests=requests, faults=faults, options=options)
    summary = _run_with_progress(
        console, batch, range(start, start + seed_count), jobs, trace_dir, shrink_max
    )
    _render(console, summary)
    if json_out is not None:
        _write_json(console, json_out, summary.to_json())
    sys.exit(0 if not (summary.violations or summary.liveness_failures) else 1)


def _simulate_adversaries(
    console: Console, adversary: str, f: int, requests: int, faults: tuple[str, ...], options: RunOptions,
    seeds: range, jobs: int, trace_dir: Path, shrink_max: int, json_out: Path | None,
) -> None:
    if adversary == "all":
        names = list(STRATEGIES)
    elif adversary in STRATEGIES:
        names = [adversary]
    else:
        raise click.BadParameter(
            f"unknown adversary {adversary!r}; choose all or one of {', '.join(STRATEGIES)}", param_hint="--adversary"
        )
    summaries: dict[str, Summary] = {}
    for name in names:
        if f < STRATEGIES[name].f_min:
            console.print(f"[yellow]{name}: skipped, needs f >= {STRATEGIES[name].f_min}[/]")
            continue
        console.print(f"[bold]adversary {name}[/]: {STRATEGIES[name].tests}")
        allowed = tuple(fault for fault in faults if fault in STRATEGIES[name].faults)
        batch = Batch(f=f, requests=requests, faults=allowed, options=options, adversary=name)
        summaries[name] = _run_with_progress(console, batch, seeds, jobs, trace_dir, shrink_max)
    _render_adversaries(console, summaries, f, requests, options.crypto)
    if json_out is not None:
        document = {
            "seeds": len(seeds), "start": seeds.start, "f": f, "requests_per_seed": requests, "crypto": options.crypto,
            "adversaries": {name: summary.to_json() for name, summary in summaries.items()},
        }
        _write_json(console, json_out, document)
    failed = any(s.violations or s.liveness_failures for s in summaries.values())
    sys.exit(1 if failed else 0)


def _write_json(console: Console, path: Path, document: dict[str, Any]) -> None:
    if not is_stdout(path):
        path.parent.mkdir(parents=True, exist_ok=True)
    write_output(path, json.dumps(document, indent=2) + "\n")
    if not is_stdout(path):
        console.print(f"summary written to {path}")


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f}"


def _render_adversaries(console: Console, summaries: dict[str, Summary], f: int, requests: int, crypto: str) -> None:
    n = 3 * f + 1
    table = make_table(f"pbft simulate --adversary (f={f}, {requests} requests per seed, crypto={crypto})")
    table.add_column("adversary")
    table.add_column("seeds", justify="right")
    table.add_column("violations", justify="right")
    table.add_column("liveness", justify="right")
    table.add_column("exceptions", justify="right")
    table.add_column(f"peak MB n1..n{n} (- Byzantine)")
    for name, summary in summaries.items():
        violations = len(summary.violations) - len(summary.exceptions)
        peaks = summary.peak_memory()
        table.add_row(
            name,
            str(summary.seeds),
            _count_style(violations),
            _count_style(len(summary.liveness_failures)),
            _count_style(len(summary.exceptions)),
            " ".join(_megabytes(peaks[f"n{r}"]) if f"n{r}" in peaks else "-" for r in range(1, n + 1)),
        )
    console.print(table)
    console.print(
        "peak memory: estimated deep size of each honest replica's buffers, sampled every 250 ms of "
        "virtual time, highest over the seeds (docs/simulation.md). Largest buffer at the highest peak:"
    )
    for name, summary in summaries.items():
        console.print(f"  {name}: {summary.peak_buffer() or '-'}", markup=False)
    failing = [(name, r) for name, s in summaries.items() for r in s.violations + s.liveness_failures]
    if failing:
        detail = make_table("failing seeds")
        detail.add_column("adversary")
        detail.add_column("seed", justify="right")
        detail.add_column("failure")
        detail.add_column("detail", overflow="fold")
        for name, r in failing[:50]:
            detail.add_row(name, str(r.seed), r.invariant or "liveness", (r.detail or r.liveness or "")[:200])
        console.print(detail)
        name, first = failing[0]
        console.print(
            f"replay: pbft simulate --replay {first.seed} --adversary {name} --f {f} --requests {requests} --crypto {crypto} -v"
        )


def _require_real_crypto() -> None:
    try:
        import thresh_sig

        thresh_sig.deal  # noqa: B018  (the dealing API real keys need)
    except (ImportError, AttributeError) as exc:
        raise click.ClickException(
            f"real cryptography is unavailable ({exc}); use --crypto sim"
        ) from None


def _side(addresses: tuple[Any, ...]) -> str:
    return "{" + ", ".join(map(str, addresses)) + "}"


def plan_lines(plan: Plan) -> list[str]:
    """What a seed injects, worded for people (the trace's own ``plan:`` lines are reprs)."""
    faults = ", ".join(sorted(plan.fault_names())) or "none"
    lines = [
        f"seed {plan.seed}: n = {plan.n} (f = {plan.f}), {len(plan.requests)} requests, "
        f"faults for the first {plan.safety_ms:.0f} ms: {faults}"
    ]
    for role in plan.byzantine:
        attacks = "; ".join(
            kind + (f"({', '.join(f'n{t}' for t in targets)})" if targets else "") for kind, targets in role.attacks
        )
        extra = []
        if role.twin:
            extra.append("runs a twin with the same keys")
        if role.adversary_rate_per_s:
            extra.append(f"sends {role.adversary_rate_per_s:.0f} random messages/s")
        what = "; ".join(x for x in (attacks, *extra) if x) or "no attack"
        lines.append(f"  n{role.replica} is Byzantine from {role.onset_ms:.0f} ms: {what}")
    for event in plan.events:
        until = f"{event.at_ms:.0f}–{event.at_ms + event.duration_ms:.0f} ms"
        if event.kind == "partition":
            sides = " | ".join(_side(side) for side in event.args)
            lines.append(f"  {until}: network partitioned into {sides}")
        elif event.kind == "crash-restart":
            lines.append(f"  {until}: {_side(event.args)} crashed, then restarts from its disk")
        else:
            lines.append(f"  {until}: {event.kind} {', '.join(map(str, event.args))}")
    net = plan.network
    lines.append(
        f"  network: delay {net.delay_ms_min:.1f}–{net.delay_ms_max:.1f} ms, loss {100 * net.drop_rate:.1f}%,"
        f" duplicates {100 * net.duplicate_rate:.1f}%, spikes {100 * net.spike_rate:.1f}% up to"
        f" {net.spike_delay_ms_max:.0f} ms, {'FIFO' if net.fifo else 'reordering'} links"
    )
    cfg = plan.config
    lines.append(
        f"  replicas: checkpoint every {cfg.checkpoint_interval}, log window {cfg.log_window},"
        f" batches up to {cfg.batch_size_max}, {cfg.inflight_max} in flight,"
        f" fast path {'on' if cfg.fast_path else 'off'}"
    )
    if plan.adversary:
        lines.append(f"  targeted adversary: {plan.adversary}")
    return lines


def _replay(console: Console, plan: Plan, options: RunOptions, verbose: int) -> SeedResult:
    def tracer(line: str) -> None:
        if line.startswith("plan: "):  # printed readably above
            return
        if verbose >= 2 or not (" -> n" in line or " drops " in line):
            console.print(line, markup=False, highlight=False)

    if verbose:
        for line in plan_lines(plan):
            console.print(line, markup=False, highlight=False)

    result = run_plan(plan, options, tracer=tracer if verbose else None)
    status = "[green]ok[/]" if result.ok else f"[red]{result.invariant or 'liveness'}[/]"
    console.print(
        f"seed {plan.seed}: {status}  {result.completed}/{result.requests} requests, "
        f"{result.delivered} messages, {result.at_ms:.0f} ms virtual, {result.wall_s:.2f} s"
    )
    if not result.ok:
        console.print(f"  {result.detail or result.liveness}", markup=False)
    return result


EXIT_INTERRUPTED = 130


@contextmanager
def _stop_workers_on_ctrl_c() -> Iterator[None]:
    """Ctrl-C stops the seed workers at once. The process pool would otherwise hand every
    queued seed to its workers (they survive their own KeyboardInterrupt) and wait for all of
    them on the way out; terminated workers break the pool, which then returns at once."""

    def on_sigint(_signum: int, _frame: Any) -> None:
        for child in multiprocessing.active_children():
            child.terminate()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _run_with_progress(
    console: Console, batch: Batch, seeds: range, jobs: int, trace_dir: Path, shrink_max: int
) -> Summary:
    from concurrent.futures.process import BrokenProcessPool

    try:
        with _stop_workers_on_ctrl_c():
            return _run_seeds_with_progress(console, batch, seeds, jobs, trace_dir, shrink_max)
    except (KeyboardInterrupt, BrokenProcessPool):
        console.print("[red]interrupted[/red]: no summary (seeds were cut short)")
        sys.exit(EXIT_INTERRUPTED)


def _run_seeds_with_progress(
    console: Console, batch: Batch, seeds: range, jobs: int, trace_dir: Path, shrink_max: int
) -> Summary:
    failures = [0]
    with Progress(
        TextColumn("[bold]simulate"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} seeds/s"),
        TextColumn("[red]{task.fields[failures]} failing"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task("seeds", total=len(seeds), rate="-", failures=0)
        shrink_task = None

        def on_result(result: SeedResult) -> None:
            if not result.ok:
                failures[0] += 1
            progress.advance(task)
            elapsed = progress.tasks[task].elapsed or 0.0
            done = progress.tasks[task].completed
            progress.update(
                task, rate=f"{done / elapsed:.1f}" if elapsed else "-", failures=failures[0]
            )

        def on_shrink(result: SeedResult) -> None:
            nonlocal shrink_task
            if shrink_task is None:
                shrink_task = progress.add_task("shrink", total=failures[0], rate="", failures="")
            progress.advance(shrink_task)

        return run_seeds(
            seeds,
            batch,
            jobs=jobs,
            on_result=on_result,
            trace_dir=trace_dir,
            shrink_max=shrink_max,
            on_shrink=on_shrink,
        )


def _render(console: Console, summary: Summary) -> None:
    data = summary.to_json()
    overview = make_table("pbft simulate", show_header=False)
    overview.add_row(
        "seeds",
        f"{summary.seeds} (from {summary.start}), f={summary.f}, {summary.requests} requests each, crypto={summary.crypto}",
    )
    overview.add_row("seeds/s", f"{summary.seeds_per_s:.2f} ({summary.wall_s:.1f} s)")
    overview.add_row("violations", _count_style(len(summary.violations)))
    overview.add_row("liveness failures", _count_style(len(summary.liveness_failures)))
    live = data["liveness"]
    overview.add_row("requests completed", f"{live['requests_completed']}/{live['requests']}")
    overview.add_row("messages delivered", f"{data['messages_delivered']:,}")
    console.print(overview)

    faults = make_table("faults injected")
    faults.add_column("fault")
    faults.add_column("seeds", justify="right")
    faults.add_column("injections", justify="right")
    faults.add_column("counted as")
    unit = {
        "loss": "messages dropped",
        "duplicate": "messages duplicated",
        "delay": "latency spikes",
        "reorder": "seeds with non-FIFO links",
        "partition": "partitions",
        "crash-restart": "crashes",
        "twins": "twin pairs",
        "adversary": "random messages",
    }
    seeds, counts = summary.fault_seeds(), summary.fault_counts()
    for name in ALL_FAULTS:
        faults.add_row(
            name,
            str(seeds.get(name, 0)),
            f"{counts.get(name, 0):,}",
            unit.get(name, "Byzantine replicas"),
        )
    console.print(faults)

    failing = summary.violations + summary.liveness_failures
    if failing:
        table = make_table("failing seeds")
        table.add_column("seed", justify="right")
        table.add_column("failure")
        table.add_column("detail", overflow="fold")
        table.add_column("trace")
        for r in sorted(failing, key=lambda r: r.seed)[:50]:
            table.add_row(
                str(r.seed),
                r.invariant or "liveness",
                (r.detail or r.liveness or "")[:200],
                r.trace_file or "",
            )
        console.print(table)
        if len(failing) > 50:
            console.print(f"... and {len(failing) - 50} more (see --json)")
        first = min(failing, key=lambda r: r.seed)
        console.print(
            f"replay: pbft simulate --replay {first.seed} --f {summary.f} --requests {summary.requests} --crypto {summary.crypto} -v"
        )


def _count_style(count: int) -> str:
    return f"[green]{count}[/]" if count == 0 else f"[bold red]{count}[/]"


if __name__ == "__main__":
    simulate()
