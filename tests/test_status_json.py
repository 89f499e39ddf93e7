"""``status --format json`` for monitoring, the text form's details, and the way back from
a failed build (missing fx rates): `nrr-sync build`, fetching nothing again."""

from __future__ import annotations

import json
import os
import time

import pytest
from report_fixtures import make_report_db
from sync_helpers import cli, write_config
from typer.testing import CliRunner

from nrr_sync.cli import app

HOUR = 3600.0


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    monkeypatch.delenv("NRR_SYNC_DATABASE", raising=False)
    monkeypatch.delenv("NRR_SYNC_CONFIG", raising=False)


def status(tmp_path, database, *args):
    config = tmp_path / "config.yaml"
    config.write_text(f"database:\n  path: {database}\n")
    return CliRunner().invoke(app, ["--config", str(config), "status", *args])


def test_json_is_one_object_with_the_same_verdict_as_the_text(tmp_path):
    now = time.time()
    database = make_report_db(
        tmp_path / "nrr.duckdb",
        runs=[
            ("backfill", now - 30 * HOUR, now - 29.9 * HOUR, "ok"),
            ("sync", now - 2 * HOUR, now - 2 * HOUR + 12.5, "ok"),
        ],
    )
    result = status(tmp_path, database, "--format", "json")
    assert result.exit_code == 0 == status(tmp_path, database).exit_code
    document = json.loads(result.stdout)
    assert document["health"] == {"ok": True, "exit_code": 0, "problems": []}
    assert document["freshness"]["stale"] is False
    assert 1.9 < document["freshness"]["age_hours"] < 2.1
    assert [run["command"] for run in document["runs"]] == ["sync", "backfill"]
    assert document["runs"][0]["outcome"] == "ok" and document["runs"][0]["exit_code"] == 0
    assert document["rows"]["report.mrr_summary"] == 18
    assert document["data_quality"]["by_severity"] == {"error": 1, "warning": 1}
    assert document["cursors"][0]["account"] == "acct_fixture"
    assert document["cursors"][0]["age_hours"] is not None
    assert document["unfinished_backfill"] is None and document["running"] is None


def test_json_exits_1_like_the_text_when_the_last_run_failed(tmp_path):
    now = time.time()
    database = make_report_db(
        tmp_path / "nrr.duckdb",
        runs=[
            ("sync", now - 3 * HOUR, now - 3 * HOUR + 5, "ok"),
            ("sync", now - HOUR, now - HOUR + 5, "failed:4"),
        ],
    )
    result = status(tmp_path, database, "--format", "json")
    assert result.exit_code == 1 == status(tmp_path, database).exit_code
    document = json.loads(result.stdout)
    assert document["health"]["ok"] is False and document["health"]["exit_code"] == 1
    assert document["runs"][0]["exit_code"] == 4
    assert any("failed:4" in problem for problem in document["health"]["problems"])


def test_a_run_in_progress_shows_with_its_pid_and_internal_state_stays_hidden(tmp_path):
    now = time.time()
    database = make_report_db(
        tmp_path / "nrr.duckdb", runs=[("sync", now - 3 * HOUR, now - 3 * HOUR + 5, "ok")]
    )
    running = {
        "run_id": "r1",
        "command": "sync",
        "started_at": "2026-01-01T00:00:00+00:00",
        "outcome": "running",
        "pid": os.getpid(),  # alive: this test
    }
    (tmp_path / "nrr.duckdb.runs.json").write_text(json.dumps([running]))
    import duckdb

    with duckdb.connect(str(database)) as con:
        con.execute(
            "INSERT INTO meta.sync_state (key, value, updated_at) "
            "VALUES ('events:seen:acct_fixture', '[\"evt_1\"]', now())"
        )
    text = status(tmp_path, database)
    assert text.exit_code == 0, text.stdout
    assert f"running (pid {os.getpid()})" in text.stdout
    assert f"In progress: a sync (pid {os.getpid()})" in text.stdout
    assert "events:seen" not in text.stdout
    document = json.loads(status(tmp_path, database, "--format", "json").stdout)
    assert document["running"]["pid"] == os.getpid()


def test_unknown_format_is_a_usage_error(tmp_path):
    database = make_report_db(tmp_path / "nrr.duckdb")
    assert status(tmp_path, database, "--format", "yaml").exit_code == 2


def test_missing_fx_rates_say_build_finishes_it_and_build_fetches_nothing(
    tmp_path, sandbox_factory
):
    sandbox = sandbox_factory(customers=20, latency_ms=1)
    config = write_config(tmp_path, reporting={"fx_rates": {}})
    failed = cli(config, ["backfill", "--since", "2025-01"], sandbox)
    assert failed.exit_code == 6, failed.output
    assert "reporting.fx_rates" in failed.stderr
    assert "`nrr-sync build` finishes the job" in failed.stderr
    assert "The fetched data is kept" in failed.stderr
    assert "previous report tables are unchanged" not in failed.stderr  # there were none

    told = cli(config, ["status"], sandbox)
    assert told.exit_code == 1
    assert "No data yet" not in told.stdout
    assert "run `nrr-sync build`" in told.stdout

    write_config(tmp_path)  # the rates added
    built = cli(config, ["build"], key="sk_test_unused", api_base="http://127.0.0.1:9")
    assert built.exit_code == 0, built.output
    document = json.loads(cli(config, ["status", "--format", "json"], sandbox).stdout)
    assert document["health"]["ok"] is True
    assert document["runs"][0]["command"] == "build" and document["runs"][0]["requests"] == 0
