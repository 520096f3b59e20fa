"""Saving and loading group keys and key shares.

File format
-----------
Both files are small UTF-8 JSON documents, so that an operator can see what a file is without
tools; the authoritative content is the hex of the canonical bytes (see :mod:`thresh_sig.keys`),
and the other fields are a readable copy that is checked against it on load (a mismatch raises
:class:`~thresh_sig.errors.MalformedError`)::

    {"format": "thresh_sig.group_key", "version": 1, "t": 5, "n": 7,
     "public_key": "<96 hex digits>", "fingerprint": "<16 hex digits>",
     "group_key": "<hex of bytes(group)>"}

    {"format": "thresh_sig.key_share", "version": 1, "signer": 3, "t": 5, "n": 7,
     "group_fingerprint": "<16 hex digits>", "key_share": "<hex of bytes(share)>"}

Key-share files hold a secret: they are written with mode 0600 (owner read/write only) through a
temporary file in the same directory that is created 0600 from the start, fsynced and renamed
over the target, so the secret is never readable by others even for an instant and a crash never
leaves a half-written file. Group-key files are public and get the usual umask-derived mode.

Errors: a missing or unreadable file raises the usual ``OSError``; content that is not such a
document raises ``MalformedError`` (or ``InvalidPointError`` for bad curve points).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .backends import Backend
from .errors import MalformedError
from .keys import GroupKey, KeyShare

__all__ = ["load_group_key", "load_key_share", "save_group_key", "save_key_share"]

_GROUP_FORMAT = "thresh_sig.group_key"
_SHARE_FORMAT = "thresh_sig.key_share"
_FILE_VERSION = 1
PathLike = str | bytes | os.PathLike[str] | os.PathLike[bytes]


def _atomic_write(path: PathLike, text: str, mode: int) -> None:
    target = Path(os.fsdecode(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        # mkstemp creates the file 0600; widen only for public files.
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _read_doc(path: PathLike, fmt: str) -> dict[str, Any]:
    text = Path(os.fsdecode(path)).read_text(encoding="utf-8")
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MalformedError(f"{os.fsdecode(path)}: not JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != fmt:
        raise MalformedError(f"{os.fsdecode(path)}: not a {fmt} file")
    if doc.get("version") != _FILE_VERSION:
        raise MalformedError(f"{os.fsdecode(path)}: unsupported version {doc.get('version')!r}")
    return doc


def _hex_field(doc: dict[str, Any], key: str) -> bytes:
    value = doc.get(key)
    if not isinstance(value, str):
        raise MalformedError(f"field {key!r} missing or not a string")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise MalformedError(f"field {key!r} is not hex") from None


def _expect(doc: dict[str, Any], key: str, actual: object) -> None:
    if doc.get(key) != actual:
        raise MalformedError(f"field {key!r} = {doc.get(key)!r} contradicts the encoded key")


def save_group_key(group: GroupKey, path: PathLike) -> None:
    """Write ``group`` to ``path`` (JSON, see module docstring)."""
    if not isinstance(group, GroupKey):
        raise TypeError(f"expected a GroupKey, not {type(group).__name__}")
    doc = {
        "format": _GROUP_FORMAT,
        "version": _FILE_VERSION,
        "t": group.t,
        "n": group.n,
        "public_key": group.public_key.hex(),
        "fingerprint": group.fingerprint.hex(),
        "group_key": bytes(group).hex(),
    }
    umask = os.umask(0)
    os.umask(umask)
    _atomic_write(path, json.dumps(doc, indent=2) + "\n", 0o666 & ~umask)


def load_group_key(path: PathLike, *, backend: str | Backend | None = None) -> GroupKey:
    """Read a group key file written by :func:`save_group_key`."""
    doc = _read_doc(path, _GROUP_FORMAT)
    group = GroupKey.from_bytes(_hex_field(doc, "group_key"), backend=backend)
    _expect(doc, "t", group.t)
    _expect(doc, "n", group.n)
    _expect(doc, "public_key", group.public_key.hex())
    _expect(doc, "fingerprint", group.fingerprint.hex())
    return group


def save_key_share(share: KeyShare, path: PathLike) -> None:
    """Write ``share`` to ``path`` with mode 0600 (JSON, see module docstring)."""
    if not isinstance(share, KeyShare):
        raise TypeError(f"expected a KeyShare, not {type(share).__name__}")
    doc = {
        "format": _SHARE_FORMAT,
        "version": _FILE_VERSION,
        "signer": share.signer,
        "t": share.t,
        "n": share.n,
        "group_fingerprint": share.group_fingerprint.hex(),
        "key_share": bytes(share).hex(),
    }
    _atomic_write(path, json.dumps(doc, indent=2) + "\n", 0o600)


def load_key_share(path: PathLike, *, backend: str | Backend | None = None) -> KeyShare:
    """Read a key share file written by :func:`save_key_share`."""
    doc = _read_doc(path, _SHARE_FORMAT)
    share = KeyShare.from_bytes(_hex_field(doc, "key_share"), backend=backend)
    _expect(doc, "signer", share.signer)
    _expect(doc, "t", share.t)
    _expect(doc, "n", share.n)
    _expect(doc, "group_fingerprint", share.group_fingerprint.hex())
    return share
