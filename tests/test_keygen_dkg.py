"""`pbft keygen --dkg`: keys with no dealer, in the same cluster layout, that `pbft node` takes
like dealt ones, and a node that refuses a key share the group's commitments disown.

In order: the layout and the keys of a DKG cluster (f = 1, fast); the refusals (a seed, a
tampered share, another replica's share); then seven `pbft node` processes on a DKG cluster
(f = 2) serving `pbft client` transfers end to end.
"""

from __future__ import annotations

import asyncio
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import thresh_sig
from cli.main import main
from pbft_core.clusterfile import ClusterFile, ClusterFileError
from pbft_core.keys import NodeSecrets
from pbft_core.runtime.tcp import ClientPool
from pbft_core.runtime.tcp_local import LocalCluster, free_ports


def keygen_dkg(out: Path, *args: str) -> ClusterFile:
    result = CliRunner().invoke(main, ["keygen", "--dkg", "--out", str(out), *args])
    assert result.exit_code == 0, result.output
    assert "distributed key generation" in result.output
    return ClusterFile.load(out / "cluster.toml")


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> ClusterFile:
    return keygen_dkg(tmp_path_factory.mktemp("dkg") / "cluster", "--f", "1")


# ---- the layout and the keys ------------------------------------------------------------------


def test_a_dkg_cluster_has_the_dealt_layout_and_private_key_directories(small: ClusterFile) -> None:
    root = small.directory
    assert sorted(p.name for p in root.iterdir()) == ["clients", "cluster.toml", "n1", "n2", "n3", "n4"]
    for name in ("n1", "n2", "n3", "n4", "A", "J"):
        path = small.secrets_path(name)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        small.load_secrets(name)  # the same checks a node and a client make


def test_the_two_group_keys_are_a_3_of_4_and_a_4_of_4_that_every_share_matches(small: ClusterFile) -> None:
    group = thresh_sig.GroupKey.from_bytes(small.public.group)
    fast = thresh_sig.GroupKey.from_bytes(small.public.fast_group)
    assert (group.t, group.n, fast.t, fast.n) == (3, 4, 4, 4)
    message = b"certify this"
    signed = []
    fast_signed = []
    for r in range(1, 5):
        secrets = small.load_secrets(f"n{r}")
        share = thresh_sig.KeyShare.from_bytes(secrets.key_share or b"")
        fast_share = thresh_sig.KeyShare.from_bytes(secrets.fast_share or b"")
        assert group.verify_key_share(share) and fast.verify_key_share(fast_share)
        signed.append(thresh_sig.sign_share(share, message))
        fast_signed.append(thresh_sig.sign_share(fast_share, message))
    assert thresh_sig.verify(group, message, thresh_sig.combine(group, signed[1:], message))
    assert thresh_sig.verify_all(fast, message, thresh_sig.aggregate_all(fast, fast_signed))


def test_two_runs_make_unrelated_keys(small: ClusterFile, tmp_path: Path) -> None:
    again = keygen_dkg(tmp_path / "again", "--f", "1")
    assert again.public.group != small.public.group
    assert again.public.replicas[1] != small.public.replicas[1]


# ---- refusals ---------------------------------------------------------------------------------


def test_keygen_dkg_refuses_a_seed(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["keygen", "--dkg", "--seed", "x", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--seed" in result.output
    assert not (tmp_path / "cluster.toml").exists()


def _tamper(cluster: ClusterFile, replica: int, share: bytes) -> Path:
    """Write `share` into a copy of replica's secrets file; returns the copy's path."""
    secrets = cluster.load_secrets(f"n{replica}")
    path = cluster.directory / f"tampered-n{replica}.key"
    NodeSecrets(secrets.name, secrets.signing_seed, share, secrets.fast_share, secrets.public).save(path)
    return path


def _node(cluster: ClusterFile, replica: int, key: Path, tmp_path: Path) -> tuple[int, str]:
    result = CliRunner().invoke(
        main,
        ["node", "--id", str(replica), "--cluster", str(cluster.path), "--key", str(key),
         "--data-dir", str(tmp_path / "data")],
    )  # fmt: skip
    return result.exit_code, result.output


def test_a_node_refuses_a_share_off_the_group_polynomial(small: ClusterFile, tmp_path: Path) -> None:
    genuine = thresh_sig.KeyShare.from_bytes(small.load_secrets("n2").key_share or b"")
    # Same signer, same group fingerprint, a secret one off: well-formed, but not on the polynomial.
    raw = bytearray(bytes(genuine))
    raw[-1] ^= 1
    code, output = _node(small, 2, _tamper(small, 2, bytes(raw)), tmp_path)
    assert code == 2, output
    assert "does not match the group key's commitments for n2" in output


def test_a_node_refuses_another_replicas_share(small: ClusterFile, tmp_path: Path) -> None:
    n3_share = small.load_secrets("n3").key_share or b""
    code, output = _node(small, 2, _tamper(small, 2, n3_share), tmp_path)
    assert code == 2 and "does not match" in output
    with pytest.raises(ClusterFileError, match="unusable certificate key share"):
        small.load_secrets("n2", _tamper(small, 2, b"TSKS garbage"))


# ---- seven nodes, end to end --------------------------------------------------------------------


@pytest.fixture(scope="module")
def seven(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ClusterFile, LocalCluster]]:
    root = tmp_path_factory.mktemp("dkg7")
    hosts = ",".join(f"127.0.0.1:{port}" for port in free_ports(7))
    cluster = keygen_dkg(root / "cluster", "--hosts", hosts)
    assert cluster.path is not None
    local = LocalCluster(cluster.path, root / "data", root / "logs", verbose=True)
    local.start_all(list(range(1, 8)))
    try:
        yield cluster, local
    finally:
        local.stop_all()


def client(cluster: ClusterFile, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["client", "--cluster", str(cluster.path), "--timeout", "30", *args])
    return result.exit_code, result.output


@pytest.mark.process
@pytest.mark.timeout(240)
def test_seven_nodes_on_dkg_keys_certify_client_transfers(seven: tuple[ClusterFile, LocalCluster]) -> None:
    cluster, local = seven
    code, output = client(cluster, "transfer", "A", "B", "3")
    assert code == 0, output + "\n".join(local.log_text(r)[-2000:] for r in range(1, 8))
    assert output.startswith("committed  transfer A B 3: ok")
    code, output = client(cluster, "transfer", "B", "C", "5")
    assert code == 0 and output.startswith("committed  transfer B C 5: ok"), output
    code, output = client(cluster, "balance", "B")
    assert code == 0 and output.startswith("committed  balance B: 8"), output
    code, output = client(cluster, "transfer", "A", "B", "100")
    assert code == 3 and output.startswith("failed"), output

    async def status_of_all() -> list[object]:
        pool = ClientPool(cluster, [cluster.load_secrets("J")])
        await pool.start()
        try:
            return list(await asyncio.gather(*(pool.status(r, 10.0) for r in range(1, 8))))
        finally:
            await pool.close()

    states = asyncio.run(status_of_all())
    assert all(s is not None for s in states)
    assert len({s["state_digest"] for s in states}) == 1  # type: ignore[index]
