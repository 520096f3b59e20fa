"""``pbft smallbank generate`` and ``pbft bench smallbank``: SmallBank workloads and throughput.

``bench smallbank`` starts seven replica processes on pipes (the runtime `pbft run` uses, real
Ed25519 and BLS, SQLite files), or with ``--transport tcp`` seven ``pbft node`` processes on
loopback TCP (`pbft_core.runtime.tcp_load.run_local_tcp_load`), drives them with many
closed-loop clients from this process (`pbft_core.runtime.loadgen`, `tcp_load`), and reports committed transactions per second, latency
percentiles, the fast-path share, batch sizes, messages and bytes per request, and the
cryptographic floor measured on this machine in the same run (`pbft_core.floor`). Given lists
of clients, transports or certificate schemes, it measures every combination the same way, one
after the other, and summarises them (`cli.bench_sweep`).

Like ``cli.main``, this module imports only Click at import time.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .bench_sweep import (
    combinations,
    markdown_table,
    parse_clients,
    parse_transports,
    plot_sweep,
    render_summary,
    run_line,
    sweep_document,
)
from .common import (
    DEFAULT_DATA_DIR,
    check_output_file,
    check_writable_dir,
    is_stdout,
    make_console,
    parse_certificates,
    write_output,
)
from .errors import UsageFailure

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

    from pbft_core.floor import CryptoBudget
    from pbft_core.runtime.loadgen import LoadResult


def _spec_options(fn: Any) -> Any:
    for option in reversed(
        [
            click.option("--accounts", type=click.IntRange(2, 1_000_000), default=1000, show_default=True, help="Customers (each has a savings and a checking balance)."),
            click.option("--hot-accounts", type=click.IntRange(0, 1_000_000), default=100, show_default=True, help="Size of the hot set of customers."),
            click.option("--hot-probability", type=click.FloatRange(0.0, 1.0), default=0.9, show_default=True, help="Probability that a customer is drawn from the hot set."),
            click.option("--seed", type=int, default=1, show_default=True, help="Seed of the transaction stream (and of the cluster keys)."),
        ]
    ):
        fn = option(fn)
    return fn


def _spec(accounts: int, hot_accounts: int, hot_probability: float, seed: int) -> Any:
    from pbft_core.smallbank_workload import WorkloadSpec

    try:
        return WorkloadSpec(accounts, hot_accounts, hot_probability, seed)
    except ValueError as exc:
        raise UsageFailure(str(exc)) from None


# ---- pbft smallbank generate -------------------------------------------------------------------


@click.group()
def smallbank() -> None:
    """SmallBank workloads (Cahill et al.): generate a reproducible transaction file."""


# `--format csv` writes a scenario file for `pbft run`: a set is played transaction by
# transaction, so its defaults are small (ten customers A–J, 20 transactions a set); the JSON-lines
# workload keeps the benchmark's defaults.
GENERATE_DEFAULTS = {
    "jsonl": {"count": 10_000, "accounts": 1000, "hot_accounts": 100},
    "csv": {"count": 20, "accounts": 10, "hot_accounts": 0},
}
ALL_LIVE = "[n1, n2, n3, n4, n5, n6, n7]"


@smallbank.command("generate")
@click.option("--format", "file_format", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True, help="jsonl: a workload for `bench smallbank --workload`; csv: a scenario file for `pbft run`.")
@click.option("--count", type=click.IntRange(1, 10_000_000), default=None, help="Transactions to write (csv: per set). [default: 10000; csv 20]")
@click.option("--accounts", type=click.IntRange(2, 1_000_000), default=None, help="Customers (each has a savings and a checking balance). [default: 1000; csv 10, named A-J]")
@click.option("--hot-accounts", type=click.IntRange(0, 1_000_000), default=None, help="Size of the hot set of customers. [default: 100; csv 0, uniform]")
@click.option("--hot-probability", type=click.FloatRange(0.0, 1.0), default=0.9, show_default=True, help="Probability that a customer is drawn from the hot set.")
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the transaction stream.")
@click.option("--sets", "set_count", type=click.IntRange(1, 1000), default=1, show_default=True, help="csv: how many sets (numbered from 1, drawn from one stream).")
@click.option("--live", default=ALL_LIVE, show_default=True, help="csv: every set's Live column.")
@click.option("--byzantine", default="[]", show_default=True, help="csv: every set's Byzantine column.")
@click.option("--attack", default="[]", show_default=True, help="csv: every set's Attack column, e.g. 'time; dark(n6)'.")
@click.option("-o", "--output", type=click.Path(allow_dash=True, path_type=Path), required=True, help="The file to write ('-': stdout).")
def generate(
    file_format: str,
    count: int | None,
    accounts: int | None,
    hot_accounts: int | None,
    hot_probability: float,
    seed: int,
    set_count: int,
    live: str,
    byzantine: str,
    attack: str,
    output: Path,
) -> None:
    """Write SmallBank transactions (mix 15/15/15/25/15/15): a workload `bench smallbank --workload` replays, or (--format csv) a scenario file `pbft run` plays."""
    from collections import Counter

    from pbft_core.smallbank_workload import WorkloadGenerator, write_scenario_csv, write_workload

    defaults = GENERATE_DEFAULTS[file_format]
    count = defaults["count"] if count is None else count
    accounts = defaults["accounts"] if accounts is None else accounts
    hot_accounts = defaults["hot_accounts"] if hot_accounts is None else hot_accounts
    spec = _spec(accounts, hot_accounts, hot_probability, seed)
    check_output_file(output, "-o")
    # `-o -`: the file goes to stdout, written to a temporary file first (the writers take a
    # path), and the summary line to stderr.
    import tempfile

    to_stdout = is_stdout(output)
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "out" if to_stdout else output
        if file_format == "jsonl":
            transactions = WorkloadGenerator(spec).take(count)
            write_workload(path, spec, transactions)
            what = f"{count} transactions"
        else:
            _check_scenario_columns(accounts, live, byzantine, attack)
            generator = WorkloadGenerator(spec)
            sets = [generator.take(count) for _ in range(set_count)]
            write_scenario_csv(path, sets, live=live, byzantine=byzantine, attack=attack)
            transactions = [t for s in sets for t in s]
            what = f"{set_count} set{'s' if set_count > 1 else ''} of {count} transactions"
        if to_stdout:
            write_output(output, path.read_text())
    mix = Counter(t.op for t in transactions)
    shares = ", ".join(f"{op} {100 * k / len(transactions):.0f}%" for op, k in sorted(mix.items()))
    click.echo(f"wrote {what} to {'stdout' if to_stdout else output} ({shares})", err=to_stdout)


def _check_scenario_columns(accounts: int, live: str, byzantine: str, attack: str) -> None:
    """Refuse, before writing, what `pbft run` would refuse in the file: the columns as a
    scenario row, and customers beyond what a scenario may name."""
    from pbft_core.scenario import SMALLBANK_CUSTOMERS_MAX, ScenarioError, parse_scenario

    if accounts > SMALLBANK_CUSTOMERS_MAX:
        raise UsageFailure(f"--accounts: a scenario names at most {SMALLBANK_CUSTOMERS_MAX} customers")

    def cell(text: str) -> str:
        return '"' + text.replace('"', '""') + '"'

    row = f"1,(Balance(A)),{cell(live)},{cell(byzantine)},{cell(attack)}"
    try:
        parse_scenario(f"Set Number,Transactions,Live,Byzantine,Attack\n{row}\n", path="columns")
    except ScenarioError as exc:
        raise UsageFailure(f"--live/--byzantine/--attack: {exc.message}") from None


# ---- pbft bench smallbank ----------------------------------------------------------------------


@click.command("smallbank")
@click.option("--clients", default="64", show_default=True, help="Closed-loop clients (one outstanding transaction each), 1-4096; a comma list (1,32,64,128) measures each.")
@click.option("--duration", type=click.FloatRange(1, 3600), default=30.0, show_default=True, help="Seconds measured.")
@click.option("--warmup", type=click.FloatRange(0, 600), default=3.0, show_default=True, help="Seconds of load before measuring.")
@_spec_options
@click.option("--workload", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None, help="Replay this file from `pbft smallbank generate` (cycled) instead of a generated stream.")
@click.option("--batch-size", type=click.IntRange(1, 10_000), default=64, show_default=True, help="Most requests per batch.")
@click.option("--batch-wait", type=click.FloatRange(0, 1000), default=0.0, show_default=True, help="Milliseconds the leader waits for more requests before proposing (0: propose once the messages at hand are read).")
@click.option("--inflight", type=click.IntRange(1, 256), default=8, show_default=True, help="Most batches the leader keeps in flight.")
@click.option("--checkpoint-interval", type=click.IntRange(1, 10_000), default=10, show_default=True, help="Sequence numbers between checkpoints (K).")
@click.option("--fast-path/--no-fast-path", default=True, show_default=True, help="Commit in one round when all n replicas answer.")
@click.option("--certificates", "certificates_spec", default="bls", show_default=True, help="Certificate scheme: bls, ed25519, or both (a comma list): each measured on its own fresh cluster, side by side in the summary.")
@click.option("--json", "json_path", type=click.Path(allow_dash=True, path_type=Path), help="Write the report as JSON here ('-': stdout; the tables go to stderr).")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path), help="Write a PNG: throughput over time and the latency distribution; for several combinations, tx/s against clients and p50 latency against tx/s.")
@click.option("--markdown", "markdown_path", type=click.Path(allow_dash=True, dir_okay=False, path_type=Path), help="Write the summary as a GitHub-markdown table under a line naming the machine and the options ('-': stdout).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_DATA_DIR, envvar="PBFT_DATA_DIR", show_default=True, help="Replica databases go to DATA_DIR/bench/<id>/.")
@click.option("--repeat", type=click.IntRange(1, 100), default=1, show_default=True, help="Measure this many times (a fresh cluster and floor each time) and report the median run; the JSON lists every run.")
@click.option("--profile", "profile_dir", type=click.Path(file_okay=False, path_type=Path), default=None, help="Run every replica under cProfile (CPU time) and write n<i>.prof here; slows everything down.")
@click.option("--cluster", "cluster_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None, help="Drive this running TCP cluster (`pbft keygen --state smallbank:N --clients C`) instead of starting replicas; its file sets the replica parameters.")
@click.option("--transport", default="pipes", show_default=True, help="pipes: replica processes linked by pipes (`pbft run`); tcp: seven `pbft node` processes on loopback TCP, started and stopped by the benchmark; both (or a comma list): each, with a tcp / pipes column.")
@click.option("--durability", type=click.Choice(["power", "process"]), default="power", show_default=True, help="--transport tcp: the nodes' write-ahead log mode (`pbft node --durability`).")
def bench_smallbank(
    clients: str,
    duration: float,
    warmup: float,
    accounts: int,
    hot_accounts: int,
    hot_probability: float,
    seed: int,
    workload: Path | None,
    batch_size: int,
    batch_wait: float,
    inflight: int,
    checkpoint_interval: int,
    fast_path: bool,
    certificates_spec: str,
    json_path: Path | None,
    plot_path: Path | None,
    markdown_path: Path | None,
    data_dir: Path,
    repeat: int,
    profile_dir: Path | None,
    cluster_path: Path | None,
    transport: str,
    durability: str,
) -> None:
    """Closed-loop SmallBank load on seven replica processes (f = 2, real crypto, no faults),
    linked by pipes or (--transport tcp) by loopback TCP.

    Prints committed tx/s, latency percentiles, fast-path share, mean batch, messages and bytes
    per request, and the cryptographic floor measured in the same run. Comma lists of --clients,
    --transport and --certificates measure every combination, each on a fresh cluster, and
    print one summary table (--markdown writes it for pasting). Exit code 0 when the run
    completed, 1 when the cluster failed, 2 on bad usage.
    """

    import dataclasses

    from pbft_core.config import ClusterConfig, Timers
    from pbft_core.runtime.loadgen import LoadOptions
    from pbft_core.smallbank_workload import WorkloadError, read_workload

    client_counts = parse_clients(clients)
    schemes = parse_certificates(certificates_spec)
    spec = _spec(accounts, hot_accounts, hot_probability, seed)
    transactions: tuple[Any, ...] = ()
    if workload is not None:
        try:
            spec, loaded = read_workload(workload)
        except WorkloadError as exc:
            raise UsageFailure(str(exc)) from None
        transactions = tuple(loaded)
    check_output_file(json_path, "--json")
    if is_stdout(plot_path):
        raise UsageFailure("--plot: a PNG is written to a file, not to stdout")
    check_output_file(plot_path, "--plot")
    if is_stdout(json_path) and is_stdout(markdown_path):
        raise UsageFailure("--json - and --markdown -: only one of them can go to stdout")
    check_output_file(markdown_path, "--markdown")
    transports = _check_transport(parse_transports(transport), durability, cluster_path, profile_dir)
    if cluster_path is None:
        check_writable_dir(data_dir, "--data-dir")
    config = ClusterConfig(
        timers=Timers(batch_wait_ms=batch_wait),
        state=spec.state,
        batch_size_max=batch_size,
        inflight_max=inflight,
        checkpoint_interval=checkpoint_interval,
        fast_path=fast_path,
    )
    console = make_console(stderr=is_stdout(json_path) or is_stdout(markdown_path))
    options = LoadOptions(
        config=config,
        spec=spec,
        clients=max(client_counts),
        duration_s=duration,
        warmup_s=warmup,
        workload=transactions,
        seed=f"pbft/bench/{seed}".encode(),
    )
    if cluster_path is not None:
        if len(schemes) > 1:
            raise UsageFailure("--cluster drives one running cluster, which has one certificate scheme: give one --certificates or none")
        # Checked at the largest client count: the cluster then has a key for every run's.
        options = _cluster_options(options, cluster_path, profile_dir)

    def options_for(clients: int, scheme: str) -> LoadOptions:
        if cluster_path is not None:
            return dataclasses.replace(options, clients=clients)  # the cluster's own scheme
        return dataclasses.replace(options, clients=clients, config=config.with_changes(certificates=scheme))

    def run(console: Console, clients: int, transport: str, scheme: str, progress: Progress | None = None, label: str = "") -> dict[str, Any]:
        report = _run(console, options_for(clients, scheme), data_dir, profile_dir, cluster_path, transport, durability, progress=progress, label=label)
        if report is None:
            sys.exit(1)
        return report

    todo = combinations(client_counts, transports, schemes)
    if len(todo) == 1:
        ((clients_of_run, transport_of_run, scheme),) = todo
        runs = []
        for number in range(1, repeat + 1):
            if repeat > 1:
                console.print(f"[bold]run {number} of {repeat}[/]")
            report = run(console, clients_of_run, transport_of_run, scheme)
            render_report(console, report)
            runs.append(report)
        if repeat > 1:
            report = with_repeats(runs)
            render_repeats(console, report)
        reports = [report]
        if json_path is not None:
            write_output(json_path, json.dumps(report, indent=2) + "\n")
        if plot_path is not None:
            _plot(report, plot_path)
            console.print(f"plot: {plot_path}")
    else:
        reports = _sweep(console, todo, repeat, run, json_path)
        document = sweep_document(reports)
        render_summary(console, document["summary"])
        if json_path is not None:
            write_output(json_path, json.dumps(document, indent=2) + "\n")
        if plot_path is not None:
            plot_sweep(reports, plot_path)
            console.print(f"plot: {plot_path}")
    if markdown_path is not None:
        write_output(markdown_path, markdown_table(reports, _command_line(client_counts, transports, schemes, cluster_path)))
        if not is_stdout(markdown_path):
            console.print(f"markdown: {markdown_path}")


def _sweep(
    console: Console,
    todo: list[tuple[int, str, str]],
    repeat: int,
    run: Callable[..., dict[str, Any]],
    json_path: Path | None,
) -> list[dict[str, Any]]:
    """Measure every combination of `todo` (`repeat` times each) under one progress display, a
    line per finished run above it; the reports, one per combination (a median run with
    ``repeats`` when `repeat` > 1), in the order they ran."""
    progress = _progress(console)
    reports: list[dict[str, Any]] = []
    with progress:
        for k, (clients, transport, scheme) in enumerate(todo, start=1):
            runs = []
            for number in range(1, repeat + 1):
                label = f"{k}/{len(todo)} {transport}, {scheme}, {clients} clients"
                if repeat > 1:
                    label += f", run {number} of {repeat}"
                report = run(console, clients, transport, scheme, progress=progress, label=label)
                console.print(run_line(label, report))
                runs.append(report)
            reports.append(with_repeats(runs) if repeat > 1 else runs[0])
            if json_path is not None and not is_stdout(json_path):
                # Rewritten after every combination, so a sweep interrupted an hour in still
                # leaves a valid document of the combinations that finished.
                write_output(json_path, json.dumps(sweep_document(reports), indent=2) + "\n")
    return reports


# Options that say where output goes rather than what is measured: not part of the command line
# the markdown table names.
OUTPUT_OPTIONS = frozenset({"json_path", "plot_path", "markdown_path", "data_dir", "profile_dir"})
# Options a running cluster's file decides (`_cluster_options`): with --cluster, the file's.
CLUSTER_DECIDES = frozenset({"batch_size", "batch_wait", "inflight", "checkpoint_interval", "fast_path", "certificates_spec", "durability"})


def _command_line(client_counts: list[int], transports: list[str], schemes: list[str], cluster_path: Path | None) -> str:
    """The ``pbft bench smallbank`` command that measures this run again: every option that
    decides what is measured, defaults included (a default may change; the table must not
    depend on it), outputs left out."""
    import shlex

    ctx = click.get_current_context()
    listed = {"clients": ",".join(map(str, client_counts)), "transport": ",".join(transports), "certificates_spec": ",".join(schemes)}
    words = ["pbft", "bench", "smallbank"]
    for param in ctx.command.params:
        name = param.name or ""
        value = listed.get(name, ctx.params.get(name))
        if name in OUTPUT_OPTIONS or value is None:
            continue
        if (name == "durability" and "tcp" not in transports) or (cluster_path is not None and name in CLUSTER_DECIDES):
            continue
        if isinstance(param, click.Option) and param.is_flag:
            words.append(param.opts[0] if value else param.secondary_opts[0])
            continue
        text = f"{value:g}" if isinstance(value, float) else str(value)
        words += [param.opts[0], text]
    return shlex.join(words)


def _check_transport(transports: list[str], durability: str, cluster_path: Path | None, profile_dir: Path | None) -> list[str]:
    """The transports the run uses ("pipes", "tcp"); options that contradict them exit 2."""
    from click.core import ParameterSource

    ctx = click.get_current_context()

    def given(name: str) -> bool:
        return ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE

    if cluster_path is not None:
        if given("transport") and transports != ["tcp"]:
            raise UsageFailure(f"--cluster drives a TCP cluster: --transport {','.join(transports)} contradicts it")
        if given("durability"):
            raise UsageFailure("--durability is the running nodes' own option (`pbft node --durability`), not --cluster's")
        return ["tcp"]
    if "tcp" in transports and profile_dir is not None:
        raise UsageFailure("--profile runs pipes workers under cProfile: it cannot be used with --transport tcp (py-spy record --subprocesses can)")
    if "tcp" not in transports and given("durability"):
        raise UsageFailure("--durability applies to --transport tcp only (pipes workers keep no write-ahead log)")
    return transports


def _cluster_options(options: Any, cluster_path: Path, profile_dir: Path | None) -> Any:
    """`options` for a running TCP cluster (its configuration); usage errors exit 2."""
    from click.core import ParameterSource

    from pbft_core.runtime.tcp_load import TcpLoadUsageError, prepare

    if profile_dir is not None:
        raise UsageFailure("--profile starts the replicas itself: it cannot be used with --cluster")
    ctx = click.get_current_context()
    fields = {"batch_size": "batch_size_max", "batch_wait": "timers.batch_wait_ms", "inflight": "inflight_max", "checkpoint_interval": "checkpoint_interval", "fast_path": "fast_path", "certificates_spec": "certificates"}
    requested = {field: ctx.params[p] for p, field in fields.items() if ctx.get_parameter_source(p) is ParameterSource.COMMANDLINE}
    if "certificates" in requested:
        requested["certificates"] = parse_certificates(requested["certificates"])[0]
    try:
        return prepare(options, cluster_path, requested)
    except TcpLoadUsageError as exc:
        raise UsageFailure(str(exc)) from None


def _progress(console: Console) -> Progress:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("[bold]SmallBank[/] {task.description}"),
        BarColumn(),
        TextColumn("{task.fields[done]} committed"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


def _run(
    console: Console,
    options: Any,
    data_dir: Path,
    profile_dir: Path | None,
    cluster_path: Path | None = None,
    transport: str = "pipes",
    durability: str = "power",
    *,
    progress: Progress | None = None,
    label: str = "",
) -> dict[str, Any] | None:
    """One measurement on a fresh cluster (or `cluster_path`'s running one): its report, or None
    when the cluster failed (said on `console`). A sweep passes its own `progress` (rich shows
    one live display at a time) and a `label` naming the combination."""
    from contextlib import nullcontext

    from pbft_core.floor import CryptoBudget, measure_costs
    from pbft_core.runtime.loadgen import WorkerFailure, run_load
    from pbft_core.runtime.pipes import PROFILE_DIR_VARIABLE
    from pbft_core.runtime.tcp_load import ClusterUnavailable, run_local_tcp_load, run_tcp_load
    from pbft_core.storage import new_run_id

    shared = progress is not None
    if progress is not None:
        task = progress.add_task(f"{label}: measuring the cryptographic floor", total=None, done=0)
        budget = CryptoBudget(options.config, measure_costs(options.config))
        progress.remove_task(task)
    else:
        with console.status("measuring the cryptographic floor on this machine"):
            budget = CryptoBudget(options.config, measure_costs(options.config))
        progress = _progress(console)
    run_dir = cluster_path if cluster_path is not None else data_dir / "bench" / new_run_id()
    if profile_dir is not None:
        profile_dir.mkdir(parents=True, exist_ok=True)
        os.environ[PROFILE_DIR_VARIABLE] = str(profile_dir.resolve())
    total = options.warmup_s + options.duration_s

    def phase(elapsed: float) -> str:
        if label:
            return f"{label}: {'warming up' if elapsed < options.warmup_s else 'measuring'}"
        return "warming up" if elapsed < options.warmup_s else f"{options.clients} clients"

    with nullcontext() if shared else progress:
        task = progress.add_task(f"{label}: starting" if label else f"{options.clients} clients", total=total, done=0)

        def on_progress(elapsed: float, _total: float, done: int) -> None:
            progress.update(task, completed=elapsed, description=phase(elapsed), done=done)

        try:
            if cluster_path is not None:
                result = run_tcp_load(options, cluster_path, on_progress)
            elif transport == "tcp":
                result = run_local_tcp_load(options, run_dir, on_progress, durability=durability)
            else:
                result = run_load(options, run_dir, on_progress)
        except (WorkerFailure, ClusterUnavailable) as exc:
            console.print(f"[red]error:[/] {exc}")
            return None
        finally:
            os.environ.pop(PROFILE_DIR_VARIABLE, None)
            if shared:
                progress.remove_task(task)
    if cluster_path is not None:
        durability_of_run: str | None = None  # the running nodes' own, unknown here
    else:
        durability_of_run = durability if transport == "tcp" else None
    return build_report(result, budget, run_dir, transport=transport, durability=durability_of_run)


def _percentile(values: list[float], fraction: float) -> float:
    """`report.percentile` (nearest rank), 0.0 when nothing completed."""
    from pbft_core.report import percentile

    value = percentile(values, fraction)
    return 0.0 if value is None else value


def build_report(
    result: LoadResult,
    budget: CryptoBudget,
    run_dir: Path,
    *,
    transport: str = "pipes",
    durability: str | None = None,
) -> dict[str, Any]:
    """The JSON report (docs/benchmarks.md lists every key)."""
    from pbft_core.runtime.loadgen import BUCKET_S

    options = result.options
    config = options.config
    duration = options.duration_s
    latencies = sorted(result.latencies_ms)
    completed = len(latencies)
    reads = result.by_op.get("sb_balance", 0) - result.reads_fell_back
    # The leader is whoever proposed (n1 unless a view changed).
    leader = max(result.replica_counters.values(), key=lambda c: c.get("batches.proposed", 0), default={})
    fast = leader.get("commits.fast", 0)
    slow = leader.get("commits.slow", 0)
    batches = leader.get("batches.proposed", 0)
    ordered = leader.get("executed.requests", 0)
    mean_batch = leader.get("batches.requests", 0) / batches if batches else 0.0
    sent_messages = sum(c.get("sent.replica.messages", 0) + c.get("sent.client.messages", 0) for c in result.replica_counters.values())
    sent_bytes = sum(c.get("sent.replica.bytes", 0) + c.get("sent.client.bytes", 0) for c in result.replica_counters.values())
    # A shell that does not report what it sent (the TCP status query): unknown, not zero.
    sent_known = any(k.startswith("sent.") for c in result.replica_counters.values() for k in c)
    cores = os.cpu_count() or 1
    read_share = reads / completed if completed else 0.0
    floor = budget.floor_tps(mean_batch, read_share, cores)
    throughput = completed / duration
    buckets = [0] * max(1, int(duration / BUCKET_S + 0.5))
    for t in result.completed_at_s:
        buckets[min(len(buckets) - 1, int(t / BUCKET_S))] += 1
    return {
        "benchmark": "smallbank",
        "run_dir": str(run_dir),
        "machine": {"cores": cores, "python": platform.python_version(), "platform": platform.platform(), "processor": platform.machine()},
        "config": {
            "n": config.n,
            "f": config.f,
            "transport": transport,
            "durability": durability,
            "clients": options.clients,
            "duration_s": duration,
            "warmup_s": options.warmup_s,
            "accounts": options.spec.accounts,
            "hot_accounts": options.spec.hot_accounts,
            "hot_probability": options.spec.hot_probability,
            "workload": "file" if options.workload else "generated",
            "batch_size_max": config.batch_size_max,
            "batch_wait_ms": config.timers.batch_wait_ms,
            "inflight_max": config.inflight_max,
            "checkpoint_interval": config.checkpoint_interval,
            "fast_path": config.fast_path,
            "certificates": config.certificates,
        },
        "completed": completed,
        "throughput_tps": round(throughput, 1),
        "ordered_tps": round(ordered / duration, 1),
        "unordered_reads": reads,
        "latency_ms": {
            "p50": round(_percentile(latencies, 0.50), 2),
            "p90": round(_percentile(latencies, 0.90), 2),
            "p99": round(_percentile(latencies, 0.99), 2),
            "mean": round(sum(latencies) / completed, 2) if completed else 0.0,
            "max": round(latencies[-1], 2) if latencies else 0.0,
        },
        "fast_path_share": round(fast / (fast + slow), 4) if fast + slow else 0.0,
        "batches": batches,
        "mean_batch": round(mean_batch, 2),
        "messages_per_request": round(sent_messages / ordered, 2) if ordered and sent_known else None,
        "bytes_per_request": round(sent_bytes / ordered, 1) if ordered and sent_known else None,
        # What one certificate costs on the wire: prepare/commit/checkpoint, and fast path.
        "certificate_bytes": {"quorum": config.certificate_bytes, "fast": config.fast_certificate_bytes},
        "floor_tps": round(floor, 1),
        "achieved_over_floor": round(throughput / floor, 3) if floor else None,
        "crypto_costs_us": budget.costs.used_by(config),
        "results": dict(result.results),
        "by_op": dict(result.by_op),
        "reads_fell_back": result.reads_fell_back,
        "cpu_s": {k: round(v, 2) for k, v in result.cpu_s.items()},
        # Steadier than tx/s on a shared machine: CPU of every process per completed transaction.
        "cpu_ms_per_tx": round(1000 * sum(result.cpu_s.values()) / completed, 3) if completed else None,
        "timeline": {"bucket_s": BUCKET_S, "completed": buckets},
        "latencies_ms_sample": [round(x, 2) for x in latencies[:: max(1, completed // 2000)]],
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


# What `--repeat` lists for every run, and takes the median of.
REPEAT_FIGURES = ("throughput_tps", "achieved_over_floor", "floor_tps", "cpu_ms_per_tx", "fast_path_share", "mean_batch")


def _figures(report: dict[str, Any]) -> dict[str, Any]:
    figures = {key: report[key] for key in REPEAT_FIGURES}
    figures["latency_p50_ms"] = report["latency_ms"]["p50"]
    figures["latency_p99_ms"] = report["latency_ms"]["p99"]
    return figures


def with_repeats(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """The median run's report (by throughput; the lower middle one of an even count), with
    every run's figures under ``repeats`` and the median of each figure under ``medians``."""
    import statistics

    by_throughput = sorted(reports, key=lambda r: r["throughput_tps"])
    median_run = by_throughput[(len(reports) - 1) // 2]
    runs = [{"run_dir": r["run_dir"], **_figures(r)} for r in reports]
    medians = {
        key: round(statistics.median(run[key] for run in runs if run[key] is not None), 3)
        for key in runs[0]
        if key != "run_dir" and any(run[key] is not None for run in runs)
    }
    return {**median_run, "repeats": runs, "medians": medians}


def render_repeats(console: Console, report: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"{len(report['repeats'])} runs (the JSON's top level is the median run by throughput)", title_justify="left", header_style="bold")
    for name in ("run", "tx/s", "p50 / p99 (ms)", "fast path", "mean batch", "CPU ms/tx", "floor tx/s", "achieved / floor"):
        table.add_column(name, justify="right")

    def row(label: str, f: dict[str, Any]) -> list[str]:
        cpu = f"{f['cpu_ms_per_tx']:.3f}" if f.get("cpu_ms_per_tx") is not None else "-"
        ratio = f"{f['achieved_over_floor']:.3f}" if f.get("achieved_over_floor") is not None else "-"
        return [
            label, f"{f['throughput_tps']:,.0f}", f"{f['latency_p50_ms']:.1f} / {f['latency_p99_ms']:.1f}",
            f"{100 * f['fast_path_share']:.1f}%", f"{f['mean_batch']:.1f}", cpu, f"{f['floor_tps']:,.0f}", ratio,
        ]  # fmt: skip

    for number, run in enumerate(report["repeats"], start=1):
        table.add_row(*row(str(number), run))
    table.add_row(*row("median", report["medians"]), style="bold")
    console.print(table)


def render_report(console: Console, report: dict[str, Any]) -> None:
    from rich.table import Table

    cfg = report["config"]
    lat = report["latency_ms"]
    over = " over TCP" if cfg.get("transport") == "tcp" else ""
    certificates = f", {cfg['certificates']} certificates" if cfg.get("certificates", "bls") != "bls" else ""
    table = Table(title=f"SmallBank on {cfg['n']} replicas (f = {cfg['f']}){over}{certificates}, {cfg['clients']} clients, {cfg['duration_s']:.0f} s", title_justify="left", show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [
        ("committed tx/s", f"{report['throughput_tps']:,.0f}"),
        ("  of which ordered (consensus) tx/s", f"{report['ordered_tps']:,.0f}"),
        ("latency p50 / p90 / p99 (ms)", f"{lat['p50']:.1f} / {lat['p90']:.1f} / {lat['p99']:.1f}"),
        ("fast-path share", f"{100 * report['fast_path_share']:.1f}%"),
        ("mean batch (requests)", f"{report['mean_batch']:.1f}"),
        ("messages per ordered request", str(report["messages_per_request"]) if report["messages_per_request"] is not None else "-"),
        ("bytes per ordered request", f"{report['bytes_per_request']:,.0f}" if report["bytes_per_request"] else "-"),
        ("CPU per transaction, all processes (ms)", f"{report['cpu_ms_per_tx']:.2f}" if report["cpu_ms_per_tx"] else "-"),
        ("cryptographic floor tx/s", f"{report['floor_tps']:,.0f}"),
        ("achieved / floor", f"{report['achieved_over_floor']:.2f}" if report["achieved_over_floor"] is not None else "-"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    cpu = ", ".join(f"{k} {v:.1f}" for k, v in sorted(report["cpu_s"].items()))
    console.print(f"[dim]CPU seconds in the measured window: {cpu}[/]")
    costs = ", ".join(f"{CRYPTO_LABELS.get(k, k)} {v:g}" for k, v in report["crypto_costs_us"].items())
    console.print(f"[dim]cost of each primitive on this machine, µs: {costs}[/]")


# The floor's primitives as people name them (the JSON keeps the keys).
CRYPTO_LABELS = {
    "ed25519_sign_us": "Ed25519 sign",
    "ed25519_verify_us": "Ed25519 verify",
    "bls_sign_us": "BLS share sign",
    "bls_verify_us": "BLS verify",
    "bls_combine_us": "BLS combine 2f+1 shares",
    "bls_aggregate_us": "BLS aggregate n shares",
    "bls_decode_us": "BLS decode a point",
}
# The latency percentiles the plot marks, each its own colour and dash (the bars are blue).
PLOT_PERCENTILES = (("p50", "tab:green", "--"), ("p90", "tab:orange", "-."), ("p99", "tab:red", ":"))


def _plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timeline = report["timeline"]
    width = timeline["bucket_s"]
    rates = [count / width for count in timeline["completed"]]
    # steps-post draws each bucket from its start to the next point: one more point at the end
    # of the window, or the last bucket would have no width.
    times = [i * width for i in range(len(rates) + 1)]
    rates = [*rates, rates[-1]] if rates else [0.0, 0.0]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot(times, rates, drawstyle="steps-post")
    left.axhline(report["throughput_tps"], color="tab:gray", linestyle="--", linewidth=1, label=f"mean {report['throughput_tps']:.0f} tx/s")
    left.set_xlabel("seconds into the measured window")
    left.set_ylabel("committed tx/s")
    left.set_ylim(bottom=0)
    left.set_title("Throughput")
    left.legend()
    samples = report["latencies_ms_sample"]
    right.hist(samples, bins=50, color="tab:blue")
    for q, colour, dash in PLOT_PERCENTILES:
        value = report["latency_ms"][q]
        right.axvline(value, color=colour, linestyle=dash, linewidth=1.5, label=f"{q} {value:.0f} ms")
    right.set_xlabel("latency (ms)")
    right.set_ylabel("transactions")
    right.set_title("Latency distribution")
    right.legend()
    cfg = report["config"]
    over = ", TCP" if cfg.get("transport") == "tcp" else ""
    figure.suptitle(f"SmallBank, n={cfg['n']}{over}, {cfg['clients']} clients, {report['machine']['cores']} cores")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
