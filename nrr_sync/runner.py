"""Running one command: expected failures become one clear line and their exit code.

Shared by the product's command line and the sandbox's, so neither imports the other.
"""

from __future__ import annotations

import logging
import os
import sys

import typer

from . import signals
from .errors import NrrSyncError
from .terminal import printable

log = logging.getLogger("nrr_sync")


def run(ctx: typer.Context, work) -> None:
    """Run ``work()``; turn expected failures into one clear message and their exit code."""
    verbose = bool(getattr(ctx.obj, "verbose", False))
    try:
        with signals.handled():
            code = work()
    except NrrSyncError as error:
        if verbose:
            log.exception("failed")
        error_line("Error", printable(str(error)))
        raise typer.Exit(error.exit_code) from None
    except (KeyboardInterrupt, signals.Terminated) as error:
        _stopped(error)
    except BrokenPipeError:
        _reader_gone()
    except Exception as error:  # noqa: BLE001 - the last line of defence, exit 1
        if signals.translated(error) is not error:  # a signal during a DuckDB query
            _stopped(signals.translated(error))
        if verbose:
            log.exception("unexpected error")
        else:
            error_line(
                "Unexpected error",
                f"{type(error).__name__}: {printable(str(error))}\n"
                "Run again with --verbose for details.",
            )
        raise typer.Exit(1) from None
    if code:
        raise typer.Exit(code)


def error_line(label: str, message: str, separator: str = ": ") -> None:
    """The last line of a failed run: red on a terminal; timestamped like the log lines
    elsewhere (cron's log file), so it reads in order with them."""
    if sys.stderr.isatty():
        typer.secho(f"{label}{separator}{message}", err=True, fg=typer.colors.RED)
        return
    stamp = logging.Formatter().formatTime(logging.makeLogRecord({}))
    text = message if label == "Error" else f"{label}{separator}{message}"
    typer.echo(f"{stamp} ERROR {text}", err=True)


def _reader_gone() -> None:
    """The reader of stdout stopped early (``| head``): it has what it wanted, so end
    quietly, and point stdout at /dev/null so the final flush does not complain again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    raise typer.Exit(0) from None


def _stopped(error: BaseException) -> None:
    """SIGINT / SIGTERM: say so, and exit 130 / 143 (a run records it before this)."""
    what = "Terminated (SIGTERM)" if isinstance(error, signals.Terminated) else "Interrupted"
    error_line(
        what,
        "the published database is unchanged. What was fetched is kept: the next "
        "run resumes from it.",
        separator="; ",
    )
    raise typer.Exit(signals.exit_code(error)) from None
