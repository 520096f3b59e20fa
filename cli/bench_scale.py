"""``pbft bench scale``: replica-to-replica messages and bytes per committed instance as n grows.

For each f of ``--f`` the simulator runs a fault-free cluster of n = 3f+1 replicas
(`pbft_core.sim.scale.run_scale`), counts every message replicas send each other and to clients,
and divides by the committed instances; next to it sits the classic all-to-all PBFT cost for the
same n (a formula, with bytes estimated from the sizes measured in the run). The summary table
is all that is printed unless ``-v`` asks for the per-message-type breakdown; a progress bar per
f shows on a terminal only. See ``docs/benchmarks.md`` (Scale).

Exit codes: 0 success; 2 bad usage; 1 a run did not finish (a bug: the network is reliable).
"""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cli.common import make_console, parse_certificates
from pbft_core.messages import ORDERING
from pbft_core.sim.scale import ScaleReport, ScaleResult, run_scale

# n = 3f+1 ≤ 100: beyond that a run takes minutes and the trend is already clear.
F_MAX = 33


def _parse_fs(text: str) -> list[int]:
    try:
        fs = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"not a comma-separated list of integers: {text!r}", param_hint="--f") from None
    if not fs or any(not 1 <= f <= F_MAX for f in fs):
        raise click.BadParameter(f"each f must be in 1..{F_MAX}", param_hint="--f")
    return list(dict.fromkeys(fs))


def _console() -> Console:
    return make_console(piped_width=140)


@click.command("scale")
@click.option("--f", "f_spec", default="1,2,4,8", show_default=True, help="Comma-separated f values (n = 3f+1).")
@click.option("--requests", type=click.IntRange(1, 100_000), default=200, show_default=True, help="Transfers per cluster.")
@click.option(
    "--clients",
    type=click.IntRange(1, 1_000),
    default=16,
    show_default=True,
    help="Closed-loop clients sharing the requests (more clients, bigger batches).",
)
@click.option(
    "--crypto",
    type=click.Choice(["sim", "real"]),
    default="sim",
    show_default=True,
    help="Keyed-hash stand-ins (fast) or Ed25519 + BLS12-381 (slow to deal at large n).",
)
@click.option(
    "--fast-path/--no-fast-path",
    default=True,
    show_default=True,
    help="Let the collector commit in one round when all n shares arrive.",
)
@click.option(
    "--certificates",
    "certificates_spec",
    default="bls",
    show_default=True,
    help="Certificate scheme: bls, ed25519, or both (a comma list) side by side.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Simulator seed (network delays, workload, keys).")
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the report as JSON here.",
)
@click.option("-v", "--verbose", is_flag=True, help="Also print messages per instance by message type.")
def scale(
    f_spec: str,
    requests: int,
    clients: int,
    crypto: str,
    fast_path: bool,
    certificates_spec: str,
    seed: int,
    json_path: Path | None,
    verbose: bool,
) -> None:
    """Messages and bytes per committed instance for n = 3f+1, next to all-to-all PBFT."""
    fs = _parse_fs(f_spec)
    schemes = parse_certificates(certificates_spec)
    if json_path is not None and not json_path.parent.is_dir():
        raise click.BadParameter(f"directory {json_path.parent} does not exist", param_hint="--json")
    if crypto == "real":
        try:
            import thresh_sig

            thresh_sig.deal  # noqa: B018  (the dealing API real keys need)
        except (ImportError, AttributeError) as exc:
            raise click.UsageError(f"real cryptography is unavailable ({exc}); use --crypto sim") from None
    console = _console()
    reports: list[ScaleReport] = []
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as progress:
        for scheme in schemes:
            results: list[ScaleResult] = []
            for f in fs:
                task = progress.add_task(f"{scheme} f={f} n={3 * f + 1}", total=requests)
                try:
                    result = run_scale(
                        f,
                        requests=requests,
                        clients=clients,
                        crypto=crypto,
                        seed=seed,
                        fast_path=fast_path,
                        certificates=scheme,
                        on_progress=lambda done, _total, t=task: progress.update(t, completed=done),
                    )
                except RuntimeError as exc:
                    raise click.ClickException(str(exc)) from None
                except ValueError as exc:  # a cluster this scheme cannot serve (ClusterConfig)
                    raise click.UsageError(f"{scheme}, f={f}: {exc}") from None
                results.append(result)
            reports.append(ScaleReport(results))
    _render(console, reports, verbose)
    if json_path is not None:
        # One scheme: its report. Several: one report per scheme, in the order asked.
        if len(reports) == 1:
            document = reports[0].to_json()
        else:
            document = {"benchmark": "scale", "certificates": schemes, "reports": [r.to_json() for r in reports]}
        json_path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        console.print(f"report written to {json_path}")


def _render(console: Console, reports: list[ScaleReport], verbose: bool) -> None:
    first = reports[0].results[0]
    # One scheme: named in the title. Several: a column (the table is already wide).
    several = len(reports) > 1
    scheme = "" if several else f", {first.certificates} certificates"
    table = Table(
        title=f"pbft bench scale · {first.requests} requests, {first.clients} clients, "
        f"crypto={first.crypto}{scheme}, fast path {'on' if first.fast_path else 'off'}",
    )
    if several:
        table.add_column("certs", justify="right")
    for header in (
        "f",
        "n",
        "instances",
        "mean batch",
        "msgs/inst",
        "bytes/inst",
        "msgs/inst/n",
        "a2a msgs/inst",
        "a2a bytes/inst",
        "ratio",
        "other/inst",
        "cert B",
    ):
        table.add_column(header, justify="right")
    for r in (r for report in reports for r in report.results):
        table.add_row(
            *([r.certificates] if several else []),
            str(r.f),
            str(r.n),
            str(r.instances),
            f"{r.mean_batch:.2f}",
            f"{r.messages_per_instance:.1f}",
            f"{r.bytes_per_instance:,.0f}",
            f"{r.messages_per_instance_per_replica:.2f}",
            f"{r.all_to_all_messages:,}",
            f"{r.all_to_all_bytes:,.0f}",
            f"{r.ratio_messages:.1f}×",
            f"{r.other_messages_per_instance:.1f}",
            str(r.certificate_bytes),
        )
    console.print(table)
    for report in reports:
        growth = report.growth()
        if growth["linear_messages_exponent"] is not None:
            label = f"{report.results[0].certificates} " if len(reports) > 1 else ""
            console.print(
                f"{label}growth (least squares on log-log): linear ∝ n^{growth['linear_messages_exponent']:.2f} "
                f"messages, n^{growth['linear_bytes_exponent']:.2f} bytes; all-to-all ∝ "
                f"n^{growth['all_to_all_messages_exponent']:.2f} messages, n^{growth['all_to_all_bytes_exponent']:.2f} bytes"
            )
    console.print(
        "msgs/inst: ordering messages between replicas (pre-prepare, shares, certificates); "
        "a2a: classic PBFT (n-1) + (n-1)² + n(n-1), Ed25519-signed votes; "
        "other: checkpoints and status gossip (not per instance); ratio = a2a/linear messages; "
        "cert B: the largest certificate (bls: 96; ed25519: 65 per signer)."
    )
    if verbose:
        for report in reports:
            _render_by_type(console, report)


def _render_by_type(console: Console, report: ScaleReport) -> None:
    names = sorted(
        {name for r in report.results for name in r.replica_by_type},
        key=lambda name: (name not in {t.__name__ for t in ORDERING}, name),
    )
    scheme = report.results[0].certificates
    table = Table(title=f"replica-to-replica messages per instance (bytes per message), {scheme} certificates")
    table.add_column("type")
    for r in report.results:
        table.add_column(f"n={r.n}", justify="right")
    for name in names:
        cells = []
        for r in report.results:
            tally = r.replica_by_type.get(name)
            if tally is None or not r.instances:
                cells.append("-")
            else:
                cells.append(f"{tally.messages / r.instances:.2f} ({tally.bytes / tally.messages:.0f} B)")
        table.add_row(name, *cells)
    clients = Table(title="client ↔ replica messages per instance (bytes per message)")
    clients.add_column("type")
    for r in report.results:
        clients.add_column(f"n={r.n}", justify="right")
    for name in sorted({name for r in report.results for name in r.client_by_type}):
        cells = []
        for r in report.results:
            tally = r.client_by_type.get(name)
            cells.append(
                "-" if tally is None or not r.instances
                else f"{tally.messages / r.instances:.2f} ({tally.bytes / tally.messages:.0f} B)"
            )
        clients.add_row(name, *cells)
    console.print(table)
    console.print(clients)


if __name__ == "__main__":
    scale()
