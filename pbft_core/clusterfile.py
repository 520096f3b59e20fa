"""The cluster file (``cluster.toml``) and the key directories `pbft keygen` writes.

Theory of operation
-------------------
A deployment is described by one *public* file that every host and every client gets a copy
of, and one *secret* file per node that only that node gets::

    cluster/cluster.toml              public: f, protocol parameters (the certificate scheme
                                      among them), timers, every replica's address and Ed25519
                                      identity key, every client's identity key, the BLS group
                                      keys (``certificates = "bls"``, the default, only)
    cluster/n3/secrets.key            n3's secrets (Ed25519 seed, BLS key shares if any), mode 0600
    cluster/clients/A/secrets.key     client A's secret (Ed25519 seed), mode 0600

A secrets file is `keys.NodeSecrets` (msgpack; it also repeats the public keys it was dealt
with). `load_secrets` refuses a secrets file whose public keys differ from the cluster file's,
or whose BLS key shares do not match the group keys' commitments (the share's verification key
must be the one the commitments give for its index), so a node started with a stale, foreign or
tampered key directory fails at once with a clear message instead of signing shares that every
collector would throw away.

`keygen` writes the same layout whether a dealer made the keys (the default) or a distributed
key generation among one process per replica did (``dkg=True``, see `keys.generate_by_dkg`).

The TOML is the source of truth for addresses and parameters: an operator edits the hosts and
ports (and may tune timers) after keygen, without touching any key. Keys are hex strings.
Unknown keys in the file are errors, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import tomli_w

from .config import ACCOUNTS, ClusterConfig, Timers, replica_name
from .crypto import BLS, PublicKeys
from .keys import ClusterKeys, DkgRunError, NodeSecrets, generate_by_dkg

FILE_VERSION = 1
DEFAULT_HOST = "127.0.0.1"
DEFAULT_BASE_PORT = 5001
SECRETS_FILE = "secrets.key"
CLIENTS_DIR = "clients"


class ClusterFileError(ValueError):
    """A cluster file or key directory that cannot be used; the message says why."""


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"

    @classmethod
    def parse(cls, text: str) -> Address:
        host, sep, port = text.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ClusterFileError(f"not a HOST:PORT address: {text!r}")
        return cls(host.strip("[]"), int(port))


@dataclass(frozen=True)
class ClusterFile:
    """Everything public about a cluster."""

    config: ClusterConfig
    addresses: dict[int, Address]
    public: PublicKeys
    path: Path | None = None  # where it was loaded from (key directories are found next to it)

    @property
    def directory(self) -> Path:
        return self.path.parent if self.path is not None else Path(".")

    @property
    def clients(self) -> list[str]:
        return sorted(self.public.clients)

    def secrets_path(self, name: str) -> Path:
        """Default location of node `name`'s secrets ("n3" or a client name)."""
        if _is_replica_name(name):
            return self.directory / name / SECRETS_FILE
        return self.directory / CLIENTS_DIR / name / SECRETS_FILE

    # ---- TOML ------------------------------------------------------------------------------

    def to_toml(self) -> str:
        config = asdict(self.config)
        timers = config.pop("timers")
        doc: dict[str, Any] = {
            "version": FILE_VERSION,
            **config,
            "timers": timers,
            # An ed25519 cluster has no group key: its certificates are the identities' signatures.
            **({"threshold_keys": {k: v.hex() for k, v in _threshold_keys(self.public).items()}} if self.config.certificates == BLS else {}),
            "replicas": [
                {
                    "id": r,
                    "host": self.addresses[r].host,
                    "port": self.addresses[r].port,
                    "identity_key": self.public.replicas[r].hex(),
                }
                for r in sorted(self.addresses)
            ],
            "clients": {c: self.public.clients[c].hex() for c in self.clients},
        }
        header = (
            "# pbft cluster file: public, copy it to every replica host and every client.\n"
            "# Edit hosts and ports (and timers) freely; keys must match the key directories.\n"
        )
        return header + tomli_w.dumps(doc)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_toml())

    @classmethod
    def load(cls, path: Path | str) -> ClusterFile:
        path = Path(path)
        try:
            raw = tomllib.loads(path.read_text())
        except OSError as exc:
            raise ClusterFileError(f"{path}: {exc.strerror or exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ClusterFileError(f"{path}: not valid TOML: {exc}") from None
        try:
            return cls._from_doc(raw, path)
        except ClusterFileError as exc:
            raise ClusterFileError(f"{path}: {exc}") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise ClusterFileError(f"{path}: malformed cluster file: {exc!r}") from None

    @classmethod
    def _from_doc(cls, raw: dict[str, Any], path: Path) -> ClusterFile:
        raw = dict(raw)
        version = raw.pop("version", None)
        if version != FILE_VERSION:
            raise ClusterFileError(f"unsupported cluster file version {version!r}")
        # A file without `certificates` predates the choice: its certificates are BLS.
        threshold_raw = raw.pop("threshold_keys", None)
        if raw.get("certificates", BLS) == BLS:
            if threshold_raw is None:
                raise ClusterFileError("a cluster with BLS certificates needs [threshold_keys]")
            _no_unknown(threshold_raw, set(_THRESHOLD_KEY_FIELDS), "[threshold_keys]")
            threshold = {k: _hex(threshold_raw[k], f"threshold_keys.{k}") for k in _THRESHOLD_KEY_FIELDS}
        else:
            if threshold_raw:
                raise ClusterFileError(f"[threshold_keys] given, but certificates = {raw['certificates']!r} uses none")
            threshold = dict.fromkeys(_THRESHOLD_KEY_FIELDS, b"")
        timers_raw = raw.pop("timers", {})
        _no_unknown(timers_raw, {f.name for f in fields(Timers)}, "[timers]")
        timers = Timers(**timers_raw)
        replicas_raw = raw.pop("replicas")
        clients_raw = raw.pop("clients", {})
        _no_unknown(raw, {f.name for f in fields(ClusterConfig)} - {"timers"}, "the top level")
        config = ClusterConfig(timers=timers, **raw)
        addresses: dict[int, Address] = {}
        identities: dict[int, bytes] = {}
        for entry in replicas_raw:
            _no_unknown(entry, {"id", "host", "port", "identity_key"}, "[[replicas]]")
            r = int(entry["id"])
            if r in addresses:
                raise ClusterFileError(f"replica {r} listed twice")
            addresses[r] = Address(str(entry["host"]), int(entry["port"]))
            identities[r] = _hex(entry["identity_key"], f"replica {r} identity_key")
        if sorted(addresses) != list(config.replica_ids):
            raise ClusterFileError(
                f"f = {config.f} needs replicas 1..{config.n}, the file lists {sorted(addresses)}"
            )
        clients = {str(c): _hex(k, f"client {c}") for c, k in clients_raw.items()}
        public = PublicKeys(replicas=identities, clients=clients, **threshold, certificates=config.certificates)
        return cls(config, addresses, public, path)

    # ---- secrets ---------------------------------------------------------------------------

    def load_secrets(self, name: str, path: Path | None = None) -> NodeSecrets:
        """`name`'s secrets, checked against this cluster's public keys."""
        path = path if path is not None else self.secrets_path(name)
        try:
            secrets = NodeSecrets.load(path)
        except OSError as exc:
            raise ClusterFileError(f"{path}: {exc.strerror or exc}") from None
        except Exception as exc:  # a file that is not a secrets file
            raise ClusterFileError(f"{path}: not a pbft secrets file ({exc})") from None
        if secrets.name != name:
            raise ClusterFileError(f"{path}: holds the secrets of {secrets.name}, not {name}")
        if secrets.public != self.public:
            raise ClusterFileError(
                f"{path}: these keys were dealt for another cluster than {self.path} "
                "(run keygen once and copy its key directories)"
            )
        self._check_shares(secrets, path)
        return secrets

    def _check_shares(self, secrets: NodeSecrets, path: Path) -> None:
        """A replica's key shares must lie on the group keys' committed polynomials (BLS; with
        ed25519 certificates nobody holds a share)."""
        import thresh_sig

        if self.config.certificates != BLS:
            if secrets.key_share is not None or secrets.fast_share is not None:
                raise ClusterFileError(f"{path}: holds BLS key shares, but this cluster's certificates are {self.config.certificates}")
            return

        pairs = (("key_share", self.public.group), ("fast_share", self.public.fast_group))
        for field_name, group_bytes in pairs:
            share_bytes = getattr(secrets, field_name)
            if not _is_replica_name(secrets.name):
                if share_bytes is not None:
                    raise ClusterFileError(f"{path}: a client's secrets file holds a key share")
                continue
            replica = int(secrets.name[1:])
            what = "certificate" if field_name == "key_share" else "fast-path"
            try:
                group = thresh_sig.GroupKey.from_bytes(group_bytes)
                if share_bytes is None:
                    raise ClusterFileError(f"{path}: no {what} key share")
                share = thresh_sig.KeyShare.from_bytes(share_bytes)
                matches = share.signer == replica and share.verification_key == group.verification_key(replica)
                matches = matches and share.group_fingerprint == group.fingerprint
            except thresh_sig.ThresholdError as exc:
                raise ClusterFileError(f"{path}: unusable {what} key share ({exc})") from None
            if not matches:
                raise ClusterFileError(
                    f"{path}: the {what} key share does not match the group key's commitments "
                    f"for {secrets.name} (a tampered or foreign share; run keygen again)"
                )


# Public keys other than the identities: the BLS group keys (2f+1-of-n, and n-of-n for the fast
# path). Taken from `PublicKeys` itself, so a new certificate key is written without edits here.
_THRESHOLD_KEY_FIELDS = tuple(f.name for f in fields(PublicKeys) if f.name not in ("replicas", "clients", "certificates"))


def _threshold_keys(public: PublicKeys) -> dict[str, bytes]:
    return {name: getattr(public, name) for name in _THRESHOLD_KEY_FIELDS}


def _is_replica_name(name: str) -> bool:
    return len(name) > 1 and name[0] == "n" and name[1:].isdigit()


def _hex(value: Any, what: str) -> bytes:
    try:
        return bytes.fromhex(str(value))
    except ValueError:
        raise ClusterFileError(f"{what}: not a hex string") from None


def _no_unknown(table: dict[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise ClusterFileError(f"unknown key(s) {', '.join(unknown)} in {where}")


def default_clients(extra: int = 0) -> list[str]:
    """The ten account holders A–J, plus ``c0..c{extra-1}`` (benchmark clients)."""
    return [*ACCOUNTS, *(f"c{i}" for i in range(extra))]


def keygen(
    out_dir: Path,
    config: ClusterConfig,
    *,
    clients: list[str],
    addresses: dict[int, Address] | None = None,
    seed: bytes | None = None,
    force: bool = False,
    dkg: bool = False,
    dkg_phase_timeout_s: float | None = None,
) -> ClusterFile:
    """Make a cluster's keys and write ``cluster.toml`` plus one key directory per node.

    By default one process deals every key (from `seed` if given). With `dkg`, the replicas'
    keys come from a distributed key generation among one process per replica, each of which
    writes its own key directory (`keys.generate_by_dkg`); the clients' identities are made
    here as usual. `seed` cannot be combined with `dkg`: one seed for every key is a dealer.

    Refuses to overwrite an existing cluster file unless `force`: re-dealing keys under a
    running cluster would lock every node out of every other.
    """
    cluster_path = out_dir / "cluster.toml"
    if cluster_path.exists() and not force:
        raise ClusterFileError(f"{cluster_path} exists (pass --force to deal new keys)")
    names = [c for c in clients if c]
    if len(set(names)) != len(names) or any(_is_replica_name(c) for c in names):
        raise ClusterFileError("client names must be distinct and not look like replica names")
    if addresses is None:
        addresses = {
            r: Address(DEFAULT_HOST, DEFAULT_BASE_PORT + r - 1) for r in config.replica_ids
        }
    if dkg:
        if seed is not None:
            raise ClusterFileError("a seed and a distributed key generation exclude each other")
        if config.certificates != BLS:
            raise ClusterFileError(f"a distributed key generation makes BLS keys; {config.certificates} certificates need none")
        paths = {r: out_dir / replica_name(r) / SECRETS_FILE for r in config.replica_ids}
        options = {} if dkg_phase_timeout_s is None else {"phase_timeout_s": dkg_phase_timeout_s}
        try:
            public, client_secrets = generate_by_dkg(config, names, paths, **options)
        except DkgRunError as exc:
            raise ClusterFileError(f"distributed key generation failed: {exc}") from None
        cluster = ClusterFile(config, dict(addresses), public, cluster_path)
    else:
        keys = ClusterKeys.generate(config, names, seed)
        cluster = ClusterFile(config, dict(addresses), keys.public, cluster_path)
        for r, secrets in keys.replica_secrets.items():
            secrets.save(cluster.secrets_path(replica_name(r)))
        client_secrets = keys.client_secrets
    for c, secrets in client_secrets.items():
        secrets.save(cluster.secrets_path(c))
    # Directories holding secrets are private too (the files already are, 0600).
    for name in [*(replica_name(r) for r in config.replica_ids), *names]:
        cluster.secrets_path(name).parent.chmod(0o700)
    cluster.save(cluster_path)
    return cluster
