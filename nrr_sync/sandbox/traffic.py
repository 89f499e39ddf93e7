"""The sandbox server's traffic: the knobs tests and benchmarks turn (latency, rate limits
answering 429, injected 500/503 and dropped connections), the decision taken on each
request, and the request statistics the admin endpoints read and reset.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass

from .api_requests import ApiError


@dataclass
class Knobs:
    latency_ms: float = 0
    rate_limit: int = 0  # requests per second over all endpoints; 0 = off
    endpoint_rate_limit: int = 0  # requests per second per route template; 0 = off
    fault_rate: float = 0.0  # fraction answered 500 / 503
    drop_rate: float = 0.0  # fraction whose connection is closed without an answer
    burst_429: int = 0  # answer the next N requests with 429


class Traffic:
    """Statistics, knobs and the fate of each request (a part of ``server.Sandbox``, a
    mixin: it uses the sandbox's ``world``, ``knobs``, ``stats_lock``, ``random``,
    ``windows`` and ``in_flight``)."""

    # -- statistics and knobs --------------------------------------------------------

    def reset_stats(self) -> None:
        with self.stats_lock:
            self.counters = {
                "requests": 0,
                "rate_limited": 0,
                "faults": 0,
                "drops": 0,
                "by_endpoint": collections.Counter(),
                "by_status": collections.Counter(),
                "rate_limited_by_endpoint": collections.Counter(),
                "in_flight_peak": 0,  # most API requests being served at once
                # Wall-clock times (unix seconds) of the first API request and the last
                # answer since the reset: what a client's run spent before and after them
                # is its own start-up and finish (benchmarks/backfill_throughput.py).
                "first_request_at": None,
                "last_answer_at": None,
            }

    def stats(self) -> dict:
        with self.stats_lock:
            counters = self.counters
            return {
                "requests": counters["requests"],
                "rate_limited": counters["rate_limited"],
                "faults": counters["faults"],
                "drops": counters["drops"],
                "by_endpoint": dict(counters["by_endpoint"]),
                "by_status": {str(k): v for k, v in sorted(counters["by_status"].items())},
                "rate_limited_by_endpoint": dict(counters["rate_limited_by_endpoint"]),
                "in_flight_peak": counters["in_flight_peak"],
                "first_request_at": counters["first_request_at"],
                "last_answer_at": counters["last_answer_at"],
                "now": self.world.now,
                "knobs": vars(self.knobs).copy(),
            }

    def request_started(self) -> None:
        with self.stats_lock:
            if self.counters["first_request_at"] is None:
                self.counters["first_request_at"] = time.time()
            self.in_flight += 1
            peak = max(self.counters["in_flight_peak"], self.in_flight)
            self.counters["in_flight_peak"] = peak

    def request_finished(self) -> None:
        with self.stats_lock:
            self.in_flight -= 1
            self.counters["last_answer_at"] = time.time()

    def set_knobs(self, **changes) -> dict:
        with self.stats_lock:
            for name, value in changes.items():
                if not hasattr(self.knobs, name):
                    raise ApiError(400, f"Unknown knob: {name}", param=name)
                current = getattr(self.knobs, name)
                try:
                    value = type(current)(value)
                except (TypeError, ValueError):
                    raise ApiError(
                        400, f"Invalid value for {name}: {value!r}", param=name
                    ) from None
                if value < 0 or (name.endswith("_rate") and value > 1):
                    raise ApiError(400, f"Invalid value for {name}: {value!r}", param=name)
                setattr(self.knobs, name, value)
            return vars(self.knobs).copy()

    def admit(self, template: str) -> str | None:
        """Count a request and decide its fate: None (serve it), or drop / fault / 429."""
        with self.stats_lock:
            counters = self.counters
            counters["requests"] += 1
            counters["by_endpoint"][template] += 1
            knobs = self.knobs
            if knobs.drop_rate or knobs.fault_rate:
                draw = self.random.random()
                if draw < knobs.drop_rate:
                    counters["drops"] += 1
                    return "drop"
                if draw < knobs.drop_rate + knobs.fault_rate:
                    counters["faults"] += 1
                    return "fault_503" if self.random.random() < 1 / 3 else "fault_500"
            if knobs.burst_429 > 0:
                knobs.burst_429 -= 1
                return self._rate_limited(template, "burst")
            now = time.monotonic()
            limits = []
            if knobs.rate_limit:
                limits.append(("*", knobs.rate_limit, "global-rate"))
            if knobs.endpoint_rate_limit:
                limits.append((template, knobs.endpoint_rate_limit, "endpoint-rate"))
            for key, limit, reason in limits:
                window = self.windows[key]
                while window and window[0] <= now - 1.0:
                    window.popleft()
                if len(window) >= limit:
                    return self._rate_limited(template, reason)
            for key, _, _ in limits:
                self.windows[key].append(now)
            return None

    def _rate_limited(self, template: str, reason: str) -> str:
        self.counters["rate_limited"] += 1
        self.counters["rate_limited_by_endpoint"][template] += 1
        return f"429:{reason}"

    def count_status(self, status: int) -> None:
        with self.stats_lock:
            self.counters["by_status"][status] += 1

    def next_request_id(self) -> str:
        with self.stats_lock:
            self.response_number += 1
            number = self.response_number
        return f"req_sandbox{number:010d}"
