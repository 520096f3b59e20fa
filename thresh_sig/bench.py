"""``python -m thresh_sig bench``: per-operation cost and certificate size against n.

For every ``n`` in ``--sizes`` (n = 3f+1 in the intended use) two thresholds are measured:
``t = 2f+1`` (the PBFT quorum certificate) and ``t = n`` (the fast path). Each operation is run
``--reps`` times and the *median* wall time is reported (medians, because a shared 2-core machine
is noisy and one descheduling should not move the figure):

* ``deal`` — the trusted dealer, n shares and t commitments;
* ``sign_share``, ``verify_share``, ``parse_share`` (``SignatureShare.from_bytes``: the subgroup
  check a replica pays for each share it receives);
* ``combine`` — interpolation only, on a *random* t-subset each rep with the Lagrange-plan cache
  cleared first (the worst case: signers arrive in random order and the set was never seen);
* ``combine+verify`` — ``combine(group, shares, message)``: optimistic combine and one
  verification, same subsets;
* ``verify`` — verify a combined signature;
* ``aggregate_all`` / ``verify_all`` — the n-of-n sum and its verification.

The second table sets the 96-byte certificate beside what a collector without threshold signatures
would send and verify: ``t`` Ed25519 signatures (64 bytes each, verified one by one with PyNaCl,
measured) or ``t`` individual BLS signatures (96 bytes each; verification estimated as
``t × verify_share``, which is exactly what a verifier would do).

The JSON report also holds the minimum of each operation (``ops_min_ms``), useful when the
machine is shared and the median is disturbed.

A third table times the distributed key generation (:mod:`thresh_sig.dkg`) for ``t = 2f+1``:
all ``n`` participants run in this process over a perfect in-memory broadcast, and each one's
own calls are timed separately, so the figures are *per participant* (what each machine of a
real run spends computing; network waits excluded):

* ``deal`` — ``start()``: draw the polynomial, commit, encrypt ``n−1`` shares (one
  Diffie-Hellman per peer);
* ``verify deals`` — receiving the ``n−1`` deals: decode and subgroup-check the commitments,
  decrypt one's share and check it against them;
* ``complaints`` — the complaint round with nobody to complain about (responses, the empty
  justification phase, summing the qualified contributions into the key);
* ``complaints (t−1)`` — the same round when one dealer sent ``t−1`` bad shares: the accused
  reveals them, everyone checks ``t−1`` revealed shares;
* ``total`` — a whole honest run; ``sent`` — the bytes one participant broadcasts (deal bundle
  plus response), and ``on the wire`` the same times ``n−1`` recipients.

The py_ecc backend is pure Python (~0.1-0.5 s per operation), so its default is 3 reps and sizes
4,7,16 (DKG: 4,7); the output says so.

Mount elsewhere: :data:`cli` is a click command (``group.add_command(thresh_sig.bench.cli,
name="sig")``) and :func:`main` takes an argv list and returns an exit code.
"""

from __future__ import annotations

import gc
import json
import platform
import random
import statistics
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.table import Table

from . import field
from .backends import BACKENDS, get_backend
from .keys import SIGNATURE_SIZE, SignatureShare
from .scheme import (
    aggregate_all,
    combine,
    deal,
    sign_share,
    verify,
    verify_all,
    verify_share,
)

__all__ = ["OPS", "cli", "main", "run_benchmark"]

DEFAULT_SIZES = "4,7,16,31,64,100"
PYECC_DEFAULT_SIZES = "4,7,16"
DEFAULT_DKG_SIZES = "4,7,16,31"
PYECC_DEFAULT_DKG_SIZES = "4,7"
DKG_REPS_MAX = 3
DEFAULT_REPS = {"blspy": 15, "py_ecc": 3}
ED25519_SIG_SIZE = 64

#: Operation keys, in table order, with their column titles.
OPS: tuple[tuple[str, str], ...] = (
    ("deal", "deal"),
    ("sign_share", "sign\nshare"),
    ("verify_share", "verify\nshare"),
    ("parse_share", "parse\nshare"),
    ("combine", "combine"),
    ("combine_verify", "combine\n+verify"),
    ("verify", "verify"),
    ("aggregate_all", "aggreg.\nall"),
    ("verify_all", "verify\nall"),
)


def _measure(
    fn: Callable[[int], object], reps: int, before: Callable[[], object] | None = None
) -> tuple[float, float]:
    """(median, min) wall time of ``fn(i)`` over ``reps`` calls, in ms (one untimed warm-up)."""
    fn(reps)  # warm-up: first-use caches (decoded keys, imports) are not what we measure
    samples = []
    gc.collect()
    # Like timeit: a cyclic-GC pass over the thousands of live benchmark objects must not land
    # inside one timed call. The code under test creates no reference cycles.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for i in range(reps):
            if before is not None:
                before()
            t0 = time.perf_counter()
            fn(i)
            samples.append(time.perf_counter() - t0)
    finally:
        if gc_was_enabled:
            gc.enable()
    return statistics.median(samples) * 1e3, min(samples) * 1e3


def _thresholds(n: int) -> list[int]:
    f = (n - 1) // 3
    return sorted({2 * f + 1, n})


def _bench_one(
    n: int, t: int, backend: str, reps: int, rng: random.Random, ed25519: tuple[Any, Any]
) -> dict[str, Any]:
    deal_reps = max(1, min(reps, 5))
    ops: dict[str, float] = {}
    mins: dict[str, float] = {}

    def timed(
        key: str,
        fn: Callable[[int], object],
        count: int,
        before: Callable[[], object] | None = None,
    ) -> None:
        ops[key], mins[key] = _measure(fn, count, before)

    timed("deal", lambda i: deal(t, n, seed=b"bench-%d" % i, backend=backend), deal_reps)
    group, shares = deal(t, n, seed=b"bench", backend=backend)
    # One message per rep (+1 for warm-up), each signed by all n signers, so no operation is
    # timed twice on identical input.
    messages = [b"thresh_sig bench message %d" % i for i in range(reps + 1)]
    signed = [[sign_share(s, m) for s in shares] for m in messages]
    subsets = [sorted(rng.sample(range(n), t)) for _ in range(reps + 1)]
    combined = [combine(group, [signed[i][j] for j in subsets[i]]) for i in range(reps + 1)]
    aggregates = [aggregate_all(group, signed[i]) for i in range(reps + 1)]
    share_bytes = [bytes(signed[i][i % n]) for i in range(reps + 1)]

    timed("sign_share", lambda i: sign_share(shares[i % n], messages[i]), reps)
    timed("verify_share", lambda i: verify_share(group, signed[i][i % n], messages[i]), reps)
    timed("parse_share", lambda i: SignatureShare.from_bytes(share_bytes[i], backend=backend), reps)
    clear = field._plan_sorted.cache_clear
    timed(
        "combine", lambda i: combine(group, [signed[i][j] for j in subsets[i]]), reps, before=clear
    )
    timed(
        "combine_verify",
        lambda i: combine(group, [signed[i][j] for j in subsets[i]], messages[i]),
        reps,
        before=clear,
    )
    timed("verify", lambda i: verify(group, messages[i], combined[i]), reps)
    timed("aggregate_all", lambda i: aggregate_all(group, signed[i]), reps)
    timed("verify_all", lambda i: verify_all(group, messages[i], aggregates[i]), reps)

    # The naive alternative: t independent Ed25519 signatures, verified one by one.
    signing_keys, verify_keys = ed25519
    ed_sigs = [signing_keys[j].sign(messages[0]).signature for j in range(t)]

    def _verify_ed(_i: int) -> None:
        for j in range(t):
            verify_keys[j].verify(messages[0], ed_sigs[j])

    ed_verify = _measure(_verify_ed, reps)[0]
    sizes = {
        "certificate_bytes": len(bytes(combined[0])),
        "ed25519_bytes": ED25519_SIG_SIZE * t,
        "bls_bytes": SIGNATURE_SIZE * t,
        "certificate_verify_ms": ops["verify"],
        "ed25519_verify_ms": ed_verify,
        "bls_verify_ms_estimate": t * ops["verify_share"],
    }
    return {
        "n": n,
        "t": t,
        "ops_ms": ops,
        "ops_min_ms": mins,
        "sizes": sizes,
        "reps": reps,
        "deal_reps": deal_reps,
    }


def run_benchmark(
    sizes: Sequence[int],
    backend: str,
    reps: int,
    progress: Callable[[str], None] | None = None,
    rng_seed: int = 0,
) -> dict[str, Any]:
    """Run the benchmark and return the JSON-ready report."""
    from nacl.signing import SigningKey

    bk = get_backend(backend)
    max_t = max(sizes)
    signing_keys = [SigningKey(bytes([j % 256, j // 256]) * 16) for j in range(max_t)]
    ed25519 = (signing_keys, [k.verify_key for k in signing_keys])
    rng = random.Random(rng_seed)
    results = []
    for n in sizes:
        for t in _thresholds(n):
            if progress is not None:
                progress(f"n={n} t={t}")
            results.append(_bench_one(n, t, bk.name, reps, rng, ed25519))

    def _version(pkg: str) -> str:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:  # pragma: no cover
            return "?"

    return {
        "backend": bk.name,
        "reps": reps,
        "statistic": "median",
        "unit": "ms",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "versions": {p: _version(p) for p in ("blspy", "py-ecc", "pynacl")},
        "results": results,
    }


def _dkg_run(n: int, t: int, backend: str, rep: int, accused: bool) -> dict[str, Any]:
    """One in-process DKG; each participant's calls timed on their own (ms per participant)."""
    from .dkg import Deal, DkgKeyPair, DkgParticipant, decode_message

    keys = [DkgKeyPair.generate(seed=b"bench %d/%d" % (n, j), backend=backend) for j in range(n)]
    publics = [k.public for k in keys]
    people = [
        DkgParticipant(
            j + 1, t, n, keys[j], publics, backend=backend, seed=b"bench %d/%d/%d" % (n, rep, j)
        )
        for j in range(n)
    ]
    spent = {"deal": 0.0, "verify_deals": 0.0, "complaints": 0.0}
    clock = time.perf_counter

    def broadcast(sender: int, data: bytes | None, phase: str) -> None:
        if data is None:
            return
        for p in people:
            if p.index != sender:
                t0 = clock()
                p.receive(sender, data)
                spent[phase] += clock() - t0

    deals = []
    for p in people:
        t0 = clock()
        deals.append(p.start())
        spent["deal"] += clock() - t0
    if accused:
        # Dealer 1 garbles the ciphertexts of t-1 recipients (public message format only): they
        # complain, it reveals those shares, everyone checks them.
        deal = decode_message(deals[0])
        assert isinstance(deal, Deal)
        garbled = list(deal.encrypted_shares)
        for k in range(t - 1):
            garbled[k] = bytes([garbled[k][0] ^ 1]) + garbled[k][1:]
        deals[0] = bytes(
            Deal(deal.session, deal.t, deal.n, deal.sender, deal.commitments, tuple(garbled))
        )
    for p, data in zip(people, deals, strict=True):
        broadcast(p.index, data, "verify_deals")
    for phase_call in ("end_of_dealing", "end_of_complaints"):
        for p in people:
            t0 = clock()
            out = getattr(p, phase_call)()
            spent["complaints"] += clock() - t0
            broadcast(p.index, out, "complaints")
    results = []
    for p in people:
        t0 = clock()
        results.append(p.end_of_justifications())
        spent["complaints"] += clock() - t0
    assert len({bytes(r.group) for r in results}) == 1 and results[0].qualified == tuple(
        range(1, n + 1)
    )
    per = {k: v * 1e3 / n for k, v in spent.items()}
    per["total"] = sum(per.values())
    per["sent_bytes"] = people[-1].bytes_sent  # an unaccused participant: deal + response
    return per


def run_dkg_benchmark(
    sizes: Sequence[int],
    backend: str,
    reps: int,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """The DKG rows: medians over ``reps`` runs of per-participant costs, t = 2f+1."""
    rows = []
    gc_was_enabled = gc.isenabled()
    for n in sizes:
        t = 2 * ((n - 1) // 3) + 1
        if progress is not None:
            progress(f"DKG n={n} t={t}")
        honest, accused = [], []
        gc.collect()
        gc.disable()
        try:
            for rep in range(reps):
                honest.append(_dkg_run(n, t, backend, rep, accused=False))
                accused.append(_dkg_run(n, t, backend, rep, accused=True))
        finally:
            if gc_was_enabled:
                gc.enable()

        def median(runs: list[dict[str, Any]], key: str) -> float:
            return statistics.median(r[key] for r in runs)

        sent = honest[0]["sent_bytes"]
        rows.append(
            {
                "n": n,
                "t": t,
                "reps": reps,
                "deal_ms": median(honest, "deal"),
                "verify_deals_ms": median(honest, "verify_deals"),
                "complaints_ms": median(honest, "complaints"),
                "complaints_accused_ms": median(accused, "complaints"),
                "total_ms": median(honest, "total"),
                "sent_bytes": sent,
                "wire_bytes": sent * (n - 1),
            }
        )
    return rows


def _fmt(ms: float) -> str:
    # Three significant digits keep every column narrow enough for an 80-column terminal.
    return f"{ms:.3g}" if ms < 1000 else f"{ms:.0f}"


def _render(report: dict[str, Any], console: Console) -> None:
    ops_table = Table(
        title=f"thresh_sig per-operation medians (ms), backend {report['backend']}, "
        f"{report['reps']} reps",
        box=box.SIMPLE_HEAD,
        padding=(0, 0, 0, 1),
    )
    ops_table.add_column("n", justify="right")
    ops_table.add_column("t", justify="right")
    for _key, title in OPS:
        ops_table.add_column(title, justify="right")
    for row in report["results"]:
        ops_table.add_row(str(row["n"]), str(row["t"]), *(_fmt(row["ops_ms"][k]) for k, _ in OPS))
    console.print(ops_table)

    size_table = Table(
        title="Certificate: one threshold signature vs t independent signatures",
        box=box.SIMPLE_HEAD,
    )
    for title in (
        "n",
        "t",
        "threshold\ncert (B)",
        "t×Ed25519\n(B)",
        "t×BLS\n(B)",
        "verify\ncert (ms)",
        "verify t×\nEd25519 (ms)",
        "verify t×\nBLS ≈ (ms)",
    ):
        size_table.add_column(title, justify="right")
    for row in report["results"]:
        s = row["sizes"]
        size_table.add_row(
            str(row["n"]),
            str(row["t"]),
            str(s["certificate_bytes"]),
            str(s["ed25519_bytes"]),
            str(s["bls_bytes"]),
            _fmt(s["certificate_verify_ms"]),
            _fmt(s["ed25519_verify_ms"]),
            _fmt(s["bls_verify_ms_estimate"]),
        )
    console.print(size_table)
    console.print(
        "combine / combine+verify: random t-subset per rep, Lagrange-plan cache cleared "
        "(worst case). deal: at most 5 reps. t×BLS verify is t × verify_share."
    )
    dkg_rows = report.get("dkg") or []
    if not dkg_rows:
        return
    dkg_table = Table(
        title=f"Distributed key generation, ms per participant (median of {dkg_rows[0]['reps']} "
        f"runs), backend {report['backend']}",
        box=box.SIMPLE_HEAD,
    )
    for title in (
        "n",
        "t",
        "deal",
        "verify\ndeals",
        "complaints",
        "complaints\n(t−1)",
        "total",
        "sent (B)",
        "on the\nwire (B)",
    ):
        dkg_table.add_column(title, justify="right")
    for row in dkg_rows:
        dkg_table.add_row(
            str(row["n"]),
            str(row["t"]),
            _fmt(row["deal_ms"]),
            _fmt(row["verify_deals_ms"]),
            _fmt(row["complaints_ms"]),
            _fmt(row["complaints_accused_ms"]),
            _fmt(row["total_ms"]),
            str(row["sent_bytes"]),
            str(row["wire_bytes"]),
        )
    console.print(dkg_table)
    console.print(
        "complaints (t−1): one dealer's shares to t−1 recipients fail, it reveals them. "
        "sent: one participant's broadcasts; on the wire: × (n−1) recipients."
    )


def _parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"not a comma-separated list of integers: {text!r}") from None
    if not sizes or any(n < 1 or n > 1000 for n in sizes):
        raise click.BadParameter("sizes must be integers in 1..1000")
    return sizes


@click.command(name="bench")
@click.option(
    "--backend",
    type=click.Choice(list(BACKENDS)),
    default=None,
    help="Curve backend (default: $THRESH_SIG_BACKEND, else blspy).",
)
@click.option(
    "--sizes",
    default=None,
    help=f"Comma-separated n values (default {DEFAULT_SIZES}; py_ecc: {PYECC_DEFAULT_SIZES}).",
)
@click.option("--reps", type=click.IntRange(1, 10_000), default=None, help="Repetitions per op.")
@click.option(
    "--dkg-sizes",
    default=None,
    help=f"n values of the DKG table (default {DEFAULT_DKG_SIZES}, or the --sizes up to 31; "
    f"py_ecc: {PYECC_DEFAULT_DKG_SIZES}); 'none' skips it.",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Also write the report as JSON to this file.",
)
def cli(
    backend: str | None,
    sizes: str | None,
    reps: int | None,
    dkg_sizes: str | None,
    json_path: str | None,
) -> None:
    """Benchmark thresh_sig: per-operation medians and certificate size against n."""
    console = Console()
    if not console.is_terminal:
        # Piped or captured output: rich would assume 80 columns and elide digits.
        console = Console(width=120)
    bk = get_backend(backend)
    size_list = _parse_sizes(
        sizes or (PYECC_DEFAULT_SIZES if bk.name == "py_ecc" else DEFAULT_SIZES)
    )
    if reps is None:
        reps = DEFAULT_REPS[bk.name]
        if bk.name == "py_ecc":
            console.print(
                f"[yellow]py_ecc is pure Python (~0.1-0.5 s per operation): using {reps} reps"
                + ("" if sizes else f" and sizes {PYECC_DEFAULT_SIZES}")
                + " (override with --reps/--sizes).[/yellow]"
            )
    if dkg_sizes is None:
        if sizes:
            dkg_list = [n for n in size_list if n <= 31]
        else:
            dkg_list = _parse_sizes(
                PYECC_DEFAULT_DKG_SIZES if bk.name == "py_ecc" else DEFAULT_DKG_SIZES
            )
    elif dkg_sizes.strip().lower() == "none":
        dkg_list = []
    else:
        dkg_list = _parse_sizes(dkg_sizes)
    with console.status("benchmarking…") as status:
        report = run_benchmark(size_list, bk.name, reps, progress=lambda s: status.update(s))
        report["dkg"] = run_dkg_benchmark(
            dkg_list, bk.name, min(reps, DKG_REPS_MAX), progress=lambda s: status.update(s)
        )
    _render(report, console)
    if json_path:
        with open(json_path, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=2)
            fh.write("\n")
        console.print(f"wrote {json_path}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bench command with ``argv`` (without the program name); return the exit code."""
    try:
        cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="thresh_sig bench",
            standalone_mode=False,
        )
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        return 1
    return 0
