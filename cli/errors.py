"""The CLI's one usage error (imports only Click, like every module the entry point loads)."""

from __future__ import annotations

from typing import Any

import click


class UsageFailure(click.ClickException):
    """An error the user can fix (bad file or option, nothing to inspect): ``error: ...``, exit 2."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.message}", err=True)
