"""The five worked examples of docs/metrics.md, to the cent, built from hand-made Stripe objects."""

from decimal import Decimal

import pytest
from stripe_objects import (
    build_report,
    invoice,
    line,
    movements,
    mrr_by_month,
    price,
    renewals,
    subscription,
    summary,
)

D = Decimal


@pytest.fixture
def db(tmp_path):
    return tmp_path / "nrr.duckdb"


def test_example_1_upgrade_with_prorations_invoiced_at_renewal(db):
    basic = price("price_basic", 10000)
    pro = price("price_pro", 20000, product="prod_pro")
    sub = "sub_1"
    invoices = [
        invoice("cus_a", [line(10000, basic, ("2024-01-01", "2024-02-01"), subscription=sub)]),
        invoice(
            "cus_a",
            [
                line(-5161, basic, ("2024-01-16", "2024-02-01"), subscription=sub,
                     proration=True, invoice_item=True),
                line(10323, pro, ("2024-01-16", "2024-02-01"), subscription=sub,
                     proration=True, invoice_item=True),
                line(20000, pro, ("2024-02-01", "2024-03-01"), subscription=sub),
            ],
        ),
    ]  # fmt: skip
    con = build_report(
        db, invoices=invoices, prices=[basic, pro], since="2024-01", as_of="2024-02-29T12:00:00Z"
    )
    months = mrr_by_month(con, "cus_a")
    assert months["2024-01"] == D("200.00")
    assert months["2024-02"] == D("200.00")
    assert movements(con) == [("2024-01", "cus_a", "new", D("200.00"))]


def test_example_2_annual_plan_cancelled_at_period_end_churns_when_the_year_ends(db):
    yearly = price("price_year", 120000, interval="year")
    invoices = renewals("cus_a", "sub_1", yearly, "2024-03-10", 2, every_months=12)
    sub = subscription(
        "sub_1", "cus_a", [("si_1", yearly, 1)], status="canceled", created="2024-03-10",
        canceled_at="2025-09-01", cancel_at_period_end=True, ended_at="2026-03-10",
    )  # fmt: skip
    con = build_report(
        db,
        invoices=invoices,
        prices=[yearly],
        subscriptions=[sub],
        since="2024-03",
        as_of="2026-04-15T00:00:00Z",
    )
    months = mrr_by_month(con, "cus_a")
    assert len(months) == 26  # 2024-03 .. 2026-04
    assert all(months[m] == D("100.00") for m in months if m <= "2026-02")
    assert months["2026-03"] == D("0.00")
    assert months["2026-04"] == D("0.00")
    assert movements(con) == [
        ("2024-03", "cus_a", "new", D("100.00")),
        ("2026-03", "cus_a", "churn", D("-100.00")),
    ]


def test_example_3_seats_with_a_forever_percent_coupon(db):
    seats = price("price_seat", 5000)
    invoices = renewals("cus_a", "sub_1", seats, "2024-01-05", 2, quantity=3, discount=3000)
    assert invoices[0]["lines"]["data"][0]["amount"] == 15000
    con = build_report(db, invoices=invoices, prices=[seats], since="2024-01", as_of="2024-03-01")
    assert mrr_by_month(con, "cus_a")["2024-01"] == D("120.00")
    assert mrr_by_month(con, "cus_a")["2024-02"] == D("120.00")


def test_example_4_euro_price_converted_at_the_fixed_rate(db):
    euro = price("price_eur", 9000, currency="eur")
    con = build_report(
        db,
        invoices=renewals("cus_a", "sub_1", euro, "2024-01-01", 2),
        prices=[euro],
        since="2024-01",
        as_of="2024-02-15T00:00:00Z",
        fx_rates={"eur": 1.10},
    )
    assert mrr_by_month(con, "cus_a") == {"2024-01": D("99.00"), "2024-02": D("99.00")}


def test_example_5_twelve_month_nrr_grr_and_logo_retention(db):
    monthly = price("price_m", 100)  # amounts set per invoice below
    invoices = (
        renewals("cus_a", "sub_a", monthly, "2024-01-01", 12, amount=10000)
        + renewals("cus_a", "sub_a", monthly, "2025-01-01", 1, amount=12000)
        + renewals("cus_b", "sub_b", monthly, "2024-01-01", 3, amount=20000)
        + renewals("cus_c", "sub_c", monthly, "2024-01-01", 13, amount=5000)
        + renewals("cus_d", "sub_d", monthly, "2025-01-01", 1, amount=8000)
    )
    con = build_report(
        db, invoices=invoices, prices=[monthly], since="2024-01", as_of="2025-01-31T12:00:00Z"
    )
    row = con.execute(
        "SELECT customers_start, customers_retained, mrr_start, mrr_end, mrr_retained_capped, "
        "nrr, grr, logo_retention, month_complete FROM report.retention "
        "WHERE month = DATE '2025-01-01' AND window_months = 12 AND segment_type = 'all'"
    ).fetchone()
    assert row[:5] == (3, 2, D("350.00"), D("170.00"), D("150.00"))
    assert round(row[5] * 100, 2) == 48.57
    assert round(row[6] * 100, 2) == 42.86
    assert row[7] == pytest.approx(2 / 3)
    assert row[8] is False
    january = summary(con, "2025-01")
    assert january["mrr_end"] == D("250.00")  # A 120 + C 50 + D 80
    assert january["new_customers"] == 1
