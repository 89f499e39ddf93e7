"""``nrr-sync report``: every format, the filters, and every bad input a user can make."""

import csv
import io
import json
import subprocess
import sys
import time
from decimal import Decimal

import pytest
import yaml
from report_fixtures import make_report_db
from typer.testing import CliRunner

from nrr_sync.cli import app


@pytest.fixture
def report_db(tmp_path):
    return make_report_db(tmp_path / "nrr.duckdb")


@pytest.fixture
def config_file(tmp_path, report_db, monkeypatch):
    monkeypatch.delenv("NRR_SYNC_DATABASE", raising=False)
    monkeypatch.delenv("NRR_SYNC_CONFIG", raising=False)
    path = tmp_path / "config.yaml"
    path.write_text(f"database:\n  path: {report_db}\nreporting:\n  fx_rates: {{eur: 1.1}}\n")
    return path


def nrr_sync(*args):
    return CliRunner().invoke(app, [str(arg) for arg in args])


def report(config_file, *args):
    return nrr_sync("--config", config_file, "report", *args)


def test_table_shows_roll_forward_with_money_percentages_and_in_progress_month(config_file):
    result = report(config_file)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "MRR roll-forward in USD · acct_fixture · data as of 2025-06-15 00:00 UTC" in out
    lines = out.splitlines()
    header, retention_header = [line for line in lines if line.startswith("Month")]
    for column in ("MRR start", "New", "Expansion", "Reactivation", "Contraction", "Churn"):
        assert column in header
    assert retention_header.split() == ["Month", "NRR", "12m", "GRR", "12m", "Logos", "12m"]
    current, current_retention = [line for line in lines if line.startswith("2025-06*")]
    assert "10,587.54" in current and "12,001.59" in current  # thousands separators, cents
    assert current_retention.rstrip().endswith("%")
    assert "-1,250.50" in next(line for line in lines if line.startswith("2024-02 "))
    assert "* month in progress" in out
    # every row has its columns at the same place: right-aligned under the header
    rows = [line for line in lines if line[:4] in ("2024", "2025")]
    assert len({len(row) for row in rows if row.rstrip().endswith("%")}) == 1
    assert all(row.index("  ") >= 7 for row in rows if len(row) > 8)  # blank: retention unknown


def test_the_table_fits_100_columns_and_spells_out_the_acronyms(config_file):
    for args in ((), ("--window", "3"), ("--segment", "currency"), ("--metrics",)):
        out = report(config_file, *args).stdout
        assert max(len(line) for line in out.splitlines()) <= 100, args
    notes = report(config_file).stdout.splitlines()
    assert any(line.startswith("NRR 12m: net revenue retention") for line in notes)
    assert any(line.startswith("GRR 12m: gross revenue retention") for line in notes)
    assert any(line.startswith("Logos 12m: logo retention") for line in notes)


def test_a_wide_terminal_keeps_retention_beside_the_roll_forward(config_file):
    from nrr_sync.report.data import open_published, read_report
    from nrr_sync.report.text import render_table

    database = yaml.safe_load(config_file.read_text())["database"]["path"]
    with open_published(database) as con:
        data = read_report(con, database=database, currency="usd")
    wide = render_table(data, width=160)
    assert sum(line.startswith("Month") for line in wide.splitlines()) == 1
    assert "NRR 12m" in next(line for line in wide.splitlines() if line.startswith("Month"))


def test_percentages_have_one_decimal(config_file):
    out = report(config_file, "--from", "2025-05", "--to", "2025-05").stdout
    row = [line for line in out.splitlines() if line.startswith("2025-05")][-1]
    assert row.split()[-3:] == ["102.2%", "56.0%", "63.2%"]


def test_csv_money_is_exact_and_each_month_rolls_forward(config_file):
    result = report(config_file, "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 18 and rows[0]["month"] == "2024-01-01"
    assert rows[-1]["month_complete"] == "false" and rows[0]["month_complete"] == "true"
    for row in rows:
        start, end = Decimal(row["mrr_start"]), Decimal(row["mrr_end"])
        moves = sum(
            Decimal(row[c]) for c in ("new_mrr", "expansion_mrr", "reactivation_mrr")
        ) - sum(Decimal(row[c]) for c in ("contraction_mrr", "churned_mrr"))
        assert start + moves == end
        assert row["mrr_end"].count(".") == 1 and len(row["mrr_end"].split(".")[1]) == 2
    assert rows[-1]["nrr"] == "1.051083" and rows[0]["nrr"] == ""


def test_json_money_as_decimal_strings_ratios_as_numbers(config_file):
    result = report(config_file, "--format", "json", "--window", "3", "--from", "2025-01")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["currency"] == "usd" and document["window_months"] == 3
    assert document["accounts"] == ["acct_fixture"] and document["since"] == "2024-01"
    assert document["as_of"] == "2025-06-15T00:00:00+00:00"
    months = document["months"]
    assert [m["month"] for m in months][:2] == ["2025-01-01", "2025-02-01"]
    assert months[-1]["mrr_end"] == "12001.59" and months[-1]["month_complete"] is False
    assert isinstance(months[-1]["nrr"], float) and 0 < months[-1]["grr"] <= 1
    assert isinstance(months[-1]["customers_end"], int)
    assert "segments" not in document


def test_markdown_is_a_pipe_table_with_right_aligned_numbers(config_file):
    result = report(config_file, "--format", "markdown", "--to", "2024-03")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("## MRR roll-forward in USD")
    assert lines[2].startswith("| Month | MRR start | New |")
    assert lines[3].startswith("| :--- | ---: |")
    assert sum(1 for line in lines if line.startswith("| 2024-")) == 3


def test_from_and_to_limit_the_months(config_file):
    out = report(config_file, "--from", "2024-11", "--to", "2025-01", "--format", "csv").stdout
    months = [row["month"] for row in csv.DictReader(io.StringIO(out))]
    assert months == ["2024-11-01", "2024-12-01", "2025-01-01"]


def test_segment_type_shows_one_block_per_segment(config_file):
    result = report(config_file, "--segment", "currency", "--window", "1", "--from", "2025-04")
    assert result.exit_code == 0, result.output
    out = result.stdout
    for currency in ("eur", "gbp", "usd"):
        assert f"currency = {currency}" in out
    assert "NRR 1m" in out and "Customers 1m ago" in out


def test_segment_csv_has_a_row_per_month_and_segment(config_file):
    out = report(config_file, "--segment", "cohort", "--format", "csv", "--from", "2025-06").stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows and {row["segment_type"] for row in rows} == {"cohort"}
    assert len({row["segment"] for row in rows}) == len(rows)
    for row in rows:
        assert Decimal(row["mrr_retained_capped"]) <= Decimal(row["mrr_start"])


def test_segment_json_lists_segment_rows(config_file):
    out = report(config_file, "--segment", "currency", "--format", "json").stdout
    segments = json.loads(out)["segments"]
    assert {row["segment"] for row in segments} == {"eur", "gbp", "usd"}
    assert all(isinstance(row["mrr_start"], str) for row in segments)


def test_report_never_changes_the_database_file(config_file, report_db):
    before = (report_db.read_bytes(), report_db.stat().st_mtime_ns)
    assert report(config_file, "--segment", "currency").exit_code == 0
    assert (report_db.read_bytes(), report_db.stat().st_mtime_ns) == before
    assert not report_db.with_name(report_db.name + ".wal").exists()


def test_report_reads_while_an_analyst_session_is_open(config_file, report_db):
    analyst = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, time, sys; c = duckdb.connect(sys.argv[1], read_only=True); "
            "print('open', flush=True); time.sleep(30)",
            str(report_db),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert analyst.stdout.readline().strip() == "open"
        assert report(config_file, "--format", "csv").exit_code == 0
    finally:
        analyst.kill()
        analyst.wait()


# ----------------------------------------------------------------------------- bad input


def test_missing_config_file_is_a_usage_error(tmp_path):
    result = nrr_sync("--config", tmp_path / "nope.yaml", "report")
    assert result.exit_code == 2
    assert "nope.yaml not found" in result.stderr
    assert "Traceback" not in result.output


def test_bad_config_names_the_key(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("reporting:\n  curency: usd\n")
    result = nrr_sync("--config", path, "report")
    assert result.exit_code == 2
    assert "reporting.curency" in result.stderr


def test_missing_database_says_to_backfill(tmp_path, monkeypatch):
    monkeypatch.delenv("NRR_SYNC_DATABASE", raising=False)
    path = tmp_path / "config.yaml"
    path.write_text(f"database:\n  path: {tmp_path / 'none.duckdb'}\n")
    result = nrr_sync("--config", path, "report")
    assert result.exit_code == 2
    assert "No database at" in result.stderr and "nrr-sync backfill --since" in result.stderr
    assert not (tmp_path / "none.duckdb").exists()  # a report never creates the database


def test_database_without_report_data_says_to_backfill(tmp_path, monkeypatch):
    monkeypatch.delenv("NRR_SYNC_DATABASE", raising=False)
    database = make_report_db(tmp_path / "empty.duckdb", with_report=False)
    path = tmp_path / "config.yaml"
    path.write_text(f"database:\n  path: {database}\n")
    result = nrr_sync("--config", path, "report")
    assert result.exit_code == 2
    assert f"No report data in {database} yet" in result.stderr
    assert "`nrr-sync backfill --since YYYY-MM`" in result.stderr


def test_unknown_segment_lists_the_available_ones(config_file):
    result = report(config_file, "--segment", "plan")
    assert result.exit_code == 2
    assert "Unknown segment type 'plan'" in result.stderr
    assert "all, cohort, country, currency, product" in result.stderr
    assert "reporting.segments" not in result.stderr


def test_an_unknown_metadata_segment_says_how_to_add_it(config_file):
    result = report(config_file, "--segment", "metadata:plan_tier")
    assert result.exit_code == 2
    assert "Unknown segment type 'metadata:plan_tier'" in result.stderr
    assert "add it to reporting.segments" in result.stderr and "`nrr-sync build`" in result.stderr


def test_file_that_is_not_duckdb_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.delenv("NRR_SYNC_DATABASE", raising=False)
    database = tmp_path / "notes.duckdb"
    database.write_text("these are my notes, not a database\n" * 200)
    path = tmp_path / "config.yaml"
    path.write_text(f"database:\n  path: {database}\n")
    result = nrr_sync("--config", path, "report")
    assert result.exit_code == 2
    assert "is not a DuckDB database file" in result.stderr
    assert database.read_text().startswith("these are my notes")


def test_from_after_to_is_a_usage_error(config_file):
    result = report(config_file, "--from", "2025-03", "--to", "2025-01")
    assert result.exit_code == 2
    assert "--from 2025-03 is after --to 2025-01" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2025-13"], "not a month"),
        (["--to", "last month"], "not a month"),
        (["--window", "6"], "--window must be 1, 3 or 12"),
        (["--format", "xlsx"], "--format must be"),
        (["--from", "2026-01"], "the report covers 2024-01 to 2025-06"),
        (["--from", "2099-01"], "out of range"),
        (["--to", "2009-12"], "out of range"),
    ],
)
def test_bad_options_are_usage_errors(config_file, args, message):
    result = report(config_file, *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_database_held_by_a_writer_is_reported_busy(config_file, report_db):
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, time, sys; c = duckdb.connect(sys.argv[1]); "
            "print('open', flush=True); time.sleep(30)",
            str(report_db),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout.readline().strip() == "open"
        started = time.monotonic()
        result = report(config_file)
        assert result.exit_code == 5
        assert "open for writing by another process" in result.stderr
        assert time.monotonic() - started < 10
    finally:
        writer.kill()
        writer.wait()


def test_currency_is_the_one_the_tables_were_built_in(config_file, report_db):
    import duckdb

    with duckdb.connect(str(report_db)) as con:
        con.execute("UPDATE meta.build_settings SET reporting_currency = 'eur'")
    result = report(config_file, "--from", "2025-06")
    assert result.exit_code == 0, result.output
    assert "MRR roll-forward in EUR" in result.stdout
    assert "Built in EUR; the config now says USD: run `nrr-sync build`" in result.stdout
    assert json.loads(report(config_file, "--format", "json").stdout)["currency"] == "eur"


HOSTILE = "\x1b[31mred\x1b[0m\x1b]8;;http://evil.example\x07link\x1b]8;;\x07\u202eevil|x\r\n\x08"


@pytest.fixture
def hostile_config(tmp_path, monkeypatch):
    """A report whose customer metadata and product name hold terminal escapes."""
    from stripe_objects import build_report, customer, price, product, renewals

    monkeypatch.delenv("NRR_SYNC_DATABASE", raising=False)
    monkeypatch.delenv("NRR_SYNC_CONFIG", raising=False)
    db = tmp_path / "hostile.duckdb"
    basic = price("price_basic", 10000, product="prod_basic")
    segments = ["product", "metadata:plan"]
    con = build_report(
        db,
        invoices=renewals("cus_a", "s1", basic, "2024-01-01", 3),
        prices=[basic],
        customers=[customer("cus_a", metadata={"plan": HOSTILE})],
        products=[product("prod_basic", "Basic" + HOSTILE)],
        since="2024-01",
        as_of="2024-03-20",
        segments=segments,
    )
    con.close()
    path = tmp_path / "config.yaml"
    path.write_text(f"database:\n  path: {db}\nreporting:\n  segments: {segments}\n")
    return path


@pytest.mark.parametrize("output_format", ["table", "markdown"])
@pytest.mark.parametrize("segment", ["metadata:plan", "product"])
def test_terminal_escapes_in_stripe_data_never_reach_the_terminal(
    hostile_config, output_format, segment
):
    result = report(
        hostile_config, "--window", "1", "--segment", segment, "--format", output_format
    )

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "red" in out and "link" in out, "the text is shown"
    for character in ("\x1b", "\x07", "\x08", "\r", "\u202e"):
        assert character not in out
    assert any("red" in line and "evil" in line for line in out.splitlines()), out


def test_a_markdown_cell_with_a_pipe_or_a_line_break_stays_one_cell():
    from nrr_sync.report.text import markdown_table

    text = markdown_table(["a", "b"], [["x|y\nz", "1"]])

    assert text.splitlines()[-1] == "| x\\|y z | 1 |"


@pytest.mark.parametrize("output_format", ["csv", "json"])
def test_csv_and_json_keep_stripe_data_exact(hostile_config, output_format):
    result = report(hostile_config, "--window", "1", "--segment", "metadata:plan",
                    "--format", output_format)  # fmt: skip

    assert result.exit_code == 0, result.output
    if output_format == "json":
        assert "\x1b" not in result.stdout, "JSON escapes control characters"
        segments = {row["segment"] for row in json.loads(result.stdout)["segments"]}
    else:
        segments = {row["segment"] for row in csv.DictReader(io.StringIO(result.stdout))}
    # the test runner reads \r\n back as \n
    assert HOSTILE in segments or HOSTILE.replace("\r\n", "\n") in segments
