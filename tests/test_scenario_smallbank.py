"""data/smallbank.csv: SmallBank operations played as a scenario file, end to end.

Given the shipped file (set 1: all six operations with bounces and a self-amalgamate; set 2: an
equivocating leader; set 3: numbered customers, several operations per cell, and legacy
transfers mixed in), when it is played, then a fault-free set's outcomes and final balances are
its serial replay (pinned below), and a faulty set ends with honest replicas agreeing, every
operation decided, and money conserved up to the external operations that succeeded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from rich.console import Console

from cli import render
from cli.main import main
from pbft_core.bank import FAILED, Bank
from pbft_core.config import ACCOUNTS, ClusterConfig
from pbft_core.dispatch import Outcome
from pbft_core.messages import Result
from pbft_core.runtime.simulator import Simulation
from pbft_core.scenario import ScenarioSet, parse_scenario_file
from pbft_core.smallbank_workload import WorkloadGenerator, WorkloadSpec, write_scenario_csv
from tests.support import assert_honest_live_agree

DATA = Path(__file__).resolve().parent.parent / "data"
SMALLBANK = DATA / "smallbank.csv"
SETS = {s.number: s for s in parse_scenario_file(SMALLBANK)}
FAULT_FREE = (1, 3)
# Operations that move money in or out of the bank, and the sign of their amount.
EXTERNAL = {"deposit_checking": 1, "transact_savings": 1, "write_check": -1}

# The serial replay of each fault-free set, pinned: a result per operation, and the savings +
# checking of the customers the set names.
PINNED_RESULTS: dict[int, list[Result]] = {
    1: ["ok", 2050, "ok", "ok", FAILED, "ok", FAILED, "ok", FAILED, 4000, 0, 2010, 1996, 1984],
    3: ["ok", 2003, "ok", "ok", 2093, "ok", FAILED, "ok", 960, FAILED, 2000],
}
PINNED_TOTALS: dict[int, dict[int, int]] = {
    1: {1: 2050, 2: 2010, 4: 1996, 5: 1990, 6: 4000, 8: 1984, 10: 0},
    3: {1: 1997, 2: 2003, 3: 1000, 4: 2000, 12: 960, 25: 2093},
}


def serial_replay(s: ScenarioSet) -> tuple[list[Result], dict[str, int]]:
    bank = Bank.initial(s.state)
    return [bank.apply(t.kind, t.args) for t in s.transactions], bank.balances


def customer_total(balances: dict[str, int], customer: int) -> int:
    return balances[f"S{customer}"] + balances[f"C{customer}"]


def conserved_total(s: ScenarioSet, results: list[Result | None]) -> int:
    """The money the bank must hold after `results`: the initial money plus what the external
    operations that succeeded added or took."""
    total = Bank.initial(s.state).total
    for t, result in zip(s.transactions, results, strict=True):
        if t.kind in EXTERNAL and result == "ok":
            total += EXTERNAL[t.kind] * int(t.args[1])
    return total


def clients_of(s: ScenarioSet) -> list[str]:
    return sorted(set(ACCOUNTS) | {t.client for t in s.transactions})


# ---- the file and its serial replay ------------------------------------------------------------


def test_the_file_has_smallbank_sets_one_with_a_byzantine_leader() -> None:
    assert sorted(SETS) == [1, 2, 3]
    assert {s.state for s in SETS.values()} == {"smallbank:26"}  # customers up to 25
    assert SETS[2].byzantine == frozenset({1}) and [a.kind for a in SETS[2].attacks] == [
        "equivocation"
    ]
    assert not SETS[1].byzantine and not SETS[3].byzantine


@pytest.mark.parametrize("number", FAULT_FREE)
def test_a_fault_free_set_replays_serially_to_the_pinned_results(number: int) -> None:
    results, balances = serial_replay(SETS[number])
    assert results == PINNED_RESULTS[number]
    assert {c: customer_total(balances, c) for c in PINNED_TOTALS[number]} == PINNED_TOTALS[number]


# ---- on the simulator --------------------------------------------------------------------------


@pytest.mark.parametrize("number", FAULT_FREE)
def test_on_the_simulator_a_fault_free_set_equals_its_serial_replay(number: int) -> None:
    s = SETS[number]
    sim = Simulation(s.cluster_config(ClusterConfig()), seed=number, clients=clients_of(s))
    played = sim.run_transactions(list(s.transactions))
    expected, balances = serial_replay(s)
    assert [p.result for p in played] == expected
    assert [p.outcome for p in played] == [
        Outcome.FAILED if r == FAILED else Outcome.COMMITTED for r in expected
    ]
    for r in sim.config.replica_ids:
        assert sim.replica(r).bank.balances == balances


def test_on_the_simulator_the_equivocating_leader_set_agrees_and_conserves_money() -> None:
    s = SETS[2]
    sim = Simulation(
        s.cluster_config(ClusterConfig()),
        seed=2,
        clients=clients_of(s),
        byzantine={r: s.attacks for r in s.byzantine},
    )
    played = sim.run_transactions(list(s.transactions))
    assert Outcome.UNAVAILABLE not in [p.outcome for p in played]
    assert_honest_live_agree(sim)
    balances = sim.replica(2).bank.balances
    assert sum(balances.values()) == conserved_total(s, [p.result for p in played])
    assert min(balances.values()) >= 0


# ---- through `pbft run` on replica processes ---------------------------------------------------


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[int, dict[str, Any]]:
    root = tmp_path_factory.mktemp("smallbank-run")
    args = ["run", str(SMALLBANK), "--non-interactive", "--seed", "5"]
    args += ["--json", str(root / "out.json"), "--data-dir", str(root / "data")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return {s["set"]: s for s in json.loads((root / "out.json").read_text())["sets"]}


def honest_live(s: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in s["replicas"].items() if r["honest"] and r["live"]}


@pytest.mark.process
@pytest.mark.timeout(180)
@pytest.mark.parametrize("number", FAULT_FREE)
def test_pbft_run_plays_a_fault_free_set_as_its_serial_replay(report, number: int) -> None:
    expected, balances = serial_replay(SETS[number])
    s = report[number]
    assert [t["result"] for t in s["transactions"]] == expected
    for replica in s["replicas"].values():
        assert replica["balances"] == dict(sorted(balances.items()))


@pytest.mark.process
@pytest.mark.timeout(180)
def test_pbft_run_with_an_equivocating_leader_agrees_decides_and_conserves(report) -> None:
    s = report[2]
    assert "unavailable" not in [t["outcome"] for t in s["transactions"]]
    assert s["agreement"]["ok"] and s["new_views"]
    replicas = honest_live(s)
    assert len({json.dumps(r["balances"], sort_keys=True) for r in replicas.values()}) == 1
    balances = next(iter(replicas.values()))["balances"]
    assert sum(balances.values()) == conserved_total(
        SETS[2], [t["result"] for t in s["transactions"]]
    )
    assert min(balances.values()) >= 0


@pytest.mark.process
@pytest.mark.timeout(180)
def test_the_report_and_the_set_table_show_operations_readably(report) -> None:
    first = report[1]["transactions"][2]
    assert {k: first[k] for k in ("kind", "args", "outcome", "result")} == {
        "kind": "send_payment",
        "args": [5, 2, 10],
        "outcome": "committed",
        "result": "ok",
    }
    console = Console(width=200, record=True)
    console.print(render.transactions_table(report[1]))
    console.print(render.replicas_table(report[1]))
    text = console.export_text()
    assert "SendPayment(E, B, 10)" in text and "Amalgamate(J, J)" in text
    assert "money" in text


# ---- pbft smallbank generate --format csv ------------------------------------------------------


def test_generated_scenario_files_parse_back_to_the_generated_operations(tmp_path: Path) -> None:
    # Given three sets of 15 operations drawn on 30 customers
    generator = WorkloadGenerator(WorkloadSpec(accounts=30, hot_accounts=0, seed=4))
    sets = [generator.take(15) for _ in range(3)]
    path = tmp_path / "sb.csv"
    write_scenario_csv(path, sets, byzantine="[n1]", attack="time; dark(n6)")
    # When the file is parsed
    parsed = parse_scenario_file(path)
    # Then each set holds the same operations, customers one-based
    assert [s.number for s in parsed] == [1, 2, 3]
    for played, drawn in zip(parsed, sets, strict=True):
        assert [t.kind for t in played.transactions] == [t.op for t in drawn]
        assert played.byzantine == frozenset({1})
        assert [str(a) for a in played.attacks] == ["time", "dark(n6)"]


def test_pbft_smallbank_generate_writes_a_csv_scenario_with_the_columns_asked(
    tmp_path: Path,
) -> None:
    out = tmp_path / "sb.csv"
    args = ["smallbank", "generate", "--format", "csv", "--sets", "2", "--count", "5"]
    args += [
        "--live",
        "[n1, n2, n3, n4, n5]",
        "--byzantine",
        "[n2]",
        "--attack",
        "crash",
        "-o",
        str(out),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "wrote 2 sets of 5 transactions" in result.output
    sets = parse_scenario_file(out)
    assert [len(s.transactions) for s in sets] == [5, 5]
    assert sets[0].live == frozenset(range(1, 6)) and sets[1].byzantine == frozenset({2})
    # ten customers by default, named A–J
    assert all(t.client in ACCOUNTS for s in sets for t in s.transactions)


@pytest.mark.parametrize(
    ("option", "value", "match"),
    [
        ("--attack", "boom", "unknown attack 'boom'"),
        ("--live", "n1", "expected a list like"),
        ("--byzantine", "[n9]", "does not exist"),
    ],
)
def test_pbft_smallbank_generate_refuses_columns_run_would_refuse(
    tmp_path: Path, option: str, value: str, match: str
) -> None:
    out = tmp_path / "sb.csv"
    args = ["smallbank", "generate", "--format", "csv", "--byzantine", "[n1]", "--attack", "sign"]
    result = CliRunner().invoke(main, [*args, option, value, "-o", str(out)])
    assert result.exit_code == 2 and match in result.output
    assert not out.exists()
