"""A working copy that is mostly free blocks is published as a new, compact file
(docs/operations.md, "How a run writes the database"): same data, same permissions, no
leftovers; when there is no room to compact, the working copy is published as it is,
with a warning."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import duckdb
import pytest
from resilience_helpers import small_tmpfs
from sync_helpers import cli, cli_process, query, write_config

NO_STRIPE = {"key": "unused", "api_base": "http://127.0.0.1:9"}
TABLES = "SELECT schema_name, table_name, sql FROM duckdb_tables() ORDER BY ALL"
MACROS = (
    "SELECT schema_name, function_name, macro_definition FROM duckdb_functions() "
    "WHERE NOT internal AND database_name = current_database() ORDER BY ALL"
)


def blocks(db: Path) -> tuple[int, int]:
    """(total, free) blocks of a DuckDB file."""
    return query(db, "SELECT total_blocks, free_blocks FROM pragma_database_size()")[0]


def landed(db: Path) -> dict[str, tuple]:
    """Each landing table's row count and a hash of all its values."""
    names = [row[0] for row in query(db, "SELECT table_name FROM duckdb_tables() "
                                         "WHERE schema_name = 'stripe'")]  # fmt: skip
    return {
        name: query(db, f"SELECT count(*), sum(hash(COLUMNS(*))) FROM stripe.{name}")[0]
        for name in names
    }


def free_most_of_it(db: Path, kept_mib: int = 1, dropped_mib: int = 24) -> None:
    """Write a scratch table, then one that stays after it, and drop the scratch table: the
    blocks a migration that writes a large table anew leaves free before the new one."""
    con = duckdb.connect(str(db))
    try:
        for name, mib in (("scratch", dropped_mib), ("kept", kept_mib)):
            rows = mib * 1024 * 1024 // 64
            con.execute(
                f"CREATE TABLE main.{name} AS SELECT md5(i::VARCHAR) || md5((i + 1)::VARCHAR) "
                f"AS filler FROM range({rows}) AS r(i)"
            )
            con.execute("CHECKPOINT")
        con.execute("DROP TABLE main.scratch")
        con.execute("CHECKPOINT")
    finally:
        con.close()


def backfill(tmp_path: Path, sandbox_factory, **database) -> tuple[Path, Path]:
    config = write_config(tmp_path, database=database) if database else write_config(tmp_path)
    sandbox = sandbox_factory(customers=8, seed=5, latency_ms=1)
    result = cli(config, ["backfill", "--since", "2024-01"], sandbox)
    assert result.exit_code == 0, result.output
    return config, Path(database.get("path", tmp_path / "nrr.duckdb"))


def test_a_mostly_free_working_copy_is_published_compact_with_the_same_data(
    tmp_path, sandbox_factory
):
    config, db = backfill(tmp_path, sandbox_factory)
    free_most_of_it(db)
    db.chmod(0o600)
    total, free = blocks(db)
    assert free > total / 2
    size, data = db.stat().st_size, landed(db)
    tables, macros = query(db, TABLES), query(db, MACROS)

    result = cli(config, ["build"], **NO_STRIPE)

    assert result.exit_code == 0, result.output
    assert blocks(db)[1] == 0
    assert db.stat().st_size < size / 2
    assert landed(db) == data
    assert query(db, TABLES) == tables and len(tables) > 20
    assert query(db, MACROS) == macros and macros
    assert query(db, "SELECT count(*) FROM report.counted_lines")[0][0] > 0  # the view
    assert query(db, "SELECT command, outcome FROM meta.sync_runs ORDER BY started_at") == [
        ("backfill", "ok"),
        ("build", "ok"),
    ]
    assert db.stat().st_mode & 0o777 == 0o600
    assert sorted(path.name for path in tmp_path.iterdir() if "nrr.duckdb" in path.name) == [
        "nrr.duckdb",
        "nrr.duckdb.lock",
        "nrr.duckdb.runs.json",
    ]

    # Control: a working copy with few free blocks (a build rewrites only the report
    # tables) is published as it is, free blocks and all.
    assert cli(config, ["build"], **NO_STRIPE).exit_code == 0
    assert 0 < blocks(db)[1] < blocks(db)[0] / 2


@pytest.fixture
def disk(tmp_path):
    """A 160 MiB tmpfs (needs root; skipped otherwise)."""
    with small_tmpfs(tmp_path / "disk", "160m") as mount_point:
        yield mount_point


def test_without_room_to_compact_the_working_copy_is_published_as_it_is(
    tmp_path, disk, sandbox_factory
):
    config, db = backfill(tmp_path, sandbox_factory, path=str(disk / "nrr.duckdb"))
    free_most_of_it(db, kept_mib=12, dropped_mib=64)
    total, free = blocks(db)
    assert free > total / 2
    size, data = db.stat().st_size, landed(db)
    # Room for the working copy and the build, not for a compact copy of 12 MiB beside it.
    filler = disk / "filler"
    room = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    subprocess.run(["fallocate", "-l", str(room - size - 6 * 1024 * 1024), str(filler)], check=True)

    process = cli_process(config, ["build"], **NO_STRIPE)
    out, err = process.communicate(timeout=120)

    assert process.returncode == 0, out + err
    assert "published without compacting it" in err
    assert "No space left on device" in err or "not enough space" in err.lower()
    assert blocks(db)[1] > blocks(db)[0] / 2
    assert landed(db) == data
    assert not [path for path in disk.iterdir() if ".copying-" in path.name]

    filler.unlink()
    assert cli(config, ["build"], **NO_STRIPE).exit_code == 0
    assert blocks(db)[1] == 0


def test_a_compacted_copy_a_killed_run_left_is_removed_by_the_next_run(tmp_path, sandbox_factory):
    config, db = backfill(tmp_path, sandbox_factory)
    left = tmp_path / "nrr.duckdb.copying-k1lled00"  # as _compacted_copy names its directory
    left.mkdir(mode=0o700)
    (left / "nrr.duckdb").write_bytes(b"half a database")
    published = db.read_bytes()

    result = cli(config, ["build"], **NO_STRIPE)

    assert result.exit_code == 0, result.output
    assert not left.exists()
    assert db.read_bytes() != published  # control: the run did publish a new file


def test_sigterm_during_the_compaction_exits_143_and_leaves_the_published_file(
    tmp_path, sandbox_factory
):
    config, db = backfill(tmp_path, sandbox_factory)
    free_most_of_it(db, kept_mib=96, dropped_mib=256)  # a compaction of a second or more
    published = db.read_bytes()
    process = cli_process(config, ["build"], **NO_STRIPE)
    deadline = time.monotonic() + 60
    compacting = False
    while not compacting and process.poll() is None and time.monotonic() < deadline:
        compacting = any(path.is_dir() for path in tmp_path.glob("nrr.duckdb.copying-*"))
        time.sleep(0.005)
    process.send_signal(signal.SIGTERM)
    try:
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert compacting, stderr  # the signal came while the compacted copy was written
    assert process.returncode == 143, stderr
    assert "without compacting" not in stderr and "Query interrupted" not in stderr
    assert db.read_bytes() == published
    assert cli(config, ["status"], **NO_STRIPE).exit_code == 1
    assert cli(config, ["build"], **NO_STRIPE).exit_code == 0  # resumes, compacts, publishes
    assert blocks(db)[1] == 0
    assert not list(tmp_path.glob("nrr.duckdb.copying-*"))
