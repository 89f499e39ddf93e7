"""``nrr-sync report --metrics``: report.saas_metrics in every format, as the build wrote it."""

import csv
import io
import json
from datetime import UTC, date, datetime
from decimal import Decimal

import duckdb
import pytest
from report_fixtures import make_report_db
from typer.testing import CliRunner

from nrr_sync.cli import app
from nrr_sync.report import metrics as metrics_report
from nrr_sync.report.data import ReportData


@pytest.fixture
def report_db(tmp_path):
    return make_report_db(tmp_path / "nrr.duckdb")


@pytest.fixture
def config_file(tmp_path, report_db, monkeypatch):
    monkeypatch.delenv("NRR_SYNC_DATABASE", raising=False)
    monkeypatch.delenv("NRR_SYNC_CONFIG", raising=False)
    path = tmp_path / "config.yaml"
    path.write_text(f"database:\n  path: {report_db}\n")
    return path


def report(config_file, *args):
    return CliRunner().invoke(app, ["--config", str(config_file), "report", *map(str, args)])


def table_rows(database) -> list[dict]:
    with duckdb.connect(str(database), read_only=True) as con:
        cursor = con.execute("SELECT * FROM report.saas_metrics ORDER BY month")
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def test_table_prints_both_blocks_within_100_columns(config_file, report_db):
    result = report(config_file, "--metrics")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith("SaaS metrics in USD · acct_fixture · data as of 2025-06-15 00:00 UTC")
    assert max(len(line) for line in out.splitlines()) <= 100
    headers = [line for line in out.splitlines() if line.startswith("Month")]
    assert headers[0].split() == ["Month", "MRR", "ARR", "Customers", "ARPA", "LTV"]
    assert "Logo churn  Gross MRR churn  Net MRR churn  Quick ratio" in headers[1]
    rows = table_rows(report_db)
    assert len([line for line in out.splitlines() if line[:4] in ("2024", "2025")]) == 2 * len(rows)
    may = next(row for row in rows if row["month"] == date(2025, 5, 1))
    line = next(line for line in out.splitlines() if line.startswith("2025-05 "))
    assert f"{may['arr']:,.2f}" in line and f"{may['arpa']:,.2f}" in line
    assert f"{may['ltv']:,.2f}" in line
    assert any(line.startswith("2025-06*") for line in out.splitlines())
    assert "* month in progress" in out and "LTV = ARPA / mean logo churn" in out


def test_table_fits_100_columns_for_a_nine_figure_account():
    big = Decimal("987654321.99")
    row = {
        "month": date(2031, 12, 1),
        "month_complete": False,
        "mrr": big,
        "arr": big * 12,
        "customers": 1_234_567,
        "arpa": Decimal("99999.99"),
        "new_customers": 123_456,
        "reactivated_customers": 12_345,
        "churned_customers": 123_456,
        "logo_churn_rate": 0.123456,
        "gross_mrr_churn_rate": -0.5,
        "net_mrr_churn_rate": -0.123456,
        "quick_ratio": 12345.6,
        "ltv": Decimal("12345678901.23"),
    }
    data = ReportData(
        database="nrr.duckdb",
        currency="usd",
        window=12,
        segment_type="all",
        as_of=datetime(2031, 12, 15, tzinfo=UTC),
        since="2030-01",
        accounts=["acct_1", "acct_2", "acct_3", "acct_4"],
        months=[],
    )
    out = metrics_report.render_table(data, [row])
    assert "11,851,851,863.88" in out and "12,345,678,901.23" in out
    assert max(len(line) for line in out.splitlines()) <= 100, out


def test_csv_has_every_column_with_exact_money(config_file, report_db):
    result = report(config_file, "--metrics", "--format", "csv")
    assert result.exit_code == 0, result.output
    records = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(records[0]) == list(metrics_report.COLUMNS)
    rows = table_rows(report_db)
    assert len(records) == len(rows) == 18
    for record, row in zip(records, rows, strict=True):
        assert record["month"] == row["month"].isoformat()
        assert Decimal(record["mrr"]) == row["mrr"] and Decimal(record["arr"]) == row["arr"]
        assert int(record["customers"]) == row["customers"]
        for column in ("arpa", "ltv"):
            assert (record[column] or None) == (None if row[column] is None else str(row[column]))
        if row["quick_ratio"] is None:
            assert record["quick_ratio"] == ""
        else:
            assert float(record["quick_ratio"]) == pytest.approx(row["quick_ratio"], abs=1e-6)
    assert records[-1]["month_complete"] == "false" and records[0]["month_complete"] == "true"


def test_json_carries_money_as_strings_and_honours_from_and_to(config_file, report_db):
    result = report(config_file, "--metrics", "--format", "json", "--from", "2024-06",
                    "--to", "2024-09")  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["currency"] == "usd" and document["accounts"] == ["acct_fixture"]
    months = document["months"]
    assert [m["month"] for m in months] == ["2024-06-01", "2024-07-01", "2024-08-01", "2024-09-01"]
    by_month = {row["month"].isoformat(): row for row in table_rows(report_db)}
    for record in months:
        row = by_month[record["month"]]
        assert isinstance(record["mrr"], str) and Decimal(record["mrr"]) == row["mrr"]
        assert record["churned_customers"] == row["churned_customers"]
        assert record["logo_churn_rate"] == pytest.approx(row["logo_churn_rate"], abs=1e-6)
        assert record["ltv"] == (None if row["ltv"] is None else str(row["ltv"]))
    assert any(record["ltv"] is not None for record in months)


def test_markdown_is_one_table_of_every_metric(config_file):
    result = report(config_file, "--metrics", "--format", "markdown")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("## SaaS metrics in USD")
    table = [line for line in lines if line.startswith("|")]
    assert table[0].count("|") == 14 and "Quick ratio" in table[0] and "LTV" in table[0]
    assert table[1].startswith("| :--- | ---: |")
    assert len(table) == 2 + 18


def test_metrics_with_a_segment_is_a_usage_error(config_file):
    result = report(config_file, "--metrics", "--segment", "currency")
    assert result.exit_code == 2
    assert "--metrics" in result.stderr and "--segment" in result.stderr


def test_a_database_built_before_the_metrics_says_to_rebuild(config_file, report_db):
    with duckdb.connect(str(report_db)) as con:
        con.execute("DROP TABLE report.saas_metrics")
    result = report(config_file, "--metrics")
    assert result.exit_code == 2
    assert "report.saas_metrics" in result.stderr and "nrr-sync build" in result.stderr
    # the roll-forward still reads the same file
    assert report(config_file).exit_code == 0
