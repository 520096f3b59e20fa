"""A node's data directory: which files hold what, and the fingerprint of the cluster they belong to."""

from __future__ import annotations

import hashlib
from dataclasses import fields
from pathlib import Path

from ...clusterfile import ClusterFile
from ...config import replica_name
from ...storage import replica_db_file
from ..packing import pack


def data_paths(data_dir: Path, replica_id: int) -> tuple[Path, Path, Path]:
    """(inspection database, write-ahead log, lock file) of replica `replica_id` in `data_dir`.

    The inspection database has the same schema as a pipes run's, so ``pbft inspect`` reads it.
    """
    name = replica_name(replica_id)
    return replica_db_file(data_dir, replica_id), data_dir / f"{name}.durable.sqlite", data_dir / f"{name}.lock"


def cluster_fingerprint(cluster: ClusterFile) -> str:
    """A short hash of a cluster's replica keys (identities and threshold keys): equal iff they
    are. Client keys are left out, so clients can be added without invalidating replicas' data."""
    public = cluster.public
    threshold = [(f.name, getattr(public, f.name)) for f in fields(public) if f.name not in ("replicas", "clients")]
    body = pack([sorted(public.replicas.items()), sorted(threshold)])
    return hashlib.sha256(b"pbft/v1/cluster/" + body).hexdigest()[:32]


class NodeStartError(RuntimeError):
    """The node cannot start (address in use, data directory locked, ...)."""
