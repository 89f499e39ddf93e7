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


def backfilled(tmp_path, sandbox_factory, scenarios: tuple[Scenario, ...]):
    """The scripted account of ``scenarios`` (January to June 2024) served and backfilled:
    (sandbox, config, database)."""
    options = SandboxOptions(customers=0, start="2024-01", now="2024-06-01T00:00:00Z",
                             archetypes=False, scenarios=scenarios)  # fmt: skip
    sandbox = sandbox_factory(world=generate(options))
    config = write_config(tmp_path)
    assert cli(config, ["backfill", "--since", SINCE], sandbox).exit_code == 0
    return sandbox, config, tmp_path / "nrr.duckdb"


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
    sandbox, config, db = backfilled(tmp_path, sandbox_factory, multi_currency_scenarios())

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
    sandbox, config, db = backfilled(tmp_path, sandbox_factory, discount_scenarios())

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
    # A classic subscription's prorations show their coupons included in the amount
    # (each discount_amounts entry 0): valued from the coupons, not taken at list price.
    shown = query(db, "SELECT l.amount, l.raw->'discount_amounts' FROM stripe.invoice_lines l "
                      "JOIN stripe.invoices i ON i.id = l.invoice_id "
                      "JOIN stripe.customers c ON c.id = i.customer_id "
                      "WHERE c.name = 'stacked percent-off' AND l.proration "
                      "ORDER BY l.amount")  # fmt: skip
    assert [amount for amount, _ in shown] == [-4571, 13805]  # −6015 + 1444, 18165 − 4360
    assert all([entry["amount"] for entry in json.loads(entries)] == [0, 0] for _, entries in shown)
    # (299 + 3 x 15) x 0.8 x 0.95: exact, no cent lost to the rounding of the prorations
    assert mrr_by_name(db, "stacked percent-off")["2024-03"] == Decimal("261.44")
    assert set(mrr_by_name(db, "100% off").values()) <= {Decimal("0.00")}
    assert_report_equals_truth(db, sandbox.world)

    sandbox.advance(15 * DAY)
    assert cli(config, ["sync"], sandbox).exit_code == 0
    assert_report_equals_truth(db, sandbox.world)


def free_and_trial_scenarios() -> tuple[Scenario, ...]:
    free = Scenario("2024-01-10T00:00:00Z", name="Free for good")
    free.subscribe(free.created, [("free_month_usd", 1)])
    upgraded = Scenario("2024-01-10T00:00:00Z", name="Free then Pro")
    sub = upgraded.subscribe(upgraded.created, [("free_month_usd", 1)])
    upgraded.change("2024-03-25T00:00:00Z", sub, [("pro_month_usd", 1)])
    eur = Scenario("2024-02-05T00:00:00Z", country="DE", currency="eur", name="Free then paid, eur")
    sub = eur.subscribe(eur.created, [("free_month_usd", 1)])
    eur.change("2024-04-12T00:00:00Z", sub, [("pro_month_usd", 1), ("seats_month_usd", 2)],
               "always_invoice")  # fmt: skip
    trial = Scenario("2024-01-20T00:00:00Z", name="Trial over a month end")
    trial.subscribe(trial.created, [("pro_month_usd", 1)], trial_days=30)
    unpaid = Scenario("2024-02-15T00:00:00Z", name="Trial ends unpaid")
    sub = unpaid.subscribe(unpaid.created, [("starter_month_usd", 1)], trial_days=30)
    unpaid.fail_payment("2024-03-14T00:00:00Z", sub, "unpaid")
    voided = Scenario("2024-04-01T00:00:00Z", name="Trial canceled unpaid")
    sub = voided.subscribe(voided.created, [("pro_month_usd", 1)], trial_days=14)
    voided.fail_payment("2024-04-14T00:00:00Z", sub, "cancel_void")
    return free, upgraded, eur, trial, unpaid, voided


def movements_by_name(db, name: str) -> dict[str, tuple]:
    rows = query(db, "SELECT strftime(m.month, '%Y-%m'), m.movement, m.amount "
                     "FROM report.mrr_movements m JOIN stripe.customers c "
                     "ON c.account_id = m.account_id AND c.id = m.customer_id "
                     "WHERE c.name = ?", [name])  # fmt: skip
    return {month: (movement, amount) for month, movement, amount in rows}


def test_free_plans_and_trials_are_never_paying_customers_before_and_after_advance(
    tmp_path, sandbox_factory
):
    sandbox, config, db = backfilled(tmp_path, sandbox_factory, free_and_trial_scenarios())

    free_price = "SELECT unit_amount FROM stripe.prices WHERE raw->>'lookup_key' = 'free_month_usd'"
    assert query(db, free_price) == [(0,)]
    for name in ("Free for good", "Trial ends unpaid", "Trial canceled unpaid"):
        assert mrr_by_name(db, name) == {} and movements_by_name(db, name) == {}, name
    # a new customer only in the month they first pay, at the full price
    paying = ("2024-03", "2024-04", "2024-05", "2024-06")
    assert mrr_by_name(db, "Free then Pro") == dict.fromkeys(paying, Decimal("99.00"))
    assert movements_by_name(db, "Free then Pro") == {"2024-03": ("new", Decimal("99.00"))}
    # (€91 + 2 x €14) incl. 19 % VAT = €100.00 net → $110.00, from the upgrade invoiced at once
    assert movements_by_name(db, "Free then paid, eur") == {"2024-04": ("new", Decimal("110.00"))}
    assert min(mrr_by_name(db, "Trial over a month end")) == "2024-02"  # 0 at the January end
    assert movements_by_name(db, "Trial over a month end") == {"2024-02": ("new", Decimal("99.00"))}
    customers = dict(query(db, "SELECT strftime(month, '%Y-%m'), customers_end "
                               "FROM report.mrr_summary"))  # fmt: skip
    assert (customers["2024-01"], customers["2024-02"], customers["2024-05"]) == (0, 1, 3)
    assert_report_equals_truth(db, sandbox.world)

    sandbox.advance(20 * DAY)
    assert cli(config, ["sync"], sandbox).exit_code == 0
    assert_report_equals_truth(db, sandbox.world)
    for option in ({"include_open_invoices": False}, {"churn_recognition": "canceled_at"},
                   {"subtract_discounts": False}, {"timezone": "America/New_York"}):  # fmt: skip
        assert_report_equals_truth_under(tmp_path, sandbox, option)


def assert_report_equals_truth_under(tmp_path, sandbox, option: dict) -> None:
    """Rebuild the synced database's report under a reporting option; compare to the truth."""
    from nrr_sync.sandbox.truth import TruthOptions

    config = write_config(tmp_path, reporting=option)
    assert cli(config, ["build"], sandbox).exit_code == 0
    fx = (("eur", 1.1), ("gbp", 1.3), ("jpy", 0.0067))
    truth = truth_by_customer(sandbox.world, TruthOptions(fx=fx, **option))
    expected = expected_monthly(truth, since=SINCE)
    got = reported(tmp_path / "nrr.duckdb")
    assert sorted(got - expected)[:10] == sorted(expected - got)[:10] == [], option


def flexible_scenarios() -> tuple[Scenario, ...]:
    once = Scenario("2024-01-10T00:00:00Z", name="Flexible downgrade after a once coupon")
    sub = once.subscribe(once.created, [("business_month_usd", 1)], coupon="once25",
                         billing_mode="flexible")  # fmt: skip
    once.change("2024-01-22T00:00:00Z", sub, [("pro_month_usd", 1)])
    classic = Scenario("2024-01-10T00:00:00Z", name="Classic downgrade after a once coupon")
    sub = classic.subscribe(classic.created, [("business_month_usd", 1)], coupon="once25")
    classic.change("2024-01-22T00:00:00Z", sub, [("pro_month_usd", 1)])
    seats = Scenario("2024-02-03T09:00:00Z", name="Flexible seats", segment="mid")
    sub = seats.subscribe(seats.created, [("pro_month_usd", 1), ("seats_month_usd", 4)],
                          coupon="amount10", billing_mode="flexible")  # fmt: skip
    seats.change("2024-03-08T10:00:00Z", sub, [("pro_month_usd", 1), ("seats_month_usd", 8)],
                 "always_invoice")  # fmt: skip
    seats.change("2024-03-20T10:00:00Z", sub, [("pro_month_usd", 1), ("seats_month_usd", 6)],
                 "always_invoice")  # fmt: skip
    seats.cancel("2024-06-12T10:00:00Z", sub, "now_prorate")
    included = Scenario("2024-02-05T09:00:00Z", name="Flexible, discounts included")
    sub = included.subscribe(included.created, [("pro_month_usd", 1), ("seats_month_usd", 3)],
                             coupon=("forever20", "promo:loyalty5"), billing_mode="flexible",
                             proration_discounts="included")  # fmt: skip
    included.change("2024-03-17T13:00:00Z", sub, [("business_month_usd", 1),
                                                  ("seats_month_usd", 3)])  # fmt: skip
    return once, classic, seats, included


def test_flexible_credits_take_back_what_was_counted_before_and_after_advance(
    tmp_path, sandbox_factory
):
    sandbox, config, db = backfilled(tmp_path, sandbox_factory, flexible_scenarios())

    modes = dict(query(db, "SELECT raw->'billing_mode'->>'type', count(*) "
                           "FROM stripe.subscriptions GROUP BY ALL"))  # fmt: skip
    assert modes == {"flexible": 3, "classic": 1}
    shown = dict(query(db, "SELECT raw->'billing_mode'->'flexible'->>'proration_discounts', "
                           "count(*) FROM stripe.subscriptions GROUP BY ALL"))  # fmt: skip
    assert shown == {"itemized": 2, "included": 1, None: 1}
    credits = query(db, "SELECT l.amount, l.discount_amount, m.valuation "
                        "FROM stripe.invoice_lines l JOIN report.mrr_lines m ON m.line_id = l.id "
                        "WHERE (l.raw->'parent'->l.parent_type->'proration_details'"
                        "->'credited_items') <> 'null'")  # fmt: skip
    # the downgrade's, the two seat changes' (Pro unchanged) and the included upgrade's
    assert len(credits) == 4
    assert {valuation for *_, valuation in credits} == {"credited_line"}
    # Business $299 with 25 % off its first invoice, down to Pro ($99) on Jan 22 for the rest
    # of the period: the credit takes back the discounted charge (224.25), not the list price
    assert mrr_by_name(db, "Flexible downgrade after a once coupon")["2024-01"] == Decimal("99.00")
    assert mrr_by_name(db, "Classic downgrade after a once coupon")["2024-01"] == Decimal("24.25")
    # its upgrade's lines show the coupons included (entries 0); valued from the coupons:
    # (299 + 3 x 15) x 0.8 x 0.95
    entries = query(db, "SELECT l.raw->'discount_amounts' FROM stripe.invoice_lines l "
                        "JOIN stripe.invoices i ON i.id = l.invoice_id "
                        "JOIN stripe.customers c ON c.id = i.customer_id "
                        "WHERE c.name = ? AND l.proration",
                    ["Flexible, discounts included"])  # fmt: skip
    assert entries and all(
        {entry["amount"] for entry in json.loads(text)} == {0} for (text,) in entries
    )
    assert mrr_by_name(db, "Flexible, discounts included")["2024-03"] == Decimal("261.44")
    assert_report_equals_truth(db, sandbox.world)

    sandbox.advance(20 * DAY)  # the immediate cancellation with its credit (to the balance)
    assert cli(config, ["sync"], sandbox).exit_code == 0
    assert_report_equals_truth(db, sandbox.world)
    for option in ({"subtract_discounts": False}, {"churn_recognition": "canceled_at"},
                   {"include_open_invoices": False}):  # fmt: skip
        assert_report_equals_truth_under(tmp_path, sandbox, option)


def mixed_interval_scenarios() -> tuple[Scenario, ...]:
    """4 seats × $15 a month beside Pro at $990 a year on one flexible subscription: seats up
    to 7 (prorated at the next monthly renewal), Pro upgraded to Business yearly ($2,990,
    invoiced at once, over the yearly item's own period), then set to cancel at period end."""
    mixed = Scenario("2024-01-10T00:00:00Z", name="Monthly seats, yearly plan", segment="mid")
    sub = mixed.subscribe(mixed.created, [("seats_month_usd", 4), ("pro_year_usd", 1)],
                          billing_mode="flexible")  # fmt: skip
    mixed.change("2024-03-05T00:00:00Z", sub, [("seats_month_usd", 7), ("pro_year_usd", 1)])
    mixed.change("2024-04-18T00:00:00Z", sub, [("seats_month_usd", 7), ("business_year_usd", 1)],
                 "always_invoice")  # fmt: skip
    mixed.cancel("2024-06-20T00:00:00Z", sub, "period_end")
    return (mixed,)


def test_mixed_intervals_value_each_line_by_its_own_price_before_and_after_advance(
    tmp_path, sandbox_factory
):
    sandbox, config, db = backfilled(tmp_path, sandbox_factory, mixed_interval_scenarios())

    periods = query(db, "SELECT p.recurring_interval, strftime(i.current_period_end, '%Y-%m-%d') "
                        "FROM stripe.subscription_items i JOIN stripe.prices p "
                        "ON p.id = i.price_id ORDER BY 1")  # fmt: skip
    assert periods == [("month", "2024-06-10"), ("year", "2025-01-10")]
    billed = query(db, "SELECT i.billing_reason, list(DISTINCT p.recurring_interval ORDER BY 1) "
                       "FROM stripe.invoices i JOIN stripe.invoice_lines l ON l.invoice_id = i.id "
                       "JOIN stripe.prices p ON p.id = l.price_id GROUP BY ALL")  # fmt: skip
    # the first invoice bills both items, every renewal only the monthly one; the upgrade
    # of the yearly item is invoiced at once over the yearly period
    assert dict(billed) == {"subscription_create": ["month", "year"],
                            "subscription_cycle": ["month"],
                            "subscription_update": ["year"]}  # fmt: skip
    # 4 × 15 + 990 / 12; 7 seats from March 5; Business from April 18: 105 + 2990 / 12
    assert mrr_by_name(db, "Monthly seats, yearly plan") == {
        "2024-01": Decimal("142.50"), "2024-02": Decimal("142.50"),
        "2024-03": Decimal("187.50"), "2024-04": Decimal("354.17"),
        "2024-05": Decimal("354.17"), "2024-06": Decimal("354.17"),
    }  # fmt: skip
    assert_report_equals_truth(db, sandbox.world)

    # cancel_at_period_end ends at the earliest item period end (July 10), and the yearly
    # item is credited for its unused rest then
    sandbox.advance(45 * DAY)
    assert cli(config, ["sync"], sandbox).exit_code == 0
    assert mrr_by_name(db, "Monthly seats, yearly plan")["2024-07"] == Decimal("0.00")
    assert movements_by_name(db, "Monthly seats, yearly plan")["2024-07"] == (
        "churn", Decimal("-354.17"))  # fmt: skip
    assert_report_equals_truth(db, sandbox.world)
    for option in ({"churn_recognition": "canceled_at"}, {"include_open_invoices": False}):
        assert_report_equals_truth_under(tmp_path, sandbox, option)
