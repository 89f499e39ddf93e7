"""``nrr-sync demo``: the whole path against the built-in sandbox, in well under a minute."""

import time

import duckdb
import pytest
from typer.testing import CliRunner

from nrr_sync import build
from nrr_sync.cli import app


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in ("NRR_SYNC_DATABASE", "NRR_SYNC_CONFIG", "NRR_SYNC_STRIPE_API_BASE"):
        monkeypatch.delenv(name, raising=False)


def test_demo_backfills_reports_and_explains_the_next_steps(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    database = tmp_path / "nrr-demo.duckdb"
    started = time.monotonic()
    result = CliRunner().invoke(app, ["demo", "--db", str(database)])
    took = time.monotonic() - started
    assert result.exit_code == 0, result.output
    assert took < 60
    out = result.stdout
    assert "MRR roll-forward in USD" in out and "* month in progress" in out
    assert "duckdb -readonly nrr-demo.duckdb" in out
    assert "restricted key" in out and "nrr-sync backfill --since" in out
    assert "HTML report with charts:" in out
    html = tmp_path / "nrr-demo.html"
    assert html.exists() and html.stat().st_size > 1_000_000

    with duckdb.connect(str(database), read_only=True) as con:
        months, complete = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE month_complete) FROM report.mrr_summary"
        ).fetchone()
        assert months >= 36 and complete == months - 1
        assert con.execute("SELECT max(mrr_end) FROM report.mrr_summary").fetchone()[0] > 0
    # the table shows the last 13 months only
    # (twice: the roll-forward, then retention, so the table fits 100 columns)
    assert sum(1 for line in out.splitlines() if line[:2] == "20" and line[4] == "-") == 26

    # the demo file then works with the other commands as the demo says
    monkeypatch.setenv("NRR_SYNC_DATABASE", str(database))
    status = CliRunner().invoke(app, ["status"])
    assert status.exit_code == 0, status.output
    assert "backfill" in status.stdout and "OK: last successful run" in status.stdout
    report = CliRunner().invoke(app, ["report", "--segment", "currency", "--format", "json"])
    assert report.exit_code == 0, report.output


def test_demo_refuses_to_replace_a_database_with_real_data(tmp_path):
    database = tmp_path / "nrr.duckdb"
    with duckdb.connect(str(database)) as con:
        build.migrate(con)
        con.execute(
            "INSERT INTO stripe.customers (account_id, id, synced_at) "
            "VALUES ('acct_real', 'cus_1', now())"
        )
    before = database.read_bytes()
    result = CliRunner().invoke(app, ["demo", "--db", str(database)])
    assert result.exit_code == 2
    assert "acct_real" in result.stderr and "--db" in result.stderr
    assert database.read_bytes() == before


def test_demo_without_plotly_says_how_to_get_the_html_report(tmp_path, monkeypatch):
    import sys

    from nrr_sync import demo
    from nrr_sync.config import Config, DatabaseSettings

    monkeypatch.setitem(sys.modules, "plotly", None)  # as if not installed
    config = Config(database=DatabaseSettings(path=str(tmp_path / "nrr-demo.duckdb")))
    note = demo.write_html(config, tmp_path / "nrr-demo.html")
    assert "-m pip install 'plotly>=5.20'" in note and "nrr-sync[html]" not in note
    assert not (tmp_path / "nrr-demo.html").exists()
