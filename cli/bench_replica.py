"""``pbft bench replica``: CPU per ordered request at the leader, a backup and the client.

Runs `pbft_core.runtime.replica_cost.measure_replica_cost`: seven replica hosts with real keys,
real crypto and real SQLite stores, and the clients, in one thread with no transport, each
call timed with the thread's CPU clock. The table splits each node's cost by what it was given
(a message type, a tick, a flush) and into the crypto the floor counts and everything else.
The "cluster" row is leader + (n-1) × backup + client: what `pbft bench smallbank`'s "CPU per
transaction" would be without processes, pipes and scheduling. See docs/benchmarks.md.

Exit codes: 0 success; 1 an instance did not complete (a bug); 2 bad usage.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import click
from rich.table import Table

from cli.common import make_console, parse_certificates
from pbft_core.config import ClusterConfig
from pbft_core.runtime.replica_cost import ReplicaCost, measure_replica_cost


@click.command("replica")
@click.option("--batch", type=click.IntRange(1, 1024), default=32, show_default=True, help="Requests per batch (and clients).")
@click.option("--batches", type=click.IntRange(1, 100_000), default=60, show_default=True, help="Batches measured (after 3 of warm-up).")
@click.option("--accounts", type=click.IntRange(2, 1_000_000), default=1000, show_default=True, help="SmallBank customers.")
@click.option(
    "--certificates",
    "certificates_spec",
    default="bls",
    show_default=True,
    help="Certificate scheme: bls, ed25519, or both (a comma list): each measured and shown side by side.",
)
@click.option("--fast-path/--no-fast-path", default=True, show_default=True, help="Commit in one round when all n answer.")
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the keys and the transactions.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, allow_dash=True), help="Write the figures as JSON here ('-': stdout).")
@click.option(
    "--profile",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also run backup n2's work under cProfile and write the stats here (one scheme only).",
)
def replica(
    batch: int,
    batches: int,
    accounts: int,
    certificates_spec: str,
    fast_path: bool,
    seed: int,
    json_path: str | None,
    profile: Path | None,
) -> None:
    """CPU per ordered request, node by node and phase by phase, without transport.

    Seven replicas (f = 2, real crypto, real SQLite stores) and BATCH clients in one thread:
    each batch of SmallBank writes runs a whole instance, and every call into a replica or a
    client is timed with the thread's CPU clock. Prints microseconds per ordered request at the
    leader, the mean backup and the client, split into crypto and the rest (decoding,
    validation, execution, replies, the inspection log).
    """
    schemes = parse_certificates(certificates_spec)
    if profile is not None and len(schemes) > 1:
        raise click.UsageError("--profile measures one scheme at a time")
    console = make_console(stderr=json_path == "-")
    results: list[ReplicaCost] = []
    for scheme in schemes:
        config = ClusterConfig(state=f"smallbank:{accounts}", certificates=scheme, fast_path=fast_path)
        with tempfile.TemporaryDirectory(prefix="pbft-replica-cost-") as store_dir, console.status(
            f"{scheme}: {batches} batches of {batch}"
        ):
            try:
                results.append(
                    measure_replica_cost(config, batch=batch, batches=batches, store_dir=Path(store_dir), seed=seed, profile=profile)
                )
            except RuntimeError as exc:
                console.print(f"[red]error:[/] {exc}")
                raise SystemExit(1) from None
    for result in results:
        console.print(_table(result))
    if len(results) > 1:
        console.print(_comparison(results))
    if profile is not None:
        console.print(f"cProfile of backup n2: {profile}")
    if json_path is not None:
        document = {"benchmark": "replica", "reports": [r.as_dict() for r in results]}
        text = json.dumps(document, indent=2)
        if json_path == "-":
            click.echo(text)
        else:
            Path(json_path).write_text(text + "\n")


def _table(result: ReplicaCost) -> Table:
    config = result.config
    path = "fast path" if config.fast_path else "no fast path"
    table = Table(
        title=f"µs of CPU per ordered request · {config.certificates} certificates, {path}, "
        f"batches of {result.batch} ({result.fast_commits}/{result.batches} fast)"
    )
    for column in ("node", "given", "total", "crypto", "other"):
        table.add_column(column, justify="left" if column in ("node", "given") else "right")
    for node in ("leader", "backup", "client"):
        for phase in (p for p in result.phases if p.node == node):
            table.add_row(node, phase.phase, f"{phase.total_us:.1f}", f"{phase.crypto_us:.1f}", f"{phase.other_us:.1f}")
        total, crypto = result.node_total(node)
        table.add_row(f"[bold]{node}[/]", "[bold]all[/]", f"[bold]{total:.1f}[/]", f"{crypto:.1f}", f"{total - crypto:.1f}")
        table.add_section()
    cluster = result.cluster_total_us()
    crypto_all = sum(
        result.node_total(node)[1] * (config.n - 1 if node == "backup" else 1) for node in ("leader", "backup", "client")
    )
    table.add_row(
        "[bold]cluster[/]",
        f"leader + {config.n - 1} × backup + client",
        f"[bold]{cluster:.0f}[/]",
        f"{crypto_all:.0f}",
        f"{cluster - crypto_all:.0f}",
    )
    return table


def _comparison(results: list[ReplicaCost]) -> Table:
    table = Table(title="side by side (µs per ordered request)")
    for column in ("certificates", "leader", "backup", "client", "cluster", "of which crypto"):
        table.add_column(column, justify="left" if column == "certificates" else "right")
    for result in results:
        n = result.config.n
        leader, backup, client = (result.node_total(node) for node in ("leader", "backup", "client"))
        crypto = leader[1] + (n - 1) * backup[1] + client[1]
        cluster = result.cluster_total_us()
        table.add_row(
            result.config.certificates,
            f"{leader[0]:.0f}",
            f"{backup[0]:.0f}",
            f"{client[0]:.0f}",
            f"{cluster:.0f}",
            f"{crypto:.0f} ({crypto / cluster:.0%})",
        )
    return table
