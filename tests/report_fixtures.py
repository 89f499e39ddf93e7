"""A DuckDB file with the report and meta tables as SPEC 5 names them, filled with a small,
deterministic customer history, so the report can be tested without a sync.

The base report tables are written here; the models that only read them (SaaS metrics,
cohort MRR, top movements) are then built by the project's own SQL files."""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb

ACCOUNT = "acct_fixture"
PRICES = [Decimal(p) for p in ("29.00", "49.00", "99.00", "199.00", "499.00", "1250.50")]


def add_months(month: date, count: int) -> date:
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


def customer_history(seed: int, customers: int, first: date, months: int) -> dict:
    """{customer_id: (currency, [mrr per month index])}: churn, expansion, contraction and
    customers who leave and come back."""
    rng = random.Random(seed)
    history = {}
    for number in range(customers):
        start = 0 if number < customers // 3 else rng.randrange(months)
        mrr = rng.choice(PRICES)
        values = []
        for index in range(months):
            if index < start:
                values.append(Decimal("0.00"))
                continue
            if index > start:
                roll = rng.random()
                if mrr > 0 and roll < 0.04:
                    mrr = Decimal("0.00")
                elif mrr == 0 and roll < 0.15:
                    mrr = rng.choice(PRICES)
                elif mrr > 0 and roll < 0.10:
                    mrr = (mrr * Decimal("1.5")).quantize(Decimal("0.01"))
                elif mrr > 0 and roll < 0.13:
                    mrr = (mrr * Decimal("0.8")).quantize(Decimal("0.01"))
            values.append(mrr)
        history[f"cus_{number:04d}"] = (rng.choice(["usd", "usd", "eur", "gbp"]), values)
    return history


def make_report_db(
    path: Path,
    *,
    customers: int = 40,
    first: date = date(2024, 1, 1),
    months: int = 18,
    seed: int = 3,
    as_of: str = "2025-06-15T00:00:00+00:00",
    runs: list[tuple[str, float, float, str]] | None = None,
    with_report: bool = True,
) -> Path:
    """Write ``path``; ``runs`` are (command, started epoch, finished epoch, outcome).

    Built once per set of arguments and copied, to keep the tests fast."""
    key = repr((customers, first, months, seed, as_of, runs, with_report))
    if key not in _TEMPLATES:
        template = Path(tempfile.mkdtemp(prefix="nrr-report-fixture-")) / "template.duckdb"
        _write(template, customers, first, months, seed, as_of, runs, with_report)
        _TEMPLATES[key] = template
    shutil.copyfile(_TEMPLATES[key], path)
    return path


_TEMPLATES: dict[str, Path] = {}


def _write(path, customers, first, months, seed, as_of, runs, with_report) -> None:
    con = duckdb.connect(str(path))
    con.execute("CREATE SCHEMA stripe; CREATE SCHEMA report; CREATE SCHEMA meta;")
    con.execute(
        "CREATE TABLE stripe.customers (account_id VARCHAR, id VARCHAR, name VARCHAR, "
        "email VARCHAR, currency VARCHAR, synced_at TIMESTAMPTZ, PRIMARY KEY (account_id, id))"
    )
    con.execute("""
        CREATE TABLE meta.sync_runs (run_id VARCHAR PRIMARY KEY, command VARCHAR NOT NULL,
            started_at TIMESTAMPTZ NOT NULL, finished_at TIMESTAMPTZ, outcome VARCHAR,
            exit_code INTEGER, message VARCHAR, objects JSON, requests BIGINT, retries BIGINT,
            rate_limited BIGINT, api_version VARCHAR, since_month VARCHAR);
        CREATE TABLE meta.sync_state (key VARCHAR PRIMARY KEY, value VARCHAR,
            updated_at TIMESTAMPTZ NOT NULL);
        CREATE TABLE meta.sql_migrations (version VARCHAR PRIMARY KEY, name VARCHAR NOT NULL,
            kind VARCHAR NOT NULL, checksum VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL,
            duration_ms DOUBLE);
    """)
    now = time.time()
    if runs is None:
        runs = [("backfill", now - 3600, now - 3500, "ok")]
    for number, (command, started, finished, outcome) in enumerate(runs):
        con.execute(
            "INSERT INTO meta.sync_runs (run_id, command, started_at, finished_at, outcome, "
            "objects, requests, retries) VALUES (?, ?, to_timestamp(?), to_timestamp(?), ?, "
            '\'{"customers": 40, "invoices": 900}\', 120, 2)',
            [f"run{number}", command, started, finished, outcome],
        )
    con.execute(
        "INSERT INTO meta.sql_migrations VALUES "
        "('V001', 'V001__landing.sql', 'migration', 'abc', now(), 10), "
        "('V002', 'V002__meta.sql', 'migration', 'def', now(), 10), "
        "('R001', 'R001__mrr_summary.sql', 'model', '123', now(), 20)"
    )
    since = f"{first:%Y-%m}"
    con.execute(
        "INSERT INTO meta.sync_state VALUES ('report:since', ?, now()), "
        "('report:as_of', ?, now()), ('events:cursor:acct_fixture', ?, now()), "
        "('backfill:slice:acct_fixture:invoices:1700000000', 'done', now())",
        [since, as_of, str(int(now - 7200))],
    )
    history = customer_history(seed, customers, first, months)
    con.executemany(
        "INSERT INTO stripe.customers VALUES (?, ?, ?, ?, ?, now())",
        [
            (ACCOUNT, customer, customer_name(customer), f"{customer}@example.com", currency)
            for customer, (currency, _) in history.items()
        ],
    )
    if with_report:
        write_report_tables(con, history, first, months)
    con.close()


def write_report_tables(con, history: dict, first: date, months: int) -> None:
    con.execute("""
        CREATE TABLE report.customer_mrr_monthly (account_id VARCHAR, customer_id VARCHAR,
            month DATE, mrr DECIMAL(18,2), month_complete BOOLEAN);
        CREATE TABLE report.mrr_movements (account_id VARCHAR, customer_id VARCHAR, month DATE,
            movement VARCHAR, mrr_before DECIMAL(18,2), mrr_after DECIMAL(18,2),
            amount DECIMAL(18,2));
        CREATE TABLE report.mrr_summary (month DATE, month_complete BOOLEAN,
            mrr_start DECIMAL(18,2), new_mrr DECIMAL(18,2), expansion_mrr DECIMAL(18,2),
            reactivation_mrr DECIMAL(18,2), contraction_mrr DECIMAL(18,2),
            churned_mrr DECIMAL(18,2), mrr_end DECIMAL(18,2), customers_start INTEGER,
            customers_end INTEGER, new_customers INTEGER, reactivated_customers INTEGER,
            churned_customers INTEGER);
        CREATE TABLE report.retention (month DATE, window_months INTEGER, segment_type VARCHAR,
            segment VARCHAR, customers_start INTEGER, customers_retained INTEGER,
            mrr_start DECIMAL(18,2), mrr_end DECIMAL(18,2), mrr_retained_capped DECIMAL(18,2),
            nrr DOUBLE, grr DOUBLE, logo_retention DOUBLE);
        CREATE TABLE report.data_quality ("check" VARCHAR, severity VARCHAR, detail VARCHAR,
            account_id VARCHAR, object_id VARCHAR);
    """)
    zero = Decimal("0.00")
    monthly, movements, summary, retention = [], [], [], []
    cohort = {}
    for customer, (_, values) in history.items():
        started = next((i for i, v in enumerate(values) if v > 0), None)
        if started is None:
            continue
        cohort[customer] = add_months(first, started)
        for index in range(started, months):
            monthly.append(
                (ACCOUNT, customer, add_months(first, index), values[index], index < months - 1)
            )
    for index in range(months):
        month = add_months(first, index)
        row = dict.fromkeys(["new", "expansion", "reactivation", "contraction", "churn"], zero)
        counts = dict.fromkeys(["start", "end", "new", "reactivation", "churn"], 0)
        start_total = end_total = zero
        for customer, (_, values) in history.items():
            before = values[index - 1] if index else zero
            after = values[index]
            start_total += before
            end_total += after
            counts["start"] += before > 0
            counts["end"] += after > 0
            if before == after:
                continue
            if before == 0:
                kind = "reactivation" if any(v > 0 for v in values[:index]) else "new"
                counts[kind] += 1
            elif after == 0:
                kind = "churn"
                counts["churn"] += 1
            else:
                kind = "expansion" if after > before else "contraction"
            row[kind] += abs(after - before)
            movements.append((ACCOUNT, customer, month, kind, before, after, after - before))
        summary.append(
            (
                month,
                index < months - 1,
                start_total,
                row["new"],
                row["expansion"],
                row["reactivation"],
                row["contraction"],
                row["churn"],
                end_total,
                counts["start"],
                counts["end"],
                counts["new"],
                counts["reactivation"],
                counts["churn"],
            )
        )
        for window in (1, 3, 12):
            if index - window < 0:
                continue
            groups: dict[tuple[str, str], list] = {}
            for customer, (currency, values) in history.items():
                before, after = values[index - window], values[index]
                if before <= 0:
                    continue
                for key in (
                    ("all", "all"),
                    ("currency", currency),
                    ("cohort", f"{cohort[customer]:%Y-%m}"),
                ):
                    groups.setdefault(key, []).append((before, after))
            for (segment_type, segment), pairs in sorted(groups.items()):
                mrr_start = sum(b for b, _ in pairs)
                mrr_end = sum(a for _, a in pairs)
                capped = sum(min(a, b) for b, a in pairs)
                retained = sum(1 for _, a in pairs if a > 0)
                retention.append(
                    (
                        month,
                        window,
                        segment_type,
                        segment,
                        len(pairs),
                        retained,
                        mrr_start,
                        mrr_end,
                        capped,
                        float(mrr_end / mrr_start),
                        float(capped / mrr_start),
                        retained / len(pairs),
                    )
                )
    for table, rows in (
        ("customer_mrr_monthly", monthly),
        ("mrr_movements", movements),
        ("mrr_summary", summary),
        ("retention", retention),
    ):
        with con.appender(f"report.{table}") as appender:
            appender.append_rows(rows)
    con.execute(
        "INSERT INTO report.data_quality VALUES "
        "('invoice_lines_incomplete', 'warning', 'invoice has more lines than landed', "
        "'acct_fixture', 'in_1'), "
        "('missing_fx_rate', 'error', 'no rate for chf', 'acct_fixture', 'in_2')"
    )
    for name in DERIVED_MODELS:
        con.execute((SQL_DIR / name).read_text())


SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
# models that read only the tables written above, so the fixture builds them as a build would
DERIVED_MODELS = ("R008__saas_metrics.sql", "R009__cohort_mrr.sql", "R010__top_movements.sql")


def customer_name(customer_id: str) -> str | None:
    """Every seventh customer has no name, as Stripe allows."""
    number = int(customer_id.rsplit("_", 1)[1])
    return None if number % 7 == 3 else f"Customer {number:04d} <Ltd>"


def utc(year: int, month: int, day: int) -> float:
    return datetime(year, month, day, tzinfo=UTC).timestamp()
