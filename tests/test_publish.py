"""Safe publishing (docs/operations.md): job lock, working copy, atomic replace, busy databases."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sync_helpers import cli, cli_process, environment, query, write_config

from nrr_sync import publish

HOLD_READ_WRITE = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])
print("holding", flush=True)
sys.stdin.readline()
"""

READ_BEFORE_AND_AFTER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
print(con.execute("SELECT count(*) FROM meta.sync_runs").fetchone()[0], flush=True)
sys.stdin.readline()
print(con.execute("SELECT count(*) FROM meta.sync_runs").fetchone()[0], flush=True)
"""


def holder(script: str, db: Path) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", script, str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    return process


NO_STRIPE = {"key": "unused", "api_base": "http://127.0.0.1:9"}


@pytest.fixture
def published(tmp_path, sandbox_factory) -> tuple[Path, Path]:
    """(config, db): a small finished backfill, published."""
    sandbox = sandbox_factory(customers=5, seed=3, latency_ms=1)
    config = write_config(tmp_path)
    result = cli(config, ["backfill", "--since", "2024-01"], sandbox)
    assert result.exit_code == 0, result.output
    return config, tmp_path / "nrr.duckdb"


def test_build_republishes_and_leaves_no_working_copy(tmp_path, published):
    config, db = published

    result = cli(config, ["build"], **NO_STRIPE)

    assert result.exit_code == 0, result.output
    assert not (tmp_path / "nrr.duckdb.work").exists()
    assert not (tmp_path / "nrr.duckdb.work.origin").exists()
    assert query(db, "SELECT command, outcome FROM meta.sync_runs ORDER BY started_at") == [
        ("backfill", "ok"),
        ("build", "ok"),
    ]
    runs = json.loads((tmp_path / "nrr.duckdb.runs.json").read_text())
    assert [run["outcome"] for run in runs] == ["ok", "ok"]


LOADED_AFTER_RUN = """
import atexit, sys
atexit.register(lambda: print("loaded:", *sorted(
    name for name in ("stripe", "pyarrow", "requests") if name in sys.modules)))
from nrr_sync.cli import app
app()
"""


def test_a_build_loads_neither_the_stripe_sdk_nor_arrow(published, tmp_path):
    """A build runs the SQL only: it skips the 0.2-0.4 s of importing the client. Positive
    control: a sync, which talks to Stripe, loads them."""
    config, db = published

    def loaded(args: list[str]) -> str:
        process = subprocess.run(
            [sys.executable, "-c", LOADED_AFTER_RUN, "--config", str(config), *args],
            env={**os.environ, **environment(**NO_STRIPE)},
            capture_output=True,
            text=True,
        )
        return process.stdout.strip().splitlines()[-1]

    assert loaded(["build"]) == "loaded:"
    assert query(db, "SELECT command, outcome FROM meta.sync_runs ORDER BY started_at")[-1] == (
        "build",
        "ok",
    )
    assert loaded(["sync"]) == "loaded: pyarrow requests stripe"


def test_a_second_run_exits_5_at_once_while_one_is_working(tmp_path):
    config = write_config(tmp_path)
    db = tmp_path / "nrr.duckdb"

    started = time.monotonic()
    with publish.job_lock(db):
        result = cli(config, ["build"], **NO_STRIPE)

    assert result.exit_code == 5
    assert time.monotonic() - started < 1
    assert "another nrr-sync run (pid" in result.output
    assert str(db) in result.output.replace("\n", "")
    assert not db.exists()


def test_a_read_write_holder_makes_the_run_exit_5_naming_the_process(tmp_path, published):
    _, db = published
    config = write_config(tmp_path, database={"lock_timeout_seconds": 0.5})
    before = db.read_bytes()
    process = holder(HOLD_READ_WRITE, db)
    try:
        assert process.stdout.readline().strip() == "holding"
        started = time.monotonic()
        result = cli(config, ["build"], **NO_STRIPE)
        waited = time.monotonic() - started
    finally:
        process.communicate("\n")

    assert result.exit_code == 5
    assert f"PID {process.pid}" in result.output
    assert "lock_timeout_seconds" in result.output
    assert 0.4 < waited < 5
    assert db.read_bytes() == before


def test_a_reader_session_neither_blocks_a_run_nor_sees_it_until_it_reconnects(published):
    config, db = published
    reader = holder(READ_BEFORE_AND_AFTER, db)
    try:
        assert reader.stdout.readline().strip() == "1"
        result = cli(config, ["build"], **NO_STRIPE)
        after, _ = reader.communicate("\n")
    finally:
        reader.kill()

    assert result.exit_code == 0, result.output
    assert after.strip() == "1"  # the reader keeps its old view
    assert query(db, "SELECT count(*) FROM meta.sync_runs")[0][0] == 2  # new sessions see the new


def test_a_file_that_is_not_duckdb_is_a_usage_error(tmp_path):
    config = write_config(tmp_path)
    db = tmp_path / "nrr.duckdb"
    db.write_text("name,mrr\nacme,100\n")

    result = cli(config, ["build"], **NO_STRIPE)

    assert result.exit_code == 2
    assert "is not a DuckDB database" in result.output
    assert db.read_text() == "name,mrr\nacme,100\n"


def test_a_failed_run_keeps_the_published_file_and_is_recorded(tmp_path, published):
    config, db = published
    before = db.read_bytes()

    result = cli(config, ["sync"], key="sk_test_wrongKey42", api_base=NO_STRIPE["api_base"])

    assert result.exit_code == 4
    assert db.read_bytes() == before
    runs = json.loads((tmp_path / "nrr.duckdb.runs.json").read_text())
    assert [(run["command"], run["outcome"]) for run in runs] == [
        ("backfill", "ok"),
        ("sync", "failed:4"),
    ]
    # the next good run publishes the failure's row too
    assert cli(config, ["build"], **NO_STRIPE).exit_code == 0
    outcomes = query(db, "SELECT command, outcome FROM meta.sync_runs ORDER BY started_at")
    assert outcomes == [("backfill", "ok"), ("sync", "failed:4"), ("build", "ok")]


def test_working_copy_is_reused_after_a_failure(tmp_path):
    db = tmp_path / "nrr.duckdb"
    con, work = publish.open_working_copy(db, 1)
    con.execute("CREATE TABLE marker AS SELECT 42 AS x")
    con.close()

    con, again = publish.open_working_copy(db, 1)
    try:
        assert again == work
        assert con.execute("SELECT x FROM marker").fetchone() == (42,)
    finally:
        con.close()


READ_INVOICES_BEFORE_AND_AFTER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
count = "SELECT count(*) FROM stripe.invoices"
print(con.execute(count).fetchone()[0], flush=True)
sys.stdin.readline()
print(con.execute(count).fetchone()[0], flush=True)
"""


def test_an_analyst_session_open_during_sync_keeps_its_view(tmp_path, sandbox_factory):
    sandbox = sandbox_factory(customers=30, seed=3, latency_ms=1)
    config = write_config(tmp_path)
    db = tmp_path / "nrr.duckdb"
    assert cli(config, ["backfill", "--since", "2024-01"], sandbox).exit_code == 0
    reader = holder(READ_INVOICES_BEFORE_AND_AFTER, db)
    try:
        before = int(reader.stdout.readline())
        sandbox.advance(20 * 86400)
        result = cli(config, ["sync"], sandbox)
        after, _ = reader.communicate("\n")
    finally:
        reader.kill()

    assert result.exit_code == 0, result.output
    assert int(after) == before
    assert query(db, "SELECT count(*) FROM stripe.invoices")[0][0] > before


def test_a_second_run_beside_a_running_backfill_exits_5_naming_it(tmp_path, sandbox_factory):
    sandbox = sandbox_factory(customers=30, seed=3, latency_ms=300)
    config = write_config(tmp_path)
    first = cli_process(config, ["backfill", "--since", "2024-01"], sandbox)
    try:
        deadline = time.monotonic() + 20
        while sandbox.stats()["requests"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        started = time.monotonic()
        second = cli(config, ["sync"], sandbox)
        elapsed = time.monotonic() - started
    finally:
        first.communicate(timeout=60)

    assert second.exit_code == 5
    assert f"pid {first.pid}" in second.output
    assert elapsed < 2
    assert first.returncode == 0
