"""Merkle trees for batched reply authentication.

A replica executes a batch of k requests and owes k clients a signed reply. Instead of k
Ed25519 signatures it signs one root over the k replies; each reply carries the path from its
leaf to that root. A client recomputes the root from its reply and checks one signature, which
costs it exactly what a per-reply signature did; the replica's cost per request drops to two
hashes. Leaves and inner nodes are hashed with distinct prefixes, so a leaf can never pose as
a node; an odd node at any level is paired with itself.
"""

from __future__ import annotations

import hashlib

PATH_LENGTH_MAX = 32


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def build(leaves: list[bytes]) -> tuple[bytes, list[tuple[bytes, ...]]]:
    """The root over leaf hashes and, for each leaf, its path of sibling hashes."""
    assert leaves
    levels = []  # every level below the root, each padded to an even length
    level = leaves
    while len(level) > 1:
        if len(level) % 2:
            level = [*level, level[-1]]
        levels.append(level)
        level = [_node(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    # Leaf i's sibling at depth d is at index (i >> d) ^ 1 of that level.
    return level[0], [
        tuple([lv[(i >> d) ^ 1] for d, lv in enumerate(levels)]) for i in range(len(leaves))
    ]


def root_from_path(leaf: bytes, index: int, path: tuple[bytes, ...]) -> bytes | None:
    if len(path) > PATH_LENGTH_MAX or not 0 <= index < 2 ** len(path):
        return None
    node, sha256 = leaf, hashlib.sha256  # every client checks every reply it counts: kept lean
    for sibling in path:
        if len(sibling) != 32:
            return None
        node = sha256(b"\x01" + sibling + node if index & 1 else b"\x01" + node + sibling).digest()
        index >>= 1
    return node
