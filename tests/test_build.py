"""The SQL runner (docs/tables.md): migrations once, report models in one transaction."""

import re
import shutil
from datetime import date
from decimal import Decimal

import duckdb
import pytest
from stripe_objects import build_report, price, renewals

from nrr_sync import build
from nrr_sync.config import Config, ReportingSettings
from nrr_sync.errors import BuildError


@pytest.fixture
def sql_copy(tmp_path):
    """A private copy of sql/ that a test may edit."""
    directory = tmp_path / "sql"
    shutil.copytree(build.sql_dir(), directory)
    return directory


@pytest.fixture
def con(tmp_path):
    connection = duckdb.connect(str(tmp_path / "nrr.duckdb"))
    yield connection
    connection.close()


def test_sql_dir_is_the_checkout_sql_folder():
    directory = build.sql_dir()
    assert (directory / "V001__landing.sql").exists()
    assert [path.name[:4] for path in build.sql_files("R")][:2] == ["R000", "R001"]  # macros first


def test_migrations_are_applied_once_and_recorded_with_checksums(con):
    first = build.migrate(con)
    assert first[:2] == ["V001__landing.sql", "V002__meta.sql"]
    assert build.migrate(con) == []
    rows = con.execute(
        "SELECT version, name, kind, checksum FROM meta.sql_migrations ORDER BY version"
    ).fetchall()
    assert rows[0][:3] == ("V001", "V001__landing.sql", "migration")
    assert rows[0][3] == build.checksum(build.sql_dir() / "V001__landing.sql")
    assert len(rows[0][3]) == 64


def test_a_new_migration_file_is_applied_on_the_next_run(con, sql_copy):
    build.migrate(con, sql_copy)
    (sql_copy / "V900__extra_index.sql").write_text(
        "CREATE INDEX IF NOT EXISTS lines_by_invoice ON stripe.invoice_lines (invoice_id);"
    )
    assert build.migrate(con, sql_copy) == ["V900__extra_index.sql"]
    assert build.migrate(con, sql_copy) == []


def held_back(sql_copy, first: str) -> dict:
    """Remove the migrations from version ``first`` on, as a file from before them; returns
    them to be written back."""
    later = {path: path.read_text() for path in sql_copy.glob("V*.sql") if path.name >= first}
    for path in later:
        path.unlink()
    return later


def test_lines_landed_before_their_discount_entries_had_a_column_get_them(con, sql_copy):
    later = held_back(sql_copy, "V007")
    build.migrate(con, sql_copy)  # a file from before the column
    entries = '[{"amount":300,"discount":"di_1"},{"amount":0,"discount":"di_2"}]'
    for line_id, raw in (
        ("il_discounted", f'{{"id":"il_discounted","discount_amounts":{entries}}}'),
        ("il_plain", '{"id":"il_plain","discount_amounts":[]}'),
    ):
        con.execute(
            "INSERT INTO stripe.invoice_lines (account_id, id, invoice_id, raw, synced_at) "
            "VALUES ('acct_1', ?, 'in_1', ?, now())",
            [line_id, raw],
        )
    assert "discount_amounts" not in [
        c[0] for c in con.execute("DESCRIBE stripe.invoice_lines").fetchall()
    ]

    for path, text in later.items():
        path.write_text(text)
    assert build.migrate(con, sql_copy)[0] == "V007__invoice_line_discount_amounts.sql"

    filled = dict(
        con.execute("SELECT id, discount_amounts::VARCHAR FROM stripe.invoice_lines").fetchall()
    )
    assert filled == {"il_discounted": entries, "il_plain": None}


def test_prorations_landed_before_their_credited_ids_had_a_column_get_them(con, sql_copy):
    later = held_back(sql_copy, "V009")
    build.migrate(con, sql_copy)  # a file from before the column
    credits = '{"credited_items":{"invoice":"in_0","invoice_line_items":["il_a","il_b"]}}'
    for line_id, parent_type, proration, details in (
        ("il_credit", "subscription_item_details", True, credits),
        ("il_item_credit", "invoice_item_details", True, credits),
        ("il_no_credits", "subscription_item_details", True, '{"credited_items":null}'),
        ("il_not_proration", "subscription_item_details", False, credits),
    ):
        raw = (
            f'{{"id":"{line_id}","parent":{{"type":"{parent_type}",'
            f'"{parent_type}":{{"proration":{str(proration).lower()},'
            f'"proration_details":{details}}}}}}}'
        )
        con.execute(
            "INSERT INTO stripe.invoice_lines "
            "(account_id, id, invoice_id, parent_type, proration, raw, synced_at) "
            "VALUES ('acct_1', ?, 'in_1', ?, ?, ?, now())",
            [line_id, parent_type, proration, raw],
        )

    for path, text in later.items():
        path.write_text(text)
    assert build.migrate(con, sql_copy) == ["V009__invoice_line_credited_line_ids.sql"]

    filled = dict(
        con.execute("SELECT id, credited_line_ids::VARCHAR FROM stripe.invoice_lines").fetchall()
    )
    assert filled == {
        "il_credit": '["il_a","il_b"]',
        "il_item_credit": '["il_a","il_b"]',
        "il_no_credits": None,
        "il_not_proration": None,
    }


def raw_compression(con, table: str) -> set[str]:
    return {
        row[0]
        for row in con.execute(
            "SELECT compression FROM pragma_storage_info(?) "
            "WHERE column_name = 'raw' AND segment_type = 'JSON'",
            [f"stripe.{table}"],
        ).fetchall()
    }


def test_raw_json_landed_before_zstd_is_recompressed_and_kept_as_it_was(con, sql_copy, tmp_path):
    later = held_back(sql_copy, "V008")
    build.migrate(con, sql_copy)  # a file from before zstd
    invoices = [
        (f"in_{n}", f'{{"id":"in_{n}","object":"invoice","lines":{{"data":[]}},"n":{n}}}')
        for n in range(3000)
    ]
    con.executemany(
        "INSERT INTO stripe.invoices (account_id, id, total, raw, synced_at) "
        "VALUES ('acct_1', ?, 100, ?, '2024-01-01')",
        invoices,
    )
    con.execute("CHECKPOINT")
    assert raw_compression(con, "invoices") and "ZSTD" not in raw_compression(con, "invoices")

    for path, text in later.items():
        path.write_text(text)
    assert build.migrate(con, sql_copy)[0] == "V008__raw_json_zstd.sql"
    con.execute("CHECKPOINT")

    assert raw_compression(con, "invoices") == {"ZSTD"}
    assert con.execute(
        "SELECT id, raw::VARCHAR FROM stripe.invoices ORDER BY id"
    ).fetchall() == sorted(invoices)
    assert con.execute("SELECT DISTINCT account_id, total FROM stripe.invoices").fetchall() == [
        ("acct_1", 100)
    ]
    # The tables are what a new file gets, key and column order included.
    fresh = duckdb.connect(str(tmp_path / "fresh.duckdb"))
    build.migrate(fresh, sql_copy)
    tables = "SELECT table_name, sql FROM duckdb_tables() WHERE schema_name = 'stripe' ORDER BY 1"
    assert con.execute(tables).fetchall() == fresh.execute(tables).fetchall()
    assert all(
        "raw JSON USING COMPRESSION ZSTD" in sql for _, sql in fresh.execute(tables).fetchall()
    )
    with pytest.raises(duckdb.ConstraintException):  # the primary key came along
        con.execute(
            "INSERT INTO stripe.invoices (account_id, id, synced_at) "
            "VALUES ('acct_1', 'in_1', now())"
        )


def test_an_edited_applied_migration_is_refused(con, sql_copy):
    build.migrate(con, sql_copy)
    migration = sql_copy / "V002__meta.sql"
    migration.write_text(migration.read_text() + "\n-- tweak\n")
    with pytest.raises(BuildError) as raised:
        build.migrate(con, sql_copy)
    assert "sql/V002__meta.sql was edited after it was applied" in str(raised.value)
    assert "add a new V### file instead" in str(raised.value)
    assert raised.value.exit_code == 6


def test_build_records_models_and_returns_row_counts(tmp_path):
    plan = price("price_basic", 10000)
    invoices = renewals("cus_a", "s", plan, "2024-01-01", 2)
    con = build_report(tmp_path / "nrr.duckdb", invoices=invoices, prices=[plan],
                       since="2024-01", as_of="2024-02-15")  # fmt: skip
    result = build.build(con, Config())
    assert result["migrations"] == []
    assert set(result["models"]) == {path.name for path in build.sql_files("R")}
    assert result["rows"]["customer_mrr_monthly"] == 2
    assert result["rows"]["mrr_summary"] == 2
    models = con.execute("SELECT count(*) FROM meta.sql_migrations WHERE kind = 'model'").fetchone()
    assert models == (len(build.sql_files("R")),)


def test_settings_and_rates_are_tables_so_models_run_by_hand(tmp_path):
    plan = price("price_basic", 10000)
    invoices = renewals("cus_a", "s", plan, "2024-01-01", 1)
    con = build_report(tmp_path / "nrr.duckdb", invoices=invoices, prices=[plan],
                       since="2024-01", as_of="2024-01-31",
                       fx_rates={"eur": 1.1})  # fmt: skip
    settings = con.execute(
        "SELECT reporting_currency, strftime(since_month, '%Y-%m'), as_of::VARCHAR "
        "FROM meta.build_settings"
    ).fetchone()
    assert settings == ("usd", "2024-01", "2024-01-31 00:00:00+00")
    rates = con.execute("SELECT currency, rate::VARCHAR FROM meta.fx_rates ORDER BY 1").fetchall()
    assert rates == [("eur", "1.10000000"), ("usd", "1.00000000")]
    for path in build.sql_files("R"):
        con.execute(path.read_text())
    assert con.execute("SELECT count(*) FROM report.customer_mrr_monthly").fetchone() == (1,)


def test_since_and_as_of_default_to_the_data_when_the_sync_set_none(tmp_path):
    plan = price("price_basic", 10000)
    con = build_report(tmp_path / "nrr.duckdb", prices=[plan],
                       invoices=renewals("cus_a", "s", plan, "2024-01-01", 1))  # fmt: skip
    info = con.execute("SELECT strftime(since_month, '%Y-%m') FROM report.build_info").fetchone()
    assert info == ("2024-01",)
    months = con.execute("SELECT min(month), bool_and(reported) FROM report.months").fetchone()
    assert str(months[0]) == "2023-12-01"  # the month before since, for the first movements


def test_a_failing_model_leaves_the_previous_report_tables_intact(tmp_path, sql_copy):
    plan = price("price_basic", 10000)
    invoices = renewals("cus_a", "s", plan, "2024-01-01", 2)
    con = build_report(tmp_path / "nrr.duckdb", invoices=invoices, prices=[plan],
                       since="2024-01", as_of="2024-02-15")  # fmt: skip
    before = con.execute("SELECT * FROM report.customer_mrr_monthly ORDER BY month").fetchall()
    (sql_copy / "R999__broken.sql").write_text(
        "CREATE OR REPLACE TABLE report.mrr_summary AS SELECT 1 AS wrong;\n"
        "SELECT no_such_column FROM report.months;\n"
    )
    with pytest.raises(BuildError) as raised:
        reporting = ReportingSettings(currency="eur", fx_rates={"usd": 0.9})
        build.build(con, Config(reporting=reporting), sql_copy)
    assert "sql/R999__broken.sql" in str(raised.value)
    assert "no_such_column" in str(raised.value)
    assert raised.value.exit_code == 6
    after = con.execute("SELECT * FROM report.customer_mrr_monthly ORDER BY month").fetchall()
    assert after == before
    assert con.execute("SELECT count(*) FROM report.mrr_summary").fetchone() == (2,)
    assert con.execute("SELECT reporting_currency FROM meta.build_settings").fetchone() == ("usd",)


def test_a_currency_without_a_rate_fails_the_build_and_lists_it(tmp_path):
    euro = price("price_eur", 9000, currency="eur")
    pound = price("price_gbp", 9000, currency="gbp", product="prod_gbp")
    invoices = renewals("cus_a", "s1", euro, "2024-01-01", 1) + renewals(
        "cus_b", "s2", pound, "2024-01-01", 1
    )
    with pytest.raises(BuildError) as raised:
        build_report(tmp_path / "nrr.duckdb", invoices=invoices, prices=[euro, pound],
                     since="2024-01", as_of="2024-01-31")  # fmt: skip
    message = str(raised.value)
    assert "No fx rate for currencies eur, gbp" in message
    assert "reporting.fx_rates" in message
    assert raised.value.exit_code == 6


def test_lines_without_a_currency_fail_the_build_instead_of_dropping_out(tmp_path):
    """Stripe never sends an invoice without a currency (the fetch refuses one), but a file
    may hold such lines from before: they have no rate, so they fail the build like a
    currency without one, never leave MRR unseen. Control: the same lines with one build."""
    basic = price("price_basic", 10000)

    def invoices(currency):
        found = renewals("cus_a", "s1", basic, "2024-01-01", 2)
        for invoice in found:
            invoice["currency"] = currency
            for line in invoice["lines"]["data"]:
                line["currency"] = currency
        return found

    con = build_report(tmp_path / "with.duckdb", invoices=invoices("usd"), prices=[basic],
                       since="2024-01", as_of="2024-02-20")  # fmt: skip
    assert con.execute("SELECT sum(mrr) FROM report.customer_mrr_monthly").fetchone()[0] == 200
    with pytest.raises(BuildError) as raised:
        build_report(tmp_path / "without.duckdb", invoices=invoices(None), prices=[basic],
                     since="2024-01", as_of="2024-02-20")  # fmt: skip
    assert "No fx rate for currencies (none)" in str(raised.value)


def test_the_example_queries_of_the_tables_doc_run(tmp_path):
    basic, pro = price("price_basic", 10000), price("price_pro", 20000, product="prod_pro")
    invoices = (
        renewals("cus_a", "s1", basic, "2024-01-01", 3)
        + renewals("cus_a", "s1", pro, "2024-04-01", 2)
        + renewals("cus_b", "s2", pro, "2024-01-01", 2)
    )
    con = build_report(tmp_path / "nrr.duckdb", invoices=invoices, prices=[basic, pro],
                       since="2024-01", as_of="2024-05-20")  # fmt: skip
    doc = (build.sql_dir().parent / "docs" / "tables.md").read_text()
    queries = re.findall(r"```sql\n(.*?)```", doc, re.S)
    assert len(queries) >= 3
    results = [con.execute(query.replace("cus_...", "cus_a")).fetchall() for query in queries]
    churned_by_product = results[1]
    assert churned_by_product == [(date(2024, 3, 1), "prod_pro", Decimal("200.00"), 1)]


def test_numbers_do_not_depend_on_the_session_time_zone(tmp_path):
    plan = price("price_basic", 10000)
    invoices = renewals("cus_a", "s", plan, "2024-01-31T23:30:00", 2)
    options = dict(invoices=invoices, prices=[plan], since="2024-01", as_of="2024-03-15",
                   timezone="Europe/Berlin")  # fmt: skip
    con = build_report(tmp_path / "a.duckdb", **options)
    query = "SELECT month, mrr FROM report.customer_mrr_monthly ORDER BY month"
    expected = con.execute(query).fetchall()
    con.execute("SET TimeZone = 'Pacific/Kiritimati'")
    build.build(con, Config(reporting=ReportingSettings(timezone="Europe/Berlin")))
    assert con.execute(query).fetchall() == expected
    assert [str(month) for month, _ in expected] == ["2024-02-01", "2024-03-01"]


def test_joins_keep_their_sides_during_a_build_and_a_duckdb_without_that_optimizer_builds_too(
    tmp_path, monkeypatch
):
    plan = price("price_basic", 10000)
    invoices = renewals("cus_a", "s", plan, "2024-01-01", 3)
    con = build_report(tmp_path / "nrr.duckdb", invoices=invoices, prices=[plan],
                       since="2024-01", as_of="2024-03-15")  # fmt: skip
    seen = []
    run = con.execute

    class Watching:  # the connection, noting the setting while each model runs
        def __getattr__(self, name):
            return getattr(con, name)

        def execute(self, sql, *args):
            if sql.lstrip().startswith("-- report.mrr_lines"):
                seen.append(run("SELECT current_setting('disabled_optimizers')").fetchone()[0])
            return run(sql, *args)

    build.build(Watching(), Config())
    summary = con.execute("SELECT * FROM report.mrr_summary ORDER BY ALL").fetchall()
    assert seen == [build.JOIN_SIDE_OPTIMIZER]
    assert con.execute("SELECT current_setting('disabled_optimizers')").fetchone() == ("",)

    monkeypatch.setattr(build, "JOIN_SIDE_OPTIMIZER", "an_optimizer_this_duckdb_lacks")
    seen.clear()
    build.build(Watching(), Config())
    assert seen == [""], "the unknown name was not set, and the build went on"
    assert con.execute("SELECT * FROM report.mrr_summary ORDER BY ALL").fetchall() == summary
    assert summary, "positive control: the account has MRR"
