"""How many pieces the backfill splits a slice's remainder into.

Enough slices of a kind must be in flight to keep its endpoint busy at its budget: as
many as the in-flight window says that budget needs at the endpoint's measured latency
(Little's law). Every extra slice costs one partial page at its end, so no more than
that.

A kind's rate is what finishes its pages when the kind that takes longest finishes,
twice over for safety (pages are estimated from the pages fetched so far), within its
endpoint's budget: the backfill's budget bound, kind by kind. The kind that takes
longest (the invoices, in most accounts) gets its endpoint's budget, or its share of the
global one when that binds. Splitting every kind for its full endpoint budget listed the
customers and subscriptions of a 20,000-customer account at 24 requests a second each
for their first ten seconds, beside the invoices: more pages a second than nrr-sync's
one core for Python could land, so the invoices went at about 20 a second until they
were done; and every extra slice of theirs cost a partial page.
"""

from __future__ import annotations

import threading
from collections import Counter

from .. import kinds

MIN_SLICE_PAGES = 2  # no piece split off a slice is expected to be shorter
UNKNOWN_PAGES = 1.0  # what a slice whose first page is still on its way is assumed to hold
# A page denser than this many times its kind's pages so far (over the seconds they
# covered) is a burst, such as renewals sharing a billing date: it says nothing of the
# rest of its slice's range, which is then judged by the kind's density instead. Far
# above what an account's growth makes (its newest month 2.2 times its average month at
# 20,000 customers): 4 took ordinary dense pages for bursts and split too little.
BURST_DENSITY = 50.0
FINISH_EARLY = 2.0  # kinds aim to be done this many times sooner than the longest one
# The first pages of all kinds are asked for together; the first back waits for the
# others' (at most this long) to know which kind takes longest before it splits.
FIRST_PAGES_WAIT_SECONDS = 0.5


class SlicePlanner:
    """Splits slices (``backfill.Slice``: ``kind``, ``key``) for one backfill's fetch."""

    def __init__(self, api, slices: list):
        self.api = api
        self.live: Counter[str] = Counter(piece.kind for piece in slices)
        # Pages each live slice still has, by kind and slice key (as last estimated).
        self.pages_left: dict[str, dict[str, float]] = {}
        # Live slices left with too short a time to split (objects created in the same
        # second, as at a billing date shared by many subscriptions): never the one to split.
        self.unsplittable: set[str] = set()
        # Per kind: pages fetched, and the seconds of created time they covered.
        self.pages_fetched: Counter[str] = Counter()
        self.seconds_covered: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.estimated = threading.Condition(self.lock)

    def pieces(self, piece, remaining_pages: float, splittable: bool = True, burst=None) -> int:
        """Into how many pieces to split what is left of ``piece`` (about
        ``remaining_pages`` pages); 1 leaves it whole. ``burst``: a slice split off it
        beforehand, the rest of a burst's second: never split, and a live slice beside
        the pieces returned."""
        endpoint = kinds.BY_TABLE[piece.kind].path
        with self.lock:
            if burst is not None:
                self.live[piece.kind] += 1
                self.unsplittable.add(burst.key)
                self._estimate(piece.kind, burst.key, UNKNOWN_PAGES)
            self._estimate(piece.kind, piece.key, remaining_pages)
            if not splittable:
                self.unsplittable.add(piece.key)
                return 1
            self.unsplittable.discard(piece.key)
            self.estimated.wait_for(self._every_kind_estimated, FIRST_PAGES_WAIT_SECONDS)
            budget = self._rate(piece.kind)
            wanted = self.api.window.needed(budget, endpoint)
            # Pieces of at least MIN_SLICE_PAGES: each one ends with a partial page. Once
            # all the kind's pages left fit in the window at once (the end of the kind),
            # its endpoint has room to spare: a partial page then costs no time, and a
            # page that waits for the one before it costs a round trip, so single pages.
            kind_pages_left = sum(self.pages_left[piece.kind].values())
            smallest = 1 if kind_pages_left <= wanted else MIN_SLICE_PAGES
            pieces = min(
                1 + max(0, wanted - self.live[piece.kind]),
                int(remaining_pages // smallest),
            )
            longest = max(
                pages
                for key, pages in self.pages_left[piece.kind].items()
                if key not in self.unsplittable
            )
            if pieces > 1 and remaining_pages < longest:
                # Split the slice with the most pages left, not the first one back: halving
                # a short slice makes two that end soon, and each end asks for another
                # split, so short slices breed (at 750 ms, 159 slices of invoices at
                # 20,000 customers, half a page wasted at each one's end). The longest
                # one's next page is at most one round trip away.
                return 1
            pieces = max(pieces, 1)
            self.live[piece.kind] += pieces - 1
            return pieces

    def pages_left_after(
        self, kind: str, seconds_left: int, page_seconds: int
    ) -> tuple[float, bool]:
        """Pages left in a slice's ``seconds_left`` seconds, after a page of ``kind`` that
        covered ``page_seconds``, and whether that page was a burst. Judged at the page's
        density (recent pages are usually the densest, so this rather overestimates), or
        at the kind's density so far after a burst (100 objects of one second would make
        a month 2.6 million pages)."""
        page_seconds = max(page_seconds, 1)
        with self.lock:
            self.pages_fetched[kind] += 1
            self.seconds_covered[kind] += page_seconds
            average = self.pages_fetched[kind] / self.seconds_covered[kind]
        density = 1 / page_seconds
        burst = density > BURST_DENSITY * average
        return seconds_left * (average if burst else density), burst

    def split(self, kind: str, pieces: list, remaining_pages: float) -> None:
        """``pieces`` (the remainder and what was split off it) share its pages evenly."""
        with self.lock:
            for piece in pieces:
                self._estimate(kind, piece.key, remaining_pages / len(pieces))

    def slice_done(self, piece) -> None:
        with self.lock:
            self.live[piece.kind] -= 1
            self.pages_left.get(piece.kind, {}).pop(piece.key, None)
            self.unsplittable.discard(piece.key)
            self.estimated.notify_all()

    def pages_remaining(self) -> float:
        """Pages the live slices of every kind are estimated to hold still."""
        with self.lock:
            return sum(sum(pages.values()) for pages in self.pages_left.values())

    def _estimate(self, kind: str, key: str, pages: float) -> None:
        self.pages_left.setdefault(kind, {})[key] = pages
        self.estimated.notify_all()

    def _every_kind_estimated(self) -> bool:
        return all(self.pages_left.get(kind) for kind, live in self.live.items() if live > 0)

    def _rate(self, kind: str) -> float:
        """Requests per second ``kind`` needs: its pages done FINISH_EARLY times sooner
        than the kind that takes longest at its budget (the global budget counting all
        kinds' pages), at most its endpoint's budget."""
        pages = {
            other: max(sum(self.pages_left.get(other, {}).values()), UNKNOWN_PAGES * live)
            for other, live in self.live.items()
            if live > 0 or other == kind
        }
        endpoint_budget = {
            other: self.api.endpoint_budget(kinds.BY_TABLE[other].path) for other in pages
        }
        seconds = max(
            max(pages[other] / endpoint_budget[other] for other in pages),
            sum(pages.values()) / self.api.global_budget(),
        )
        return min(endpoint_budget[kind], FINISH_EARLY * pages[kind] / seconds)
