"""CPU per page of the backfill's steps, in one process, on real sandbox pages.

Fetches every page of ``/v1/invoices`` (100 invoices with their first 10 lines each)
and ``/v1/customers`` from a sandbox without latency, keeps the bodies, then times each
step the backfill does per page with ``time.process_time`` (CPU, so steadier than wall
time on a shared machine), best of ``--repeat``: the request through the SDK (HTTP,
parse and checks), parsing the body alone, building the landing rows (typed columns and
the ``raw`` JSON text), and appending them to DuckDB 24 pages a transaction, then a
checkpoint (the backfill lands about a second of pages in one transaction, and its
commits checkpoint whenever DuckDB's write-ahead log is full); their sum is a page's
CPU. The append is timed once more with a transaction per page, as a nightly sync lands
its few pages.
Compared in the same run: parsing and ``raw`` with the standard library; the landing
rows as the previous row builders made them (``datetime.fromtimestamp``, a
comprehension leaving ``lines`` out of ``raw``) and with timestamps as ``datetime``s
(what DuckDB's appender needed); the JSON columns as plain Arrow text, which DuckDB
parses to check (the way before Arrow's JSON type); DuckDB on every core (the backfill
lands on one thread, ``FETCH_THREADS``); the appender itself (the way before Arrow
arrays); and two ways of appending that were tried and not kept, through a staging
table whose JSON columns are VARCHAR (``INSERT … SELECT raw::JSON``) and DuckDB parsing
the rows itself (one JSON document per table, ``from_json``), each checked to land the
same rows.

    python benchmarks/page_cpu.py                 # 1,000 customers
    python benchmarks/page_cpu.py --quick
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    arguments = common.parser(__doc__.splitlines()[0])
    arguments.add_argument("--customers", type=int, default=1000)
    arguments.add_argument("--repeat", type=int, default=3)
    args = arguments.parse_args(argv)
    if args.quick:
        args.customers, args.repeat = min(args.customers, 40), 1

    print(common.header("CPU per page"), flush=True)
    with common.start_sandbox(customers=args.customers) as sandbox:
        bodies = {kind: fetch_bodies(sandbox, kind) for kind in ("invoices", "customers")}
        request_ms = sdk_request_cpu_ms(sandbox, args.repeat)

    results: dict = {"customers": args.customers, **request_ms}
    rows = [
        ["invoices: request through the SDK (HTTP and parse)", request_ms["request_ms"]],
        [
            "invoices: the same, the SDK formatting its debug log line",
            request_ms["request_sdk_log_formatting_ms"],
        ],
    ]
    for kind, pages in bodies.items():
        measured = measure_kind(kind, pages, args.repeat)
        results[kind] = measured
        for step, ms in measured.items():
            if step.endswith("_ms"):
                rows.append([f"{kind}: {step.removesuffix('_ms').replace('_', ' ')}", ms])
    invoices = results["invoices"]
    results["invoices_page_ms"] = round(
        request_ms["request_ms"] + invoices["landing_rows_ms"] + invoices["append_ms"], 2
    )
    rows.append(["invoices: a page (request, landing rows, append)", results["invoices_page_ms"]])
    print()
    print(f"{args.customers:,} customers; ms of CPU per page of 100 (best of {args.repeat})")
    print(common.table(["step", "ms per page"], rows))
    params = {"customers": args.customers, "repeat": args.repeat, "quick": args.quick}
    path = common.record("page_cpu", params, results, args.results)
    print(f"\nrecorded in {path}")
    return results


def fetch_bodies(sandbox, kind: str) -> list[bytes]:
    bodies, after = [], None
    while True:
        query = "limit=100" + (f"&starting_after={after}" if after else "")
        request = urllib.request.Request(
            f"{sandbox.url}/v1/{kind}?{query}",
            headers={"Authorization": f"Bearer {sandbox.api_key}"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            body = response.read()
        bodies.append(body)
        page = json.loads(body)
        if not page["has_more"]:
            return bodies
        after = page["data"][-1]["id"]


def sdk_request_cpu_ms(sandbox, repeat: int) -> dict:
    """CPU of one ``StripeApi.list_page`` of invoices (request, response, parse), as
    nrr-sync runs it and with the SDK formatting every body for its debug log."""
    import os

    from stripe import _api_requestor, _util

    from nrr_sync import kinds
    from nrr_sync.config import Config, StripeSettings
    from nrr_sync.stripe_api import StripeApi

    os.environ["NRR_BENCH_KEY"] = sandbox.api_key
    settings = StripeSettings(
        api_key_env="NRR_BENCH_KEY",
        api_base=sandbox.url,
        max_requests_per_second=common.NO_LIMIT,
        max_requests_per_second_per_endpoint=common.NO_LIMIT,
    )
    api = StripeApi(Config(stripe=settings), checks=kinds.ANSWER_CHECKS)

    def request(_):
        api.list_page("/v1/invoices", {}, account=None)

    measured = {"request_ms": best_ms(request, range(20), repeat)}
    guarded = _api_requestor.log_debug, _api_requestor.log_info
    _api_requestor.log_debug, _api_requestor.log_info = _util.log_debug, _util.log_info
    try:
        measured["request_sdk_log_formatting_ms"] = best_ms(request, range(20), repeat)
    finally:
        _api_requestor.log_debug, _api_requestor.log_info = guarded
    return measured


def best_ms(step, pages: list, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        for page in pages:
            step(page)
        best = min(best, (time.process_time() - started) / len(pages))
    return round(best * 1000, 2)


stdlib_compact = json.JSONEncoder(separators=(",", ":")).encode


@contextlib.contextmanager
def stdlib_json_text(fastjson):
    """``fastjson``'s writers replaced by the standard library's, for a comparison."""
    saved = fastjson.dumps, fastjson.dumps_sorted
    fastjson.dumps = stdlib_compact
    fastjson.dumps_sorted = lambda value: json.dumps(value, separators=(",", ":"), sort_keys=True)
    try:
        yield
    finally:
        fastjson.dumps, fastjson.dumps_sorted = saved


PAGES_PER_BATCH = 24  # a backfill's batch at 24 requests a second per endpoint


def measure_kind(kind: str, bodies: list[bytes], repeat: int) -> dict:
    import duckdb
    import orjson

    from nrr_sync import build, fastjson, kinds, landing, load
    from nrr_sync.jobs.backfill import FETCH_THREADS

    synced_at = landing.now_utc()
    parsed = [json.loads(body)["data"] for body in bodies]
    measured = {
        "pages": len(bodies),
        "kb_per_page": round(sum(map(len, bodies)) / len(bodies) / 1024),
        "parse_json_ms": best_ms(json.loads, bodies, repeat),
        "parse_orjson_ms": best_ms(orjson.loads, bodies, repeat),
        "raw_json_ms": best_ms(lambda objs: [stdlib_compact(o) for o in objs], parsed, repeat),
        "raw_orjson_ms": best_ms(lambda objs: [orjson.dumps(o) for o in objs], parsed, repeat),
    }
    kind_entry = kinds.BY_TABLE[kind]
    rows = [landing.rows_of(kind_entry, "acct_x", objects, synced_at) for objects in parsed]
    build_rows = lambda objects: landing.rows_of(kind_entry, "acct_x", objects, synced_at)  # noqa: E731
    measured["landing_rows_ms"] = best_ms(build_rows, parsed, repeat)
    # The same with the standard library writing raw and metadata, as before orjson.
    with stdlib_json_text(fastjson):
        measured["landing_rows_stdlib_json_ms"] = best_ms(build_rows, parsed, repeat)
    with previous_row_builders(landing):
        measured["landing_rows_previous_builders_ms"] = best_ms(build_rows, parsed, repeat)
    with datetime_rows(landing):
        measured["landing_rows_datetimes_ms"] = best_ms(build_rows, parsed, repeat)
        datetime_batch = one_batch(build_rows(objects) for objects in parsed)
    # about a second of pages per transaction, as the backfill lands them
    second_batches = [
        one_batch(rows[i : i + PAGES_PER_BATCH]) for i in range(0, len(rows), PAGES_PER_BATCH)
    ]
    batch = one_batch(rows)
    # (the way, its batches, DuckDB's threads): Arrow arrays take unix seconds, the appender
    # took datetimes; the backfill lands on FETCH_THREADS, None is DuckDB's default (a core each)
    one = FETCH_THREADS
    appends = {
        "append_ms": (load.insert_rows, second_batches, one),
        # a transaction per page, as a nightly sync or a slow backfill lands them: what a
        # call costs whatever its rows (one batch of the backfill holds about 24 pages)
        "append_page_by_page_ms": (load.insert_rows, rows, None),
        # DuckDB on every core, as the backfill landed before
        "append_duckdb_default_threads_ms": (load.insert_rows, second_batches, None),
        # JSON columns as plain Arrow text, which DuckDB parses to check (before Arrow's
        # JSON type)
        "append_json_checked_by_duckdb_ms": (insert_json_as_text, second_batches, one),
        # ways of the past, in one transaction on every core as they were measured
        "append_appender_ms": (insert_appended, [datetime_batch], None),
        "append_staged_varchar_ms": (insert_staged, [datetime_batch], None),
        "append_duckdb_parses_json_ms": (insert_by_from_json, [datetime_batch], None),
    }
    landed = {}
    best = dict.fromkeys(appends, float("inf"))
    with tempfile.TemporaryDirectory() as scratch:
        # round by round, every way in each round: a machine that slows down or speeds up
        # meanwhile weighs on all of them alike
        for attempt in range(repeat):
            for step, (insert, step_batches, threads) in appends.items():
                con = duckdb.connect(f"{scratch}/{step}-{attempt}.duckdb")
                build.migrate(con)
                if threads is not None:
                    con.execute(f"SET threads = {threads}")
                started = time.process_time()
                for each_batch in step_batches:
                    con.begin()
                    for table, table_rows in each_batch.items():
                        insert(con, table, table_rows)
                    con.commit()
                # Until the rows are in the file: the backfill's commits checkpoint too,
                # whenever the write-ahead log passes DuckDB's threshold.
                con.execute("CHECKPOINT")
                best[step] = min(best[step], (time.process_time() - started) / len(rows))
                landed[step] = {t: sorted(con.sql(f"FROM stripe.{t}").fetchall()) for t in batch}
                con.close()
    measured.update({step: round(seconds * 1000, 2) for step, seconds in best.items()})
    assert all(tables == landed["append_ms"] for tables in landed.values()), "not the same rows"
    return measured


@contextlib.contextmanager
def previous_row_builders(landing):
    """``landing``'s timestamps and ``raw`` copies made the previous ways, for a
    comparison: the same values, more CPU."""
    from datetime import UTC, datetime

    saved = landing.timestamp, landing.without
    landing.timestamp = lambda value: (
        None
        if value is None or isinstance(value, bool)
        else datetime.fromtimestamp(int(value), tz=UTC)
    )
    landing.without = lambda obj, field: {k: v for k, v in obj.items() if k != field}
    try:
        yield
    finally:
        landing.timestamp, landing.without = saved


def one_batch(rows_of_pages) -> dict[str, list]:
    """All pages' rows in one batch, as the backfill lands them."""
    batch: dict[str, list] = {}
    for page_rows in rows_of_pages:
        for table, table_rows in page_rows.items():
            batch.setdefault(table, []).extend(table_rows)
    return batch


@contextlib.contextmanager
def datetime_rows(landing):
    """``landing``'s timestamps as aware ``datetime``s, the fastest way (the rows DuckDB's
    appender needed, before Arrow arrays of unix seconds)."""
    from datetime import UTC, datetime, timedelta

    epoch, saved = datetime(1970, 1, 1, tzinfo=UTC), landing.timestamp
    landing.timestamp = lambda value: (
        None if value is None or isinstance(value, bool) else epoch + timedelta(seconds=int(value))
    )
    try:
        yield
    finally:
        landing.timestamp = saved


def insert_appended(con, table: str, rows: list) -> None:
    """The way before Arrow: DuckDB's appender, the rows 100 at a time."""
    from nrr_sync.landing import COLUMNS

    if rows:
        with con.appender(f"stripe.{table}", columns=list(COLUMNS[table])) as appender:
            for start in range(0, len(rows), 100):
                appender.append_rows(rows[start : start + 100])


def column_types(con, table: str) -> dict[str, str]:
    return dict(
        con.execute(
            "SELECT column_name, data_type FROM duckdb_columns() "
            "WHERE schema_name = 'stripe' AND table_name = ?",
            [table],
        ).fetchall()
    )


def insert_json_as_text(con, table: str, rows: list) -> None:
    """``load.insert_rows`` with the JSON columns as plain Arrow strings, as before Arrow's
    JSON type was used: DuckDB parses each text to check it is JSON."""
    import pyarrow

    from nrr_sync import load

    saved = load.ARROW_TYPES[("JSON", str)]
    load.ARROW_TYPES[("JSON", str)] = pyarrow.string()
    try:
        load.insert_rows(con, table, rows)
    finally:
        load.ARROW_TYPES[("JSON", str)] = saved


def insert_staged(con, table: str, rows: list) -> None:
    """Tried: the appender into a temporary table whose JSON columns are VARCHAR, then
    one ``INSERT … SELECT raw::JSON``."""
    from nrr_sync.landing import COLUMNS

    if not rows:
        return
    columns, types = COLUMNS[table], column_types(con, table)
    staged = [f"{c} {'VARCHAR' if types[c] == 'JSON' else types[c]}" for c in columns]
    con.execute(f"CREATE OR REPLACE TEMP TABLE staged ({', '.join(staged)})")
    with con.appender("temp.main.staged", columns=list(columns)) as appender:
        appender.append_rows(rows)
    select = [f"{c}::JSON" if types[c] == "JSON" else c for c in columns]
    con.execute(f"INSERT INTO stripe.{table} SELECT {', '.join(select)} FROM temp.main.staged")


def insert_by_from_json(con, table: str, rows: list) -> None:
    """Tried: one value per table for DuckDB to parse, the columns as JSON lists
    (``{"id": [...], "raw": [...]}``), typed by ``from_json`` and unnested."""
    import orjson

    from nrr_sync.landing import COLUMNS

    if not rows:
        return
    columns, types = COLUMNS[table], column_types(con, table)
    document = orjson.dumps(dict(zip(columns, zip(*rows, strict=True), strict=True))).decode()
    parsed = {
        c: "VARCHAR" if types[c] in ("JSON", "DECIMAL(38,12)", "DECIMAL(9,4)") else types[c]
        for c in columns
    }
    structure = orjson.dumps({c: [t] for c, t in parsed.items()}).decode()
    select = [f"unnest(j.{c})::{types[c]}" for c in columns]
    con.execute(
        f"INSERT INTO stripe.{table} SELECT {', '.join(select)} "
        "FROM (SELECT from_json_strict(?, ?) AS j)",
        [document, structure],
    )


if __name__ == "__main__":
    main()
