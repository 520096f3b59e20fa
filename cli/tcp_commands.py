"""``pbft keygen``, ``pbft node`` and ``pbft client``: replicas as separate processes over TCP.

``keygen`` deals a cluster's keys once (or, with ``--dkg``, has the replicas generate theirs
together, with no dealer) and writes ``cluster.toml`` plus one key directory per replica and per
client; ``node`` serves one replica (durable across ``kill -9``); ``client``
sends one signed request and prints the certified result, or asks every replica for its status.
See ``docs/deploy.md`` for seven replicas on seven hosts.

Exit codes of ``pbft client``: 0 committed (or status answered), 3 the operation failed (e.g.
insufficient funds: a final, certified answer), 4 unavailable (no certified answer before
``--timeout``), 2 bad usage (cluster file, key, arguments).

Like ``cli.main``, this module imports only Click at import time; everything heavy is imported
inside the commands.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .common import DEFAULT_DATA_DIR, make_console
from .errors import UsageFailure

if TYPE_CHECKING:
    from pbft_core.clusterfile import ClusterFile

EXIT_FAILED = 3
EXIT_UNAVAILABLE = 4
CLUSTER_HELP = "The cluster file written by `pbft keygen` (its key directories sit next to it)."
# Counters of what a node refused or shed to protect itself (docs/deploy.md, TCP bounds).
REFUSED_COUNTER_PREFIXES = (
    "handshake.", "frame.", "conn.refused", "conn.evicted", "client.not_request", "status.rate_limited",
)


def _load_cluster(path: Path) -> ClusterFile:
    from pbft_core.clusterfile import ClusterFile, ClusterFileError

    try:
        return ClusterFile.load(path)
    except ClusterFileError as exc:
        raise UsageFailure(str(exc)) from None


# ---- keygen ----------------------------------------------------------------------------------


@click.command()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("cluster"),
    show_default=True,
    help="Directory for cluster.toml and the key directories.",
)
@click.option("--f", "f", type=click.IntRange(1, 10), default=2, show_default=True, help="Faults tolerated (n = 3f+1).")
@click.option(
    "--clients",
    "extra_clients",
    type=click.IntRange(0, 100_000),
    default=0,
    show_default=True,
    help="Benchmark clients c0..cN-1, in addition to the account holders A–J.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Host of every replica (edit cluster.toml for several hosts).")
@click.option("--base-port", type=click.IntRange(1, 65535), default=5001, show_default=True, help="Replica i listens on base-port + i - 1.")
@click.option("--hosts", default=None, help="Comma-separated HOST[:PORT] per replica, n1 first (overrides --host).")
@click.option("--checkpoint-interval", type=click.IntRange(1, 10_000), default=10, show_default=True, help="Sequence numbers between checkpoints (K).")
@click.option("--batch-size", type=click.IntRange(1, 10_000), default=64, show_default=True, help="Most requests per batch.")
@click.option("--state", default="bank", show_default=True, help='Initial replicated state: "bank" or "smallbank:N".')
@click.option("--certificates", type=click.Choice(["bls", "ed25519"]), default="bls", show_default=True, help="What a certificate is: one BLS threshold signature (deals BLS keys), or the collected Ed25519 signatures of its signers (no key beyond the identities).")
@click.option("--seed", default=None, help="Derive every key from this string (reproducible; never for production).")
@click.option("--force", is_flag=True, help="Overwrite an existing cluster (deals new keys).")
@click.option(
    "--dkg",
    is_flag=True,
    help="No dealer: the replicas' keys come from a distributed key generation among one local process per replica, each writing its own key directory (docs/deploy.md).",
)
def keygen(
    out_dir: Path,
    f: int,
    extra_clients: int,
    host: str,
    base_port: int,
    hosts: str | None,
    checkpoint_interval: int,
    batch_size: int,
    state: str,
    certificates: str,
    seed: str | None,
    force: bool,
    dkg: bool,
) -> None:
    """Deal keys for a cluster: cluster.toml (public) and one key directory per node (secret)."""
    from pbft_core.clusterfile import Address, ClusterFileError, default_clients
    from pbft_core.clusterfile import keygen as deal
    from pbft_core.config import ClusterConfig

    try:
        config = ClusterConfig(f=f, checkpoint_interval=checkpoint_interval, batch_size_max=batch_size, state=state, certificates=certificates)
    except ValueError as exc:
        raise UsageFailure(str(exc)) from None
    if dkg and certificates != "bls":
        raise UsageFailure(f"--dkg makes BLS threshold keys; --certificates {certificates} needs none")
    if hosts is not None:
        entries = [h.strip() for h in hosts.split(",") if h.strip()]
        if len(entries) != config.n:
            raise UsageFailure(f"--hosts lists {len(entries)} hosts, f = {f} needs {config.n}")
        addresses = {}
        for r, entry in zip(config.replica_ids, entries, strict=True):
            try:
                addresses[r] = Address.parse(entry) if ":" in entry else Address(entry, base_port + r - 1)
            except ClusterFileError as exc:
                raise UsageFailure(f"--hosts: {exc}") from None
    else:
        addresses = {r: Address(host, base_port + r - 1) for r in config.replica_ids}
    if dkg and seed is not None:
        raise UsageFailure("--seed derives every key from one string, which is a dealer: drop it with --dkg")
    try:
        cluster = deal(
            out_dir,
            config,
            clients=default_clients(extra_clients),
            addresses=addresses,
            seed=seed.encode() if seed is not None else None,
            force=force,
            dkg=dkg,
        )
    except ClusterFileError as exc:
        raise UsageFailure(str(exc)) from None
    click.echo(f"wrote {cluster.path} (n = {config.n}, f = {f}, {len(cluster.clients)} clients, {config.certificates} certificates)")
    if dkg:
        click.echo(
            f"  BLS keys by distributed key generation ({config.quorum}-of-{config.n} and "
            f"{config.n}-of-{config.n}): each replica's process wrote its own key directory"
        )
    for r in config.replica_ids:
        click.echo(f"  n{r}  {cluster.addresses[r]}  keys in {cluster.secrets_path(f'n{r}').parent}")
    click.echo(f"  clients' keys in {out_dir / 'clients'}/<name>/")
    click.echo("copy cluster.toml and nK/ to replica K's host; cluster.toml and clients/<name>/ to clients")


# ---- node ------------------------------------------------------------------------------------


@click.command()
@click.option("--id", "replica_id", type=click.IntRange(1), required=True, help="Which replica to serve (3 for n3).")
@click.option("--cluster", "cluster_path", type=click.Path(dir_okay=False, path_type=Path), default=Path("cluster/cluster.toml"), show_default=True, help=CLUSTER_HELP)
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_DATA_DIR / "node", show_default=True, help="Where nK.sqlite (inspection) and nK.durable.sqlite (write-ahead log) live.")
@click.option("--key", "key_path", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Secrets file (default: nK/secrets.key next to the cluster file).")
@click.option("--listen", default=None, help="HOST:PORT to bind (default: this replica's address in the cluster file).")
@click.option("--attack", "attacks_text", default=None, hidden=True, help='Byzantine behaviour for experiments, e.g. "crash" or "time; dark(n6)".')
@click.option("--meta", "meta_json", default=None, hidden=True, help="JSON object stored in the inspection database's meta table.")
@click.option(
    "--durability",
    type=click.Choice(["power", "process"]),
    default="power",
    show_default=True,
    help="power: fsync the write-ahead log at every commit (survives a power cut); process: survives kill -9 and crashes of the process only, much faster on slow disks.",
)
@click.option("-v", "--verbose", is_flag=True, help="Log connections and protocol events (logfmt lines on stderr).")
def node(
    replica_id: int,
    cluster_path: Path,
    data_dir: Path,
    key_path: Path | None,
    listen: str | None,
    attacks_text: str | None,
    meta_json: str | None,
    durability: str,
    verbose: bool,
) -> None:
    """Serve one replica over TCP until SIGTERM (recovers from its data directory after a crash)."""
    from pbft_core.clusterfile import Address, ClusterFileError
    from pbft_core.runtime.tcp import NodeLog, NodeStartError, ReplicaNode, run_node
    from pbft_core.scenario import _parse_attacks

    cluster = _load_cluster(cluster_path)
    if replica_id not in cluster.config.replica_ids:
        raise UsageFailure(f"--id {replica_id}: the cluster has replicas 1..{cluster.config.n}")
    try:
        secrets = cluster.load_secrets(f"n{replica_id}", key_path)
        address = Address.parse(listen) if listen else None
    except ClusterFileError as exc:
        raise UsageFailure(str(exc)) from None
    attacks = ()
    if attacks_text:
        try:
            attacks = _parse_attacks(f"[{attacks_text}]", cluster.config.n)
        except Exception as exc:
            raise UsageFailure(f"--attack: {exc}") from None
    meta = json.loads(meta_json) if meta_json else {}
    log = NodeLog(f"n{replica_id}", verbose=verbose)
    replica = ReplicaNode(
        cluster, replica_id, secrets, data_dir, listen=address, attacks=attacks, meta=meta, log=log,
        durability=durability,
    )
    try:
        run_node(replica)
    except NodeStartError as exc:
        raise UsageFailure(str(exc)) from None


# ---- client ----------------------------------------------------------------------------------


@click.group()
@click.option("--cluster", "cluster_path", type=click.Path(dir_okay=False, path_type=Path), default=Path("cluster/cluster.toml"), show_default=True, help=CLUSTER_HELP)
@click.option("--as", "as_name", default=None, help="Client identity to sign with (default: the account the request is about).")
@click.option("--key", "key_path", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Secrets file (default: clients/NAME/secrets.key next to the cluster file).")
@click.option("--timeout", "timeout_s", type=click.FloatRange(0.1, 3600), default=10.0, show_default=True, help="Seconds to wait for a certified answer.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def client(
    ctx: click.Context,
    cluster_path: Path,
    as_name: str | None,
    key_path: Path | None,
    timeout_s: float,
    as_json: bool,
) -> None:
    """Talk to a running cluster: signed requests with certified answers, and status."""
    ctx.obj = {
        "cluster_path": cluster_path,
        "as_name": as_name,
        "key_path": key_path,
        "timeout_s": timeout_s,
        "as_json": as_json,
    }


def _pool(obj: dict[str, Any], default_name: str) -> Any:
    from pbft_core.clusterfile import ClusterFileError
    from pbft_core.runtime.tcp import ClientPool

    cluster = _load_cluster(obj["cluster_path"])
    name = obj["as_name"] or default_name
    if name not in cluster.public.clients:
        raise UsageFailure(f"no client {name!r} in {obj['cluster_path']} (use --as NAME)")
    try:
        secrets = cluster.load_secrets(name, obj["key_path"])
    except ClusterFileError as exc:
        raise UsageFailure(str(exc)) from None
    return ClientPool(cluster, [secrets])


def _request(obj: dict[str, Any], name: str, op: str, args: tuple[Any, ...], read_only: bool) -> None:
    import asyncio

    pool = _pool(obj, name)
    client_name = pool.names[0]
    config = pool.config
    needed = config.read_quorum if read_only else config.reply_quorum
    what = f"{op} {' '.join(map(str, args))}"

    async def go() -> Any:
        await pool.start()
        try:
            return await asyncio.wait_for(
                pool.submit(client_name, op, args, read_only=read_only), obj["timeout_s"]
            )
        except TimeoutError:
            return None
        finally:
            await pool.close()

    done = asyncio.run(go())
    if done is None:
        if obj["as_json"]:
            click.echo(json.dumps({"request": what, "client": client_name, "outcome": "unavailable"}))
        else:
            click.echo(
                f"unavailable  {what}: no {needed} matching signed replies within {obj['timeout_s']:g} s",
                err=True,
            )
        sys.exit(EXIT_UNAVAILABLE)
    from pbft_core.bank import FAILED

    completion = done.completion
    outcome = "failed" if completion.result == FAILED else "committed"
    ordered = not completion.request.read_only
    quorum = config.reply_quorum if ordered else config.read_quorum
    if obj["as_json"]:
        click.echo(
            json.dumps(
                {
                    "request": what,
                    "client": client_name,
                    "timestamp": completion.request.timestamp,
                    "outcome": outcome,
                    "result": completion.result,
                    "certified_by": [f"n{r}" for r in done.certified_by],
                    "quorum": quorum,
                    "view": completion.view,
                    "latency_ms": round(completion.latency_ms, 3),
                    "fell_back": completion.fell_back,
                    "reason": _failure_reason(op, args) if outcome == "failed" else None,
                }
            )
        )
    else:
        reason = _failure_reason(op, args) if outcome == "failed" else None
        click.echo(f"{outcome:<10} {what}: {completion.result}" + (f": {reason}" if reason else ""))
        kind = "ordered" if ordered else "read"
        extra = " (read re-sent as ordered)" if completion.fell_back else ""
        click.echo(
            f"certified by {', '.join(f'n{r}' for r in done.certified_by)}: "
            f"{len(done.certified_by)} matching signed replies ({kind}, quorum {quorum}){extra}"
            f" · view {completion.view} · {completion.latency_ms:.1f} ms"
        )
    sys.exit(EXIT_FAILED if outcome == "failed" else 0)


def _json_flag(fn: Any) -> Any:
    """``--json`` after the subcommand too (``client status --json``), as before it."""

    def remember(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        if value:
            ctx.ensure_object(dict)["as_json"] = True

    return click.option("--json", is_flag=True, expose_value=False, callback=remember, help="Print the result as JSON.")(fn)


# `transfer A B -1`: "-1" is a value (refused below with a reason), not an unknown option.
@client.command(context_settings={"ignore_unknown_options": True})
@click.argument("source")
@click.argument("target")
@click.argument("amount")
@_json_flag
@click.pass_obj
def transfer(obj: dict[str, Any], source: str, target: str, amount: str) -> None:
    """Move AMOUNT from SOURCE to TARGET (ordered; f+1 matching replies).

    Checked here before anything is sent: both accounts exist, they differ, and AMOUNT is a
    positive whole number (the replicas would order the request and answer a bare "failed")."""
    value = _check_transfer(obj, source, target, amount)
    _request(obj, source, "transfer", (source, target, value), read_only=False)


def _check_transfer(obj: dict[str, Any], source: str, target: str, amount: str) -> int:
    """The amount, once the transfer is one the bank could carry out; else a usage error."""
    from pbft_core.bank import BALANCE_MAX, Bank

    cluster = _load_cluster(obj["cluster_path"])
    accounts = Bank.initial(cluster.config.state).balances
    for role, account in (("source", source), ("target", target)):
        if account not in accounts:
            sample = ", ".join(list(accounts)[:10]) + (" …" if len(accounts) > 10 else "")
            raise UsageFailure(f"no account {account!r} ({role}); accounts: {sample}")
    if source == target:
        raise UsageFailure(f"a transfer needs two different accounts, got {source} twice")
    try:
        value = int(amount)
    except ValueError:
        raise UsageFailure(f"amount {amount!r} is not a whole number") from None
    if not 0 < value <= BALANCE_MAX:
        raise UsageFailure(f"amount must be positive, got {value}")
    return value


def _failure_reason(op: str, args: tuple[Any, ...]) -> str | None:
    """Why the bank answered "failed" to a request that passed the local checks: for a transfer
    only the source's funds are left (or, absurdly, the target's balance overflowing)."""
    if op == "transfer":
        source, _target, amount = args
        return f"{source} holds less than {amount} (insufficient funds)"
    return None


@client.command()
@click.argument("account")
@_json_flag
@click.pass_obj
def balance(obj: dict[str, Any], account: str) -> None:
    """Read ACCOUNT's balance (unordered; 2f+1 matching replies, else ordered)."""
    _request(obj, account, "balance", (account,), read_only=True)


@client.command()
@click.argument("replicas", nargs=-1)
@_json_flag
@click.pass_obj
def status(obj: dict[str, Any], replicas: tuple[str, ...]) -> None:
    """Every replica's view, progress, state digest, links and counters of refused input."""
    import asyncio

    cluster = _load_cluster(obj["cluster_path"])
    pool = _pool(obj, obj["as_name"] or cluster.clients[0])
    wanted = []
    for text in replicas or [f"n{r}" for r in cluster.config.replica_ids]:
        r = int(text.lstrip("nS")) if text.lstrip("nS").isdigit() else 0
        if r not in cluster.config.replica_ids:
            raise UsageFailure(f"no replica {text!r}")
        wanted.append(r)

    async def go() -> dict[int, dict[str, Any] | None]:
        await pool.start()
        try:
            answers = await asyncio.gather(*(pool.status(r, min(obj["timeout_s"], 3.0)) for r in wanted))
        finally:
            await pool.close()
        return dict(zip(wanted, answers, strict=True))

    states = asyncio.run(go())
    if obj["as_json"]:
        click.echo(json.dumps({f"n{r}": s for r, s in states.items()}, indent=2, default=str))
    else:
        _print_status(cluster, states)
    sys.exit(0 if any(s is not None for s in states.values()) else EXIT_UNAVAILABLE)


def _uptime_text(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{seconds:.1f}s"


def _print_status(cluster: ClusterFile, states: dict[int, dict[str, Any] | None]) -> None:
    from .render import make_table

    table = make_table("replicas")
    columns = (
        "replica", "address", "view", "leader", "executed", "stable", "state", "uptime", "recovered",
        "links out", "clients", "refused / dropped",
    )  # fmt: skip
    for column in columns:
        table.add_column(column)
    for r, s in states.items():
        address = str(cluster.addresses[r])
        if s is None:
            table.add_row(f"n{r}", address, "[red]no answer[/red]", *[""] * (len(columns) - 3))
            continue
        view = f"{s['view']}" + ("" if s["view_active"] else " (changing)")
        leader = f"n{cluster.config.leader_of(s['view'])}"
        # A node that restarted replays its write-ahead log: a short uptime and recovered events.
        recovered = s.get("recovered_events") or 0
        recovered_text = f"{recovered} events" if recovered else "-"
        links = sum(1 for up in s["links_out"].values() if up)
        refused = {
            k: v
            for k, v in s["counters"].items()
            if k.startswith(REFUSED_COUNTER_PREFIXES) or k.endswith("dropped_queue_full")
        }
        if s.get("host.decode_failures"):
            refused["undecodable"] = s["host.decode_failures"]
        table.add_row(
            f"n{r}",
            address,
            view,
            leader,
            str(s["last_executed"]),
            str(s["stable_seq"]),
            s["state_digest"][:12],
            _uptime_text(s.get("uptime_s")),
            recovered_text,
            f"{links}/{len(s['links_out'])}",
            str(s["clients_connected"]),
            ", ".join(f"{k} {v}" for k, v in sorted(refused.items())) or "-",
        )
    make_console(piped_width=160).print(table)


def register(main: click.Group) -> None:
    """Add keygen / node / client to the ``pbft`` group."""
    main.add_command(keygen)
    main.add_command(node)
    main.add_command(client)
