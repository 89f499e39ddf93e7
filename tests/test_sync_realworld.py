"""What real accounts bring, end to end: the sandbox serves it over HTTP, the CLI lands it
with the expansions the rules need, and the report equals the sandbox's truth to the cent,
after a backfill and after `advance` + `sync` (docs/metrics.md, docs/tables.md)."""

from __future__ import annotations

import json
from decimal import Decimal

from sync_helpers import cli, query, write_config
from test_metrics_truth import expected_monthly, truth_by_customer

from nrr_sync.sandbox.generator import SandboxOptions, Scenario, generate

DAY = 86400
SINCE = "2024-01"


def reported(db) -> set[tuple]:
    return set(query(db, "SELECT account_id, customer_id, strftime(month, '%Y-%m-%d'), mrr "
                         "FROM report.customer_mrr_monthly"))  # fmt: skip


def assert_report_equals_truth(db, world) -> None:
    expected = expected_monthly(truth_by_customer(world), since=SINCE)
    got = reported(db)
    assert expected
    assert sorted(got - expected)[:10] == sorted(expected - got)[:10] == []


def multi_currency_scenarios() -> tuple[Scenario, ...]:
    eur = Scenario("2024-02-03T10:00:00Z", country="DE", currency="eur", name="EUR on usd prices")
    sub = eur.subscribe(eur.created, [("pro_month_usd", 1), ("seats_month_usd", 3)])
    eur.change("2024-03-19T08:00:00Z", sub, [("pro_month_usd", 1), ("seats_month_usd", 5)])
    eur.change("2024-04-08T15:00:00Z", sub, [("business_month_usd", 1), ("seats_month_usd", 5)],
               "always_invoice")  # fmt: skip
    eur.change("2024-06-12T09:00:00Z", sub, [("business_month_usd", 1), ("seats_month_usd", 9)])
    gbp = Scenario("2024-02-20T12:00:00Z", country="GB", currency="gbp", name="GBP tiered")
    sub = gbp.subscribe(gbp.created, [("platform_month_usd", 8)])
    gbp.change("2024-04-02T11:00:00Z", sub, [("platform_month_usd", 23)], "always_invoice")
    gbp.change("2024-06-14T11:00:00Z", sub, [("platform_month_usd", 61)])
    return eur, gbp


def test_multi_currency_prices_land_and_report_exactly_before_and_after_advance(
    tmp_path, sandbox_factory
):
    options = SandboxOptions(customers=0, start="2024-01", now="2024-06-01T00:00:00Z",
                             archetypes=False, scenarios=multi_currency_scenarios())  # fmt: skip
    sandbox = sandbox_factory(world=generate(options))
    config = write_config(tmp_path)
    db = tmp_path / "nrr.duckdb"
    assert cli(config, ["backfill", "--since", SINCE], sandbox).exit_code == 0

    lines = query(db, "SELECT l.currency, p.currency, l.proration FROM stripe.invoice_lines l "
                      "JOIN stripe.prices p ON p.id = l.price_id")  # fmt: skip
    assert {(line, price) for line, price, _ in lines} == {("eur", "usd"), ("gbp", "usd")}
    assert any(proration for *_, proration in lines)
    (options_json,) = query(db, "SELECT currency_options FROM stripe.prices "
                                "WHERE raw->>'lookup_key' = 'platform_month_usd'")[0]  # fmt: skip
    assert json.loads(options_json)["gbp"]["tiers"][0]["unit_amount"] == 1590
    valuations = {v for (v,) in query(db, "SELECT DISTINCT valuation FROM report.mrr_lines")}
    assert "full_price" in valuations and "period_ratio" not in valuations
    assert_report_equals_truth(db, sandbox.world)

    sandbox.advance(20 * DAY)  # the June changes happen, invoiced at once or pending
    assert cli(config, ["sync"], sandbox).exit_code == 0
    assert_report_equals_truth(db, sandbox.world)


def discount_scenarios() -> tuple[Scenario, ...]:
    stacked = Scenario("2024-02-05T09:00:00Z", name="stacked percent-off")
    sub = stacked.subscribe(stacked.created, [("pro_month_usd", 1), ("seats_month_usd", 3)],
                            coupon=("forever20", "promo:loyalty5"))  # fmt: skip
    stacked.change("2024-03-17T13:00:00Z", sub, [("business_month_usd", 1),
                                                 ("seats_month_usd", 3)])  # fmt: skip
    mixed = Scenario("2024-02-11T16:00:00Z", name="percent and amount-off, invoiced at once")
    sub = mixed.subscribe(mixed.created, [("starter_month_usd", 1), ("seats_month_usd", 2)],
                          coupon=("repeating12_5", "amount10"))  # fmt: skip
    mixed.change("2024-03-28T10:00:00Z", sub, [("pro_month_usd", 1), ("seats_month_usd", 2)],
                 "always_invoice")  # fmt: skip
    euro = Scenario("2024-02-14T08:00:00Z", country="FR", currency="eur", name="amount-off in eur")
    sub = euro.subscribe(euro.created, [("pro_month_eur", 1), ("seats_month_eur", 2)],
                         coupon="amount10")  # fmt: skip
    euro.change("2024-04-03T12:00:00Z", sub, [("pro_month_eur", 1), ("seats_month_eur", 5)])
    free = Scenario("2024-02-20T10:00:00Z", name="100% off")
    sub = free.subscribe(free.created, [("starter_month_usd", 1)], coupon="partner100")
    free.change("2024-03-25T10:00:00Z", sub, [("pro_month_usd", 1)])
    once = Scenario("2024-02-22T10:00:00Z", country="GB", currency="gbp", name="one invoice")
    sub = once.subscribe(once.created, [("pro_month_gbp", 1)])
    once.discount_invoice("2024-03-01T00:00:00Z", sub, "welcome_month")
    once.change("2024-06-10T00:00:00Z", sub, [("pro_month_gbp", 1), ("seats_month_gbp", 2)])
    return stacked, mixed, euro, free, once


def mrr_by_name(db, name: str) -> dict[str, object]:
    rows = query(db, "SELECT strftime(m.month, '%Y-%m'), m.mrr "
                     "FROM report.customer_mrr_monthly m JOIN stripe.customers c "
                     "ON c.account_id = m.account_id AND c.id = m.customer_id "
                     "WHERE c.name = ?", [name])  # fmt: skip
    return dict(rows)


def test_discounts_land_with_their_coupons_and_report_exactly_before_and_after_advance(
    tmp_path, sandbox_factory
):
    options = SandboxOptions(customers=0, start="2024-01", now="2024-06-01T00:00:00Z",
                             archetypes=False, scenarios=discount_scenarios())  # fmt: skip
    sandbox = sandbox_factory(world=generate(options))
    config = write_config(tmp_path)
    db = tmp_path / "nrr.duckdb"
    assert cli(config, ["backfill", "--since", SINCE], sandbox).exit_code == 0

    landed = query(db, "SELECT coupon_id, percent_off, amount_off, duration, promotion_code_id, "
                       "subscription_id IS NULL, discount_invoice_id IS NOT NULL "
                       "FROM stripe.invoice_discounts")  # fmt: skip
    coupons = {row[0] for row in landed}
    assert {"SANDBOX20", "LOYALTY5", "SPRING125", "TENOFF", "PARTNER100", "WELCOME1M"} <= coupons
    assert any(row[4] for row in landed if row[0] == "LOYALTY5")  # through a promotion code
    assert all(row[5] and row[6] for row in landed if row[0] == "WELCOME1M")  # invoice-level
    stacked = (
        "SELECT count(*) FROM stripe.invoice_lines WHERE raw->'discount_amounts'->>1 IS NOT NULL"
    )
    assert query(db, stacked)[0][0] > 0
    # (299 + 3 x 15) x 0.8 x 0.95: exact, no cent lost to the rounding of the prorations
    assert mrr_by_name(db, "stacked percent-off")["2024-03"] == Decimal("261.44")
    assert set(mrr_by_name(db, "100% off").values()) <= {Decimal("0.00")}
    assert_report_equals_truth(db, sandbox.world)

    sandbox.advance(15 * DAY)
    assert cli(config, ["sync"], sandbox).exit_code == 0
    assert_report_equals_truth(db, sandbox.world)
