"""The in-flight window as plain logic: Little's law on observed latencies, no timing.

Latencies are handed to it as numbers; nothing here sleeps or measures time.
"""

from __future__ import annotations

import threading

import pytest

from nrr_sync.pacing import RateLimiter
from nrr_sync.window import HEADROOM, INITIAL_LATENCY, MAX_IN_FLIGHT, InFlightWindow


def window_for(endpoint_budget: float = 24, global_budget: float = 95, upper_bound=None):
    return InFlightWindow(lambda endpoint: endpoint_budget, lambda: global_budget, upper_bound)


def fill(window: InFlightWindow, endpoint: str) -> int:
    """Enter until the window says no; returns how many got in."""
    entered = 0
    while window.try_enter(endpoint):
        entered += 1
        assert entered <= MAX_IN_FLIGHT
    return entered


def test_the_window_keeps_budget_times_latency_in_flight():
    window = window_for(endpoint_budget=24)
    window.observe("/v1/invoices", 0.25)
    # 24/s x 0.25 s = 6 in flight, a quarter more for the wait at the limiter, plus one
    assert HEADROOM == 1.25
    assert window.limit("/v1/invoices") == 9
    assert fill(window, "/v1/invoices") == 9
    window.observe("/v1/customers", 0.75)
    assert window.limit("/v1/customers") == 24  # ceil(22.5) + 1: far beyond a fixed 8


def test_it_grows_and_shrinks_with_the_latency_it_measures():
    window = window_for(endpoint_budget=24)
    window.observe("/v1/invoices", 0.09)
    small = window.limit("/v1/invoices")
    for _ in range(30):
        window.observe("/v1/invoices", 0.75)
    assert window.latency("/v1/invoices") == pytest.approx(0.75, rel=0.01)
    large = window.limit("/v1/invoices")
    for _ in range(30):
        window.observe("/v1/invoices", 0.09)
    assert (small, large, window.limit("/v1/invoices")) == (4, 24, 4)


def test_a_full_window_opens_again_when_a_request_leaves():
    window = window_for(endpoint_budget=10)
    window.observe("/v1/invoices", 0.2)  # 10 x 0.2 x 1.25 + 1 = 4
    assert fill(window, "/v1/invoices") == 4
    assert window.in_flight("/v1/invoices") == 4
    assert window.try_enter("/v1/customers")  # another endpoint has its own room
    window.leave("/v1/invoices", 0.2)
    assert window.try_enter("/v1/invoices")
    assert not window.try_enter("/v1/invoices")


def test_the_global_budget_bounds_all_endpoints_together():
    window = window_for(endpoint_budget=24, global_budget=10)
    for endpoint in ("/v1/invoices", "/v1/customers", "/v1/prices"):
        window.observe(endpoint, 0.5)
    # each endpoint alone could have 16; together the global 10/s x 0.5 s x 1.25 + 1 = 8
    assert window.limit("/v1/invoices") == 16
    assert window.global_limit() == 8
    entered = sum(fill(window, e) for e in ("/v1/invoices", "/v1/customers", "/v1/prices"))
    assert entered == 8
    assert window.in_flight() == 8


def test_concurrency_is_an_upper_bound_only():
    window = window_for(endpoint_budget=24, upper_bound=5)
    window.observe("/v1/invoices", 0.75)
    assert window.limit("/v1/invoices") == 5
    assert fill(window, "/v1/invoices") == 5
    # below the bound the latency still decides
    window.observe("/v1/customers", 0.05)
    assert window.limit("/v1/customers") == 3


def test_without_budgets_the_window_stops_at_its_ceiling():
    window = window_for(endpoint_budget=100_000, global_budget=100_000)
    window.observe("/v1/invoices", 0.01)
    assert window.limit("/v1/invoices") == MAX_IN_FLIGHT


def test_an_endpoint_not_heard_from_yet_is_guessed_from_the_others():
    window = window_for(endpoint_budget=24)
    assert window.latency("/v1/invoices") == INITIAL_LATENCY
    window.observe("/v1/account", 0.2)
    window.observe("/v1/events", 0.4)
    assert window.latency("/v1/invoices") == pytest.approx(0.3)


def test_failed_requests_leave_without_moving_the_latency():
    window = window_for()
    window.observe("/v1/invoices", 0.25)
    assert window.try_enter("/v1/invoices")
    window.leave("/v1/invoices", None)  # a 429 or a dropped connection: no latency
    assert window.latency("/v1/invoices") == 0.25
    assert window.in_flight("/v1/invoices") == 0


def test_a_429_shrinks_the_window_with_the_budget():
    now = [0.0]
    limiter = RateLimiter(95, 24, clock=lambda: now[0], sleep=lambda s: None)
    window = InFlightWindow(limiter.budget, limiter.global_budget)
    window.observe("/v1/invoices", 0.75)
    before = window.limit("/v1/invoices")
    limiter.rate_limited("/v1/invoices")
    after = window.limit("/v1/invoices")
    assert (before, after) == (24, 17)  # ceil(16.8 x 0.75 x 1.25) + 1
    assert window.limit("/v1/customers") == before  # other endpoints keep theirs


def test_a_waiting_request_gives_up_when_the_run_stops():
    window = window_for(endpoint_budget=1)
    window.observe("/v1/invoices", 0.1)  # room for 2
    assert fill(window, "/v1/invoices") == 2
    stopping = threading.Event()
    stopping.set()
    assert window.enter("/v1/invoices", stopping) is False
    assert window.in_flight("/v1/invoices") == 2
    window.leave("/v1/invoices", 0.1)
    assert window.enter("/v1/invoices", stopping) is True


class _Api:
    """What the slice planner asks of the Stripe client: budgets and the window."""

    def __init__(self, latency: float):
        self.window = window_for(endpoint_budget=24)
        self.window.observe("/v1/invoices", latency)

    def endpoint_budget(self, path: str) -> float:
        return 24

    def global_budget(self) -> float:
        return 95


@pytest.mark.parametrize(
    ("latency", "pieces"),
    [
        (0.09, 4),  # 24/s x 0.09 s x 1.25 + 1 = 4 slices
        (0.25, 9),
        (0.75, 24),  # 24/s x 0.75 s x 1.25 + 1 = 24 slices
    ],
)
def test_the_planner_splits_a_slice_into_what_the_window_needs(latency, pieces):
    from nrr_sync.jobs.backfill import MIN_SLICE_PAGES, Slice, SlicePlanner

    invoices = Slice("s1", "acct_1", None, "invoices", 0, 100)
    planner = SlicePlanner(_Api(latency), [invoices])
    assert MIN_SLICE_PAGES == 2
    assert planner.pieces("invoices", remaining_pages=100) == pieces
    # the slices it made count: fewer (or no) more pieces while they are live
    wanted = planner.api.window.needed(24, "/v1/invoices")
    assert planner.pieces("invoices", remaining_pages=100) == min(1 + wanted - pieces, 50)
    # no piece is expected to be shorter than MIN_SLICE_PAGES pages
    assert SlicePlanner(_Api(latency), [invoices]).pieces("invoices", remaining_pages=5) == 2
