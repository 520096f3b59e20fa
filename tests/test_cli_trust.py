"""Issue 14, a CLI users can trust: what a newcomer hits around the main path. Ctrl-C and a
closed pipe end commands the documented way, unusable paths are one error line, the prompt
accepts exactly what `pbft inspect` accepts, every view has JSON, and a node's data directory
can be inspected."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from cli.main import main
from cli.runner import EventPrinter, RunOptions, inspect_hint
from cli.session import run_command
from cli.views import Target
from pbft_core.storage import RunIndex, list_runs

REPO = Path(__file__).resolve().parent.parent
PBFT = [sys.executable, "-m", "cli.main"]
TINY = """\
Set Number,Transactions,Live,Byzantine,Attack
4,"(A, B, 3)","[n1, n2, n3, n4, n5, n6, n7]",[n1],"[time; dark(n6)]"
,(B),,,
"""


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def split(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def played(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """One tiny run whose JSON report went to stdout: (data dir, stdout, stderr)."""
    root = tmp_path_factory.mktemp("trust")
    (root / "tiny.csv").write_text(TINY)
    code, out, err = split(
        "run", str(root / "tiny.csv"), "--non-interactive", "--data-dir", str(root / "data"), "--json", "-"
    )
    assert code == 0, err
    return root / "data", out, err


def target_of(data_dir: Path) -> Target:
    run = list_runs(data_dir)[0]
    return Target(run / "set-4", "run", run.name, 4, None)


# ---- 1. Ctrl-C ------------------------------------------------------------------------------


def _interrupt_after(command: list[str], started: str, cwd: Path, settle_s: float = 0.5) -> tuple[int, float, str]:
    """Start `command` in its own process group, wait until its output shows `started` (or
    15 s), press Ctrl-C for the whole group as a terminal would; (exit code, seconds to stop,
    output)."""
    process = subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"},
    )  # fmt: skip
    deadline = time.monotonic() + 15
    seen = b""
    assert process.stdout is not None
    os.set_blocking(process.stdout.fileno(), False)
    while started.encode() not in seen and time.monotonic() < deadline:
        seen += process.stdout.read() or b""
        time.sleep(0.1)
    time.sleep(settle_s)
    pressed = time.monotonic()
    os.killpg(process.pid, signal.SIGINT)
    process.wait(timeout=30)
    stopped = time.monotonic() - pressed
    os.set_blocking(process.stdout.fileno(), True)
    return process.returncode, stopped, (seen + process.stdout.read()).decode()


def test_ctrl_c_stops_pbft_simulate_within_a_second_and_exits_130(tmp_path: Path) -> None:
    code, stopped, output = _interrupt_after(
        [*PBFT, "simulate", "--seeds", "5000", "--crypto", "sim", "--jobs", "2", "--trace-dir", str(tmp_path)],
        "simulate",
        tmp_path,
    )
    assert code == 130, output
    assert stopped < 2.0
    assert "Aborted!" not in output and "interrupted" in output


@pytest.mark.process
def test_ctrl_c_stops_bench_smallbank_and_exits_130(tmp_path: Path) -> None:
    code, _stopped, output = _interrupt_after(
        [*PBFT, "bench", "smallbank", "--duration", "60", "--warmup", "0", "--clients", "4", "--data-dir", str(tmp_path)],
        "",
        tmp_path,
        settle_s=8.0,  # its cluster is up and measuring (it prints nothing off a terminal)
    )
    assert code == 130, output
    assert "Aborted!" not in output and "Traceback" not in output


# ---- 2. unusable paths: one error line, exit 2 --------------------------------------------------


def test_unusable_paths_are_one_error_line_and_exit_2(tmp_path: Path) -> None:
    scenario = tmp_path / "tiny.csv"
    scenario.write_text(TINY)
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    cases = [
        ("run", str(scenario), "--data-dir", str(a_file / "data")),
        ("run", str(tmp_path)),  # a directory as the scenario file
        ("keygen", "--out", str(a_file / "cluster"), "--seed", "x"),
        ("bench", "smallbank", "--data-dir", str(a_file / "data")),
        ("smallbank", "generate", "-o", str(tmp_path)),
    ]
    for args in cases:
        code, output = invoke(*args)
        assert code == 2, (args, output)
        assert output.startswith("error: ") and output.count("\n") == 1, (args, output)
        assert "Traceback" not in output
    assert not (tmp_path / "runs").exists()


def test_a_node_whose_data_dir_cannot_be_created_says_so(tmp_path: Path) -> None:
    code, output = invoke("keygen", "--out", str(tmp_path / "cluster"), "--seed", "trust")
    assert code == 0, output
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    code, output = invoke(
        "node", "--id", "1", "--cluster", str(tmp_path / "cluster" / "cluster.toml"), "--data-dir", str(a_file / "node")
    )
    assert code == 2 and output.startswith("error: ") and output.count("\n") == 1, output


# ---- 3-5. the prompt accepts exactly what `pbft inspect` accepts ----------------------------


@pytest.mark.process
def test_the_prompt_parses_with_the_inspect_commands_and_names_what_it_refuses(
    played: tuple[Path, str, str],
) -> None:
    target = target_of(played[0])
    refused = {
        ("log", "3", "--tail"): "requires an argument",
        ("log", "3", "--tail", "-5"): "-5 is not in the range",
        ("log", "3", "--bogus"): "No such option '--bogus'",
        ("db", "3", "4", "5"): "unexpected extra argument",
        ("status",): "Missing argument 'SEQ'",
        ("log", "3", "--type", "Nonsense"): "no message type 'Nonsense'; types: CatchUp",
    }
    for words, why in refused.items():
        console = Console(record=True, width=200)
        assert run_command(console, target, list(words)) == 2, words
        assert why in console.export_text(), (words, console.export_text())
    console = Console(record=True, width=200)
    assert run_command(console, target, ["log", "3", "--type", "preprepare", "--tail", "1"]) == 0
    text = console.export_text()
    assert "PrePrepare" in text and "Reply" not in text


# ---- 6. `-` is stdout ----------------------------------------------------------------------


@pytest.mark.process
def test_json_dash_writes_the_report_to_stdout_and_the_tables_to_stderr(
    played: tuple[Path, str, str], tmp_path: Path
) -> None:
    data_dir, out, err = played
    report = json.loads(out)
    assert [s["set"] for s in report["sets"]] == [4]
    assert "Set 4 — transactions" in err
    assert not Path("-").exists()
    code, out, _ = split("inspect", "status", "1", "--data-dir", str(data_dir), "--json", "-")
    assert code == 0 and json.loads(out)["view"] == "status"


def test_smallbank_generate_dash_writes_the_workload_to_stdout(tmp_path: Path) -> None:
    code, out, err = split("smallbank", "generate", "--count", "3", "-o", "-")
    assert code == 0 and "wrote 3 transactions to stdout" in err
    assert len(out.splitlines()) == 4  # the header and three transactions


# ---- 7. a closed pipe -------------------------------------------------------------------------


@pytest.mark.process
def test_a_closed_output_stops_the_run_quietly_and_the_index_says_so(tmp_path: Path) -> None:
    scenario = tmp_path / "two.csv"
    scenario.write_text(TINY + TINY.splitlines()[1].replace("4,", "5,", 1) + "\n")
    command = " ".join([*PBFT, "run", str(scenario), "--non-interactive", "--data-dir", str(tmp_path / "d")])
    done = subprocess.run(
        f"{command} | head -2; echo \"rc=${{PIPESTATUS[0]}}\"",
        shell=True, executable="/bin/bash", capture_output=True, text=True, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120,
    )  # fmt: skip
    assert done.stderr == "", done.stderr
    assert done.stdout.splitlines()[-1] == "rc=141"
    with RunIndex(list_runs(tmp_path / "d")[0], read_only=True) as index:
        info = index.info()
    assert info["exit_code"] == 141 and info["ended"] == "output closed"
    _, output = invoke("runs", "--data-dir", str(tmp_path / "d"))
    assert "141 (output closed)" in output


# ---- 8. an ambiguous --run -------------------------------------------------------------------


def test_an_ambiguous_run_prefix_lists_the_matches(tmp_path: Path) -> None:
    for run_id in ("20261124-000001-aaaa", "20261124-000002-bbbb"):
        RunIndex(tmp_path / "runs" / run_id).close()
    code, output = invoke("inspect", "view", "--run", "2026", "--data-dir", str(tmp_path))
    assert code == 2
    assert "'2026' is ambiguous: 2 runs start with it" in output
    assert "20261124-000001-aaaa" in output and "20261124-000002-bbbb" in output
    code, output = invoke("inspect", "view", "--run", "20261124-000002", "--data-dir", str(tmp_path))
    assert code == 2 and "has not started a set yet" in output


# ---- 9. client transfer is checked before anything is sent ------------------------------------


def test_client_transfer_refuses_what_the_bank_would_fail_without_asking_the_cluster(tmp_path: Path) -> None:
    code, output = invoke("keygen", "--out", str(tmp_path / "c"), "--seed", "trust")
    assert code == 0, output
    cluster = str(tmp_path / "c" / "cluster.toml")
    refused = {
        ("A", "Z", "1"): "no account 'Z' (target)",
        ("A", "A", "1"): "two different accounts",
        ("A", "B", "0"): "amount must be positive, got 0",
        ("A", "B", "-1"): "amount must be positive, got -1",
        ("A", "B", "x"): "amount 'x' is not a whole number",
    }
    for args, why in refused.items():
        code, output = invoke("client", "--cluster", cluster, "--timeout", "0.1", "transfer", *args)
        assert code == 2 and output.startswith("error: ") and output.count("\n") == 1, (args, output)
        assert why in output, (args, output)


# ---- rough edges ------------------------------------------------------------------------------


@pytest.mark.process
def test_the_set_header_and_replica_table_name_the_attack(played: tuple[Path, str, str]) -> None:
    err = played[2]
    assert "byzantine n1 (time; dark(n6))" in err
    assert "byzantine: time; dark(n6)" in err


def test_verbose_events_print_in_time_order() -> None:
    console = Console(record=True, width=200)
    printer = EventPrinter(console, 1)
    # Seven processes report their own events: they arrive interleaved, a little late.
    for replica, t_ms in ((3, 20.0), (1, 10.0), (2, 15.0), (5, 12.0), (4, 400.0), (6, 390.0)):
        printer(replica, t_ms, "checkpoint", {"seq": replica})
    printer.flush()
    times = [float(line.split()[2]) for line in console.export_text().splitlines()]
    assert times == sorted(times) and len(times) == 6


def test_the_end_of_run_hint_keeps_a_non_default_data_dir() -> None:
    options = RunOptions(
        scenario=Path("x.csv"), data_dir=Path("/tmp/my data"), json_path=None, interactive=False,
        fast_path=True, checkpoint_interval=10, batch_size=64, stall_timeout_s=3, seed=None, verbose=False,
    )  # fmt: skip
    assert inspect_hint(options, "r1") == "pbft inspect log N --run r1 --data-dir '/tmp/my data'"


@pytest.mark.process
def test_every_inspect_view_and_runs_have_json(played: tuple[Path, str, str]) -> None:
    data_dir = str(played[0])
    for view, args in (
        ("log", ["log", "2"]),
        ("db", ["db"]),
        ("db", ["db", "3"]),
        ("status", ["status", "1"]),
        ("view", ["view"]),
        ("perf", ["perf"]),
        ("perf", ["perf", "3"]),
    ):
        code, out, err = split("inspect", *args, "--data-dir", data_dir, "--json", "-")
        assert code == 0, err
        document = json.loads(out)
        assert document["version"] == 1 and document["view"] == view
        assert document["source"]["set"] == 4
    code, out, _ = split("runs", "--data-dir", data_dir, "--json", "-")
    (run,) = json.loads(out)["runs"]
    assert run["exit_code"] == 0 and run["ended"] == "finished" and run["sets"][0]["number"] == 4


@pytest.mark.process
def test_perf_shows_no_rate_over_a_window_too_short_for_one(played: tuple[Path, str, str]) -> None:
    _, out, _ = split("inspect", "perf", "--data-dir", str(played[0]), "--json", "-")
    window = json.loads(out)["set"]["window_s"]
    _, output = invoke("inspect", "perf", "--data-dir", str(played[0]))
    if window < 1.0:
        assert "too short for a rate" in output and "tx/s" not in output
    assert "log in" in output and "rows of the replica's message log" in output


@pytest.mark.process
def test_inspect_reads_a_tcp_nodes_data_directory(played: tuple[Path, str, str], tmp_path: Path) -> None:
    # A node's --data-dir holds nK.sqlite (same schema) beside its write-ahead log.
    node_dir = tmp_path / "node"
    node_dir.mkdir()
    for r in (2, 3):
        shutil.copy(target_of(played[0]).dir / f"n{r}.sqlite", node_dir / f"n{r}.sqlite")
    (node_dir / "n3.durable.sqlite").write_bytes(b"")
    for args in (["log", "3"], ["db"], ["db", "3"], ["status", "1"], ["view"], ["perf", "3"]):
        code, output = invoke("inspect", *args, "--data-dir", str(node_dir))
        assert code == 0, (args, output)
        assert output.startswith(f"node data in {node_dir}")
    code, output = invoke("inspect", "log", "5", "--data-dir", str(node_dir))
    assert code == 2 and "no database for n5" in output and "replicas: n2, n3" in output


def test_version_names_the_protocol_python_blspy_and_pynacl() -> None:
    code, output = invoke("--version")
    assert code == 0
    for name in ("pbft ", "protocol pbft/v1", "Python 3.", "blspy 2.", "PyNaCl 1."):
        assert name in output


# ---- the flow diagram --------------------------------------------------------------------------


@pytest.mark.process
def test_flow_draws_a_lane_per_replica_the_new_view_and_folds_status_gossip(
    played: tuple[Path, str, str], tmp_path: Path
) -> None:
    import xml.etree.ElementTree as ElementTree

    out = tmp_path / "flow.svg"
    code, output = invoke("inspect", "flow", "--data-dir", str(played[0]), "-o", str(out))
    assert code == 0, output
    ElementTree.parse(out)  # well-formed SVG
    svg = out.read_text()
    for text in ("n1", "n7", "clients", "byzantine: time; dark(n6)", "PrePrepare", "PP 1", "E 1"):
        assert text in svg, text
    _, out, _ = split("inspect", "view", "--data-dir", str(played[0]), "--json", "-")
    for nv in json.loads(out)["new_views"]:  # a NEW-VIEW, if the slow leader was replaced
        assert f"NEW-VIEW v{nv['view']} ({nv['leader']})" in svg
    assert "Status gossip messages folded" in svg and "dark links: n1 → n6" in svg
    # The prompt offers it too, through the same command.
    console = Console(record=True, width=200)
    assert run_command(console, target_of(played[0]), ["flow", "-o", str(tmp_path / "f.png"), "--to", "50"]) == 0
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
    code, output = invoke("inspect", "flow", "--data-dir", str(played[0]), "-o", str(tmp_path / "f.txt"))
    assert code == 2 and "must end in .svg, .png or .pdf" in output
