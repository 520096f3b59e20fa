"""Shared test vocabulary: transactions and the agreement checks every scenario ends with."""

from __future__ import annotations

from dataclasses import dataclass

from pbft_core.runtime.simulator import Simulation


@dataclass(frozen=True)
class Txn:
    client: str
    kind: str
    args: tuple


def transfer(source: str, target: str, amount: int) -> Txn:
    return Txn(source, "transfer", (source, target, amount))


def balance(account: str) -> Txn:
    return Txn(account, "balance", (account,))


def executed_log(sim: Simulation, replica: int) -> dict[int, tuple]:
    return {seq: tuple(r.key for r in e.batch) for seq, e in sim.nodes[replica].executed.items()}


def assert_honest_live_agree(sim: Simulation) -> None:
    """All honest live replicas: same balances, same executed batch at every sequence number."""
    nodes = [r for r, n in sim.nodes.items() if n.honest and n.live]
    reference = sim.replica(nodes[0])
    for r in nodes[1:]:
        replica = sim.replica(r)
        assert replica.bank.balances == reference.bank.balances, f"n{r} balances differ from n{nodes[0]}"
        assert replica.last_executed == reference.last_executed, f"n{r} executed a different prefix"
    assert_no_conflicting_execution(sim)


def assert_no_conflicting_execution(sim: Simulation) -> None:
    seen: dict[int, tuple] = {}
    for r, node in sim.nodes.items():
        if not node.honest:
            continue
        for seq, batch in executed_log(sim, r).items():
            assert seen.setdefault(seq, batch) == batch, f"seq {seq}: n{r} executed a different batch"
    for r, node in sim.nodes.items():
        if node.honest:
            keys = [k for batch in executed_log(sim, r).values() for k in batch]
            executed = [
                (k, res) for e in node.executed.values() for k, res in zip((q.key for q in e.batch), e.results, strict=True)
                if res is not None
            ]
            assert len({k for k, _ in executed}) == len(executed), f"n{r} executed a request twice"
            del keys
