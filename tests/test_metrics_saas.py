"""report.saas_metrics against report.mrr_summary, by the formulas of docs/metrics.md
("SaaS metrics"): every month of the demo account and of the test seeds, recomputed here
in exact arithmetic; and the worked example of the docs, to the cent."""

from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path

import duckdb
import pytest
from test_metrics_truth import land_world

from nrr_sync import build, demo
from nrr_sync.config import Config, ReportingSettings
from nrr_sync.sandbox.generator import SandboxOptions, generate

SQL = Path(__file__).resolve().parent.parent / "sql" / "R009__saas_metrics.sql"
CENT = Decimal("0.01")


def rate(numerator, denominator) -> float | None:
    """The exact quotient rounded once to a double, or None for a zero denominator."""
    if denominator == 0:
        return None
    return float(Fraction(Decimal(numerator)) / Fraction(Decimal(denominator)))


def expected_metrics(summary: list[dict]) -> list[dict]:
    """Each formula written out again over the mrr_summary rows, in month order."""
    rows = []
    for row in summary:
        lost = row["contraction_mrr"] + row["churned_mrr"]
        gained = row["new_mrr"] + row["expansion_mrr"] + row["reactivation_mrr"]
        customers = row["customers_end"]
        arpa = (row["mrr_end"] / customers).quantize(CENT, ROUND_HALF_UP) if customers else None
        rows.append(
            {
                "month": row["month"],
                "month_complete": row["month_complete"],
                "mrr": row["mrr_end"],
                "arr": 12 * row["mrr_end"],
                "customers": customers,
                "arpa": arpa,
                "new_customers": row["new_customers"],
                "reactivated_customers": row["reactivated_customers"],
                "churned_customers": row["churned_customers"],
                "logo_churn_rate": rate(row["churned_customers"], row["customers_start"]),
                "gross_mrr_churn_rate": rate(lost, row["mrr_start"]),
                "net_mrr_churn_rate": rate(
                    lost - row["expansion_mrr"] - row["reactivation_mrr"], row["mrr_start"]
                ),
                "quick_ratio": rate(gained, lost),
                "exact_churn": None
                if row["customers_start"] == 0
                else Fraction(row["churned_customers"], row["customers_start"]),
            }
        )
    for index, row in enumerate(rows):
        # the three latest complete months at or before this one
        end = index if row["month_complete"] else index - 1
        window = rows[end - 2 : end + 1] if end >= 2 else []
        churn = [r["exact_churn"] for r in window if r["month_complete"]]
        ltv = None
        if len(churn) == 3 and None not in churn and sum(churn) > 0 and row["arpa"] is not None:
            ltv = Fraction(row["arpa"]) / (sum(churn) / 3)
        row["exact_ltv"] = ltv
    return rows


def read(con, table: str) -> list[dict]:
    cursor = con.execute(f"SELECT * FROM report.{table} ORDER BY month")
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]


def assert_agrees(con) -> int:
    """Compare every month; returns how many months had an LTV (a positive control)."""
    expected = expected_metrics(read(con, "mrr_summary"))
    actual = read(con, "saas_metrics")
    assert [row["month"] for row in actual] == [row["month"] for row in expected]
    with_ltv = 0
    for want, got in zip(expected, actual, strict=True):
        exact_ltv = want.pop("exact_ltv")
        want.pop("exact_churn")
        ltv = got.pop("ltv")
        assert got == want, want["month"]
        if exact_ltv is None:
            assert ltv is None, want["month"]
        else:
            # LTV divides by a mean of doubles; it is rounded to the cent from there
            assert abs(Fraction(ltv) - exact_ltv) <= Fraction(1, 100), want["month"]
            with_ltv += 1
    return with_ltv


def test_demo_account_metrics_agree_with_the_roll_forward(tmp_path):
    options = SandboxOptions(customers=demo.DEMO_CUSTOMERS, start=demo.DEMO_SINCE)
    world = generate(options)
    con = land_world(tmp_path / "nrr.duckdb", world, since=demo.DEMO_SINCE)
    build.build(con, Config(reporting=ReportingSettings(fx_rates=dict(options.fx))))
    months = con.execute("SELECT count(*) FROM report.saas_metrics").fetchone()[0]
    assert months >= 36
    assert assert_agrees(con) >= 30
    # every column carries values somewhere: the comparison above is not of NULLs only
    filled = con.execute(
        "SELECT count(arpa), count(logo_churn_rate), count(quick_ratio), count(ltv), "
        "count(*) FILTER (WHERE net_mrr_churn_rate < 0) FROM report.saas_metrics"
    ).fetchone()
    assert min(filled) > 0, filled


@pytest.mark.parametrize("seed", [3, 11, 29])
def test_seed_metrics_agree_with_the_roll_forward(tmp_path, seed):
    options = SandboxOptions(seed=seed, customers=60, start="2023-01", now="2025-03-18T09:30:00Z",
                             accounts=2 if seed == 11 else 1)  # fmt: skip
    con = land_world(tmp_path / "nrr.duckdb", generate(options))
    build.build(con, Config(reporting=ReportingSettings(fx_rates=dict(options.fx))))
    assert assert_agrees(con) >= 5


def summary_db(rows: list[tuple]) -> duckdb.DuckDBPyConnection:
    """A database holding only report.mrr_summary, to run the model file by hand on."""
    con = duckdb.connect()
    con.execute("""
        CREATE SCHEMA report;
        CREATE TABLE report.mrr_summary (month DATE, month_complete BOOLEAN,
            mrr_start DECIMAL(18,2), new_mrr DECIMAL(18,2), expansion_mrr DECIMAL(18,2),
            reactivation_mrr DECIMAL(18,2), contraction_mrr DECIMAL(18,2),
            churned_mrr DECIMAL(18,2), mrr_end DECIMAL(18,2), customers_start BIGINT,
            customers_end BIGINT, new_customers BIGINT, reactivated_customers BIGINT,
            churned_customers BIGINT);
    """)
    con.executemany(f"INSERT INTO report.mrr_summary VALUES ({', '.join(['?'] * 14)})", rows)
    con.execute(SQL.read_text())
    return con


D = Decimal
WORKED_EXAMPLE = [
    # month, complete, start, new, expansion, reactivation, contraction, churned, end,
    # customers start / end, new / reactivated / churned customers
    (date(2025, 1, 1), True, D("10000"), D("400"), 0, 0, 0, D("400"), D("10000"), 50, 50, 2, 0, 2),
    (date(2025, 2, 1), True, D("10000"), D("200"), 0, 0, 0, D("200"), D("10000"), 50, 50, 1, 0, 1),
    (date(2025, 3, 1), True, D("10000"), D("1200"), D("600"), D("200"), D("300"), D("900"),
     D("10800"), 50, 52, 4, 1, 3),
    (date(2025, 4, 1), False, D("10800"), D("100"), 0, 0, 0, 0, D("10900"), 52, 53, 1, 0, 0),
]  # fmt: skip


def test_the_worked_example_of_the_docs():
    con = summary_db(WORKED_EXAMPLE)
    rows = {row["month"]: row for row in read(con, "saas_metrics")}
    march = rows[date(2025, 3, 1)]
    assert march["mrr"] == D("10800.00") and march["arr"] == D("129600.00")
    assert march["customers"] == 52 and march["arpa"] == D("207.69")
    assert march["logo_churn_rate"] == pytest.approx(0.06, abs=1e-15)
    assert march["gross_mrr_churn_rate"] == pytest.approx(0.12, abs=1e-15)
    assert march["net_mrr_churn_rate"] == pytest.approx(0.04, abs=1e-15)
    assert march["quick_ratio"] == pytest.approx(2000 / 1200, abs=1e-15)
    # churn 4%, 2%, 6% in January to March: a mean of 4%, so 207.69 / 0.04
    assert march["ltv"] == D("5192.25")
    april = rows[date(2025, 4, 1)]
    # in progress: ARPA as of now, over the same three complete months
    assert (april["arpa"], april["ltv"]) == (D("205.66"), D("5141.50"))
    assert april["quick_ratio"] is None and april["logo_churn_rate"] == 0
    # February has only two complete months behind it: no LTV yet
    assert rows[date(2025, 2, 1)]["ltv"] is None and rows[date(2025, 1, 1)]["quick_ratio"] == 1


def test_arpa_rounds_half_a_cent_up_and_empty_months_have_no_ratios():
    rows = [
        # 5.35 / 2 = 2.675: in DOUBLEs that is 2.67499..., which would round down
        (date(2025, 1, 1), True, 0, D("5.35"), 0, 0, 0, 0, D("5.35"), 0, 2, 2, 0, 0),
        (date(2025, 2, 1), True, D("5.35"), 0, 0, 0, 0, D("5.35"), 0, 2, 0, 0, 0, 2),
        (date(2025, 3, 1), True, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
        (date(2025, 4, 1), True, 0, D("5"), 0, 0, 0, 0, D("5"), 0, 1, 0, 1, 0),
    ]
    con = summary_db(rows)
    got = {row["month"]: row for row in read(con, "saas_metrics")}
    assert got[date(2025, 1, 1)]["arpa"] == D("2.68")
    empty = got[date(2025, 3, 1)]
    for column in ("arpa", "logo_churn_rate", "gross_mrr_churn_rate", "net_mrr_churn_rate",
                   "quick_ratio", "ltv"):  # fmt: skip
        assert empty[column] is None, column
    # a month without a churn rate (no customers at its start) leaves April without LTV
    assert got[date(2025, 4, 1)]["ltv"] is None and got[date(2025, 4, 1)]["arpa"] == D("5.00")
    assert got[date(2025, 2, 1)]["logo_churn_rate"] == 1.0
