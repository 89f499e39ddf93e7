"""What a run's engines share: the working copy, the Stripe client, counters, progress."""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING

import duckdb

from .. import kinds
from ..config import Config
from ..progress import Progress

if TYPE_CHECKING:  # imported when first used: a `build` alone never loads the Stripe SDK
    from ..stripe_api import StripeApi

log = logging.getLogger("nrr_sync")

COMMIT_EVERY_SECONDS = 1.0  # how often fetched work is landed and committed
# Allocations between two collections of the youngest generation while pages are fetched
# (Python's default is 700; see fewer_collections).
FETCH_GC_THRESHOLD = 50_000


class Job:
    """What one run works with: the working copy, the Stripe client, counters, progress."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        config: Config,
        progress: Progress,
        *,
        api_key: str | None = None,
    ):
        self.con = con
        self._api_key = api_key  # None: the one in the environment (stripe.api_key_env)
        self.config = config
        self.progress = progress
        self.objects: Counter[str] = Counter()
        self.since: str | None = None
        # Set when the work is abandoned (a failure, a signal, the end of a fetch): the
        # client's requests not yet sent fail at once, so no worker outlives the work.
        self.stopping = threading.Event()
        self._api: StripeApi | None = None
        self.own_account: dict | None = None  # the key's account, as accounts() read it

    @property
    def api(self) -> StripeApi:
        if self._api is None:
            from ..stripe_api import StripeApi

            self._api = StripeApi(
                self.config,
                api_key=self._api_key,
                checks=kinds.ANSWER_CHECKS,
                cancel=self.stopping,
            )
        return self._api

    def request_totals(self) -> dict[str, int]:
        if self._api is None:
            return {"requests": 0, "retries": 0, "rate_limited": 0}
        return self._api.stats.totals()

    def landed(self, kind: str, n: int) -> None:
        self.objects[kind] += n
        self.progress.advance(kind, n)

    def accounts(self) -> tuple[list[tuple[str, str | None]], datetime]:
        """[(account id, Stripe-Account header or None)] and the API server's clock."""
        own_account, now = self.api.whoami()
        self.own_account = own_account
        configured = self.config.stripe.accounts
        if not configured:
            return [(own_account["id"], None)], now
        return [(account, account) for account in configured], now


def rollback_quietly(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back if a transaction is still open (a failed commit already ended it), so
    the error that stopped the work is the one the user sees."""
    with contextlib.suppress(duckdb.Error):
        con.rollback()


@contextlib.contextmanager
def fewer_collections():
    """Collect cyclic garbage less often while pages are fetched.

    Parsing a page of 100 invoices makes tens of thousands of dicts and lists that live
    until the page is landed; at Python's default threshold (700 allocations) each page
    set off dozens of collections that walked them, and the full ones walked every page
    waiting to be landed (about 9 % of a backfill's CPU in a profile). Nothing is left
    uncollected: collections are rarer, and the objects alive before the fetch (modules,
    the SDK) are set aside from them meanwhile (``gc.freeze``). 2,500 customers, three
    backfills each way: 8.5 s of CPU against 9.2 s (docs/benchmarks.md).
    """
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(FETCH_GC_THRESHOLD, *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
