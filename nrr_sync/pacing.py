"""Pacing requests under Stripe's rate limits: a global budget and one per endpoint,
shared by every worker of a run, that slows down on 429 and recovers when it is quiet."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

from .config import Config
from .waiting_line import WaitingLine

# Stripe's documented limits; we aim at 80% of them unless configured.
LIVE_RATE, TEST_RATE, ENDPOINT_RATE, HEADROOM = 100.0, 25.0, 25.0, 0.8
# A 429 cuts the endpoint's budget by 30% and pauses every worker briefly; each quiet
# second gives back a tenth of the budget. Jitter alone can make a run paced just under
# Stripe's limit see an occasional 429, which must not halve it for long.
SLOWDOWN_FACTOR = 0.7
RECOVERY_SECONDS = 1.0
PAUSE_AFTER_429 = 0.1
MAX_NAP_SECONDS = 0.05
LATE_SLACK = 0.3  # of a slot: lateness a worker may make up (see RateLimiter.acquire)


def default_rates(api_key: str, config: Config) -> tuple[float, float]:
    """(global, per-endpoint) requests per second: configured, else 80% of Stripe's limits."""
    live = api_key.startswith(("sk_live_", "rk_live_"))
    stripe_settings = config.stripe
    global_rate = stripe_settings.max_requests_per_second or (
        (LIVE_RATE if live else TEST_RATE) * HEADROOM
    )
    endpoint_rate = stripe_settings.max_requests_per_second_per_endpoint or (
        ENDPOINT_RATE * HEADROOM
    )
    return float(global_rate), float(endpoint_rate)


class _Bucket:
    """Paces requests evenly at ``rate`` per second (no bursts: Stripe counts per second)."""

    def __init__(self, rate: float):
        self.base_rate = rate
        self.rate = rate
        self.next_free = 0.0
        self.recover_at = 0.0
        self.cut_at = -1e9
        # Workers waiting for a slot (waiting_line.py: in the order they came, patient
        # ones last).
        self.waiting = WaitingLine()


class RateLimiter:
    """A global budget and one per endpoint, shared by every worker thread of a run.

    ``acquire`` takes the next free slot in both, waiting for it in short naps so a
    change of budget applies to every waiting worker at once (nothing is reserved far
    ahead). A 429 cuts the endpoint's budget (once per burst of 429s) and pauses
    everyone briefly; the budget climbs back a step per quiet second.
    """

    def __init__(
        self,
        rate: float,
        endpoint_rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self._global = _Bucket(rate)
        self._endpoint_rate = endpoint_rate
        self._endpoints: dict[str, _Bucket] = {}
        self._paused_until = 0.0
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep

    def endpoint_rate(self, endpoint: str) -> float:
        with self._lock:
            return self._bucket(endpoint).rate

    def _bucket(self, endpoint: str) -> _Bucket:
        if endpoint not in self._endpoints:
            self._endpoints[endpoint] = _Bucket(self._endpoint_rate)
        return self._endpoints[endpoint]

    def global_budget(self) -> float:
        with self._lock:
            return self._global.rate

    def budget(self, endpoint: str) -> float:
        """Requests per second ``endpoint`` may get: its own budget within the global one."""
        with self._lock:
            return min(self._global.rate, self._bucket(endpoint).rate)

    def acquire(self, endpoint: str, patient: bool = False) -> float:
        """Wait for a request slot on ``endpoint``, after the workers already waiting for
        one (``patient``: after every request that is not); returns the seconds waited."""
        waited = 0.0
        with self._lock:
            line = self._bucket(endpoint).waiting
            turn = line.join(patient)
        try:
            while True:
                with self._lock:
                    now = self._clock()
                    bucket = self._bucket(endpoint)
                    if bucket.rate < bucket.base_rate and now >= bucket.recover_at:
                        bucket.rate = min(bucket.base_rate, bucket.rate + bucket.base_rate / 10)
                        bucket.recover_at = now + RECOVERY_SECONDS
                    start = max(self._global.next_free, bucket.next_free, self._paused_until)
                    if not line.is_first(turn):  # not before the slot after the next one
                        start = max(start, now) + 1 / bucket.rate
                    elif start <= now:
                        line.served(turn)
                        for pace in (self._global, bucket):
                            # A worker that leaves a little after its slot (a nap that
                            # overslept, a busy interpreter, the global slot just taken by
                            # another endpoint) keeps the schedule: the next slot stays
                            # where it was instead of moving on by the lateness. Up to
                            # LATE_SLACK of a slot is absorbed (12.5 ms at 24/s, more than
                            # a global slot at 95/s). Slots stay 1/rate apart and a request
                            # leaves at most that after its own, so no second ever holds
                            # more than one request over the budget; half a slot was as
                            # fast and left arrivals less room before Stripe's limit.
                            on_time = max(pace.next_free, now - LATE_SLACK / pace.rate)
                            pace.next_free = on_time + 1 / pace.rate
                        return waited
                nap = min(start - now, MAX_NAP_SECONDS)
                self._sleep(nap)
                waited += nap
        finally:
            with self._lock:
                line.leave(turn)  # if it left before its turn (an exception while napping)

    def rate_limited(self, endpoint: str) -> None:
        """Stripe answered 429 on ``endpoint``: slow that endpoint down, pause everyone."""
        with self._lock:
            now = self._clock()
            bucket = self._bucket(endpoint)
            # The 429s of requests already in flight tell nothing new: one cut per second.
            if now >= bucket.cut_at + RECOVERY_SECONDS:
                bucket.rate = max(bucket.rate * SLOWDOWN_FACTOR, bucket.base_rate / 10)
                bucket.cut_at = now
            bucket.recover_at = now + RECOVERY_SECONDS
            self._paused_until = max(self._paused_until, now + PAUSE_AFTER_429)


class RequestStats:
    """Requests, retries and 429s per endpoint, counted from every worker."""

    def __init__(self):
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.retries: Counter[str] = Counter()
        self.rate_limited: Counter[str] = Counter()

    def count(self, counter: Counter, endpoint: str) -> None:
        with self._lock:
            counter[endpoint] += 1

    def totals(self) -> dict[str, int]:
        with self._lock:
            return {
                "requests": sum(self.requests.values()),
                "retries": sum(self.retries.values()),
                "rate_limited": sum(self.rate_limited.values()),
            }

    def by_endpoint(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {
                endpoint: {
                    "requests": self.requests[endpoint],
                    "retries": self.retries[endpoint],
                    "rate_limited": self.rate_limited[endpoint],
                }
                for endpoint in sorted(self.requests)
            }
