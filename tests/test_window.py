"""The in-flight window as plain logic: Little's law on observed latencies, no timing.

Latencies are handed to it as numbers; nothing here measures time (the tests of the
order in which waiting requests get through sleep a little to let each one queue up).
"""

from __future__ import annotations

import threading
import time

import pytest

from nrr_sync.pacing import RateLimiter
from nrr_sync.waiting_line import WaitingLine
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


def queue_up(enter, count: int) -> tuple[list[int], list[threading.Thread]]:
    """``count`` threads call ``enter(i)`` one after the other (each once the one before
    waits); returns the order in which they get through (filled as they do), and them."""
    order: list[int] = []
    threads = []
    for i in range(count):
        threads.append(threading.Thread(target=lambda i=i: order.append(enter(i))))
        threads[-1].start()
        time.sleep(0.03)  # it has found the way shut and waits
    return order, threads


def test_requests_waiting_for_the_window_enter_in_the_order_they_came():
    # Long invoices' extra line pages go before those of invoices fetched later, so each
    # page is complete (and can be landed) as soon as it can be.
    window = window_for(endpoint_budget=1)
    window.observe("/v1/invoices/{id}/lines", 0.1)  # room for 2
    assert fill(window, "/v1/invoices/{id}/lines") == 2

    def enter(i):
        assert window.enter("/v1/invoices/{id}/lines")
        return i

    order, threads = queue_up(enter, 8)
    assert order == []  # the positive control: all wait
    for _ in range(8):
        window.leave("/v1/invoices/{id}/lines", 0.1)
        time.sleep(0.02)
    for thread in threads:
        thread.join(timeout=5)
    assert order == list(range(8))


def test_patient_requests_let_the_others_go_first_and_keep_their_order():
    line = WaitingLine()
    turns = [line.join(), line.join(patient=True), line.join(), line.join(True), line.join()]
    assert not line.is_first(None)  # a newcomer waits behind them

    served = []
    while line:
        (first,) = [number for number, turn in enumerate(turns) if line.is_first(turn)]
        line.served(turns[first])
        served.append(first)

    assert served == [0, 2, 4, 1, 3]
    assert line.is_first(None)  # the positive control: an empty line lets one through


def test_a_patient_request_enters_the_window_after_those_that_came_later():
    # The pages of a slice that cannot be split let the other slices' pages go first:
    # those find the other seconds to read page after page, and the last one found ends
    # the backfill.
    window = window_for(endpoint_budget=1)
    window.observe("/v1/invoices", 0.1)  # room for 2
    assert fill(window, "/v1/invoices") == 2

    def enter(i):
        assert window.enter("/v1/invoices", patient=i == 1)
        return i

    order, threads = queue_up(enter, 5)
    assert order == []
    for _ in range(5):
        window.leave("/v1/invoices", 0.1)
        time.sleep(0.02)
    for thread in threads:
        thread.join(timeout=5)
    assert order == [0, 2, 3, 4, 1]


def test_a_request_that_stops_waiting_leaves_the_line_to_the_next():
    window = window_for(endpoint_budget=1)
    window.observe("/v1/invoices", 0.1)
    assert fill(window, "/v1/invoices") == 2
    stopping = threading.Event()
    first = threading.Thread(target=window.enter, args=("/v1/invoices", stopping))
    first.start()
    time.sleep(0.03)
    second_in = threading.Event()
    threading.Thread(
        target=lambda: window.enter("/v1/invoices") and second_in.set(), daemon=True
    ).start()
    time.sleep(0.03)
    stopping.set()  # the first in line gives up...
    first.join(timeout=5)
    window.leave("/v1/invoices", 0.1)
    assert second_in.wait(timeout=5)  # ...and the second gets the place that frees up
    assert window.in_flight("/v1/invoices") == 2


def test_workers_waiting_for_a_rate_slot_get_it_in_the_order_they_came():
    limiter = RateLimiter(1000, 20)  # a slot every 50 ms on the endpoint
    limiter.acquire("/v1/invoices/{id}/lines")

    def acquire(i):
        limiter.acquire("/v1/invoices/{id}/lines")
        return i

    order, threads = queue_up(acquire, 6)
    for thread in threads:
        thread.join(timeout=5)
    assert order == list(range(6))


def test_a_patient_worker_gets_its_rate_slot_after_those_that_came_later():
    limiter = RateLimiter(1000, 5)  # a slot every 200 ms on the endpoint
    limiter.acquire("/v1/invoices")

    def acquire(i):
        limiter.acquire("/v1/invoices", patient=i == 1)
        return i

    order, threads = queue_up(acquire, 5)  # all queue up before the next slot
    for thread in threads:
        thread.join(timeout=5)
    assert order == [0, 2, 3, 4, 1]


def test_a_worker_that_fails_while_waiting_for_a_slot_leaves_the_line():
    def sleep(seconds):
        if threading.current_thread().name == "quits":
            raise KeyboardInterrupt
        time.sleep(seconds)

    limiter = RateLimiter(1000, 5, sleep=sleep)  # a slot every 200 ms on the endpoint
    limiter.acquire("/v1/invoices")
    failed = []

    def quit_waiting():
        try:
            limiter.acquire("/v1/invoices")
        except KeyboardInterrupt:
            failed.append(True)

    quitter = threading.Thread(target=quit_waiting, name="quits")
    quitter.start()
    quitter.join(timeout=5)
    assert failed == [True]
    started = time.monotonic()
    limiter.acquire("/v1/invoices")  # not stuck behind the one that left
    assert time.monotonic() - started < 2


class _Api:
    """What the slice planner asks of the Stripe client: budgets and the window."""

    def __init__(self, latency: float, global_budget: float = 95):
        self.window = window_for(endpoint_budget=24)
        self.window.observe("/v1/invoices", latency)
        self._global_budget = global_budget

    def endpoint_budget(self, path: str) -> float:
        return 24

    def global_budget(self) -> float:
        return self._global_budget


@pytest.mark.parametrize(
    ("latency", "pieces"),
    [
        (0.09, 4),  # 24/s x 0.09 s x 1.25 + 1 = 4 slices
        (0.25, 9),
        (0.75, 24),  # 24/s x 0.75 s x 1.25 + 1 = 24 slices
    ],
)
def test_the_planner_splits_a_slice_into_what_the_window_needs(latency, pieces):
    from nrr_sync.jobs.backfill import Slice
    from nrr_sync.jobs.planner import MIN_SLICE_PAGES, SlicePlanner

    invoices = Slice("s1", "acct_1", None, "invoices", 0, 100)
    planner = SlicePlanner(_Api(latency), [invoices])
    assert MIN_SLICE_PAGES == 2
    assert planner.pieces(invoices, remaining_pages=100) == pieces
    # the slices it made count: fewer (or no) more pieces while they are live
    wanted = planner.api.window.needed(24, "/v1/invoices")
    assert planner.pieces(invoices, remaining_pages=100) == min(1 + wanted - pieces, 50)


def test_pieces_are_two_pages_or_more_until_the_kinds_pages_fit_in_the_window():
    from nrr_sync.jobs.backfill import Slice
    from nrr_sync.jobs.planner import MIN_SLICE_PAGES, SlicePlanner

    invoices = Slice("s1", "acct_1", None, "invoices", 0, 100)
    assert _Api(0.75).window.needed(24, "/v1/invoices") == 24
    # 30 pages left, more than the 24 the window holds: pieces of MIN_SLICE_PAGES or more
    assert MIN_SLICE_PAGES == 2
    assert SlicePlanner(_Api(0.75), [invoices]).pieces(invoices, remaining_pages=30) == 15
    # the kind's last 20 pages fit in the window: a piece a page, so the kind ends one
    # round trip later instead of two
    assert SlicePlanner(_Api(0.75), [invoices]).pieces(invoices, remaining_pages=20) == 20
    # at 90 ms the window holds 4: 5 pages left still go in pieces of 2 pages or more
    assert SlicePlanner(_Api(0.09), [invoices]).pieces(invoices, remaining_pages=5) == 2


def test_the_planner_splits_the_slice_with_the_most_pages_left():
    from nrr_sync.jobs.planner import SlicePlanner

    short, long, stuck = _slices(("invoices", "short"), ("invoices", "long"), ("invoices", "stuck"))
    planner = SlicePlanner(_Api(0.75), [short, long])
    planner.split("invoices", [long], 100)  # its first page is back: about 100 pages left
    # the window wants 24 slices and has 2, but a shorter slice is not the one to split
    assert planner.pieces(short, remaining_pages=6) == 1
    assert planner.live["invoices"] == 2
    # positive control: the longest slice's next page splits it
    assert planner.pieces(long, remaining_pages=99) == 23
    assert planner.live["invoices"] == 24
    # alone, the short slice would have been split (its 6 pages fit in the window: a
    # piece a page)
    alone = SlicePlanner(_Api(0.75), [short])
    assert alone.pieces(short, remaining_pages=6) == 6
    # a slice too short in time to split (invoices all created in one second) does not
    # hold the others back, however many pages it has left
    beside = SlicePlanner(_Api(0.75), [short, stuck])
    assert beside.pieces(stuck, remaining_pages=500, splittable=False) == 1
    assert beside.pieces(short, remaining_pages=6) == 3
    beside.slice_done(stuck)
    assert beside.unsplittable == set()


def test_a_burst_page_is_judged_by_its_kinds_density_not_its_own():
    from nrr_sync.jobs.planner import BURST_DENSITY, SlicePlanner

    planner = SlicePlanner(_Api(0.75), [])
    day, month = 86400, 30 * 86400
    # ordinary pages: a page a day; a month left is about 30 pages
    assert planner.pages_left_after("invoices", month, day) == (pytest.approx(30), False)
    assert planner.pages_left_after("invoices", month, day // 2) == (pytest.approx(60), False)
    # a page of renewals created in one second would make the month 2.6 million pages;
    # denser than BURST_DENSITY times the kind's pages so far, it is judged at their density
    burst, is_burst = planner.pages_left_after("invoices", month, 1)
    assert is_burst
    assert BURST_DENSITY * 3 / (day + day // 2 + 1) < 1
    assert burst == pytest.approx(month * 3 / (day + day // 2 + 1)) == pytest.approx(60, rel=0.01)
    # a page denser than the kind's pages so far, but not a burst, keeps its own density
    assert planner.pages_left_after("invoices", month, 3600) == (pytest.approx(720), False)
    # another kind keeps its own density
    assert planner.pages_left_after("customers", month, 1) == (month, False)


def _slices(*kinds_and_ids):
    from nrr_sync.jobs.backfill import Slice

    return [Slice(slice_id, "acct_1", None, kind, 0, 100) for kind, slice_id in kinds_and_ids]


def test_each_kind_is_split_for_the_rate_that_finishes_it_with_the_longest_kind():
    from nrr_sync.jobs.planner import FINISH_EARLY, SlicePlanner

    invoices, customers, subscriptions, credit_notes = _slices(
        ("invoices", "i"), ("customers", "c"), ("subscriptions", "s"), ("credit_notes", "n")
    )
    planner = SlicePlanner(_Api(0.75), [invoices, customers, subscriptions, credit_notes])
    for piece, pages in ((customers, 200), (subscriptions, 200), (credit_notes, 40)):
        planner.pieces(piece, pages, splittable=False)  # their first pages are back
    window = planner.api.window
    # The invoices (2,000 pages at 24/s: 83 s) take longest: they get their endpoint's
    # whole budget (24 slices at 0.75 s), where an even share of the global one would be
    # 95 / 4 = 23.75/s.
    assert planner.pieces(invoices, 2000) == window.needed(24, "/v1/invoices") == 24
    # The customers need 200 pages in 83 s, twice as fast for safety: 4.8/s, 6 slices
    # where their endpoint's budget would make 24.
    assert planner._rate("customers") == pytest.approx(FINISH_EARLY * 200 / (2000 / 24))
    assert planner.pieces(customers, 200) == window.needed(4.8, "/v1/customers") == 6
    # With a global budget that binds, it sets the time: 1,000 pages at 20/s take 50 s.
    invoices, customers = _slices(("invoices", "i"), ("customers", "c"))
    tight = SlicePlanner(_Api(0.75, global_budget=20), [invoices, customers])
    tight.pieces(customers, 250, splittable=False)
    tight.pieces(invoices, 750, splittable=False)
    assert tight._rate("customers") == pytest.approx(FINISH_EARLY * 250 / 50)
    assert tight._rate("invoices") == 24  # at most the endpoint's budget


def test_the_first_page_back_waits_for_the_others_before_it_splits(monkeypatch):
    import threading

    from nrr_sync.jobs import planner as planning

    def customers_pieces(planner, customers, out):
        out.append(planner.pieces(customers, 200))

    invoices, customers = _slices(("invoices", "i"), ("customers", "c"))
    planner = planning.SlicePlanner(_Api(0.75), [invoices, customers])
    out = []
    waiting = threading.Thread(target=customers_pieces, args=(planner, customers, out))
    waiting.start()
    planner.pieces(invoices, 2000, splittable=False)  # the invoices' first page is back
    waiting.join()
    assert out == [planner.api.window.needed(4.8, "/v1/customers")] == [6]
    # positive control: had the customers not waited, they would have seemed the longest
    monkeypatch.setattr(planning, "FIRST_PAGES_WAIT_SECONDS", 0.01)
    alone = planning.SlicePlanner(_Api(0.75), _slices(("invoices", "i"), ("customers", "c")))
    assert alone.pieces(customers, 200) == planner.api.window.needed(24, "/v1/customers")


def test_a_finished_slice_leaves_the_budget_to_the_kinds_still_listed():
    from nrr_sync.jobs.planner import SlicePlanner

    invoices, customers = _slices(("invoices", "i"), ("customers", "c"))
    planner = SlicePlanner(_Api(0.75, global_budget=10), [invoices, customers])
    planner.pieces(invoices, 100, splittable=False)
    planner.pieces(customers, 100, splittable=False)
    assert planner._rate("invoices") == pytest.approx(10)  # 2 x 100 pages in 200 / 10 s
    planner.slice_done(customers)
    assert planner._rate("invoices") == pytest.approx(20)  # 2 x 100 pages in 100 / 10 s
