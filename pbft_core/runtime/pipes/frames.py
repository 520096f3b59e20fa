"""The pipes shell's frames: one kind byte and a payload (the table is in the package docstring)."""

from __future__ import annotations

import sys
from typing import Any

import msgpack

from ..host import NodeHost
from ..packing import unpack

K_MESSAGE = b"M"
K_CLIENT = b"C"
K_HELLO = b"H"
K_GO = b"G"
K_QUERY = b"Q"
K_STATE = b"S"
K_EVENT = b"E"
K_STOP = b"X"
K_DONE = b"D"
K_ERROR = b"!"

# A worker reads at most this many frames from one link per wakeup, so a chatty peer cannot
# starve the others (or the timers) of attention.
FRAMES_PER_WAKEUP = 64
# Upper bound on any single blocking wait, so loops re-check their deadlines and liveness.
POLL_INTERVAL_S = 0.25
# Direct writes from the loop thread (see `LinkWriter`) rely on Linux's Unix-socket semantics.
DIRECT_WRITES = sys.platform.startswith("linux")
DIRECT_WRITE_MAX = 32 * 1024
# A worker's database is for inspection only (no worker is ever restarted from it), so it may
# trail the replica by this much; see `NodeHost`.
STORE_COMMIT_INTERVAL_MS = 50.0
# When set (to a directory), every worker runs under cProfile and writes n<i>.prof there.
PROFILE_DIR_VARIABLE = "PBFT_PROFILE_DIR"
SETTLE_POLL_INTERVAL_S = 0.05


def frame_items(frame: bytes, host: NodeHost) -> list[Any]:
    """The items of a batched frame (M or C); an undecodable frame counts as a decode failure."""
    try:
        items = unpack(frame[1:])
    except (ValueError, msgpack.UnpackException):
        items = None
    if not isinstance(items, list):
        host.decode_failures += 1
        return []
    return items
