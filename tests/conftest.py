"""Suite-wide options: ``--update-golden`` rewrites the golden files of tests/golden/."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite tests/golden/* from the current behaviour instead of comparing (or set PBFT_UPDATE_GOLDEN=1)",
    )
