"""Progress on a terminal: log lines above the bars, the build as a step, done marks."""

from __future__ import annotations

import contextlib
import io
import logging
import re
import sys

import pytest
from rich.console import Console

from nrr_sync.progress import Progress

log = logging.getLogger("nrr_sync")


@contextlib.contextmanager
def fake_terminal():
    """A rich console on a fake terminal, and a log handler on stderr as the CLI sets up
    (set up inside the test: pytest swaps sys.stderr between a fixture and the test)."""
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100, color_system=None)
    saved_stderr, sys.stderr = sys.stderr, io.StringIO()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    previous = log.level
    log.setLevel(logging.INFO)
    try:
        yield console, screen, handler
    finally:
        root.removeHandler(handler)
        log.setLevel(previous)
        sys.stderr = saved_stderr


def final_lines(screen: io.StringIO) -> list[str]:
    """The lines as they stand on the screen at the end (after the last redraw)."""
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.getvalue())
    return [line.rstrip() for line in plain.replace("\r", "\n").splitlines() if line.strip()]


def test_log_lines_go_above_the_bars_and_every_line_ends_with_a_done_mark():
    with fake_terminal() as (console, screen, handler):
        with Progress(tty=True, console=console) as progress:
            progress.advance("customers", 120)
            log.info("a line logged while the bars are live")
            progress.expect("invoices", 3)
            progress.advance("invoices", 3)
            with progress.step("build (sql/ models)"):
                pass
        assert handler.stream is sys.stderr  # given back
        assert "a line logged" not in sys.stderr.getvalue()  # not into the live line
    output = screen.getvalue()
    assert "INFO a line logged while the bars are live" in output
    lines = final_lines(screen)
    customers = next(line for line in lines[::-1] if "customers" in line)
    invoices = next(line for line in lines[::-1] if "invoices" in line)
    build = next(line for line in lines[::-1] if "build (sql/ models)" in line)
    assert customers.startswith("✓") and "120 fetched" in customers
    assert invoices.startswith("✓") and "3 fetched" in invoices
    assert build.startswith("✓")


def test_a_known_total_shows_while_it_runs():
    with fake_terminal() as (console, screen, _), Progress(tty=True, console=console) as progress:
        progress.expect("customers", 40)
        progress.advance("customers", 10)
        progress._bars.refresh()
        assert "10 of 40" in screen.getvalue()


def test_a_failure_marks_what_was_cut_short():
    with (
        fake_terminal() as (console, screen, _),
        pytest.raises(RuntimeError),
        Progress(tty=True, console=console) as progress,
    ):
        progress.advance("customers", 5)
        with progress.step("build (sql/ models)"):
            raise RuntimeError("the build failed")
    lines = final_lines(screen)
    build = next(line for line in lines[::-1] if "build (sql/ models)" in line)
    customers = next(line for line in lines[::-1] if "customers" in line)
    assert build.startswith("✗")
    assert customers.startswith("✓")  # the fetch was over when the build began


def test_a_failure_while_fetching_marks_the_counters():
    with (
        fake_terminal() as (console, screen, _),
        pytest.raises(RuntimeError),
        Progress(tty=True, console=console) as progress,
    ):
        progress.advance("customers", 5)
        raise RuntimeError("Stripe failed")
    customers = next(line for line in final_lines(screen)[::-1] if "customers" in line)
    assert customers.startswith("✗") and "5 fetched" in customers


def test_without_a_terminal_a_step_is_a_log_line(caplog):
    with (
        caplog.at_level(logging.INFO, logger="nrr_sync"),
        Progress(tty=False) as progress,
        progress.step("build (sql/ models)"),
    ):
        pass
    assert "build (sql/ models) …" in caplog.text
