"""The simulation-only crypto suite cannot be reached from a deployment.

`SimCrypto` (keyed hashes, `pbft simulate --crypto sim`) makes seeds cheap; issue #5 allows it on
condition that nothing but the simulator can produce it: not ``pbft run``, not ``pbft node``,
not a key file. These tests hold the code to that: only the simulator names the suite, the
deployment commands offer no choice of suite and do not load the simulator, and every key a
key file yields is real (Ed25519 + BLS).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import main
from pbft_core.clusterfile import ClusterFile, keygen
from pbft_core.config import ClusterConfig
from pbft_core.crypto import RealCrypto

ROOT = Path(__file__).resolve().parent.parent
# Where the simulation suite may be named: its definition, and the simulator's `make_crypto`.
SIM_CRYPTO_HOMES = {"pbft_core/crypto.py", "pbft_core/runtime/simulator.py"}


def names_sim_crypto(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Name | ast.ClassDef) and getattr(node, "id", getattr(node, "name", None)) == "SimCrypto":
            return True
        if isinstance(node, ast.alias) and node.name == "SimCrypto":
            return True
        if isinstance(node, ast.Attribute) and node.attr == "SimCrypto":
            return True
    return False


def test_only_the_simulator_names_the_simulation_crypto_suite():
    users = {
        path.relative_to(ROOT).as_posix()
        for package in ("pbft_core", "cli", "thresh_sig")
        for path in sorted((ROOT / package).rglob("*.py"))
        if names_sim_crypto(ast.parse(path.read_text(), str(path)))
    }
    assert users == SIM_CRYPTO_HOMES


@pytest.mark.parametrize("command", ["run", "node", "keygen", "client"])
def test_deployment_commands_offer_no_choice_of_crypto_suite(command: str):
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "--crypto" not in result.output


def test_the_deployment_paths_do_not_load_the_simulator():
    # `pbft run` plays sets on the pipes shell, `pbft node` / `pbft client` on TCP.
    script = (
        "import sys\n"
        "import cli.main, cli.runner, cli.tcp_commands\n"
        "import pbft_core.runtime.pipes, pbft_core.runtime.tcp, pbft_core.runtime.tcp_run\n"
        "import pbft_core.keys, pbft_core.clusterfile\n"
        "print(sorted(m for m in sys.modules if m.startswith(('pbft_core.sim', 'pbft_core.runtime.simulator', 'cli.simulate'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_every_key_a_key_file_yields_is_real_cryptography(tmp_path: Path):
    config = ClusterConfig(f=1)
    cluster = keygen(tmp_path, config, clients=["A"], seed=b"sim-isolation")
    loaded = ClusterFile.load(cluster.path)
    for name in [*(f"n{r}" for r in config.replica_ids), "A"]:
        assert isinstance(loaded.load_secrets(name).crypto(), RealCrypto), name
