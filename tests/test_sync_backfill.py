"""Backfill against the sandbox over HTTP: exact data, idempotent, robust to faults and kills."""

from __future__ import annotations

import json
import re
import signal
import threading
import weakref

import pytest
from sync_helpers import cli, cli_process, landed_ids, query, snapshot, world_ids, write_config

from nrr_sync.kinds import EVENT_GROUPS, KINDS

SINCE = "2023-01"  # the sandbox history starts here, so every invoice is in range


def lines_by_invoice(world, accounts):
    return {
        (account, invoice["id"]): {line["id"] for line in invoice["lines"]["data"]}
        for account in accounts
        for invoice in world.objects(account, "invoices")
    }


def test_backfill_lands_exactly_the_sandbox_objects_of_every_account(tmp_path, sandbox_factory):
    sandbox = sandbox_factory(customers=40, accounts=2, latency_ms=1)
    world = sandbox.world
    config = write_config(tmp_path, accounts=world.account_ids)

    result = cli(config, ["backfill", "--since", SINCE], sandbox)

    assert result.exit_code == 0, result.output
    db = tmp_path / "nrr.duckdb"
    for kind in (kind.table for kind in KINDS):
        assert landed_ids(db, kind) == world_ids(world, kind), kind
    items = {
        (account, item["id"])
        for account in world.account_ids
        for sub in world.objects(account, "subscriptions")
        for item in sub["items"]["data"]
    }
    assert landed_ids(db, "subscription_items") == items
    expected_lines = lines_by_invoice(world, world.account_ids)
    assert any(len(lines) > 10 for lines in expected_lines.values()), "world has long invoices"
    landed_lines: dict = {}
    for account, invoice_id, line_id in query(
        db, "SELECT account_id, invoice_id, id FROM stripe.invoice_lines"
    ):
        landed_lines.setdefault((account, invoice_id), set()).add(line_id)
    assert {k: v for k, v in expected_lines.items() if v} == landed_lines
    # contents, not only ids: the raw object is Stripe's, prices with their tiers
    some_customer = next(iter(world.objects(world.account_ids[1], "customers")))
    (raw,) = query(
        db,
        "SELECT raw::VARCHAR FROM stripe.customers WHERE account_id = ? AND id = ?",
        [world.account_ids[1], some_customer["id"]],
    )[0]
    assert json.loads(raw) == json.loads(json.dumps(some_customer))
    tiered = query(db, "SELECT count(*) FROM stripe.prices WHERE billing_scheme = 'tiered'")[0][0]
    with_tiers = query(
        db,
        "SELECT count(*) FROM stripe.prices WHERE billing_scheme = 'tiered' "
        "AND json_array_length(tiers) > 0",
    )[0][0]
    assert tiered == with_tiers


def test_backfill_records_the_report_window_cursor_and_run(tmp_path, sandbox_factory):
    sandbox = sandbox_factory(customers=30, latency_ms=1)
    config = write_config(tmp_path)

    result = cli(config, ["backfill", "--since", "2024-03"], sandbox)

    assert result.exit_code == 0, result.output
    db = tmp_path / "nrr.duckdb"
    state = dict(query(db, "SELECT key, value FROM meta.sync_state"))
    assert state["report:since"] == "2024-03"
    assert state["report:as_of"] == "2026-01-15T00:00:00Z"  # the sandbox clock, not ours
    assert any(key.startswith("events:cursor:") for key in state)
    assert not any(key.startswith("backfill:slice:") for key in state)
    runs = query(
        db,
        "SELECT command, outcome, exit_code, requests, api_version, since_month, "
        "objects::VARCHAR FROM meta.sync_runs",
    )
    assert len(runs) == 1
    command, outcome, code, requests, api_version, since, objects = runs[0]
    assert (command, outcome, code, api_version, since) == (
        "backfill",
        "ok",
        0,
        "2026-10-28.endive",
        "2024-03",
    )
    assert requests == sandbox.stats()["requests"]
    assert json.loads(objects)["customers"] == 30
    # invoices from since - 12 months only
    (oldest,) = query(db, "SELECT min(created)::DATE::VARCHAR FROM stripe.invoices")[0]
    assert oldest >= "2023-02-28"


def test_second_backfill_and_a_sync_without_changes_change_nothing(tmp_path, sandbox_factory):
    sandbox = sandbox_factory(customers=30, latency_ms=1)
    config = write_config(tmp_path)
    db = tmp_path / "nrr.duckdb"
    assert cli(config, ["backfill", "--since", SINCE], sandbox).exit_code == 0
    first = snapshot(db)

    assert cli(config, ["backfill", "--since", SINCE], sandbox).exit_code == 0
    assert snapshot(db) == first
    sandbox.reset_stats()
    assert cli(config, ["sync"], sandbox).exit_code == 0
    assert snapshot(db) == first
    # the account twice (clock, id) and one page per event group
    assert sandbox.stats()["requests"] <= 2 + len(EVENT_GROUPS)


def test_faults_and_rate_limits_give_the_data_of_a_clean_run(tmp_path, sandbox_factory):
    clean = sandbox_factory(customers=40, seed=11, latency_ms=1)
    faulty = sandbox_factory(
        customers=40, seed=11, latency_ms=1, fault_rate=0.05, drop_rate=0.02, rate_limit=12
    )
    faulty.set_knobs(burst_429=3)
    (tmp_path / "clean").mkdir()
    (tmp_path / "faulty").mkdir()
    clean_config = write_config(tmp_path / "clean")
    faulty_config = write_config(
        tmp_path / "faulty",
        stripe={
            "max_requests_per_second": 60,
            "retry": {"max_attempts": 10, "max_wait_seconds": 0.2},
        },
    )

    assert cli(clean_config, ["backfill", "--since", SINCE], clean).exit_code == 0
    result = cli(faulty_config, ["backfill", "--since", SINCE], faulty)

    assert result.exit_code == 0, result.output
    stats = faulty.stats()
    assert stats["faults"] + stats["drops"] > 0
    assert stats["rate_limited"] > 0
    assert snapshot(tmp_path / "faulty" / "nrr.duckdb") == snapshot(
        tmp_path / "clean" / "nrr.duckdb"
    )
    (retries, limited) = query(
        tmp_path / "faulty" / "nrr.duckdb", "SELECT retries, rate_limited FROM meta.sync_runs"
    )[0]
    assert retries > 0 and limited > 0


def committed_tables(log: str) -> set[str]:
    """The tables that ``-v`` log lines say a backfill committed rows of."""
    found = re.findall(r"committed \d+ page\(s\): (.*)", log)
    return {entry.split()[0] for line in found for entry in line.split(", ") if entry[-1] != "0"}


def test_backfill_killed_midway_resumes_without_refetching_finished_slices(
    tmp_path, sandbox_factory
):
    clean = sandbox_factory(customers=80, seed=5, latency_ms=1)
    (tmp_path / "clean").mkdir()
    clean_config = write_config(tmp_path / "clean")
    clean_run = cli_process(clean_config, ["-v", "backfill", "--since", SINCE], clean)
    _, clean_log = clean_run.communicate(timeout=60)
    assert clean_run.returncode == 0, clean_log
    every_table = committed_tables(clean_log)
    assert "invoices" in every_table and "customers" in every_table
    clean_requests = clean.stats()["requests"]
    clean_by_endpoint = clean.stats()["by_endpoint"]
    invoices = {endpoint for endpoint in clean_by_endpoint if endpoint.startswith("/v1/invoices")}
    clean_invoice_requests = sum(clean_by_endpoint[endpoint] for endpoint in invoices)

    killed = sandbox_factory(customers=80, seed=5, latency_ms=20)
    # Slow enough (requests per second) that the run is killed well before its end: as
    # soon as it says (-v) it committed rows of every table, some invoices among them;
    # every other kind is one page. (Killing at a share of the requests was a guess: an
    # invoice page lands only once its long invoices' lines are in, and sometimes none had.)
    config = write_config(tmp_path, stripe={"max_requests_per_second": 5})
    process = cli_process(config, ["-v", "backfill", "--since", SINCE], killed)
    some_of_every_table = threading.Event()

    def watch_log():
        committed = set()
        for line in process.stderr:
            committed |= committed_tables(line)
            if committed >= every_table:
                some_of_every_table.set()

    threading.Thread(target=watch_log, daemon=True).start()
    assert some_of_every_table.wait(timeout=30), "the killed run committed some of every table"
    process.send_signal(signal.SIGKILL)
    process.wait()
    before_rerun = killed.stats()
    assert before_rerun["requests"] < clean_requests, "killed before it finished"
    assert not (tmp_path / "nrr.duckdb").exists(), "nothing is published by a killed run"

    result = cli(config, ["backfill", "--since", SINCE], killed)

    assert result.exit_code == 0, result.output
    after_rerun = killed.stats()
    rerun_requests = after_rerun["requests"] - before_rerun["requests"]
    rerun_by_endpoint = {
        endpoint: requests - before_rerun["by_endpoint"].get(endpoint, 0)
        for endpoint, requests in after_rerun["by_endpoint"].items()
    }
    # The kinds the killed run finished are not asked for again, nor the account and its
    # newest event; only the invoices' slices go on. (How many of their requests are
    # repeated depends on where the kill fell: the pages of up to a second before it,
    # each with its long invoices' lines, and the requests in flight.)
    finished = set(before_rerun["by_endpoint"]) - invoices
    assert finished == set(clean_by_endpoint) - invoices  # the killed run asked for them all
    assert {endpoint: rerun_by_endpoint[endpoint] for endpoint in finished} == dict.fromkeys(
        finished, 0
    )
    assert 0 < rerun_requests < clean_invoice_requests
    assert snapshot(tmp_path / "nrr.duckdb") == snapshot(tmp_path / "clean" / "nrr.duckdb")


def test_a_batch_with_rows_already_landed_is_upserted_not_failed(tmp_path):
    import duckdb

    from nrr_sync import build
    from nrr_sync.config import Config
    from nrr_sync.jobs.backfill import PageBatch, PageResult, Slice
    from nrr_sync.jobs.context import Job
    from nrr_sync.progress import Progress

    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    build.migrate(con)
    job = Job(con, Config(), Progress(enabled=False))
    customer = {"id": "cus_1", "object": "customer", "created": 1700000000, "name": "A"}
    piece = Slice("s1", "acct_1", None, "customers", 0, 1800000000)
    for name in ("A", "B"):
        customer["name"] = name
        batch = PageBatch(job)
        batch.add(PageResult(piece, {"customers": _customer_rows(customer)}, None, []))
        batch.commit(con)
    assert con.execute("SELECT id, name FROM stripe.customers").fetchall() == [("cus_1", "B")]


def _customer_rows(customer):
    from nrr_sync import landing

    return [landing.customer_row("acct_1", customer, landing.now_utc())]


def test_a_backfill_from_another_month_starts_over(tmp_path, sandbox_factory):
    sandbox = sandbox_factory(customers=30, seed=3, latency_ms=1)
    config = write_config(tmp_path)
    db = tmp_path / "nrr.duckdb"
    assert cli(config, ["backfill", "--since", SINCE], sandbox).exit_code == 0
    (oldest_before,) = query(db, "SELECT min(created)::DATE::VARCHAR FROM stripe.invoices")[0]
    # a month whose 12-month lookback starts after the oldest invoice
    year, month = int(oldest_before[:4]), int(oldest_before[5:7])
    later = f"{year + (month + 12) // 12}-{(month + 12) % 12 + 1:02d}"

    result = cli(config, ["backfill", "--since", later, "--restart"], sandbox)

    assert result.exit_code == 0, result.output
    (oldest,) = query(db, "SELECT min(created)::DATE::VARCHAR FROM stripe.invoices")[0]
    assert oldest > oldest_before
    assert dict(query(db, "SELECT key, value FROM meta.sync_state"))["report:since"] == later


def test_garbage_is_collected_less_often_while_pages_are_fetched_and_as_before_after():
    import gc

    from nrr_sync.jobs.context import FETCH_GC_THRESHOLD, fewer_collections

    class Node:
        pass

    before = gc.get_threshold()
    assert before[0] < FETCH_GC_THRESHOLD  # positive control: the fetch changes something
    with pytest.raises(RuntimeError), fewer_collections():
        assert gc.get_threshold() == (FETCH_GC_THRESHOLD, *before[1:])
        assert gc.get_freeze_count() > 0  # what was alive before is set aside
        cycle = Node()
        cycle.itself = cycle
        alive = weakref.ref(cycle)
        del cycle
        gc.collect()
        assert alive() is None, "cyclic garbage is still collected"
        raise RuntimeError("a failed fetch")
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_pages_land_with_one_duckdb_thread_and_the_build_gets_them_all_back(
    tmp_path, sandbox_factory, monkeypatch
):
    """DuckDB lands the fetched pages on one thread (less CPU per batch, and sooner) and
    runs the build with its default threads again, whatever the backfill's outcome."""
    import duckdb

    from nrr_sync import build, load
    from nrr_sync.jobs.backfill import FETCH_THREADS

    def threads(con) -> int:
        return int(con.execute("SELECT current_setting('threads')").fetchone()[0])

    default = threads(duckdb.connect())
    seen: dict[str, set[int]] = {"landing": set(), "build": set()}
    insert_rows, build_models = load.insert_rows, build.build

    def landing(con, kind, rows):
        seen["landing"].add(threads(con))
        return insert_rows(con, kind, rows)

    def models(con, config, *args, **kwargs):
        seen["build"].add(threads(con))
        return build_models(con, config, *args, **kwargs)

    monkeypatch.setattr(load, "insert_rows", landing)
    monkeypatch.setattr(build, "build", models)
    sandbox = sandbox_factory(customers=10, latency_ms=1)
    result = cli(write_config(tmp_path), ["backfill", "--since", SINCE], sandbox)

    assert result.exit_code == 0, result.output
    assert seen == {"landing": {FETCH_THREADS}, "build": {default}}
    if default == FETCH_THREADS:
        pytest.skip("one core: DuckDB's default is one thread, so no change could be seen")


def test_landed_pages_are_checkpointed_after_as_much_log_as_the_file_holds(tmp_path):
    import duckdb

    from nrr_sync.jobs.checkpointing import (
        FETCH_CHECKPOINT_WAL,
        set_checkpoint_threshold,
        wal_between_checkpoints,
    )

    low, high = FETCH_CHECKPOINT_WAL
    assert wal_between_checkpoints(0) == low
    assert wal_between_checkpoints(low + 12345) == low + 12345
    assert wal_between_checkpoints(10 * high) == high
    # On a real file: a small one gets the lower bound, in place of DuckDB's default.
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    default = con.execute("SELECT current_setting('checkpoint_threshold')").fetchone()[0]
    set_checkpoint_threshold(con)
    threshold = con.execute("SELECT current_setting('checkpoint_threshold')").fetchone()[0]
    assert threshold == f"{low // 2**20}.0 MiB" != default


def test_the_log_is_checkpointed_before_the_last_pages_land(tmp_path, monkeypatch):
    """Once the pages left would write less log than the smallest threshold, or than a
    quarter of the log built up, the threshold drops to the smallest, so the log built up
    so far is checkpointed while the last requests are out."""
    import duckdb

    from nrr_sync.jobs import checkpointing
    from nrr_sync.jobs.checkpointing import LandingLog, set_checkpoint_threshold

    smallest = 256 * 1024  # so that a small file's own size is above it
    monkeypatch.setattr(checkpointing, "FETCH_CHECKPOINT_WAL", (smallest, 64 * 2**20))
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("SET checkpoint_threshold = '1GB'")
    con.execute("CREATE TABLE pages AS SELECT range n, md5(range::VARCHAR) body FROM range(200000)")
    con.execute("CHECKPOINT")
    (file_bytes,) = con.execute(
        "SELECT used_blocks * block_size FROM pragma_database_size()"
    ).fetchone()
    assert file_bytes > 4 * smallest

    def threshold_is(bytes_: int) -> bool:
        now = con.execute("SELECT current_setting('checkpoint_threshold')").fetchone()[0]
        con.execute(f"SET checkpoint_threshold = '{bytes_}B'")
        return now == con.execute("SELECT current_setting('checkpoint_threshold')").fetchone()[0]

    log = LandingLog.of(con)
    assert log.path == str(tmp_path / "w.duckdb.wal")
    assert log.bytes_for(1) == float("inf")  # nothing landed yet: no rate to judge by
    con.execute("INSERT INTO pages SELECT range, md5(range::VARCHAR) FROM range(100000)")
    log.committed(pages=40)
    assert log.size > smallest  # the log holds the rows
    assert log.bytes_for(20) == log.size / 2
    assert log.size * checkpointing.ENDING_SHARE > 2 * smallest

    def pages_writing(bytes_: float) -> float:
        return 40 * bytes_ / log.size

    # positive control: with many pages left, the log may grow to the file's size
    assert set_checkpoint_threshold(con, log, pages_left=pages_writing(log.size / 2)) is False
    assert threshold_is(file_bytes)
    # pages that would write twice the smallest threshold, but less than a quarter of
    # the log: its checkpoint starts now, not when they are nearly all in
    assert set_checkpoint_threshold(con, log, pages_left=pages_writing(2 * smallest)) is True
    assert threshold_is(smallest)
    con.execute("CHECKPOINT")
    log.committed(pages=1)
    assert (log.size, log.pages) == (0, 0)


@pytest.mark.parametrize(("days", "whole_page_newer"), [(20, False), (120, True)])
def test_first_pages_are_asked_beside_the_account_and_trimmed_to_its_clock(
    tmp_path, sandbox_factory, days, whole_page_newer
):
    """The first page of every kind leaves with the account's request (one round trip
    sooner), before the API's clock is known: what it holds from after that clock is not
    landed. The proxy holds the account's answer until every kind's first request came,
    and lets the sandbox live ``days`` more before any page is answered: after 20 days the
    first pages hold a few objects newer than the clock (dropped), after 120 the invoices'
    whole first page is (asked again, within the slice)."""
    from email.utils import parsedate_to_datetime

    from hostile_proxy import HostileProxy

    sandbox = sandbox_factory(customers=60, seed=5, latency_ms=1)
    proxy = HostileProxy(sandbox.url)
    paths = {kind.path for kind in KINDS}
    clock: list = []
    answered, every_kind_asked = threading.Event(), threading.Event()
    first_asked: dict[str, bool] = {}  # path -> asked without an end while the account waited
    newer_served = []  # objects of first pages created after the clock
    all_newer: dict[str, bool] = {}  # path -> its whole first page was created after it
    lock = threading.Lock()

    def account(request):
        answer = request.forward()
        if not clock:
            clock.append(int(parsedate_to_datetime(answer.headers["Date"]).timestamp()))
            sandbox.advance(days * 86400)
            answered.set()
            every_kind_asked.wait(timeout=20)
        return answer

    def listing(request):
        if request.number == 1:
            with lock:
                first_asked[request.path] = (
                    not every_kind_asked.is_set() and request.param("created[lt]") is None
                )
                if set(first_asked) == paths:
                    every_kind_asked.set()
            answered.wait(timeout=20)
            answer = request.forward()
            objects = answer.json()["data"]
            newer_served.extend(o for o in objects if o["created"] > clock[0])
            all_newer[request.path] = bool(objects) and objects[-1]["created"] > clock[0]
            return answer
        return request.forward()

    proxy.on("/v1/account", account)
    proxy.on(lambda path: path in paths, listing)
    try:
        config = write_config(tmp_path, stripe={"concurrency": 16})
        result = cli(config, ["backfill", "--since", SINCE], sandbox, api_base=proxy.url)
    finally:
        proxy.close()

    assert result.exit_code == 0, result.output
    assert first_asked == dict.fromkeys(paths, True)
    assert newer_served, "positive control: the first pages held objects after the clock"
    assert all_newer["/v1/invoices"] is whole_page_newer
    db = tmp_path / "nrr.duckdb"
    world = sandbox.world
    for kind in KINDS:
        expected = {
            (account_id, obj["id"])
            for account_id in world.account_ids
            for obj in world.objects(account_id, kind.table)
            if obj["created"] <= clock[0]
        }
        assert landed_ids(db, kind.table) == expected, kind.table
    newest = query(db, "SELECT max(created) FROM stripe.invoices")[0][0]
    assert int(newest.timestamp()) <= clock[0]
