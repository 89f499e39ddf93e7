"""Progress of a run: bars per object type on a terminal, plain log lines under cron.

On a terminal the bars are a live display at the bottom of the screen. Log lines written
while it is live go through the display's console, above the bars, instead of into the
line the spinner redraws. The build and publish steps show as steps of their own, and
every line ends with a mark: done, or stopped by a failure.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections import Counter

log = logging.getLogger("nrr_sync")

LOG_EVERY_SECONDS = 15.0
DONE_MARK = "[green]✓[/]"
FAILED_MARK = "[red]✗[/]"


class Progress:
    """``advance(kind, n)`` as objects land; ``step(name)`` around a phase without counts;
    a context manager around the work."""

    def __init__(self, *, tty: bool | None = None, enabled: bool = True, console=None):
        self.counts: Counter[str] = Counter()
        self._tty = sys.stderr.isatty() if tty is None else tty
        self._enabled = enabled and log.isEnabledFor(logging.INFO)
        self._console = console
        self._bars = None
        self._tasks: dict[str, int] = {}
        self._steps: set[int] = set()
        self._streams: list[tuple[logging.StreamHandler, object]] = []
        self._last_log = time.monotonic()
        self._lock = threading.Lock()

    @property
    def live(self) -> bool:
        return self._bars is not None

    def __enter__(self) -> Progress:
        if self._enabled and self._tty:
            from rich.console import Console
            from rich.progress import Progress as Bars
            from rich.progress import TextColumn, TimeElapsedColumn

            self._bars = Bars(
                _mark_column(),
                TextColumn("{task.description:<20}"),
                TextColumn("{task.fields[counter]}"),
                TimeElapsedColumn(),
                console=self._console or Console(stderr=True),
                transient=False,
            )
            # Before the display starts: it swaps sys.stderr for a proxy of its own, which
            # the log handler, holding the real stderr, would bypass.
            self._route_logs_through(self._bars.console)
            self._bars.start()
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if self._bars is None:
            return
        failed = exc_type is not None
        for task in self._bars.tasks:
            if "mark" not in task.fields:
                self._finish(task.id, failed)
        self._bars.stop()
        self._restore_logs()
        self._bars = None

    def advance(self, kind: str, n: int) -> None:
        with self._lock:
            self.counts[kind] += n
            if self._bars is not None:
                task = self._task(kind)
                self._bars.update(task, advance=n)
                self._bars.update(task, counter=self._counter(task))
            elif self._enabled and time.monotonic() - self._last_log >= LOG_EVERY_SECONDS:
                self._last_log = time.monotonic()
                log.info("fetched so far: %s", describe_counts(self.counts))

    def expect(self, kind: str, total: int) -> None:
        """``total`` more objects of ``kind`` are on their way (known in advance)."""
        with self._lock:
            if self._bars is not None and total:
                task = self._task(kind)
                known = self._bars.tasks[task].total or 0
                self._bars.update(task, total=known + total)
                self._bars.update(task, counter=self._counter(task))

    @contextlib.contextmanager
    def step(self, name: str):
        """A phase without counts (the SQL build, publishing): a line of its own with a
        spinner while it runs and a done mark after it; a log line under cron."""
        if self._bars is None:
            if self._enabled:
                log.info("%s …", name)
            yield
            return
        with self._lock:
            for info in self._bars.tasks:  # a step starts when the fetching is over
                if "mark" not in info.fields:
                    self._finish(info.id, failed=False)
            task = self._bars.add_task(name, total=None, counter="")
            self._steps.add(task)
        try:
            yield
        except BaseException:
            self._finish(task, failed=True)
            raise
        self._finish(task, failed=False)

    def _task(self, kind: str) -> int:
        if kind not in self._tasks:
            self._tasks[kind] = self._bars.add_task(kind, total=None, counter="")
        return self._tasks[kind]

    def _counter(self, task: int) -> str:
        if task in self._steps:
            return ""
        info = self._bars.tasks[task]
        if info.total:
            return f"{info.completed:>10,.0f} of {info.total:,.0f}"
        return f"{info.completed:>10,.0f} fetched"

    def _finish(self, task: int, failed: bool) -> None:
        """Stop the spinner: a done mark, or a failure mark for what was cut short."""
        info = self._bars.tasks[task]
        self._bars.update(task, mark=FAILED_MARK if failed else DONE_MARK)
        if task not in self._steps:
            self._bars.update(task, counter=f"{info.completed:>10,.0f} fetched")
        self._bars.stop_task(task)

    def _route_logs_through(self, console) -> None:
        """Log lines print above the live bars, not into the line a spinner redraws."""
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream in (
                sys.stderr,
                sys.__stderr__,
            ):
                self._streams.append((handler, handler.setStream(_ConsoleStream(console))))

    def _restore_logs(self) -> None:
        for handler, stream in self._streams:
            handler.setStream(stream)
        self._streams = []


def _mark_column():
    """A spinner while a line is running, then its mark (done or failed)."""
    from rich.progress import SpinnerColumn
    from rich.text import Text

    class MarkColumn(SpinnerColumn):
        def render(self, task):
            mark = task.fields.get("mark")
            return Text.from_markup(mark) if mark else super().render(task)

    return MarkColumn()


class _ConsoleStream:
    """A file-like front for a rich console: what a log handler writes is printed above
    the live display, as plain text (no markup, no highlighting)."""

    def __init__(self, console):
        self._console = console

    def write(self, text: str) -> int:
        line = text.rstrip("\n")
        if line:
            self._console.print(line, markup=False, highlight=False, soft_wrap=True)
        return len(text)

    def flush(self) -> None:
        pass


def describe_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{kind} {n:,}" for kind, n in counts.items() if n) or "nothing"
