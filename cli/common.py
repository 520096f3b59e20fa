"""What every ``pbft`` command shares: the data directory default and the console factory.

Cheap to import (no rich, no protocol): `cli.main` imports it, and the pipes shell's workers
re-import the main script.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

# Where runs, benchmarks and node data go unless --data-dir or $PBFT_DATA_DIR says otherwise.
DEFAULT_DATA_DIR = Path(".pbft")
# Piped output (files, CI logs, README captures) gets tables this wide instead of rich's 80.
PIPED_WIDTH = 120


def make_console(piped_width: int = PIPED_WIDTH) -> Console:
    """A rich console: a terminal, or an explicit $COLUMNS, decides its own width; piped
    output gets `piped_width` columns."""
    from rich.console import Console

    width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else piped_width
    return Console(highlight=False, width=width)
