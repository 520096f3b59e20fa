"""Saving and loading group keys and key shares."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tests.thresh_sig.ts_helpers import dealt
from thresh_sig import (
    GroupKey,
    KeyShare,
    MalformedError,
    combine,
    load_group_key,
    load_key_share,
    save_group_key,
    save_key_share,
    sign_share,
    verify,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_roundtrip_and_use(tmp_path: Path) -> None:
    group, shares = dealt(3, 4)
    save_group_key(group, tmp_path / "group.json")
    for s in shares:
        save_key_share(s, tmp_path / f"share-{s.signer}.json")
    loaded_group = load_group_key(tmp_path / "group.json")
    loaded = [load_key_share(str(tmp_path / f"share-{i}.json")) for i in range(1, 5)]
    assert loaded_group == group and loaded == list(shares)
    sigs = [sign_share(s, b"m") for s in loaded[1:]]
    assert verify(loaded_group, b"m", combine(loaded_group, sigs, b"m"))
    assert all(loaded_group.verify_key_share(s) for s in loaded)
    # Method forms.
    group.save(tmp_path / "g2.json")
    shares[0].save(tmp_path / "s2.json")
    assert GroupKey.load(tmp_path / "g2.json") == group
    assert KeyShare.load(tmp_path / "s2.json", backend="blspy") == shares[0]


def test_secret_file_mode_is_0600(tmp_path: Path) -> None:
    _, shares = dealt(3, 4)
    path = tmp_path / "share.json"
    path.write_text("old content")
    path.chmod(0o644)
    save_key_share(shares[0], path)  # overwriting must not inherit the old, wider mode
    assert _mode(path) == 0o600
    save_key_share(shares[1], tmp_path / "fresh.json")
    assert _mode(tmp_path / "fresh.json") == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_group_file_is_public_and_readable_json(tmp_path: Path) -> None:
    group, _ = dealt(3, 4)
    path = tmp_path / "group.json"
    old = os.umask(0o022)
    try:
        save_group_key(group, path)
    finally:
        os.umask(old)
    assert _mode(path) == 0o644
    doc = json.loads(path.read_text())
    assert doc["format"] == "thresh_sig.group_key" and doc["version"] == 1
    assert (doc["t"], doc["n"]) == (3, 4)
    assert doc["public_key"] == group.public_key.hex()
    assert bytes.fromhex(doc["group_key"]) == bytes(group)


def test_bad_files(tmp_path: Path) -> None:
    group, shares = dealt(3, 4)
    g, s = tmp_path / "g.json", tmp_path / "s.json"
    save_group_key(group, g)
    save_key_share(shares[0], s)
    with pytest.raises(MalformedError):  # a share file is not a group file
        load_group_key(s)
    with pytest.raises(MalformedError):
        load_key_share(g)
    bad = tmp_path / "bad.json"
    bad.write_text("not json {")
    with pytest.raises(MalformedError):
        load_group_key(bad)
    doc = json.loads(g.read_text())
    for key, value in (("t", 2), ("public_key", "00" * 48), ("group_key", "zz"), ("version", 2)):
        tampered = dict(doc, **{key: value})
        bad.write_text(json.dumps(tampered))
        with pytest.raises(MalformedError):
            load_group_key(bad)
    doc = json.loads(s.read_text())
    bad.write_text(json.dumps(dict(doc, signer=2)))
    with pytest.raises(MalformedError):
        load_key_share(bad)
    with pytest.raises(FileNotFoundError):
        load_group_key(tmp_path / "missing.json")
    with pytest.raises(TypeError):
        save_key_share(group, tmp_path / "x.json")  # type: ignore[arg-type]
