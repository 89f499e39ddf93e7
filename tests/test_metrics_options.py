"""Every option of `reporting` (config.example.yaml) changes the numbers as documented."""

from decimal import Decimal

import pytest
from stripe_objects import (
    build_report,
    customer,
    invoice,
    line,
    movements,
    mrr_by_month,
    price,
    product,
    renewals,
    subscription,
)

D = Decimal
BASIC = price("price_basic", 10000)


@pytest.fixture
def db(tmp_path):
    return tmp_path / "nrr.duckdb"


@pytest.mark.parametrize(("include", "expected"), [(True, {"2024-01": D("100.00")}), (False, {})])
def test_include_open_invoices(db, include, expected):
    invoices = renewals("cus_a", "s", BASIC, "2024-01-01", 1, status="open")
    con = build_report(db, invoices=invoices, prices=[BASIC], since="2024-01",
                       as_of="2024-01-31", include_open_invoices=include)  # fmt: skip
    assert mrr_by_month(con, "cus_a") == expected


@pytest.mark.parametrize(("include", "expected"), [(False, D("100.00")), (True, D("130.00"))])
def test_include_metered(db, include, expected):
    usage = price("price_usage", 10, usage_type="metered", product="prod_api")
    invoices = [invoice("cus_a", [
        line(10000, BASIC, ("2024-01-01", "2024-02-01"), subscription="s"),
        line(3000, usage, ("2024-01-01", "2024-02-01"), subscription="s", quantity=300),
    ])]  # fmt: skip
    con = build_report(db, invoices=invoices, prices=[BASIC, usage], since="2024-01",
                       as_of="2024-01-31", include_metered=include)  # fmt: skip
    assert mrr_by_month(con, "cus_a") == {"2024-01": expected}


@pytest.mark.parametrize(("subtract", "expected"), [(True, D("120.00")), (False, D("150.00"))])
def test_subtract_discounts(db, subtract, expected):
    seats = price("price_seat", 5000)
    invoices = renewals("cus_a", "s", seats, "2024-01-01", 1, quantity=3, discount=3000)
    con = build_report(db, invoices=invoices, prices=[seats], since="2024-01",
                       as_of="2024-01-31", subtract_discounts=subtract)  # fmt: skip
    assert mrr_by_month(con, "cus_a") == {"2024-01": expected}


@pytest.mark.parametrize(
    ("recognition", "churn_month"), [("period_end", "2026-03"), ("canceled_at", "2025-09")]
)
def test_churn_recognition(db, recognition, churn_month):
    yearly = price("price_year", 120000, interval="year")
    invoices = renewals("cus_a", "s", yearly, "2024-03-10", 2, every_months=12)
    sub = subscription("s", "cus_a", [("si", yearly, 1)], status="active", created="2024-03-10",
                       canceled_at="2025-09-01", cancel_at_period_end=True)  # fmt: skip
    con = build_report(db, invoices=invoices, prices=[yearly], subscriptions=[sub],
                       since="2024-03", as_of="2026-04-15T00:00:00Z",
                       churn_recognition=recognition)  # fmt: skip
    assert movements(con) == [
        ("2024-03", "cus_a", "new", D("100.00")),
        (churn_month, "cus_a", "churn", D("-100.00")),
    ]


@pytest.mark.parametrize(("zone", "first_month"), [("UTC", "2024-01"), ("Asia/Tokyo", "2024-02")])
def test_timezone_moves_month_boundaries(db, zone, first_month):
    # 2024-01-31 16:00 UTC is already February 1 in Tokyo
    invoices = [invoice("cus_a", [line(10000, BASIC, ("2024-01-31T16:00:00", "2024-02-29T16:00:00"),
                                       subscription="s")])]  # fmt: skip
    con = build_report(db, invoices=invoices, prices=[BASIC], since="2024-01",
                       as_of="2024-02-10", timezone=zone)  # fmt: skip
    assert next(iter(mrr_by_month(con, "cus_a"))) == first_month


def test_reporting_currency_and_fx_rates(db):
    euro = price("price_eur", 10000, currency="eur")
    invoices = renewals("cus_us", "s1", BASIC, "2024-01-01", 1) + renewals(
        "cus_eu", "s2", euro, "2024-01-01", 1
    )
    con = build_report(db, invoices=invoices, prices=[BASIC, euro], since="2024-01",
                       as_of="2024-01-31", currency="eur", fx_rates={"usd": 0.9})  # fmt: skip
    assert mrr_by_month(con, "cus_us") == {"2024-01": D("90.00")}
    assert mrr_by_month(con, "cus_eu") == {"2024-01": D("100.00")}


def retention_segments(con, month="2024-02-01", window=1):
    return con.execute(
        "SELECT segment_type, segment, customers_start, mrr_start, mrr_end FROM report.retention "
        "WHERE month = ?::DATE AND window_months = ? ORDER BY segment_type, segment",
        [month, window],
    ).fetchall()


def test_segments(db):
    pro = price("price_pro", 20000, product="prod_pro")
    invoices = (
        renewals("cus_a", "s1", BASIC, "2024-01-01", 2)
        + renewals("cus_b", "s2", pro, "2023-12-01", 2)
        + renewals("cus_b", "s3", BASIC, "2023-12-01", 3)
    )
    customers = [
        customer("cus_a", country="US", metadata={"plan": "self-serve"}),
        customer("cus_b", country="DE"),
    ]
    products = [product("prod_basic", "Basic"), product("prod_pro", "Pro")]
    options = dict(invoices=invoices, prices=[BASIC, pro], customers=customers,
                   products=products, since="2024-01", as_of="2024-02-20")  # fmt: skip
    con = build_report(db, segments=["currency", "country", "cohort", "product", "metadata:plan"],
                       **options)  # fmt: skip
    assert retention_segments(con) == [
        ("all", "all", 2, D("400.00"), D("200.00")),
        ("cohort", "2023-12", 1, D("300.00"), D("100.00")),
        ("cohort", "2024-01", 1, D("100.00"), D("100.00")),
        ("country", "DE", 1, D("300.00"), D("100.00")),
        ("country", "US", 1, D("100.00"), D("100.00")),
        ("currency", "usd", 2, D("400.00"), D("200.00")),
        ("metadata:plan", "(none)", 1, D("300.00"), D("100.00")),
        ("metadata:plan", "self-serve", 1, D("100.00"), D("100.00")),
        ("product", "Basic", 1, D("100.00"), D("100.00")),
        ("product", "Pro", 1, D("300.00"), D("100.00")),  # Pro is cus_b's largest at m-1
    ]
    only_country = build_report(db.with_name("b.duckdb"), segments=["country"], **options)
    assert {row[0] for row in retention_segments(only_country)} == {"all", "country"}
