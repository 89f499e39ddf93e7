"""The job: backfill, incremental sync and build, each published safely (SPEC 4.2-4.4).

Every run holds the job lock, works in the working copy (``<db>.work``), runs the SQL
build and atomically replaces the published file. A failed run leaves the published
file as it was and keeps the working copy, so the next run resumes from it.

Backfill lists every object kind in ``created`` time slices, fetched in parallel by a
pool of workers. A slice is fetched page by page (newest first); after a page that says
``has_more``, its remainder goes back on the queue, split into pieces while there are
too few slices of that kind to keep its endpoint busy at the rate limit (every slice
ends with one partial page, so no more). Pages are landed in bulk about once a second,
each together with its slice's new checkpoint, so a killed backfill resumes where it
stopped and lands exactly what an uninterrupted one would.

Sync reads the events since the last cursor and re-fetches the objects they name.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import queue
import socket
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from . import STRIPE_API_VERSION, landing, signals, warehouse
from .config import Config, parse_month
from .errors import ConfigError, NrrSyncError
from .progress import Progress, describe_counts
from .stripe_api import StripeApi, redact

log = logging.getLogger("nrr_sync")
# The one line a run always ends with, --quiet included (the cron log's record of the night).
summary_log = logging.getLogger("nrr_sync.summary")

LIST_PATHS = {
    "customers": "/v1/customers",
    "products": "/v1/products",
    "prices": "/v1/prices",
    "subscriptions": "/v1/subscriptions",
    "invoices": "/v1/invoices",
    "credit_notes": "/v1/credit_notes",
}
# Prices carry their tiers and currency options only when expanded (a proration billed in
# another currency is valued from its currency option); subscriptions of every status.
# Invoices bring their discounts with the coupons (percent_off values a discounted
# proration exactly): no request beyond the invoice's own.
LIST_PARAMS = {
    "prices": {"expand": ["data.tiers", "data.currency_options"]},
    "subscriptions": {"status": "all"},
    "invoices": {"expand": ["data.discounts.source.coupon"]},
}
RETRIEVE_PARAMS = {
    "prices": {"expand": ["tiers", "currency_options"]},
    "invoices": {"expand": ["discounts.source.coupon"]},
}
# One list per group: Stripe takes a `*` wildcard in `type` only (`types[]` wants exact
# names, at most 20, and these groups hold far more). `customer.*` includes
# `customer.subscription.*`.
EVENT_GROUPS = ("customer.*", "invoice.*", "price.*", "product.*", "credit_note.*")
EVENT_RETENTION = timedelta(days=30)
EVENT_OVERLAP_SECONDS = 300
# No Stripe object is older than this (nor than its account); slices are split above it.
SPLIT_FLOOR = 1262304000  # 2010-01-01
FETCH_BATCH = 100  # objects re-fetched by a sync before they are landed and committed
LANDED_PREFIX = "events:landed:"  # objects landed by an unfinished sync, per account
COMMIT_EVERY_SECONDS = 1.0
MIN_SLICE_PAGES = 8  # no piece split off a slice is expected to be shorter
MAX_BATCH_ROWS = 20_000  # rows held before they are written, whatever the pace
FETCH_MEMORY_LIMIT = "256MB"  # DuckDB's while pages are landed
RUNS_KEPT_IN_SIDECAR = 50
KILLED_MESSAGE = "the process ended without recording an outcome (killed)"


# Entry points -------------------------------------------------------------------------


def run_backfill(config: Config, since: str, restart: bool = False) -> int:
    parse_month(since, "--since")
    return _run(config, "backfill", lambda job: backfill(job, since, restart), since=since)


def run_sync(config: Config) -> int:
    return _run(config, "sync", sync)


def run_build(config: Config) -> int:
    return _run(config, "build", None)


# A run --------------------------------------------------------------------------------


class Job:
    """What one run works with: the working copy, the Stripe client, counters, progress."""

    def __init__(self, con: duckdb.DuckDBPyConnection, config: Config, progress: Progress):
        self.con = con
        self.config = config
        self.progress = progress
        self.objects: Counter[str] = Counter()
        self.since: str | None = None
        self._api: StripeApi | None = None

    @property
    def api(self) -> StripeApi:
        if self._api is None:
            self._api = StripeApi(self.config)
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
        configured = self.config.stripe.accounts
        if not configured:
            return [(own_account, None)], now
        return [(account, account) for account in configured], now


def _run(config: Config, command: str, work, *, since: str | None = None) -> int:
    db_path = warehouse.real_path(config.database.path)
    timeout = config.database.lock_timeout_seconds
    started_at = landing.now_utc()
    started = time.monotonic()
    run_id = f"{started_at:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    record = {
        "run_id": run_id,
        "command": command,
        "started_at": started_at.isoformat(),
        "since_month": since,
        "pid": os.getpid(),  # `status` tells a run in progress from one that was killed
        "host": socket.gethostname(),
    }
    with warehouse.job_lock(db_path):
        con = None
        job = None
        _write_sidecar(db_path, {**record, "outcome": "running"})
        try:
            con, work_path = warehouse.open_working_copy(db_path, timeout)
            migrate(con)
            _insert_run(con, record)
            with Progress() as progress:
                job = Job(con, config, progress)
                job.since = since
                if work is not None:
                    work(job)
                warehouse.check_publishable(con)
                with progress.step("build (sql/ models)"):
                    build_result = build(con, config)
                record.update(_outcome(job, started, "ok", 0, None))
                record["since_month"] = job.since
                _finish_run(con, record)
                with progress.step("publish"):
                    warehouse.publish(con, work_path, db_path, timeout)
                con = None
        except BaseException as raised:
            error = signals.translated(raised)  # DuckDB reports a signal as its own error
            exit_code = error.exit_code if isinstance(error, NrrSyncError) else 1
            exit_code = signals.exit_code(error) or exit_code
            note = _unfinished_backfill_note(con) if con is not None else None
            if note and isinstance(error, NrrSyncError):
                error.args = (f"{error}\n{note}",)  # the message the user sees says it too
            message = redact(str(error) or type(error).__name__, _api_key_or_none(config))
            record.update(_outcome(job, started, f"failed:{exit_code}", exit_code, message))
            if job is not None:
                record["since_month"] = job.since
            if con is not None:
                _record_failure(con, record)
            _write_sidecar(db_path, record)
            summary_log.info(_summary_line(record))
            if error is not raised:
                raise error from None
            raise
        finally:
            if con is not None:
                con.close()
        _write_sidecar(db_path, record)
        summary_log.info(_summary_line(record))
        log.debug("build: %s", build_result)
        if job is not None and job.request_totals()["requests"]:
            log.debug("requests by endpoint: %s", job.api.stats.by_endpoint())
    return 0


def _unfinished_backfill_note(con: duckdb.DuckDBPyConnection) -> str | None:
    """What the next runs do with a backfill this failure left unfinished: any `sync`
    finishes it, from its own month, and then replaces the published data with it."""
    _rollback(con)
    try:
        status, since = warehouse.backfill_state(con)
    except duckdb.Error:
        return None
    if status != "running":
        return None
    return (
        f"The unfinished backfill from {since} is kept: the next `nrr-sync sync` (or "
        f"`nrr-sync backfill --since {since}`) finishes it and then publishes it, replacing "
        "the published data; the published file is unchanged until then."
    )


def migrate(con: duckdb.DuckDBPyConnection) -> None:
    from . import transform

    transform.migrate(con)


def build(con: duckdb.DuckDBPyConnection, config: Config) -> dict:
    from . import transform

    with signals.interruptible(con):  # a long query stops at SIGINT / SIGTERM
        return transform.build(con, config)


def _api_key_or_none(config: Config) -> str | None:
    return os.environ.get(config.stripe.api_key_env) or None


def _outcome(job: Job | None, started: float, outcome: str, code: int, message) -> dict:
    totals = job.request_totals() if job else {"requests": 0, "retries": 0, "rate_limited": 0}
    return {
        "finished_at": landing.now_utc().isoformat(),
        "duration_s": round(time.monotonic() - started, 2),
        "outcome": outcome,
        "exit_code": code,
        "message": message,
        "objects": dict(job.objects) if job else {},
        **totals,
    }


def _insert_run(con: duckdb.DuckDBPyConnection, record: dict) -> None:
    # This run holds the job lock: a run still marked running was killed before it could
    # record its end (SIGKILL, out of memory, power loss).
    con.execute(
        "UPDATE meta.sync_runs SET outcome = 'killed', message = ? WHERE outcome = 'running'",
        [KILLED_MESSAGE],
    )
    con.execute(
        "INSERT INTO meta.sync_runs (run_id, command, started_at, outcome, api_version, "
        "since_month) VALUES (?, ?, ?::TIMESTAMPTZ, 'running', ?, ?)",
        [
            record["run_id"],
            record["command"],
            record["started_at"],
            STRIPE_API_VERSION,
            record["since_month"],
        ],
    )


def _finish_run(con: duckdb.DuckDBPyConnection, record: dict) -> None:
    con.execute(
        "UPDATE meta.sync_runs SET finished_at = ?::TIMESTAMPTZ, outcome = ?, exit_code = ?, "
        "message = ?, objects = ?, requests = ?, retries = ?, rate_limited = ?, since_month = ? "
        "WHERE run_id = ?",
        [
            record["finished_at"],
            record["outcome"],
            record["exit_code"],
            record["message"],
            json.dumps(record["objects"]),
            record["requests"],
            record["retries"],
            record["rate_limited"],
            record["since_month"],
            record["run_id"],
        ],
    )


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back if a transaction is still open (a failed commit already ended it), so
    the error that stopped the work is the one the user sees."""
    with contextlib.suppress(duckdb.Error):
        con.rollback()


def _record_failure(con: duckdb.DuckDBPyConnection, record: dict) -> None:
    """Note the failure in the working copy; it is published with the next good run."""
    with contextlib.suppress(duckdb.Error):
        con.rollback()
    with contextlib.suppress(duckdb.Error):
        _finish_run(con, record)


def _write_sidecar(db_path: Path, record: dict) -> None:
    """``<db>.runs.json``: the last runs, failed ones included, for ``nrr-sync status``.

    A failed run never touches the published database, so this file is where its
    outcome is visible until the next successful run publishes it in meta.sync_runs.
    """
    path = warehouse.sibling(db_path, ".runs.json")
    try:
        runs = json.loads(warehouse.read_side_file(path) or "[]")
        if not isinstance(runs, list):
            runs = []
    except ValueError:
        runs = []
    runs = [
        run for run in runs if not isinstance(run, dict) or run.get("run_id") != record["run_id"]
    ]
    runs = [*runs, record][-RUNS_KEPT_IN_SIDECAR:]
    try:
        warehouse.write_side_file(path, json.dumps(runs, indent=1, default=str))
    except OSError as error:
        log.warning("could not write %s: %s", path, error.strerror)


def _summary_line(record: dict) -> str:
    objects = describe_counts(record.get("objects") or {})
    outcome = record["outcome"]
    if outcome.startswith("failed:"):
        outcome = f"failed (exit {record['exit_code']})"
    return (
        f"{record['command']} {outcome} in {record['duration_s']:.1f} s: "
        f"fetched {objects}; {record['requests']:,} requests, {record['retries']:,} retries, "
        f"{record['rate_limited']:,} rate-limited (429)"
    )


# Backfill -----------------------------------------------------------------------------


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
        return f"backfill:slice:{self.account}:{self.kind}:{self.id}"

    def dump(self) -> str:
        return json.dumps(asdict(self))

    @staticmethod
    def load(text: str) -> Slice:
        return Slice(**json.loads(text))


def backfill(job: Job, since: str, restart: bool) -> None:
    con = job.con
    parse_month(since, "since")
    job.since = since
    state = warehouse.state_with_prefix(con, "backfill:")
    resume = (
        not restart
        and state.get("backfill:status") == "running"
        and state.get("backfill:since") == since
    )
    if resume:
        slices = [Slice.load(v) for k, v in state.items() if k.startswith("backfill:slice:")]
        log.info("resuming the backfill from %s: %d slice(s) left", since, len(slices))
    else:
        slices = _start_backfill(job, since)
    _fetch_slices(job, slices)

    state = warehouse.state_with_prefix(con, "backfill:")
    final = {key: None for key in state if key.startswith(("backfill:slice:", "backfill:cursor:"))}
    for key, value in state.items():
        if key.startswith("backfill:cursor:"):
            final["events:cursor:" + key.removeprefix("backfill:cursor:")] = value
    final.update(
        {
            "backfill:status": "done",
            "report:since": since,
            "report:as_of": state["backfill:as_of"],
        }
    )
    con.begin()
    warehouse.delete_state_prefix(con, "events:")
    warehouse.set_state(con, final)
    con.commit()


def _start_backfill(job: Job, since: str) -> list[Slice]:
    """Forget earlier data and checkpoints; plan the first slices; remember the cursors."""
    api = job.api
    accounts, as_of = job.accounts()
    as_of_epoch = int(as_of.timestamp())
    year, month = parse_month(since, "since")
    months_back = year * 12 + month - 1 - job.config.sync.invoice_lookback_months
    invoices_from = datetime(months_back // 12, months_back % 12 + 1, 1, tzinfo=UTC)
    # A day earlier, so month starts in any reporting time zone are covered.
    invoices_from_epoch = int(invoices_from.timestamp()) - 86400

    values: dict[str, str | None] = {
        "backfill:since": since,
        "backfill:status": "running",
        "backfill:as_of": as_of.isoformat().replace("+00:00", "Z"),
    }
    # Each account's creation (no object is older: slices are split above it) and its
    # newest event (where the next sync starts), asked side by side.
    with ThreadPoolExecutor(max_workers=4) as pool:
        infos = pool.map(lambda a: api.get("/v1/account", account=a[1]), accounts)
        newest = pool.map(
            lambda a: api.get("/v1/events", {"limit": 1}, account=a[1]),
            accounts,
        )
        infos, newest = list(infos), list(newest)
    slices = []
    for (account, header), info, latest in zip(accounts, infos, newest, strict=True):
        created = info.get("created")
        floor = int(created) if isinstance(created, int) else SPLIT_FLOOR
        events = latest.get("data") or []
        cursor = (
            {"created": events[0]["created"], "id": events[0]["id"]}
            if events
            else {"created": as_of_epoch, "id": None}
        )
        values[f"backfill:cursor:{account}"] = json.dumps(cursor)
        for kind in LIST_PATHS:
            # credit notes follow their invoices: the same window
            gte = invoices_from_epoch if kind in ("invoices", "credit_notes") else 0
            slices.append(
                Slice(
                    uuid.uuid4().hex[:10], account, header, kind, gte, as_of_epoch + 1, None, floor
                )
            )
    for piece in slices:
        values[piece.key] = piece.dump()

    con = job.con
    con.begin()
    for kind in landing.KINDS:
        con.execute(f"DELETE FROM stripe.{kind}")
    for prefix in ("backfill:", "events:", "report:"):
        warehouse.delete_state_prefix(con, prefix)
    warehouse.set_state(con, values)
    con.commit()
    log.info(
        "backfill from %s (invoices from %s) as of %s for %d account(s)",
        since,
        invoices_from.strftime("%Y-%m"),
        values["backfill:as_of"],
        len(accounts),
    )
    return slices


@dataclass
class PageResult:
    piece: Slice
    rows: dict[str, list[tuple]]  # landing rows per table (built by the worker)
    rest: Slice | None  # the slice's unfetched remainder, None when done
    split_off: list[Slice]  # new slices split off the remainder


class _Stop:
    pass


class SlicePlanner:
    """Decides how many pieces a slice's remainder is split into.

    Enough slices of a kind must be in flight to keep its endpoint busy at the rate
    limit (budget x seconds per page, plus a margin); every extra slice costs one
    partial page at its end, so no more than that.
    """

    def __init__(self, api: StripeApi, slices: list[Slice], concurrency: int):
        self.api = api
        self.concurrency = concurrency
        self.live: Counter[str] = Counter(piece.kind for piece in slices)
        self.page_seconds: dict[str, float] = {}
        self.lock = threading.Lock()

    def pieces(self, kind: str, remaining_pages: float) -> int:
        with self.lock:
            seconds = self.page_seconds.get(kind, 0.5)
            # The kind's endpoint budget, or its share of the global one if smaller.
            active = sum(1 for n in self.live.values() if n > 0) or 1
            budget = min(
                self.api.endpoint_budget(LIST_PATHS[kind]), self.api.global_budget() / active
            )
            wanted = math.ceil(budget * seconds * 1.15) + 1
            wanted = min(wanted, self.concurrency)
            # Pieces of at least MIN_SLICE_PAGES: each one ends with a partial page.
            pieces = min(
                1 + max(0, wanted - self.live[kind]), int(remaining_pages // MIN_SLICE_PAGES), 8
            )
            pieces = max(pieces, 1)
            self.live[kind] += pieces - 1
            return pieces

    def page_done(self, kind: str, seconds: float, slice_done: bool) -> None:
        with self.lock:
            previous = self.page_seconds.get(kind, seconds)
            self.page_seconds[kind] = 0.8 * previous + 0.2 * seconds
            if slice_done:
                self.live[kind] -= 1


def _fetch_slices(job: Job, slices: list[Slice]) -> None:
    """Fetch every slice with a pool of workers; land and checkpoint pages in this thread."""
    if not slices:
        return
    api = job.api
    api.stopping.clear()
    workers = job.config.stripe.concurrency
    planner = SlicePlanner(api, slices, workers)
    synced_at = landing.now_utc()
    # Tasks are (slice, gate): the gate opens once the page that produced the slice was
    # handed to the writer, so a slice's pages always reach the writer in order.
    tasks: queue.Queue = queue.Queue()
    # Room for the pages fetched while the writer lands a batch; rows only, so small.
    results: queue.Queue = queue.Queue(maxsize=2 * workers)
    opened = threading.Event()
    opened.set()
    for piece in slices:
        tasks.put((piece, opened))
    # Extra line / item pages of long invoices and subscriptions, fetched side by side.
    sub_requests = ThreadPoolExecutor(max_workers=workers)

    def hand_over(item, after: threading.Event) -> None:
        while not after.wait(timeout=0.2):
            if api.stopping.is_set():
                return
        while not api.stopping.is_set():
            try:
                results.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def work() -> None:
        while True:
            task = tasks.get()
            if task is _Stop:
                return
            piece, after = task
            handed = threading.Event()
            try:
                started = time.monotonic()
                api.waited_here(reset=True)
                page, rest, split_off = _fetch_page(api, piece, planner)
                # Time the page took on the wire, without waiting for the rate limiter.
                seconds = time.monotonic() - started - api.waited_here()
                planner.page_done(piece.kind, seconds, rest is None)
                # The slice goes on while this page's long invoices are completed.
                for follow_up in (rest, *split_off):
                    if follow_up is not None:
                        tasks.put((follow_up, handed))
                _complete(api, piece, page, sub_requests)
                rows = warehouse.landing_rows(piece.account, piece.kind, page, synced_at)
            except BaseException as error:  # handed to the writer, which stops the run
                hand_over(error, opened)
                return
            hand_over(PageResult(piece, rows, rest, split_off), after)
            handed.set()

    threads = [threading.Thread(target=work, daemon=True) for _ in range(workers)]
    for thread in threads:
        thread.start()
    live = len(slices)
    # Appending needs little memory; without a limit DuckDB would keep caching what it
    # wrote, and the job's memory would grow with the account. The build gets it back.
    job.con.execute(f"SET memory_limit = '{FETCH_MEMORY_LIMIT}'")
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
    finally:
        api.stopping.set()
        for _ in threads:
            tasks.put(_Stop)
        sub_requests.shutdown(wait=False, cancel_futures=True)
        job.con.execute("RESET memory_limit")


def _fetch_page(
    api: StripeApi, piece: Slice, planner: SlicePlanner
) -> tuple[list[dict], Slice | None, list[Slice]]:
    """One page of a slice: its objects, the slice's remainder and pieces split off it."""
    params = dict(LIST_PARAMS.get(piece.kind, {}))
    params["created"] = {"gte": piece.gte, "lt": piece.lt}
    if piece.after:
        params["starting_after"] = piece.after
    page = api.list_page(LIST_PATHS[piece.kind], params, account=piece.header)
    objects = page["data"]
    if not page.get("has_more") or not objects:
        return objects, None, []
    last = objects[-1]
    top = int(last["created"]) + 1  # the remainder: created in [gte, top), after `last`
    low = max(piece.gte, piece.floor, SPLIT_FLOOR)
    # Pages left, judged by the time this page's objects spanned (recent pages are
    # usually the densest, so this rather overestimates).
    remaining_pages = (top - low) / max(piece.lt - top + 1, 1)
    pieces = planner.pieces(piece.kind, remaining_pages) if top - low >= 8 else 1
    edges = [piece.gte] + [low + (top - low) * i // pieces for i in range(1, pieces)] + [top]
    rest = replace(piece, gte=edges[-2], lt=top, after=last["id"])
    split_off = [
        replace(piece, id=uuid.uuid4().hex[:10], gte=lower, lt=upper, after=None)
        for lower, upper in zip(edges[:-2], edges[1:-1], strict=True)
    ]
    return objects, rest, split_off


def _complete(
    api: StripeApi, piece: Slice, objects: list[dict], sub_requests: ThreadPoolExecutor
) -> None:
    """Fetch the lines / items past the embedded first page, side by side."""
    complete = {"invoices": api.complete_invoice, "subscriptions": api.complete_subscription}
    if piece.kind not in complete:
        return
    embedded = "lines" if piece.kind == "invoices" else "items"
    pending = [
        sub_requests.submit(complete[piece.kind], obj, account=piece.header)
        for obj in objects
        if (obj.get(embedded) or {}).get("has_more")
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

    def add(self, result: PageResult) -> int:
        """Take one page; returns the change in the number of live slices."""
        piece = result.piece
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
            self._write(con, warehouse.insert_rows)
        except duckdb.ConstraintException:
            log.debug("a batch of pages held rows already landed; upserting it")
            self._write(con, warehouse.upsert_rows)

    def _write(self, con: duckdb.DuckDBPyConnection, write) -> None:
        con.begin()
        try:
            for table, rows in self.rows.items():
                write(con, table, rows)
            warehouse.set_state(con, self.state)
            con.commit()
        except BaseException:
            _rollback(con)
            raise


def _land_objects(job: Job, account: str, kind: str, objects: list[dict]) -> None:
    """Land re-fetched objects; invoices and subscriptions replace their lines / items."""
    if not objects:
        return
    con = job.con
    ids = [obj["id"] for obj in objects]
    if kind == "invoices":
        warehouse.delete_children(con, "invoice_lines", "invoice_id", account, ids)
        warehouse.delete_children(con, "invoice_discounts", "invoice_id", account, ids)
        job.landed(
            "invoice_lines", sum(len((o.get("lines") or {}).get("data") or []) for o in objects)
        )
    elif kind == "subscriptions":
        warehouse.delete_children(con, "subscription_items", "subscription_id", account, ids)
        job.landed(
            "subscription_items",
            sum(len((o.get("items") or {}).get("data") or []) for o in objects),
        )
    warehouse.load_objects(con, account, kind, objects)
    job.landed(kind, len(objects))


# Incremental sync ---------------------------------------------------------------------


def sync(job: Job) -> None:
    con = job.con
    config = job.config
    state = warehouse.state_with_prefix(con, "")
    if state.get("backfill:status") == "running":
        since = state["backfill:since"]
        log.warning(
            "An unfinished backfill from %s (a backfill that stopped) is finished first: this "
            "sync fetches the rest of it and publishes it in place of the previous data.",
            since,
        )
        backfill(job, since, restart=False)
        return
    if state.get("backfill:status") != "done":
        since = config.sync.backfill_since
        if not since:
            raise ConfigError(
                f"Nothing was backfilled into {config.database.path} yet: run "
                "`nrr-sync backfill --since YYYY-MM` first (or set sync.backfill_since in "
                f"{config.source})."
            )
        log.info("no backfill yet: backfilling from sync.backfill_since = %s", since)
        backfill(job, since, restart=True)
        return

    since = state.get("backfill:since") or state.get("report:since")
    job.since = since
    accounts, now = job.accounts()
    cursors = {}
    for account, _ in accounts:
        cursor = state.get(f"events:cursor:{account}")
        if cursor is None:
            log.warning(
                "account %s has not been backfilled yet; refreshing everything from %s",
                account,
                since,
            )
            backfill(job, since, restart=True)
            return
        cursors[account] = json.loads(cursor)
    oldest = min(cursor["created"] for cursor in cursors.values())
    if datetime.fromtimestamp(oldest, tz=UTC) < now - EVENT_RETENTION + timedelta(hours=1):
        log.warning(
            "The last sync saw events up to %s, and Stripe keeps events for 30 days only: "
            "changes since then cannot all be known from events, so this run refreshes "
            "everything from %s (a full backfill).",
            datetime.fromtimestamp(oldest, tz=UTC).strftime("%Y-%m-%d %H:%M UTC"),
            since,
        )
        backfill(job, since, restart=True)
        return

    for account, header in accounts:
        seen = json.loads(state.get(f"events:seen:{account}") or "[]")
        _sync_account(job, account, header, cursors[account], set(seen))
    con.begin()
    warehouse.set_state(con, {"report:as_of": now.isoformat().replace("+00:00", "Z")})
    con.commit()


def _sync_account(job: Job, account: str, header: str | None, cursor: dict, seen: set) -> None:
    api = job.api
    since = int(cursor["created"]) - EVENT_OVERLAP_SECONDS
    events = {}
    for group in EVENT_GROUPS:
        params = {"created": {"gte": since}, "type": group}
        for event in api.list_all("/v1/events", params, account=header):
            events[event["id"]] = _event_outline(event)  # dedupe by id
    fresh = [event for event in events.values() if event["id"] not in seen]
    named_by = events_by_object(fresh)
    job.landed("events", len(fresh))
    log.info(
        "account %s: %d new event(s), %s changed",
        account,
        len(fresh),
        describe_counts(Counter(kind for kind, _ in named_by)),
    )

    con = job.con
    window = json.dumps(cursor, sort_keys=True)
    landed = _landed_before(con, account, window)
    tasks = [task for task in sorted(named_by) if not named_by[task] <= landed.get(task, set())]
    for kind, count in Counter(kind for kind, _ in tasks).items():
        job.progress.expect(kind, count)
    if len(tasks) < len(named_by):
        log.info(
            "account %s: %d object(s) were landed by an earlier run that stopped; not fetched "
            "again",
            account,
            len(named_by) - len(tasks),
        )
    try:
        # Objects are landed about once a second (at most FETCH_BATCH at a time), each time
        # with a note of which they were, so a run that fails keeps its work; the cursor
        # moves only once every changed object is landed.
        with ThreadPoolExecutor(max_workers=job.config.stripe.concurrency) as pool:
            for start in range(0, len(tasks), FETCH_BATCH):
                batch = tasks[start : start + FETCH_BATCH]
                done, fetched = [], []
                deadline = time.monotonic() + COMMIT_EVERY_SECONDS
                results = pool.map(lambda task: _refetch(api, header, *task), batch)
                for task, obj in zip(batch, results, strict=True):
                    done.append(task)
                    fetched.append(obj)
                    if time.monotonic() >= deadline or task is batch[-1]:
                        _commit_refetched(job, account, window, named_by, done, fetched)
                        done, fetched = [], []
                        deadline = time.monotonic() + COMMIT_EVERY_SECONDS
        newest = max(
            [(int(cursor["created"]), cursor.get("id") or "")]
            + [(int(e["created"]), e["id"]) for e in events.values()]
        )
        recent = sorted(
            e["id"] for e in events.values() if e["created"] >= newest[0] - EVENT_OVERLAP_SECONDS
        )
        con.begin()
        warehouse.delete_state_prefix(con, f"{LANDED_PREFIX}{account}:")
        warehouse.set_state(
            con,
            {
                f"events:cursor:{account}": json.dumps({"created": newest[0], "id": newest[1]}),
                f"events:seen:{account}": json.dumps(recent),
            },
        )
        con.commit()
    except BaseException:
        api.stopping.set()
        _rollback(con)
        raise


def _commit_refetched(job: Job, account: str, window: str, named_by, tasks, fetched) -> None:
    con = job.con
    con.begin()
    _land_refetched(job, account, tasks, fetched)
    _note_landed(con, account, window, {task: named_by[task] for task in tasks})
    con.commit()


def _note_landed(con, account: str, window: str, landed: dict[tuple[str, str], set[str]]) -> None:
    """Remember which objects are landed, and as of which events, for the events since
    the cursor ``window``: a rerun after a failure fetches only the others again."""
    objects = [[kind, object_id, sorted(ids)] for (kind, object_id), ids in landed.items()]
    key = f"{LANDED_PREFIX}{account}:{uuid.uuid4().hex[:12]}"
    warehouse.set_state(con, {key: json.dumps({"window": window, "objects": objects})})


def _landed_before(con, account: str, window: str) -> dict[tuple[str, str], set[str]]:
    """Objects an earlier, unfinished sync from the same cursor landed, with the events
    they were fetched after: one named by a newer event is fetched again."""
    landed: dict[tuple[str, str], set[str]] = {}
    for value in warehouse.state_with_prefix(con, f"{LANDED_PREFIX}{account}:").values():
        note = json.loads(value)
        if note.get("window") != window:
            continue  # from another cursor: stale
        for kind, object_id, event_ids in note["objects"]:
            landed.setdefault((kind, object_id), set()).update(event_ids)
    return landed


def _event_outline(event: dict) -> dict:
    """What a sync needs of an event (its payload is never data): keeps memory small."""
    obj = (event.get("data") or {}).get("object") or {}
    outline = {key: obj.get(key) for key in ("id", "object", "customer")}
    return {
        "id": event["id"],
        "type": event.get("type"),
        "created": event["created"],
        "data": {"object": outline},
    }


def events_by_object(events: list[dict]) -> dict[tuple[str, str], set[str]]:
    """{(kind, object id): ids of the events that name it as changed}."""
    named: dict[tuple[str, str], set[str]] = {}
    for event in events:
        changed = changed_object(event)
        if changed:
            named.setdefault(changed, set()).add(event["id"])
    return named


def changed_object(event: dict) -> tuple[str, str] | None:
    """(kind, id) of the object an event says changed, or None."""
    event_type = event.get("type") or ""
    obj = (event.get("data") or {}).get("object") or {}
    object_type = obj.get("object")
    if event_type.startswith("customer.subscription."):
        kind, object_id = "subscriptions", obj.get("id")
    elif event_type.startswith("customer."):
        kind = "customers"
        object_id = obj.get("id") if object_type == "customer" else obj.get("customer")
    elif event_type.startswith("invoice."):
        kind, object_id = "invoices", obj.get("id")
    elif event_type.startswith("price."):
        kind, object_id = "prices", obj.get("id")
    elif event_type.startswith("product."):
        kind, object_id = "products", obj.get("id")
    elif event_type.startswith("credit_note."):
        kind, object_id = "credit_notes", obj.get("id")
    else:
        return None
    if isinstance(object_id, dict):
        object_id = object_id.get("id")
    return (kind, object_id) if object_id else None


def _refetch(api: StripeApi, header: str | None, kind: str, object_id: str) -> dict | None:
    obj = api.retrieve(f"{LIST_PATHS[kind]}/{object_id}", RETRIEVE_PARAMS.get(kind), account=header)
    if obj is None or obj.get("deleted"):
        return None
    if kind == "invoices":
        api.complete_invoice(obj, account=header)
    elif kind == "subscriptions":
        api.complete_subscription(obj, account=header)
    return obj


def _land_refetched(job: Job, account: str, tasks, fetched: list[dict | None]) -> None:
    by_kind: dict[str, list[dict]] = {}
    gone: dict[str, list[str]] = {}
    for (kind, object_id), obj in zip(tasks, fetched, strict=True):
        if obj is None:
            gone.setdefault(kind, []).append(object_id)
        else:
            by_kind.setdefault(kind, []).append(obj)
    for kind, objects in by_kind.items():
        _land_objects(job, account, kind, objects)
    con = job.con
    for kind, ids in gone.items():
        if kind == "invoices":
            warehouse.delete_children(con, "invoice_lines", "invoice_id", account, ids)
            warehouse.delete_children(con, "invoice_discounts", "invoice_id", account, ids)
            warehouse.delete_rows(con, "invoices", [(account, i) for i in ids])
        elif kind == "subscriptions":
            warehouse.delete_children(con, "subscription_items", "subscription_id", account, ids)
            warehouse.delete_rows(con, "subscriptions", [(account, i) for i in ids])
        elif kind == "credit_notes":  # never deleted in Stripe; gone means not ours to keep
            warehouse.delete_rows(con, "credit_notes", [(account, i) for i in ids])
        else:
            warehouse.mark_deleted(con, kind, account, ids)
        job.landed(f"{kind}_deleted", len(ids))
