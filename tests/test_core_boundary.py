"""The protocol core is sans-I/O: no module of it may reach a clock, a socket, a file, a thread,
a process or randomness, directly or through another pbft_core module it imports.

The shells (pbft_core/runtime), storage, keys and the simulator are I/O by design; everything
listed in `PROTOCOL` is what the simulator, the pipes runtime and the TCP runtime share.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pbft_core

PACKAGE = Path(pbft_core.__file__).parent
PROTOCOL = (
    "attacks", "bank", "catchup", "certificates", "checkpoint", "client", "collector", "config", "crypto",
    "deadlines", "dispatch", "fastpath", "faults", "intake", "log", "merkle", "messages", "multisig", "ready",
    "recovery", "replica", "smallbank", "viewchange",
)  # fmt: skip
FORBIDDEN = {
    "time", "os", "socket", "sqlite3", "random", "asyncio", "threading", "selectors",
    "multiprocessing", "subprocess", "pathlib", "io", "shutil", "tempfile",
}  # fmt: skip


def imports_of(module: str) -> tuple[set[str], set[str]]:
    """(top-level outside modules, pbft_core modules) that `module` imports, even lazily."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    outside: set[str] = set()
    inside: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            outside.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                outside.add((node.module or "").split(".")[0])
            elif node.level == 1 and node.module is not None:
                inside.add(node.module.split(".")[0])
            elif node.level == 1:
                inside.update(alias.name for alias in node.names)
    return outside, inside


@pytest.mark.parametrize("module", PROTOCOL)
def test_a_protocol_module_imports_no_io_even_through_its_neighbours(module: str):
    seen: set[str] = set()
    todo = [module]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        outside, inside = imports_of(current)
        reached = outside & FORBIDDEN
        assert not reached, f"{module} reaches {sorted(reached)} through pbft_core.{current}"
        escaped = inside - set(PROTOCOL)
        assert not escaped, f"{module} imports non-protocol pbft_core.{sorted(escaped)} via {current}"
        todo.extend(inside)


def test_every_module_of_the_package_is_either_protocol_or_known_io():
    """A new module must be placed on one side of the boundary on purpose."""
    io_side = {
        "__init__", "clusterfile", "durable", "floor", "invariants", "keys", "linearizability",
        "report", "scenario", "smallbank_workload", "storage",
    }  # fmt: skip
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    assert modules - io_side - set(PROTOCOL) == set()
