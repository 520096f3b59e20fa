"""The README's example is complete and runnable: execute it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import thresh_sig

README = Path(thresh_sig.__file__).parent / "README.md"


def test_readme_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python example"
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(thresh_sig.BACKEND_ENV, raising=False)
    exec(compile(blocks[0], str(README), "exec"), {"__name__": "readme_example"})
    assert capsys.readouterr().out.startswith("ok ")
