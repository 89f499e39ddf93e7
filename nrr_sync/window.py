"""How many requests a run keeps in flight: Little's law on the latency it measures.

A budget of R requests per second at W seconds per answer needs R x W requests in
flight. Fewer, and the latency holds the run back below its budget (a fixed window of
8 allows 32 requests/s at 250 ms and 10/s at 750 ms); more, and the extra requests only
wait for the rate limiter, while in a backfill every extra time slice costs one more
partial page. So the window measures each endpoint's latency and keeps
``budget x latency x HEADROOM + 1`` requests in flight per endpoint, and over all
endpoints as many as the global budget needs at the slowest of them; within
``stripe.concurrency`` when that is set. A 429 lowers the budget (``RateLimiter``), and
the window follows it.

The window is entered before the rate limiter is asked for a slot, so a request waiting
for its slot counts as in flight: the HEADROOM covers that wait, and the rate limiter,
not the window, is what binds at steady state.
"""

from __future__ import annotations

import math
import threading
from collections import Counter, defaultdict
from collections.abc import Callable

from .waiting_line import Turn, WaitingLine

HEADROOM = 1.25
# Seconds per answer assumed for an endpoint not heard from yet, when no other endpoint
# has answered either (else their average is the better guess).
INITIAL_LATENCY = 0.5
SMOOTHING = 0.2  # weight of each new latency sample in the moving average
# A ceiling on requests in flight (and worker threads) when nothing else bounds them,
# e.g. budgets set far above Stripe's limits against a local server.
MAX_IN_FLIGHT = 128
WAIT_SLICE_SECONDS = 0.05  # a waiting request re-checks the window at least this often


class InFlightWindow:
    """Per endpoint and global limits on requests in flight, from measured latency.

    ``budget(endpoint)`` and ``global_budget()`` are the current budgets in requests per
    second (the rate limiter's, which shrink after a 429); ``upper_bound`` is the
    configured ``stripe.concurrency`` or None.
    """

    def __init__(
        self,
        budget: Callable[[str], float],
        global_budget: Callable[[], float],
        upper_bound: int | None = None,
    ):
        self._budget = budget
        self._global_budget = global_budget
        self.upper_bound = min(upper_bound or MAX_IN_FLIGHT, MAX_IN_FLIGHT)
        self._latency: dict[str, float] = {}
        self._in_flight: Counter[str] = Counter()
        self._total = 0
        # Requests waiting for a place, per endpoint (waiting_line.py: in the order they
        # came, patient ones last).
        self._waiting: defaultdict[str, WaitingLine] = defaultdict(WaitingLine)
        self._changed = threading.Condition()

    # What it measures -------------------------------------------------------------

    def observe(self, endpoint: str, seconds: float) -> None:
        """An answer from ``endpoint`` took ``seconds`` on the wire."""
        with self._changed:
            previous = self._latency.get(endpoint)
            self._latency[endpoint] = (
                seconds if previous is None else (1 - SMOOTHING) * previous + SMOOTHING * seconds
            )
            self._changed.notify_all()

    def latency(self, endpoint: str) -> float:
        """Seconds per answer from ``endpoint``: measured, else the others' average."""
        with self._changed:
            return self._latency_of(endpoint)

    def _latency_of(self, endpoint: str) -> float:
        if endpoint in self._latency:
            return self._latency[endpoint]
        if self._latency:
            return sum(self._latency.values()) / len(self._latency)
        return INITIAL_LATENCY

    # What it allows ---------------------------------------------------------------

    def needed(self, rate: float, endpoint: str) -> int:
        """Requests in flight that keep ``rate`` per second going on ``endpoint``."""
        with self._changed:
            return self._needed(rate, self._latency_of(endpoint))

    def _needed(self, rate: float, latency: float) -> int:
        return min(math.ceil(rate * latency * HEADROOM) + 1, self.upper_bound)

    def limit(self, endpoint: str) -> int:
        """Requests ``endpoint`` may have in flight."""
        return self.needed(self._budget(endpoint), endpoint)

    def global_limit(self) -> int:
        """Requests all endpoints together may have in flight."""
        rate = self._global_budget()
        with self._changed:
            slowest = max(self._latency.values(), default=INITIAL_LATENCY)
            return self._needed(rate, slowest)

    def in_flight(self, endpoint: str | None = None) -> int:
        with self._changed:
            return self._total if endpoint is None else self._in_flight[endpoint]

    # Entering and leaving -----------------------------------------------------------

    def try_enter(self, endpoint: str, waiting: Turn | None = None) -> bool:
        """Take a place in the window if there is room and no request of ``endpoint``
        waits before this one (``waiting``: its place in the line); never waits."""
        limit, global_limit = self.limit(endpoint), self.global_limit()
        with self._changed:
            line = self._waiting[endpoint]
            if not line.is_first(waiting):
                return False
            if self._in_flight[endpoint] >= limit or self._total >= global_limit:
                return False
            if waiting is not None:
                line.served(waiting)
                self._changed.notify_all()  # the next in line may fit too
            self._in_flight[endpoint] += 1
            self._total += 1
            return True

    def enter(
        self, endpoint: str, stopping: threading.Event | None = None, patient: bool = False
    ) -> bool:
        """Wait for a place in the window, after the requests of ``endpoint`` already
        waiting (``patient``: after every request that is not); False if ``stopping`` was set
        first."""
        if self.try_enter(endpoint):
            return True
        with self._changed:
            waiting = self._waiting[endpoint].join(patient)
        try:
            while not self.try_enter(endpoint, waiting):
                if stopping is not None and stopping.is_set():
                    return False
                with self._changed:
                    self._changed.wait(WAIT_SLICE_SECONDS)
            return True
        finally:
            with self._changed:
                if self._waiting[endpoint].leave(waiting):  # gave up (stopping) first
                    self._changed.notify_all()

    def leave(self, endpoint: str, seconds: float | None = None) -> None:
        """A request left the window; ``seconds`` is its latency if it got an answer."""
        with self._changed:
            self._in_flight[endpoint] = max(self._in_flight[endpoint] - 1, 0)
            self._total = max(self._total - 1, 0)
            self._changed.notify_all()
        if seconds is not None:
            self.observe(endpoint, seconds)
