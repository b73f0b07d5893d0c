"""Errors the user fixes (bad params, files, images): one line on stderr and exit status 2."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import typer
from rich.console import Console
from rich.markup import escape


class UserError(Exception):
    """Bad input the user can fix; the message names the value or file and the fix."""


class ConfigError(UserError, ValueError):
    """A config value or name is invalid; the message lists the valid choices."""


class MissingExtraError(UserError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


@contextlib.contextmanager
def exit_on_user_error(label: str) -> Iterator[None]:
    """Turn a UserError or OSError inside the block into `label: message` and exit status 2:
    what was already written stays, and no traceback hides the one line that matters."""
    try:
        yield
    except (UserError, OSError) as error:
        # Escaped: a message may quote brackets ("use [min, max]"), which rich reads as markup.
        message = f"[red]{label}:[/red] {escape(str(error))}"
        Console(stderr=True).print(message, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
