"""The shells' own msgpack (frames, handshakes, fingerprints): bytes stay bytes, strings str.

Protocol messages have their own codec (`messages.encode` / `decode`); this is for what the
shells wrap around them.
"""

from __future__ import annotations

from typing import Any

import msgpack


def pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def unpack(data: bytes | memoryview) -> Any:
    """The inverse of `pack`, refusing msgpack extension types."""
    return msgpack.unpackb(data, raw=False, max_ext_len=0)
