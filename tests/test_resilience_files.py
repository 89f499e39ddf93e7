"""The database file and its neighbours: what may be published, and nothing else.

An unfinished backfill or an empty fetch is never published; publishing keeps the file's
mode, owner and group and follows a symlinked ``database.path`` to its target; side files
are never written through a link planted in their place; ``report --html`` never
overwrites the database; a damaged working copy is discarded, a damaged or foreign
published file is exit 2 for every command; an analyst's write into the published file
during a run is kept (exit 5). Every failing case leaves the published file byte-identical
and makes ``nrr-sync status`` exit non-zero.
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
import shutil
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pytest
from hostile_proxy import Answer, HostileProxy
from resilience_helpers import wait_for_requests
from sync_helpers import cli, cli_process, query, write_config

from nrr_sync import build, dbfile
from nrr_sync.config import Config

SINCE = "2024-01"
NO_STRIPE = {"key": "unused", "api_base": "http://127.0.0.1:9"}
BAD_GATEWAY = {"Content-Type": "text/html"}
QUICK_RETRY = {"retry": {"max_attempts": 2, "max_wait_seconds": 0}}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def published(tmp_path, sandbox_factory):
    """(sandbox, config, db): a small finished backfill, published."""
    sandbox = sandbox_factory(customers=8, seed=5, latency_ms=1)
    config = write_config(tmp_path, stripe=QUICK_RETRY)
    result = cli(config, ["backfill", "--since", SINCE], sandbox)
    assert result.exit_code == 0, result.output
    return sandbox, config, tmp_path / "nrr.duckdb"


@contextmanager
def failing_invoices(sandbox) -> Iterator[str]:
    """A proxy to ``sandbox`` whose ``GET /v1/invoices`` answers 502; yields its URL."""
    proxy = HostileProxy(sandbox.url)
    proxy.on("/v1/invoices", lambda request: Answer(502, BAD_GATEWAY, b"<h1>Bad gateway</h1>"))
    try:
        yield proxy.url
    finally:
        proxy.close()


# 1, 7: only a finished backfill is published --------------------------------------------


def test_build_after_an_unfinished_backfill_refuses_and_status_says_so(tmp_path, sandbox_factory):
    sandbox = sandbox_factory(customers=8, seed=5, latency_ms=1)
    config = write_config(tmp_path, stripe=QUICK_RETRY)
    db = tmp_path / "nrr.duckdb"
    # An early `build` leaves a working copy that the backfill resumes; DuckDB later cuts
    # free blocks off its end, which must not read as a truncated file.
    assert cli(config, ["build"], **NO_STRIPE).exit_code == 2
    assert cli(config, ["backfill", "--since", SINCE], sandbox).exit_code == 0
    before = sha256(db)
    with failing_invoices(sandbox) as api_base:
        failed = cli(
            config, ["backfill", "--since", SINCE, "--restart"], sandbox, api_base=api_base
        )
    assert failed.exit_code == 4, failed.output
    assert sha256(db) == before

    build = cli(config, ["build"], **NO_STRIPE)

    assert build.exit_code == 2, build.output
    assert f"`nrr-sync backfill --since {SINCE}`" in build.output
    assert "`nrr-sync sync`" in build.output
    assert sha256(db) == before
    status = cli(config, ["status"], **NO_STRIPE)
    assert status.exit_code == 1
    assert f"a backfill from {SINCE} is unfinished" in status.output
    # positive control: the backfill that finishes it publishes, and status is OK again
    assert cli(config, ["backfill", "--since", SINCE], sandbox).exit_code == 0
    assert sha256(db) != before
    status = cli(config, ["status"], **NO_STRIPE)
    assert status.exit_code == 0, status.output
    assert "is unfinished" not in status.output


def test_build_with_nothing_fetched_exits_2_and_publishes_nothing(tmp_path):
    config = write_config(tmp_path)

    result = cli(config, ["build"], **NO_STRIPE)

    assert result.exit_code == 2
    assert "Nothing fetched yet: run `nrr-sync backfill --since YYYY-MM`" in result.output
    assert not (tmp_path / "nrr.duckdb").exists()


def test_a_file_without_data_is_no_data_for_report_and_status(tmp_path):
    config = write_config(tmp_path)
    db = tmp_path / "nrr.duckdb"
    # What `build` published before a backfill: all tables, an all-zero report.
    with duckdb.connect(str(db)) as con:
        build.build(con, Config())
        assert con.execute("SELECT count(*) FROM report.mrr_summary").fetchone()[0] > 0

    report = cli(config, ["report"], **NO_STRIPE)
    status = cli(config, ["status"], **NO_STRIPE)

    assert report.exit_code == 2
    assert "nothing fetched yet" in report.output
    assert status.exit_code == 1
    assert "nothing fetched yet" in status.output


# 8, 9: publishing keeps the file's mode and owner, and follows a symlink -----------------


@pytest.mark.parametrize("mode", [0o600, 0o640])
def test_publishing_keeps_mode_owner_and_group(published, mode):
    _, config, db = published
    db.chmod(mode)
    owner = (1, 50) if os.geteuid() == 0 else (os.getuid(), os.getgid())
    if os.geteuid() == 0:
        os.chown(db, *owner)
    before = sha256(db)

    result = cli(config, ["build"], **NO_STRIPE)

    assert result.exit_code == 0, result.output
    assert sha256(db) != before  # a new file was published
    info = db.stat()
    assert stat.S_IMODE(info.st_mode) == mode
    assert (info.st_uid, info.st_gid) == owner


def test_a_symlinked_database_path_updates_its_target(tmp_path, sandbox_factory):
    sandbox = sandbox_factory(customers=5, seed=5, latency_ms=1)
    (tmp_path / "data").mkdir()
    real = tmp_path / "data" / "real.duckdb"
    link = tmp_path / "nrr.duckdb"
    link.symlink_to(real)  # dangling until the first backfill creates the target
    config = write_config(tmp_path, database={"path": str(link)})

    assert cli(config, ["backfill", "--since", SINCE], sandbox).exit_code == 0
    assert cli(config, ["build"], **NO_STRIPE).exit_code == 0

    assert link.is_symlink() and os.readlink(link) == str(real)
    assert query(real, "SELECT command FROM meta.sync_runs ORDER BY started_at") == [
        ("backfill",),
        ("build",),
    ]
    assert (tmp_path / "data" / "real.duckdb.lock").exists()
    assert (tmp_path / "data" / "real.duckdb.runs.json").exists()
    assert not (tmp_path / "nrr.duckdb.lock").exists()
    assert cli(config, ["status"], **NO_STRIPE).exit_code == 0


# 10: side files are never written through a planted link ---------------------------------


@pytest.mark.parametrize(
    "suffix", [".lock", ".copying", ".runs.json.partial", ".work", ".work.wal"]
)
def test_a_link_planted_at_a_side_file_never_writes_its_target(published, tmp_path, suffix):
    _, config, db = published
    victim = tmp_path / "victim.duckdb"
    shutil.copyfile(db, victim)  # a DuckDB file: DuckDB itself would write into it
    victim_before = sha256(victim)
    planted = tmp_path / f"nrr.duckdb{suffix}"
    if suffix == ".lock":
        planted.unlink()
    planted.symlink_to(victim)
    before = sha256(db)

    result = cli(config, ["build"], **NO_STRIPE)

    assert sha256(victim) == victim_before
    if suffix == ".lock":
        assert result.exit_code == 2
        assert "is a link or not a plain file" in result.output
        assert sha256(db) == before
    else:
        assert result.exit_code == 0, result.output
        assert sha256(db) != before


# 11: report --html never overwrites the database ---------------------------------------


# A FIFO, never a real device: writing over one as root is what this test guards against.
@pytest.mark.parametrize("target", ["database", "lock", "link to database", "fifo", "folder"])
def test_report_html_refuses_the_database_its_side_files_and_non_files(published, tmp_path, target):
    pytest.importorskip("plotly")
    _, config, db = published
    paths = {
        "database": db,
        "lock": tmp_path / "nrr.duckdb.lock",
        "link to database": tmp_path / "report.html",
        "fifo": tmp_path / "pipe",
        "folder": tmp_path,
    }
    (tmp_path / "report.html").symlink_to(db)
    os.mkfifo(tmp_path / "pipe")
    before = sha256(db)

    result = cli(config, ["report", "--html", str(paths[target])], **NO_STRIPE)

    assert result.exit_code == 2, result.output
    assert "--html" in result.output
    assert sha256(db) == before
    assert stat.S_ISFIFO(os.stat(tmp_path / "pipe").st_mode)
    # positive control: a plain new file is written
    good = cli(config, ["report", "--html", str(tmp_path / "ok.html")], **NO_STRIPE)
    assert good.exit_code == 0, good.output
    assert (tmp_path / "ok.html").read_text().startswith("<!DOCTYPE html>")


# 12: damaged files ------------------------------------------------------------------------


def failed_sync(sandbox, config, db) -> None:
    """A sync that fails (Stripe unreachable) and leaves its working copy behind."""
    result = cli(config, ["sync"], sandbox, api_base=NO_STRIPE["api_base"])
    assert result.exit_code == 4, result.output
    assert (db.parent / "nrr.duckdb.work").exists()


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_damaged_working_copy_is_discarded_with_a_warning(published, damage, caplog):
    sandbox, config, db = published
    failed_sync(sandbox, config, db)
    work = db.parent / "nrr.duckdb.work"
    if damage == "truncated":
        os.truncate(work, work.stat().st_size // 2)
    else:
        with open(work, "r+b") as handle:
            handle.seek(4096)
            handle.write(os.urandom(8192))

    result = cli(config, ["build"], **NO_STRIPE)

    assert result.exit_code == 0, result.output
    assert re.search(r"working copy .*nrr\.duckdb\.work is discarded", caplog.text)
    assert query(db, "SELECT count(*) FROM stripe.invoices")[0][0] > 0
    assert cli(config, ["status"], **NO_STRIPE).exit_code == 0


def truncate_half(db: Path) -> None:
    os.truncate(db, db.stat().st_size // 2)


def cut_last_block(db: Path) -> None:
    """Cut the file just before the last block a table uses: DuckDB itself still opens
    it and reads numbers from it."""
    with duckdb.connect(str(db), read_only=True) as con:
        last = dbfile._last_table_block(con)
    os.truncate(db, dbfile.HEADER_BYTES + last * 262144)


def garbage(db: Path) -> None:
    db.write_bytes(os.urandom(db.stat().st_size))


def bad_headers(db: Path) -> None:
    with open(db, "r+b") as handle:
        handle.seek(4096)
        handle.write(os.urandom(8192))


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (truncate_half, "restore it from a backup"),
        (cut_last_block, "is truncated"),
        (garbage, "is not a DuckDB database file"),
        (bad_headers, "cannot be opened"),
    ],
)
@pytest.mark.parametrize("command", [["sync"], ["build"], ["report"], ["status"]])
def test_a_damaged_published_file_is_exit_2_for_every_command(published, damage, says, command):
    sandbox, config, db = published
    damage(db)
    before = sha256(db)
    requests = sandbox.stats()["requests"]

    result = cli(config, command, sandbox)

    assert result.exit_code == 2, result.output
    assert str(db) in result.output.replace("\n", "")
    assert says in result.output
    assert "Unexpected error" not in result.output
    assert sha256(db) == before
    assert sandbox.stats()["requests"] == requests


# 13: an analyst's write into the published file is never lost ---------------------------


def analyst_writes(db: Path) -> None:
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE main.analyst_notes AS SELECT 'keep me' AS note")


def test_a_write_into_the_published_file_during_a_run_is_kept_exit_5(tmp_path, sandbox_factory):
    sandbox = sandbox_factory(customers=8, seed=5, latency_ms=150)
    config = write_config(tmp_path)
    db = tmp_path / "nrr.duckdb"
    assert cli(config, ["backfill", "--since", SINCE], sandbox).exit_code == 0
    sandbox.advance(3 * 86400)
    requests = sandbox.stats()["requests"]

    run = cli_process(config, ["sync"], sandbox)
    assert wait_for_requests(sandbox, requests + 1, run)  # the file is copied by now
    analyst_writes(db)
    after_write = sha256(db)
    out, err = run.communicate(timeout=120)

    assert run.returncode == 5, out + err
    assert "was changed by another process since this run copied it" in err
    assert sha256(db) == after_write
    status = cli(config, ["status"], **NO_STRIPE)
    assert status.exit_code == 1
    # the next run starts over from the changed file, and keeps the analyst's table
    result = cli(config, ["sync"], sandbox)
    assert result.exit_code == 0, result.output
    assert query(db, "SELECT note FROM main.analyst_notes") == [("keep me",)]


def test_a_write_after_a_failed_run_is_kept_by_the_next_one(published, caplog):
    sandbox, config, db = published
    failed_sync(sandbox, config, db)
    analyst_writes(db)

    result = cli(config, ["build"], **NO_STRIPE)

    assert result.exit_code == 0, result.output
    assert "changed since it was copied" in caplog.text
    assert query(db, "SELECT note FROM main.analyst_notes") == [("keep me",)]


# 18: foreign files ------------------------------------------------------------------------


def foreign_customers(db: Path) -> None:
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE SCHEMA stripe; CREATE TABLE stripe.customers (x INT)")
        con.execute("CREATE SCHEMA meta")
        con.execute("CREATE TABLE meta.sql_migrations (version VARCHAR, name VARCHAR)")


def foreign_migrations(db: Path) -> None:
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE SCHEMA meta")
        con.execute("CREATE TABLE meta.sql_migrations (id INTEGER, script VARCHAR)")


def foreign_tables(db: Path) -> None:
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE sales AS SELECT 1 AS amount")


def sqlite_file(db: Path) -> None:
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE customers (id TEXT)")
    con.close()


@pytest.mark.parametrize(
    "make", [foreign_customers, foreign_migrations, foreign_tables, sqlite_file]
)
@pytest.mark.parametrize("command", [["backfill", "--since", SINCE], ["report"], ["status"]])
def test_a_foreign_file_is_exit_2_before_any_request(tmp_path, sandbox_factory, make, command):
    sandbox = sandbox_factory(customers=3, seed=5, latency_ms=1)
    config = write_config(tmp_path)
    db = tmp_path / "nrr.duckdb"
    make(db)
    before = sha256(db)

    result = cli(config, command, sandbox)

    assert result.exit_code == 2, result.output
    assert "not an nrr-sync database" in result.output
    assert sandbox.stats()["requests"] == 0
    assert sha256(db) == before


def test_no_connection_loads_or_installs_extensions(tmp_path):
    con = dbfile.connect(tmp_path / "x.duckdb")
    try:
        settings = con.execute(
            "SELECT current_setting('autoload_known_extensions'), "
            "current_setting('autoinstall_known_extensions')"
        ).fetchone()
    finally:
        con.close()
    assert settings == (False, False)
    package = Path(dbfile.__file__).parent
    connects = [
        f"{path.name}:{node.lineno}"
        for path in sorted(package.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "connect"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "duckdb"
    ]
    assert len(connects) == 1 and connects[0].startswith("dbfile.py:")  # dbfile.connect
