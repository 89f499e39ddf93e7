"""``nrr-sync status``: readable always, and an exit code monitoring can alert on."""

import json
import time

import pytest
from report_fixtures import make_report_db
from typer.testing import CliRunner

from nrr_sync.cli import app

HOUR = 3600.0


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    monkeypatch.delenv("NRR_SYNC_DATABASE", raising=False)
    monkeypatch.delenv("NRR_SYNC_CONFIG", raising=False)


def status(tmp_path, database):
    config = tmp_path / "config.yaml"
    config.write_text(f"database:\n  path: {database}\n")
    return CliRunner().invoke(app, ["--config", str(config), "status"])


def test_fresh_database_is_ok_and_shows_runs_counts_versions_and_findings(tmp_path):
    now = time.time()
    database = make_report_db(
        tmp_path / "nrr.duckdb",
        runs=[
            ("backfill", now - 30 * HOUR, now - 29.9 * HOUR, "ok"),
            ("sync", now - 2 * HOUR, now - 2 * HOUR + 12.5, "ok"),
        ],
    )
    result = status(tmp_path, database)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Data       as of 2025-06-15 00:00 UTC, reported from 2024-01" in out
    runs = out.split("Last runs")[1].split("Cursors")[0]
    assert runs.index("sync") < runs.index("backfill")  # newest first
    assert "12.5 s" in runs and "940" in runs  # duration, objects summed over kinds
    assert "events:cursor:acct_fixture" in out and "2.0 h ago" in out
    assert "1 backfill slice checkpoints" in out
    assert "report.mrr_summary" in out and "stripe.customers" in out
    counts = {line.split()[0]: line.split()[1] for line in out.splitlines() if "." in line[:20]}
    assert counts["report.mrr_summary"] == "18"
    assert "V001" in out and "R006__mrr_summary.sql" in out
    assert "1 error, 1 warning" in out
    assert "invoice_lines_incomplete" in out and "unknown_price" in out
    assert "OK: last successful run finished 2.0 h ago." in out


def test_stale_data_exits_1(tmp_path):
    now = time.time()
    database = make_report_db(
        tmp_path / "nrr.duckdb", runs=[("sync", now - 40 * HOUR, now - 40 * HOUR + 5, "ok")]
    )
    result = status(tmp_path, database)
    assert result.exit_code == 1
    assert "WARNING" in result.stdout and "data is stale" in result.stdout
    assert "more than 36 h" in result.stdout


def test_last_run_failed_exits_1(tmp_path):
    now = time.time()
    database = make_report_db(
        tmp_path / "nrr.duckdb",
        runs=[
            ("sync", now - 3 * HOUR, now - 3 * HOUR + 5, "ok"),
            ("sync", now - HOUR, now - HOUR + 5, "failed:4"),
        ],
    )
    result = status(tmp_path, database)
    assert result.exit_code == 1
    assert "the last run (sync) ended failed:4" in result.stdout


def test_failed_run_noted_only_in_the_sidecar_file_exits_1(tmp_path):
    now = time.time()
    database = make_report_db(
        tmp_path / "nrr.duckdb", runs=[("sync", now - 3 * HOUR, now - 3 * HOUR + 5, "ok")]
    )
    failed = {
        "run_id": "20260101T000000-abc",
        "command": "sync",
        "started_at": "2099-01-01T00:00:00+00:00",
        "finished_at": "2099-01-01T00:00:09+00:00",
        "outcome": "failed:4",
        "exit_code": 4,
        "message": "Stripe unreachable after 8 attempts",
        "objects": {},
        "requests": 8,
        "retries": 7,
    }
    (tmp_path / "nrr.duckdb.runs.json").write_text(json.dumps([failed]))
    result = status(tmp_path, database)
    assert result.exit_code == 1
    assert "failed:4" in result.stdout
    assert "last failure: Stripe unreachable after 8 attempts" in result.stdout


def test_no_successful_run_exits_1(tmp_path):
    database = make_report_db(tmp_path / "nrr.duckdb", runs=[], with_report=False)
    result = status(tmp_path, database)
    assert result.exit_code == 1
    assert "none recorded" in result.stdout
    assert "no successful run recorded" in result.stdout
    assert "not built yet" in result.stdout


def test_missing_database_is_readable_and_exits_1(tmp_path):
    result = status(tmp_path, tmp_path / "nrr.duckdb")
    assert result.exit_code == 1
    assert "does not exist yet" in result.stdout
    assert "nrr-sync backfill --since YYYY-MM" in result.stdout
    assert not (tmp_path / "nrr.duckdb").exists()


def test_not_a_duckdb_file_exits_2(tmp_path):
    database = tmp_path / "nrr.duckdb"
    database.write_bytes(b"\x00garbage" * 1000)
    result = status(tmp_path, database)
    assert result.exit_code == 2
    assert "is not a DuckDB database file" in result.stderr
