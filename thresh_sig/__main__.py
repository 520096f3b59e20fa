"""``python -m thresh_sig <command>``; the only command is ``bench`` (see :mod:`thresh_sig.bench`)."""

from __future__ import annotations

import click

from .bench import cli as bench_cli


@click.group(name="thresh_sig")
def main() -> None:
    """thresh_sig: BLS threshold signatures over BLS12-381."""


main.add_command(bench_cli)

if __name__ == "__main__":
    main(prog_name="python -m thresh_sig")
