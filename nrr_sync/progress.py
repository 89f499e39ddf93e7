"""Progress of a run: bars per object type on a terminal, plain log lines under cron."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import Counter

log = logging.getLogger("nrr_sync")

LOG_EVERY_SECONDS = 15.0


class Progress:
    """``advance(kind, n)`` as objects land; a context manager around the work."""

    def __init__(self, *, tty: bool | None = None, enabled: bool = True):
        self.counts: Counter[str] = Counter()
        self._tty = sys.stderr.isatty() if tty is None else tty
        self._enabled = enabled and log.isEnabledFor(logging.INFO)
        self._bars = None
        self._tasks: dict[str, int] = {}
        self._last_log = time.monotonic()
        self._lock = threading.Lock()

    def __enter__(self) -> Progress:
        if self._enabled and self._tty:
            from rich.console import Console
            from rich.progress import Progress as Bars
            from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn

            self._bars = Bars(
                SpinnerColumn(),
                TextColumn("{task.description:<20}"),
                TextColumn("{task.completed:>10,.0f} fetched"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._bars.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._bars is not None:
            self._bars.stop()
            self._bars = None

    def advance(self, kind: str, n: int) -> None:
        with self._lock:
            self.counts[kind] += n
            if self._bars is not None:
                if kind not in self._tasks:
                    self._tasks[kind] = self._bars.add_task(kind, total=None)
                self._bars.update(self._tasks[kind], advance=n)
            elif self._enabled and time.monotonic() - self._last_log >= LOG_EVERY_SECONDS:
                self._last_log = time.monotonic()
                log.info("fetched so far: %s", describe_counts(self.counts))


def describe_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{kind} {n:,}" for kind, n in counts.items() if n) or "nothing"
