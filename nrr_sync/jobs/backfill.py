"""The backfill: every kind listed in ``created`` time slices, fetched in parallel.

A slice is fetched page by page (newest first); after a page that says ``has_more``,
its remainder goes back on the queue, split into pieces while there are too few slices
of that kind to keep its endpoint busy at the rate limit (every slice ends with one
partial page, so no more). Pages are landed in bulk about once a second, each together
with its slice's new checkpoint, so a killed backfill resumes where it stopped and
lands exactly what an uninterrupted one would.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime

import duckdb

from .. import kinds, landing, load
from ..config import parse_month
from ..stripe_api import StripeApi
from . import state as checkpoints
from .checkpointing import LandingLog, set_checkpoint_threshold
from .context import COMMIT_EVERY_SECONDS, Job, fewer_collections, rollback_quietly
from .planner import SlicePlanner

log = logging.getLogger("nrr_sync")

# No Stripe object is older than this (nor than its account); slices are split above it.
SPLIT_FLOOR = 1262304000  # 2010-01-01
MIN_SPLIT_SECONDS = 8  # a slice spanning less time is not split
MAX_BATCH_ROWS = 20_000  # rows held before they are written, whatever the pace
PAGES_QUEUED = 64  # fetched pages waiting for the writer (rows only, so small)
FETCH_MEMORY_LIMIT = "256MB"  # DuckDB's while pages are landed
# DuckDB's threads while pages are landed: a second thread made landing a batch cost more
# CPU, 3.3 against 3.1 ms a page of invoices, and no less time (docs/benchmarks.md,
# section 4). The build after the fetch gets all of them back.
FETCH_THREADS = 1


@dataclass
class Slice:
    """Objects of one kind and account with ``gte <= created < lt``, after ``after``."""

    id: str
    account: str
    header: str | None  # Stripe-Account header, None for the key's own account
    kind: str
    gte: int
    lt: int
    after: str | None = None
    floor: int = 0  # no object is older: remainders are split above it

    @property
    def key(self) -> str:
        return f"{checkpoints.SLICE}{self.account}:{self.kind}:{self.id}"

    def dump(self) -> str:
        return json.dumps(asdict(self))

    @staticmethod
    def load(text: str) -> Slice:
        return Slice(**json.loads(text))


def backfill(job: Job, since: str, restart: bool) -> None:
    con = job.con
    parse_month(since, "since")
    job.since = since
    state = checkpoints.state_with_prefix(con, checkpoints.BACKFILL)
    resume = (
        not restart
        and state.get(checkpoints.BACKFILL_STATUS) == "running"
        and state.get(checkpoints.BACKFILL_SINCE) == since
    )
    first_pages: dict[str, Future] = {}
    if resume:
        slices = [Slice.load(v) for k, v in state.items() if k.startswith(checkpoints.SLICE)]
        log.info("resuming the backfill from %s: %d slice(s) left", since, len(slices))
    else:
        slices, first_pages = _start_backfill(job, since)
    with fewer_collections():
        _fetch_slices(job, slices, first_pages)

    state = checkpoints.state_with_prefix(con, checkpoints.BACKFILL)
    final = {
        key: None
        for key in state
        if key.startswith((checkpoints.SLICE, checkpoints.BACKFILL_CURSOR))
    }
    for key, value in state.items():
        if key.startswith(checkpoints.BACKFILL_CURSOR):
            account = key.removeprefix(checkpoints.BACKFILL_CURSOR)
            final[checkpoints.event_cursor_key(account)] = value
    final.update(
        {
            checkpoints.BACKFILL_STATUS: "done",
            checkpoints.REPORT_SINCE: since,
            checkpoints.REPORT_AS_OF: state[checkpoints.BACKFILL_AS_OF],
        }
    )
    con.begin()
    checkpoints.delete_state_prefix(con, checkpoints.EVENTS)
    checkpoints.set_state(con, final)
    con.commit()


def lookback_start(since: str, lookback_months: int) -> int:
    """Where the kinds that follow invoices are listed from (``Kind.since_lookback``):
    ``since`` less the lookback months, a day earlier so that month starts in any
    reporting time zone are covered (unix seconds)."""
    year, month = parse_month(since, "since")
    months_back = year * 12 + month - 1 - lookback_months
    start = datetime(months_back // 12, months_back % 12 + 1, 1, tzinfo=UTC)
    return int(start.timestamp()) - 86400


def _start_backfill(job: Job, since: str) -> tuple[list[Slice], dict[str, Future]]:
    """Forget earlier data and checkpoints; plan the first slices; remember the cursors.

    Returns the slices and the answer to come of each one's first page (by ``Slice.key``)."""
    api = job.api
    invoices_from_epoch = lookback_start(since, job.config.sync.invoice_lookback_months)
    # The key's account and the API's clock, each account's creation (no object is older:
    # slices are split above it), its newest event (where the next sync starts) and the
    # first page of every kind, all asked side by side: none needs another's answer
    # (configured accounts are the Stripe-Account headers; without them, the key's own
    # account, read by accounts()). The first pages are asked before the clock is known
    # (``_trimmed``), and waited for by the slices' workers, so a failure among them stops
    # a backfill already started, as a failure of any later page does.
    headers = list(job.config.stripe.accounts) or [None]
    pool = ThreadPoolExecutor(max_workers=1 + len(headers) * (2 + len(kinds.KINDS)))
    try:
        own = pool.submit(job.accounts)  # first: every slice ends at the clock it reads
        newest = [pool.submit(api.get, "/v1/events", {"limit": 1}, account=h) for h in headers]
        infos = [pool.submit(api.get, "/v1/account", account=h) for h in headers if h]
        first_pages = {
            (h, kind.table): pool.submit(
                api.list_page,
                kind.path,
                {**kind.list_params, "created": {"gte": _slice_start(kind, invoices_from_epoch)}},
                account=h,
            )
            for h in headers
            for kind in kinds.KINDS
        }
        accounts, as_of = own.result()
        infos = [future.result() for future in infos] or [job.own_account]
        newest = [future.result() for future in newest]
    finally:
        pool.shutdown(wait=False)
    as_of_epoch = int(as_of.timestamp())

    values: dict[str, str | None] = {
        checkpoints.BACKFILL_SINCE: since,
        checkpoints.BACKFILL_STATUS: "running",
        checkpoints.BACKFILL_AS_OF: as_of.isoformat().replace("+00:00", "Z"),
    }
    slices = []
    for (account, header), info, latest in zip(accounts, infos, newest, strict=True):
        created = info.get("created")
        floor = int(created) if isinstance(created, int) else SPLIT_FLOOR
        events = latest.get("data") or []
        cursor = (
            checkpoints.EventCursor(events[0]["created"], events[0]["id"])
            if events
            else checkpoints.EventCursor(as_of_epoch)
        )
        values[checkpoints.backfill_cursor_key(account)] = cursor.dump()
        for kind in kinds.KINDS:
            slices.append(
                Slice(
                    uuid.uuid4().hex[:10],
                    account,
                    header,
                    kind.table,
                    _slice_start(kind, invoices_from_epoch),
                    as_of_epoch + 1,
                    None,
                    floor,
                )
            )
    for piece in slices:
        values[piece.key] = piece.dump()

    con = job.con
    con.begin()
    for table in kinds.TABLES:
        con.execute(f"DELETE FROM stripe.{table}")
    for prefix in (checkpoints.BACKFILL, checkpoints.EVENTS, checkpoints.REPORT):
        checkpoints.delete_state_prefix(con, prefix)
    checkpoints.set_state(con, values)
    con.commit()
    log.info(
        "backfill from %s (invoices from %s) as of %s for %d account(s)",
        since,
        datetime.fromtimestamp(invoices_from_epoch + 86400, tz=UTC).strftime("%Y-%m"),
        values[checkpoints.BACKFILL_AS_OF],
        len(accounts),
    )
    return slices, {piece.key: first_pages[piece.header, piece.kind] for piece in slices}


def _slice_start(kind: kinds.Kind, invoices_from_epoch: int) -> int:
    return invoices_from_epoch if kind.since_lookback else 0


@dataclass
class PageResult:
    piece: Slice
    rows: dict[str, list[tuple]]  # landing rows per table (built by the worker)
    rest: Slice | None  # the slice's unfetched remainder, None when done
    split_off: list[Slice]  # new slices split off the remainder


def _fetch_slices(job: Job, slices: list[Slice], first_pages: dict[str, Future]) -> None:
    """Fetch every slice with a pool of workers; land and checkpoint pages in this thread.

    A worker thread per slice in flight, started as slices are split (the planner and
    the in-flight window decide how many; ``stripe.concurrency`` caps them when set).
    ``first_pages``: pages already asked for, by ``Slice.key`` (``_start_backfill``).
    """
    if not slices:
        return
    api = job.api
    stopping = job.stopping
    stopping.clear()
    planner = SlicePlanner(api, slices)
    synced_at = landing.now_utc()
    # Room for the pages fetched while the writer lands a batch; rows only, so small.
    results: queue.Queue = queue.Queue(maxsize=PAGES_QUEUED)
    opened = threading.Event()
    opened.set()
    workers = ThreadPoolExecutor(max_workers=api.window.upper_bound)
    # Extra line / item pages of long invoices and subscriptions, fetched side by side.
    sub_requests = ThreadPoolExecutor(max_workers=api.window.upper_bound)

    def hand_over(item, after: threading.Event) -> None:
        while not after.wait(timeout=0.2):
            if stopping.is_set():
                return
        while not stopping.is_set():
            try:
                results.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def fetch(piece: Slice, after: threading.Event) -> None:
        """One page of ``piece``; ``after`` opens once the page before it was handed to
        the writer, so a slice's pages always reach the writer in order."""
        handed = threading.Event()
        try:
            first_page = first_pages.pop(piece.key, None)
            if first_page is not None:
                first_page = first_page.result()
            page, rest, split_off = _fetch_page(api, piece, planner, first_page)
            if rest is None:
                planner.slice_done(piece)
            # The slice goes on while this page's long invoices are completed.
            for follow_up in (rest, *split_off):
                if follow_up is not None:
                    workers.submit(fetch, follow_up, handed)
            _complete(api, piece, page, sub_requests)
            rows = landing.rows_of(kinds.BY_TABLE[piece.kind], piece.account, page, synced_at)
        except BaseException as error:  # handed to the writer, which stops the run
            hand_over(error, opened)
            return
        hand_over(PageResult(piece, rows, rest, split_off), after)
        handed.set()

    for piece in slices:
        workers.submit(fetch, piece, opened)
    live = len(slices)
    # Appending needs little memory; without a limit DuckDB would keep caching what it
    # wrote, and the job's memory would grow with the account. The build gets it back.
    job.con.execute(f"SET memory_limit = '{FETCH_MEMORY_LIMIT}'")
    job.con.execute(f"SET threads = {FETCH_THREADS}")
    set_checkpoint_threshold(job.con)
    wal, ending = LandingLog.of(job.con), False
    try:
        while live:
            # Pages are landed about once a second in one transaction, rows and their
            # slices' checkpoints together (bulk appends are far cheaper than per page);
            # a kill loses at most the last second of pages.
            batch = PageBatch(job)
            deadline = time.monotonic() + COMMIT_EVERY_SECONDS
            while live and time.monotonic() < deadline and batch.size < MAX_BATCH_ROWS:
                item = results.get()
                if isinstance(item, BaseException):
                    raise item
                live += batch.add(item)
            batch.commit(job.con)
            wal.committed(batch.pages)
            last_pages = set_checkpoint_threshold(job.con, wal, planner.pages_remaining())
            if last_pages and not ending:
                log.debug("the last pages: checkpointing %d bytes of log", wal.size)
            ending = ending or last_pages
    finally:
        stopping.set()
        workers.shutdown(wait=False, cancel_futures=True)
        sub_requests.shutdown(wait=False, cancel_futures=True)
        job.con.execute("RESET memory_limit")
        job.con.execute("RESET threads")
        job.con.execute("RESET checkpoint_threshold")


def _fetch_page(
    api: StripeApi, piece: Slice, planner: SlicePlanner, first_page: dict | None = None
) -> tuple[list[dict], Slice | None, list[Slice]]:
    """One page of a slice: its objects, the slice's remainder and pieces split off it.
    ``first_page``: the slice's first page, asked before its end was known."""
    kind = kinds.BY_TABLE[piece.kind]
    params = dict(kind.list_params)
    params["created"] = {"gte": piece.gte, "lt": piece.lt}
    if piece.after:
        params["starting_after"] = piece.after
    page = _trimmed(first_page, piece) if first_page is not None else None
    if page is None:
        # A slice too short to split is read one page after another, whatever the others
        # do: its pages let theirs go first (waiting_line.py).
        patient = not _splittable(piece, piece.lt)
        page = api.list_page(kind.path, params, account=piece.header, patient=patient)
    objects = page["data"]
    if not page.get("has_more") or not objects:
        return objects, None, []
    last = objects[-1]
    top = int(last["created"]) + 1  # the remainder: created in [gte, top), after `last`
    low = _split_low(piece)
    # Pages left, judged by the time this page's objects spanned (and its kind's so far)
    remaining_pages, burst = planner.pages_left_after(piece.kind, top - low, piece.lt - top + 1)
    if burst and top - 1 > low:
        # Objects created in one second (renewals sharing a billing date) can only be
        # read through the cursor; the older ones need not wait behind them: the rest of
        # that second becomes a slice of its own, and the remainder starts below it.
        second = replace(piece, id=uuid.uuid4().hex[:10], gte=top - 1, lt=top, after=last["id"])
        top, after, beside = top - 1, None, [second]
    else:
        after, beside, second = last["id"], [], None
    pieces = planner.pieces(
        piece, remaining_pages, splittable=_splittable(piece, top), burst=second
    )
    edges = [piece.gte] + [low + (top - low) * i // pieces for i in range(1, pieces)] + [top]
    rest = replace(piece, gte=edges[-2], lt=top, after=after)
    split_off = [
        replace(piece, id=uuid.uuid4().hex[:10], gte=lower, lt=upper, after=None)
        for lower, upper in zip(edges[:-2], edges[1:-1], strict=True)
    ]
    planner.split(piece.kind, [rest, *split_off], remaining_pages)
    return objects, rest, [*split_off, *beside]


def _split_low(piece: Slice) -> int:
    """The oldest second ``piece`` may hold objects of: where its splits start."""
    return max(piece.gte, piece.floor, SPLIT_FLOOR)


def _splittable(piece: Slice, top: int) -> bool:
    """Whether the part of ``piece`` below ``top`` spans time enough to be split."""
    return top - _split_low(piece) >= MIN_SPLIT_SECONDS


def _trimmed(first_page: dict, piece: Slice) -> dict | None:
    """A first page asked before the slice's end (the API's clock) was known, as the slice
    would have listed it: without the objects created since. None, to ask again, if even
    its last object is that new: the slice's remainder must start inside the slice."""
    objects = first_page["data"]
    if objects and objects[-1]["created"] >= piece.lt:
        return None
    return {**first_page, "data": [obj for obj in objects if obj["created"] < piece.lt]}


def _complete(
    api: StripeApi, piece: Slice, objects: list[dict], sub_requests: ThreadPoolExecutor
) -> None:
    """Page in what Stripe embedded only in part (lines, items), side by side."""
    kind = kinds.BY_TABLE[piece.kind]
    pending = [
        sub_requests.submit(kinds.complete, api, kind, obj, account=piece.header)
        for obj in objects
        if kinds.needs_completing(kind, obj)
    ]
    for future in pending:
        future.result()


class PageBatch:
    """Rows and slice checkpoints of the pages fetched since the last commit."""

    def __init__(self, job: Job):
        self.job = job
        self.rows: dict[str, list[tuple]] = {}
        self.state: dict[str, str | None] = {}
        self.size = 0  # rows held
        self.pages = 0

    def add(self, result: PageResult) -> int:
        """Take one page; returns the change in the number of live slices."""
        piece = result.piece
        self.pages += 1
        for table, table_rows in result.rows.items():
            self.rows.setdefault(table, []).extend(table_rows)
            self.size += len(table_rows)
            self.job.landed(table, len(table_rows))
        self.state[piece.key] = result.rest.dump() if result.rest else None
        for new in result.split_off:
            self.state[new.key] = new.dump()
        return len(result.split_off) - (result.rest is None)

    def commit(self, con: duckdb.DuckDBPyConnection) -> None:
        """Land the rows and checkpoints in one transaction.

        A backfill lands each object once into emptied tables, so plain appends do;
        should a key turn up twice anyway, the batch is redone as upserts.
        """
        try:
            self._write(con, load.insert_rows)
        except duckdb.ConstraintException:
            log.debug("a batch of pages held rows already landed; upserting it")
            self._write(con, load.upsert_rows)
        landed = ", ".join(f"{table} {len(rows)}" for table, rows in self.rows.items())
        log.debug("committed %d page(s): %s", self.pages, landed or "no rows")

    def _write(self, con: duckdb.DuckDBPyConnection, write) -> None:
        con.begin()
        try:
            for table, rows in self.rows.items():
                write(con, table, rows)
            checkpoints.set_state(con, self.state)
            con.commit()
        except BaseException:
            rollback_quietly(con)
            raise
