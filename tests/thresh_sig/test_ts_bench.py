"""The benchmark command runs, prints its tables and writes JSON (tiny sizes only)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from thresh_sig import bench


def test_bench_main_writes_json(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "bench.json"
    assert bench.main(["--sizes", "4", "--reps", "2", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "combine" in printed and "t×Ed25519" in printed
    report = json.loads(out.read_text())
    assert report["backend"] == "blspy" and report["statistic"] == "median"
    rows = {(r["n"], r["t"]): r for r in report["results"]}
    assert set(rows) == {(4, 3), (4, 4)}
    for (_n, t), row in rows.items():
        assert set(row["ops_ms"]) == {k for k, _ in bench.OPS}
        assert all(v > 0 for v in row["ops_ms"].values())
        assert row["sizes"]["certificate_bytes"] == 96
        assert row["sizes"]["ed25519_bytes"] == 64 * t
        assert row["sizes"]["bls_bytes"] == 96 * t


def test_bench_bad_arguments() -> None:
    assert bench.main(["--sizes", "four"]) != 0
    assert bench.main(["--backend", "nope"]) != 0


def test_bench_is_a_mountable_click_command() -> None:
    result = CliRunner().invoke(bench.cli, ["--help"])
    assert result.exit_code == 0 and "--sizes" in result.output and "--json" in result.output


def test_python_dash_m_entry_point() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "thresh_sig", "bench", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "--backend" in result.stdout
