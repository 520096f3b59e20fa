"""What every ``pbft`` command shares: the data directory default, the console factory, `-` as
stdout for output files, and the checks that turn an unusable path into one ``error:`` line.

Cheap to import (no rich, no protocol): `cli.main` imports it, and the pipes shell's workers
re-import the main script.
"""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import UsageFailure

if TYPE_CHECKING:
    from rich.console import Console

# Where runs, benchmarks and node data go unless --data-dir or $PBFT_DATA_DIR says otherwise.
DEFAULT_DATA_DIR = Path(".pbft")
# Piped output (files, CI logs, README captures) gets tables this wide instead of rich's 80.
PIPED_WIDTH = 120
# `-o -` / `--json -`: the conventional name of standard output.
STDOUT = "-"


# `--certificates` of the benchmarks: `pbft_core.config.CERTIFICATE_SCHEMES` (not imported: this
# module stays cheap), or both.
CERTIFICATE_SCHEMES = ("bls", "ed25519")


def parse_certificates(text: str) -> list[str]:
    """``bls``, ``ed25519``, ``both`` or a comma list: the schemes to measure, in that order."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    schemes = list(CERTIFICATE_SCHEMES) if names == ["both"] else names
    if not schemes or any(s not in CERTIFICATE_SCHEMES for s in schemes):
        raise UsageFailure(f"--certificates: expected {', '.join(CERTIFICATE_SCHEMES)}, both or a comma list, not {text!r}")
    return list(dict.fromkeys(schemes))


def make_console(piped_width: int = PIPED_WIDTH, *, stderr: bool = False) -> Console:
    """A rich console: a terminal, or an explicit $COLUMNS, decides its own width; piped
    output gets `piped_width` columns. `stderr`: when stdout carries a document (``--json -``),
    the tables go to stderr so the two never mix."""
    from rich.console import Console

    class PbftConsole(Console):
        def on_broken_pipe(self) -> None:
            # rich would exit 1 here; the command decides (`pbft run` records it, then 141).
            self.quiet = True
            raise BrokenPipeError(errno.EPIPE, "the output was closed")

    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() or os.environ.get("COLUMNS") else piped_width
    return PbftConsole(highlight=False, width=width, stderr=stderr)


def is_stdout(path: Path | str | None) -> bool:
    return path is not None and str(path) == STDOUT


def write_output(path: Path, text: str) -> None:
    """Write `text` to `path`, or to stdout for ``-``."""
    if is_stdout(path):
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        path.write_text(text)


def check_output_file(path: Path | None, flag: str) -> None:
    """Refuse, before any work, an output file that cannot be written (``-`` is stdout)."""
    if path is None or is_stdout(path):
        return
    if path.is_dir():
        raise UsageFailure(f"{flag}: {path} is a directory")
    if not path.parent.is_dir():
        raise UsageFailure(f"{flag}: directory {path.parent} does not exist")
    if not os.access(path.parent, os.W_OK):
        raise UsageFailure(f"{flag}: directory {path.parent} is not writable")


def check_writable_dir(path: Path, flag: str) -> None:
    """Refuse a directory that cannot be created or written, naming why, without creating it
    (a command that fails later on must not leave directories behind)."""
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        what = "is a file" if probe == path else f"cannot be created: {probe} is a file"
        raise UsageFailure(f"{flag}: {path} {what}")
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        raise UsageFailure(f"{flag}: {path} cannot be written ({probe} is not writable)")


def path_error_text(exc: OSError) -> str | None:
    """``PATH: what is wrong`` for an error about a file system path (None for any other OSError,
    e.g. a socket's, which is not the user's path to fix)."""
    if exc.filename is None or exc.errno in (errno.EPIPE, None):
        return None
    reason = exc.strerror or str(exc)
    target = f" -> {exc.filename2}" if exc.filename2 else ""
    return f"{exc.filename}{target}: {reason[:1].lower()}{reason[1:]}"
