"""Shared by the resilience tests: row-by-row snapshots of the landing and report tables,
and small disks."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from sync_helpers import snapshot

# Columns that say when something ran, not what the data is.
RUN_TIME_COLUMNS = {"built_at", "synced_at", "applied_at", "updated_at"}


def report_snapshot(db_path: Path) -> dict[str, list[tuple]]:
    """Every row of every report table (all columns but build times) as sorted text tuples."""
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        tables = [
            name
            for (name,) in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'report' ORDER BY 1"
            ).fetchall()
        ]
        result = {}
        for table in tables:
            columns = [
                name
                for (name,) in con.execute(
                    "SELECT column_name FROM duckdb_columns() WHERE schema_name = 'report' "
                    "AND table_name = ? ORDER BY column_index",
                    [table],
                ).fetchall()
                if name not in RUN_TIME_COLUMNS
            ]
            select = ", ".join(f'"{c}"::VARCHAR' for c in columns)
            rows = con.execute(f"SELECT {select} FROM report.{table}").fetchall()
            result[table] = sorted(rows, key=lambda row: tuple("" if v is None else v for v in row))
        return result
    finally:
        con.close()


def everything(db_path: Path) -> tuple[dict, dict]:
    """(landing rows, report rows): equal for two files = the same data, row by row."""
    return snapshot(db_path), report_snapshot(db_path)


def assert_same_data(db_path: Path, clean_path: Path) -> None:
    landing, report = everything(db_path)
    clean_landing, clean_report = everything(clean_path)
    for kind in clean_landing:
        assert landing[kind] == clean_landing[kind], f"stripe.{kind} differs from a clean run"
    assert set(report) == set(clean_report)
    for table in clean_report:
        assert report[table] == clean_report[table], f"report.{table} differs from a clean run"
    assert sum(len(rows) for rows in clean_report.values()) > 0


def wait_for_requests(sandbox, at_least: int, process, timeout: float = 30) -> bool:
    """Wait until the sandbox has answered ``at_least`` requests (False if ``process`` ended)."""
    deadline = time.monotonic() + timeout
    while sandbox.stats()["requests"] < at_least:
        if process.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def landed_counts(db_path: Path) -> dict[str, int]:
    from nrr_sync import kinds

    con = duckdb.connect(str(db_path), read_only=True)
    try:
        return {
            kind: con.execute(f"SELECT count(*) FROM stripe.{kind}").fetchone()[0]
            for kind in kinds.TABLES
        }
    finally:
        con.close()


@contextlib.contextmanager
def small_tmpfs(mount_point: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` ("32m") mounted at ``mount_point`` (needs root; skips the test
    otherwise), unmounted at the end."""
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)],
        capture_output=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs (needs root): {mounted.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)
