"""The rules of docs/metrics.md and billing edge cases, each with hand-made Stripe objects."""

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
    renewals,
    subscription,
    summary,
)

from nrr_sync import build, load
from nrr_sync.config import Config
from nrr_sync.kinds import BY_TABLE

D = Decimal


@pytest.fixture
def db(tmp_path):
    return tmp_path / "nrr.duckdb"


BASIC = price("price_basic", 10000)
PRO = price("price_pro", 20000, product="prod_pro")


def test_quarterly_price_is_a_third_per_month(db):
    quarterly = price("price_q", 30000, interval_count=3)
    invoices = renewals("cus_a", "sub_1", quarterly, "2024-01-01", 2, every_months=3)
    con = build_report(
        db, invoices=invoices, prices=[quarterly], since="2024-01", as_of="2024-06-30"
    )
    assert set(mrr_by_month(con, "cus_a").values()) == {D("100.00")}
    assert len(mrr_by_month(con, "cus_a")) == 6


def test_annual_price_is_a_twelfth_per_month(db):
    yearly = price("price_y", 100000, interval="year")
    invoices = renewals("cus_a", "sub_1", yearly, "2024-01-15", 1, every_months=12)
    con = build_report(db, invoices=invoices, prices=[yearly], since="2024-01", as_of="2024-12-20")
    assert set(mrr_by_month(con, "cus_a").values()) == {D("83.33")}


def test_weekly_price_is_52_twelfths_per_month(db):
    weekly = price("price_w", 2500, interval="week")
    starts = ["2024-01-01", "2024-01-08", "2024-01-15", "2024-01-22", "2024-01-29"]
    invoices = [
        invoice("cus_a", [line(2500, weekly, (s, f"2024-{s[5:7]}-{int(s[8:]) + 7:02d}"
                                              if int(s[8:]) < 25 else "2024-02-05"),
                               subscription="sub_1")])
        for s in starts
    ]  # fmt: skip
    con = build_report(db, invoices=invoices, prices=[weekly], since="2024-01", as_of="2024-02-01")
    assert mrr_by_month(con, "cus_a")["2024-01"] == D("108.33")  # 25 x 52 / 12


def test_daily_price_is_365_twelfths_per_month(db):
    daily = price("price_d", 100, interval="day")
    invoices = [
        invoice("cus_a", [line(100, daily, ("2024-01-31", "2024-02-01"), subscription="s")])
    ]
    con = build_report(db, invoices=invoices, prices=[daily], since="2024-01", as_of="2024-02-01")
    assert mrr_by_month(con, "cus_a")["2024-01"] == D("30.42")  # 1 x 365 / 12


def test_several_subscriptions_of_one_customer_add_up(db):
    invoices = renewals("cus_a", "sub_1", BASIC, "2024-01-01", 2) + renewals(
        "cus_a", "sub_2", PRO, "2024-01-20", 1
    )
    con = build_report(
        db, invoices=invoices, prices=[BASIC, PRO], since="2024-01", as_of="2024-02-25"
    )
    assert mrr_by_month(con, "cus_a") == {"2024-01": D("300.00"), "2024-02": D("100.00")}
    assert movements(con)[-1] == ("2024-02", "cus_a", "contraction", D("-200.00"))


def test_seat_increase_with_always_invoice_prorations(db):
    seat = price("price_seat", 5000)
    invoices = [
        invoice("cus_a", [line(10000, seat, ("2024-01-01", "2024-02-01"), subscription="s",
                               quantity=2)]),
        invoice("cus_a", [
            line(-7097, seat, ("2024-01-10", "2024-02-01"), subscription="s", quantity=2,
                 proration=True, invoice_item=True),
            line(17742, seat, ("2024-01-10", "2024-02-01"), subscription="s", quantity=5,
                 proration=True, invoice_item=True),
        ], billing_reason="subscription_update"),
        invoice("cus_a", [line(25000, seat, ("2024-02-01", "2024-03-01"), subscription="s",
                               quantity=5)]),
    ]  # fmt: skip
    con = build_report(db, invoices=invoices, prices=[seat], since="2024-01", as_of="2024-02-20")
    assert mrr_by_month(con, "cus_a") == {"2024-01": D("250.00"), "2024-02": D("250.00")}
    assert movements(con) == [("2024-01", "cus_a", "new", D("250.00"))]


@pytest.mark.parametrize("invoiced", ["at_next_renewal", "always_invoice"])
def test_downgrade_with_prorations_is_contraction_in_the_month_it_happened(db, invoiced):
    prorations = [
        line(-10323, PRO, ("2024-01-16", "2024-02-01"), subscription="s", proration=True,
             invoice_item=True),
        line(5161, BASIC, ("2024-01-16", "2024-02-01"), subscription="s", proration=True,
             invoice_item=True),
    ]  # fmt: skip
    renewal = [line(10000, BASIC, ("2024-02-01", "2024-03-01"), subscription="s")]
    invoices = renewals("cus_a", "s", PRO, "2023-12-01", 2)
    if invoiced == "always_invoice":
        invoices += [invoice("cus_a", prorations), invoice("cus_a", renewal)]
    else:
        invoices += [invoice("cus_a", prorations + renewal)]
    con = build_report(
        db, invoices=invoices, prices=[BASIC, PRO], since="2024-01", as_of="2024-02-20"
    )
    assert mrr_by_month(con, "cus_a") == {"2024-01": D("100.00"), "2024-02": D("100.00")}
    assert movements(con) == [("2024-01", "cus_a", "contraction", D("-100.00"))]


def test_immediate_cancellation_with_credit_churns_in_the_month_of_cancellation(db):
    credit = line(-3871, BASIC, ("2024-01-20", "2024-02-01"), subscription="s", proration=True,
                  invoice_item=True)  # fmt: skip
    invoices = renewals("cus_a", "s", BASIC, "2023-12-01", 2) + [
        invoice("cus_a", [credit], billing_reason="subscription_update")
    ]
    sub = subscription("s", "cus_a", [("si", BASIC, 1)], status="canceled", created="2023-12-01",
                       canceled_at="2024-01-20", ended_at="2024-01-20")  # fmt: skip
    con = build_report(db, invoices=invoices, prices=[BASIC], subscriptions=[sub],
                       since="2024-01", as_of="2024-02-10")  # fmt: skip
    assert mrr_by_month(con, "cus_a") == {"2024-01": D("0.00"), "2024-02": D("0.00")}
    assert movements(con) == [("2024-01", "cus_a", "churn", D("-100.00"))]


def test_cancellation_without_credit_keeps_the_paid_period(db):
    invoices = renewals("cus_a", "s", BASIC, "2023-12-01", 2)
    sub = subscription("s", "cus_a", [("si", BASIC, 1)], status="canceled", created="2023-12-01",
                       canceled_at="2024-01-20", ended_at="2024-01-20")  # fmt: skip
    con = build_report(db, invoices=invoices, prices=[BASIC], subscriptions=[sub],
                       since="2024-01", as_of="2024-02-10")  # fmt: skip
    assert mrr_by_month(con, "cus_a") == {"2024-01": D("100.00"), "2024-02": D("0.00")}


def test_cancel_at_period_end_churns_after_the_last_paid_period(db):
    invoices = renewals("cus_a", "s", BASIC, "2024-01-10", 3)
    sub = subscription("s", "cus_a", [("si", BASIC, 1)], status="canceled", created="2024-01-10",
                       canceled_at="2024-03-15", cancel_at_period_end=True,
                       ended_at="2024-04-10")  # fmt: skip
    con = build_report(db, invoices=invoices, prices=[BASIC], subscriptions=[sub],
                       since="2024-01", as_of="2024-05-01T00:00:00Z")  # fmt: skip
    assert mrr_by_month(con, "cus_a") == {
        "2024-01": D("100.00"), "2024-02": D("100.00"), "2024-03": D("100.00"),
        "2024-04": D("0.00"), "2024-05": D("0.00"),
    }  # fmt: skip


def test_trial_is_zero_and_the_customer_is_new_when_it_converts(db):
    invoices = [
        invoice("cus_a", [line(0, BASIC, ("2024-01-20", "2024-02-03"), subscription="s")],
                billing_reason="subscription_create"),
        invoice("cus_a", [line(10000, BASIC, ("2024-02-03", "2024-03-03"), subscription="s")]),
    ]  # fmt: skip
    con = build_report(db, invoices=invoices, prices=[BASIC], since="2024-01", as_of="2024-02-20")
    assert mrr_by_month(con, "cus_a") == {"2024-02": D("100.00")}
    assert movements(con) == [("2024-02", "cus_a", "new", D("100.00"))]


def test_full_discount_makes_mrr_zero_and_churns_a_paying_customer(db):
    invoices = renewals("cus_a", "s", BASIC, "2024-01-01", 1) + renewals(
        "cus_a", "s", BASIC, "2024-02-01", 1, discount=10000
    )
    con = build_report(db, invoices=invoices, prices=[BASIC], since="2024-01", as_of="2024-02-20")
    assert mrr_by_month(con, "cus_a") == {"2024-01": D("100.00"), "2024-02": D("0.00")}
    assert movements(con)[-1] == ("2024-02", "cus_a", "churn", D("-100.00"))


def test_once_coupon_lowers_the_first_month_then_expands(db):
    invoices = renewals("cus_a", "s", BASIC, "2024-01-01", 1, discount=5000) + renewals(
        "cus_a", "s", BASIC, "2024-02-01", 1
    )
    con = build_report(db, invoices=invoices, prices=[BASIC], since="2024-01", as_of="2024-02-20")
    assert movements(con) == [
        ("2024-01", "cus_a", "new", D("50.00")),
        ("2024-02", "cus_a", "expansion", D("50.00")),
    ]


def test_inclusive_tax_is_taken_out_and_exclusive_tax_never_added(db):
    inclusive = price("price_incl", 12000, tax_behavior="inclusive")
    exclusive = price("price_excl", 10000, tax_behavior="exclusive", product="prod_x")
    invoices = [
        invoice("cus_a", [line(12000, inclusive, ("2024-01-01", "2024-02-01"), subscription="s",
                               taxes=[(2000, "inclusive")])]),
        invoice("cus_b", [line(10000, exclusive, ("2024-01-01", "2024-02-01"), subscription="t",
                               taxes=[(1900, "exclusive")])]),
    ]  # fmt: skip
    con = build_report(db, invoices=invoices, prices=[inclusive, exclusive], since="2024-01",
                       as_of="2024-01-31")  # fmt: skip
    assert mrr_by_month(con, "cus_a") == {"2024-01": D("100.00")}
    assert mrr_by_month(con, "cus_b") == {"2024-01": D("100.00")}


def reland(con, objects, kind="invoices"):
    load.load_objects(con, "acct_test", BY_TABLE[kind], objects)
    build.build(con, Config())


def test_open_invoice_counts_until_voided_and_still_counts_once_paid(db):
    open_invoice = renewals("cus_a", "s", BASIC, "2024-01-01", 1, status="open")[0]
    con = build_report(db, invoices=[open_invoice], prices=[BASIC], since="2024-01",
                       as_of="2024-01-31")  # fmt: skip
    assert mrr_by_month(con, "cus_a") == {"2024-01": D("100.00")}
    reland(con, [{**open_invoice, "status": "void"}])
    assert mrr_by_month(con, "cus_a") == {}
    reland(con, [{**open_invoice, "status": "paid"}])
    assert mrr_by_month(con, "cus_a") == {"2024-01": D("100.00")}


def test_open_invoice_stops_counting_when_the_subscription_turns_unpaid(db):
    open_invoice = renewals("cus_a", "s", BASIC, "2024-01-01", 1, status="open")[0]
    past_due = subscription("s", "cus_a", [("si", BASIC, 1)], status="past_due")
    con = build_report(db, invoices=[open_invoice], prices=[BASIC], subscriptions=[past_due],
                       since="2024-01", as_of="2024-01-31")  # fmt: skip
    assert mrr_by_month(con, "cus_a") == {"2024-01": D("100.00")}
    reland(con, [{**past_due, "status": "unpaid"}], kind="subscriptions")
    assert mrr_by_month(con, "cus_a") == {}


def test_open_invoice_of_a_subscription_canceled_for_failed_payment_does_not_count(db):
    open_invoice = renewals("cus_a", "s", BASIC, "2024-01-01", 1, status="open")[0]
    canceled = subscription("s", "cus_a", [("si", BASIC, 1)], status="canceled",
                            canceled_at="2024-01-25",
                            cancellation_reason="payment_failed")  # fmt: skip
    con = build_report(db, invoices=[open_invoice], prices=[BASIC], subscriptions=[canceled],
                       since="2024-01", as_of="2024-01-31")  # fmt: skip
    assert mrr_by_month(con, "cus_a") == {}


def test_only_auto_advancing_subscription_drafts_count(db):
    def draft(customer_id, **options):
        lines = [line(10000, BASIC, ("2024-01-01", "2024-02-01"), subscription=f"s_{customer_id}")]
        return invoice(customer_id, lines, status="draft", **options)

    invoices = [
        draft("cus_renewal", auto_advance=True, billing_reason="subscription_cycle"),
        draft("cus_paused", auto_advance=False, billing_reason="subscription_cycle"),
        draft("cus_manual", auto_advance=True, billing_reason="manual"),
    ]
    con = build_report(db, invoices=invoices, prices=[BASIC], since="2024-01", as_of="2024-01-31")
    counted = con.execute("SELECT DISTINCT customer_id FROM report.customer_mrr_monthly").fetchall()
    assert counted == [("cus_renewal",)]


def test_uncollectible_invoices_and_one_time_items_never_count(db):
    one_time = price("price_setup", 5000, interval=None)
    invoices = [
        renewals("cus_a", "s", BASIC, "2024-01-01", 1, status="uncollectible")[0],
        invoice("cus_b", [line(5000, one_time, ("2024-01-01", "2024-02-01"), subscription="t",
                               invoice_item=True)]),
    ]  # fmt: skip
    con = build_report(db, invoices=invoices, prices=[BASIC, one_time], since="2024-01",
                       as_of="2024-01-31")  # fmt: skip
    assert con.execute("SELECT count(*) FROM report.customer_mrr_monthly").fetchone() == (0,)


def test_reactivation_after_a_gap_is_not_new(db):
    invoices = renewals("cus_a", "s", BASIC, "2024-01-01", 2) + renewals(
        "cus_a", "s2", PRO, "2024-04-01", 1
    )
    con = build_report(
        db, invoices=invoices, prices=[BASIC, PRO], since="2024-01", as_of="2024-04-20"
    )
    assert movements(con) == [
        ("2024-01", "cus_a", "new", D("100.00")),
        ("2024-03", "cus_a", "churn", D("-100.00")),
        ("2024-04", "cus_a", "reactivation", D("200.00")),
    ]
    april = summary(con, "2024-04")
    assert (april["reactivation_mrr"], april["reactivated_customers"]) == (D("200.00"), 1)


def test_customer_paying_before_since_is_not_new_in_the_first_month(db):
    invoices = renewals("cus_a", "s", BASIC, "2023-10-01", 5)
    con = build_report(db, invoices=invoices, prices=[BASIC], since="2024-01", as_of="2024-02-20")
    assert movements(con) == []
    january = summary(con, "2024-01")
    assert (january["mrr_start"], january["customers_start"], january["new_mrr"]) == (
        D("100.00"), 1, D("0.00"),
    )  # fmt: skip
    assert list(mrr_by_month(con, "cus_a")) == ["2024-01", "2024-02"]


def test_new_and_churn_in_the_same_month(db):
    credit = line(-5000, BASIC, ("2024-02-16", "2024-03-01"), subscription="s_b", proration=True,
                  invoice_item=True)  # fmt: skip
    invoices = (
        renewals("cus_old", "s_old", BASIC, "2024-01-01", 1)  # churns in February
        + renewals("cus_new", "s_new", PRO, "2024-02-05", 1)  # new in February
        + renewals("cus_b", "s_b", BASIC, "2024-02-01", 1)  # starts and cancels in February
        + [invoice("cus_b", [credit])]
    )
    con = build_report(
        db, invoices=invoices, prices=[BASIC, PRO], since="2024-01", as_of="2024-02-28"
    )
    february = summary(con, "2024-02")
    assert (february["new_customers"], february["churned_customers"]) == (1, 1)
    assert (february["new_mrr"], february["churned_mrr"]) == (D("200.00"), D("100.00"))
    assert mrr_by_month(con, "cus_b") == {}


def test_zero_decimal_currency_is_not_divided_by_100(db):
    yen = price("price_jpy", 15000, currency="jpy")
    con = build_report(db, invoices=renewals("cus_a", "s", yen, "2024-01-01", 1), prices=[yen],
                       since="2024-01", as_of="2024-01-31", fx_rates={"jpy": 0.0067})  # fmt: skip
    assert mrr_by_month(con, "cus_a") == {"2024-01": D("100.50")}


def test_three_decimal_currency_is_divided_by_1000(db):
    dinar = price("price_kwd", 30250, currency="kwd")
    con = build_report(db, invoices=renewals("cus_a", "s", dinar, "2024-01-01", 1),
                       prices=[dinar], since="2024-01", as_of="2024-01-31",
                       fx_rates={"kwd": 3.25})  # fmt: skip
    assert mrr_by_month(con, "cus_a") == {"2024-01": D("98.31")}  # 30.250 KWD x 3.25
    assert con.execute("SELECT count(*) FROM report.data_quality").fetchone() == (0,)


def test_a_currency_of_unknown_decimals_is_valued_as_two_decimal_and_named(db):
    bolivar = price("price_ves", 250000, currency="ves")
    con = build_report(db, invoices=renewals("cus_a", "s", bolivar, "2024-01-01", 1),
                       prices=[bolivar], since="2024-01", as_of="2024-01-31",
                       fx_rates={"ves": 0.02})  # fmt: skip
    assert mrr_by_month(con, "cus_a") == {"2024-01": D("50.00")}  # 2500.00 VES x 0.02
    ((severity, customer, detail),) = con.execute(
        "SELECT severity, customer_id, detail FROM report.data_quality "
        "WHERE \"check\" = 'unknown_currency_exponent'"
    ).fetchall()
    assert (severity, customer) == ("warning", "cus_a")
    assert "ves" in detail and "two-decimal" in detail


def test_multi_currency_customers_are_summed_in_the_reporting_currency(db):
    eur = price("price_eur", 10000, currency="eur")
    gbp = price("price_gbp", 10000, currency="gbp", product="prod_gbp")
    invoices = renewals("cus_eu", "s1", eur, "2024-01-01", 1) + renewals(
        "cus_uk", "s2", gbp, "2024-01-01", 1
    )
    con = build_report(db, invoices=invoices, prices=[eur, gbp], since="2024-01",
                       as_of="2024-01-31", fx_rates={"eur": 1.08, "gbp": 1.27})  # fmt: skip
    assert summary(con, "2024-01")["mrr_end"] == D("235.00")
    currencies = con.execute(
        "SELECT segment, mrr_start FROM report.retention WHERE segment_type = 'currency'"
    ).fetchall()
    assert currencies == []  # no window ends inside the one reported month


def test_month_end_follows_the_reporting_time_zone(db):
    # starts 00:30 on Feb 1 in Berlin, which is still January 31 in UTC
    invoices = [invoice("cus_a", [line(10000, BASIC, ("2024-01-31T23:30:00", "2024-02-29T23:30:00"),
                                       subscription="s")])]  # fmt: skip
    utc = build_report(db, invoices=invoices, prices=[BASIC], since="2024-01", as_of="2024-02-20")
    assert mrr_by_month(utc, "cus_a") == {"2024-01": D("100.00"), "2024-02": D("100.00")}
    berlin = build_report(db.with_name("berlin.duckdb"), invoices=invoices, prices=[BASIC],
                          since="2024-01", as_of="2024-02-20",
                          timezone="Europe/Berlin")  # fmt: skip
    assert mrr_by_month(berlin, "cus_a") == {"2024-02": D("100.00")}
    months = berlin.execute(
        "SELECT snapshot_at::VARCHAR FROM report.months WHERE month = DATE '2024-01-01'"
    ).fetchone()
    assert months == ("2024-01-31 22:59:59+00",)


def test_volume_tier_proration_uses_the_full_price_of_the_new_tier(db):
    volume = price("price_vol", None, billing_scheme="tiered", tiers_mode="volume",
                   tiers=[{"up_to": 10, "unit_amount": 1000},
                          {"up_to": None, "unit_amount": 800}])  # fmt: skip
    invoices = [
        invoice("cus_a", [line(5000, volume, ("2024-01-01", "2024-02-01"), subscription="s",
                               quantity=5)]),
        invoice("cus_a", [
            line(-2419, volume, ("2024-01-17", "2024-02-01"), subscription="s", quantity=5,
                 proration=True, invoice_item=True),
            line(4645, volume, ("2024-01-17", "2024-02-01"), subscription="s", quantity=12,
                 proration=True, invoice_item=True),
        ]),
    ]  # fmt: skip
    con = build_report(db, invoices=invoices, prices=[volume], since="2024-01", as_of="2024-01-31")
    assert mrr_by_month(con, "cus_a") == {"2024-01": D("96.00")}  # 12 x 8.00


def test_graduated_tier_proration_sums_the_tiers(db):
    graduated = price("price_grad", None, billing_scheme="tiered", tiers_mode="graduated",
                      tiers=[{"up_to": 5, "unit_amount": 1000, "flat_amount": 500},
                             {"up_to": None, "unit_amount": 500, "flat_amount": 200}])  # fmt: skip
    invoices = [invoice("cus_a", [
        line(3387, graduated, ("2024-01-17", "2024-02-01"), subscription="s", quantity=8,
             proration=True, invoice_item=True),
    ])]  # fmt: skip
    con = build_report(
        db, invoices=invoices, prices=[graduated], since="2024-01", as_of="2024-01-31"
    )
    # 5 x 10.00 + 5.00 flat + 3 x 5.00 + 2.00 flat
    assert mrr_by_month(con, "cus_a") == {"2024-01": D("72.00")}


def test_transform_quantity_proration_rounds_packages(db):
    packs = price("price_pack", 2000, transform_quantity={"divide_by": 10, "round": "up"})
    invoices = [invoice("cus_a", [
        line(2903, packs, ("2024-01-17", "2024-02-01"), subscription="s", quantity=25,
             proration=True, invoice_item=True),
    ])]  # fmt: skip
    con = build_report(db, invoices=invoices, prices=[packs], since="2024-01", as_of="2024-01-31")
    assert mrr_by_month(con, "cus_a") == {"2024-01": D("60.00")}  # ceil(25 / 10) x 20.00


def test_proration_without_a_quantity_falls_back_to_the_period_ratio(db):
    invoices = [
        invoice("cus_a", [line(10000, BASIC, ("2024-01-01", "2024-02-01"), subscription="s")]),
        invoice("cus_a", [
            line(-5161, BASIC, ("2024-01-16", "2024-02-01"), subscription="s", quantity=None,
                 proration=True, invoice_item=True),
            line(10323, PRO, ("2024-01-16", "2024-02-01"), subscription="s", quantity=None,
                 proration=True, invoice_item=True),
        ]),
    ]  # fmt: skip
    con = build_report(
        db, invoices=invoices, prices=[BASIC, PRO], since="2024-01", as_of="2024-01-31"
    )
    # 100 - 51.61 x 31/16 + 103.23 x 31/16 = 200.01375
    assert mrr_by_month(con, "cus_a") == {"2024-01": D("200.01")}
    checks = con.execute(
        'SELECT count(*) FROM report.data_quality WHERE "check" = '
        "'proration_valued_by_period_ratio'"
    ).fetchone()
    assert checks == (2,)


def test_rounding_is_half_away_from_zero_on_the_customer_total(db):
    odd = price("price_odd", 10001, interval_count=2)  # 50.005 per month
    con = build_report(db, invoices=renewals("cus_a", "s", odd, "2024-01-01", 1, every_months=2),
                       prices=[odd], since="2024-01", as_of="2024-01-31")  # fmt: skip
    assert mrr_by_month(con, "cus_a") == {"2024-01": D("50.01")}
    line_value = con.execute("SELECT monthly_mrr FROM report.mrr_lines").fetchone()[0]
    assert line_value == D("50.005")


def test_roll_forward_identity_holds_every_month(db):
    invoices = (
        renewals("cus_a", "s1", BASIC, "2024-01-03", 5)
        + renewals("cus_b", "s2", PRO, "2024-02-11", 2)
        + renewals("cus_b", "s3", BASIC, "2024-04-11", 2, quantity=3)
        + renewals("cus_c", "s4", PRO, "2024-01-29", 2, discount=3333)
    )
    con = build_report(
        db, invoices=invoices, prices=[BASIC, PRO], since="2024-01", as_of="2024-06-15"
    )
    rows = con.execute(
        "SELECT mrr_start, new_mrr, expansion_mrr, reactivation_mrr, contraction_mrr, churned_mrr, "
        "mrr_end FROM report.mrr_summary ORDER BY month"
    ).fetchall()
    assert len(rows) == 6
    for start, new, expansion, reactivation, contraction, churned, end in rows:
        assert end == start + new + expansion + reactivation - contraction - churned
    previous_end = [row[-1] for row in rows[:-1]]
    assert [row[0] for row in rows[1:]] == previous_end
    assert con.execute(
        "SELECT count(*) FROM report.data_quality WHERE severity = 'error'"
    ).fetchone() == (0,)


def test_deleted_customer_keeps_their_paid_history(db):
    con = build_report(db, invoices=renewals("cus_gone", "s", BASIC, "2024-01-01", 1),
                       customers=[customer("cus_gone", deleted=True)], prices=[BASIC],
                       since="2024-01", as_of="2024-02-15")  # fmt: skip
    assert mrr_by_month(con, "cus_gone") == {"2024-01": D("100.00"), "2024-02": D("0.00")}
    checks = con.execute('SELECT "check" FROM report.data_quality').fetchall()
    assert ("deleted_customer",) in checks


def test_customers_are_keyed_by_account(db):
    objects = {"invoices": renewals("cus_same", "s", BASIC, "2024-01-01", 1), "prices": [BASIC]}
    con = build_report(db, accounts={"acct_one": objects, "acct_two": objects}, since="2024-01",
                       as_of="2024-01-31")  # fmt: skip
    assert summary(con, "2024-01")["customers_end"] == 2
    assert summary(con, "2024-01")["mrr_end"] == D("200.00")
