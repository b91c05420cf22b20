"""One base class for the errors the toolkit raises on purpose, and how command lines report them.

A :class:`ToolkitError`'s message is one line that names the input and says what to do; the command lines print
it as ``error: <message>`` without a traceback and exit with the error's :attr:`~ToolkitError.exit_code`:

* ``2`` -- nothing was done: the command line, a config, a dataset, a model or an input file is not usable;
* ``1`` -- the command ran but something failed on the way (a verification, some of many inputs).

Anything else escaping a command is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1

F = TypeVar("F", bound=Callable[..., Any])


class ToolkitError(Exception):
    """Base of every deliberate error: the message says what is wrong and what to do."""

    exit_code = EXIT_BAD_INPUT


def report(exc: ToolkitError) -> None:
    """Print ``error: <message>`` on stderr and exit with the error's code (the command lines' one mapping)."""
    click.echo(f"error: {exc}", err=True)
    sys.exit(exc.exit_code)


def reports_errors(command: F) -> F:
    """Decorate a click callback so that a :class:`ToolkitError` becomes one line and its exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ToolkitError as exc:
            report(exc)

    return wrapper  # type: ignore[return-value]
