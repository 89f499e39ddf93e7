"""Changes that reach nrr-sync only through events land exactly as a fresh backfill lands
them: a price gaining a currency option, a coupon attached to a running subscription, a
credit note issued, a subscription schedule's phase starting. Each is scripted to happen
inside the window ``advance`` moves over; after ``sync`` the report equals the sandbox's
truth to the cent and every ``stripe.*`` table equals, row for row, what a backfill into a
second database lands at the same instant (docs/operations.md, docs/sandbox.md).

Compared as ``sync_helpers.snapshot`` reads them (every column but ``synced_at``, the time
of the run that landed the row), and through ``without_deleted``: a customer's
``next_invoice_sequence`` in ``raw`` moves when one of its invoices is finalized, and
Stripe sends no customer event for that, so no sync can know it (no report uses it).
"""

from __future__ import annotations

import json

import pytest
from sync_helpers import cli, query, snapshot, write_config
from test_metrics_truth import expected_monthly, truth_by_customer
from test_sync_incremental import without_deleted
from test_sync_realworld import SINCE, reported

from nrr_sync.sandbox.catalog_changes import CurrencyOptionAdded
from nrr_sync.sandbox.generator import SandboxOptions, Scenario, generate

DAY = 86400
NOW = "2024-06-01T00:00:00Z"  # the backfill's instant; advance then moves 20 days on
ADVANCE_DAYS = 20
# Every scripted customer subscribes on the 10th: renewals on the 10th of each month.
SIGNUP = "2024-01-10T09:00:00Z"


def currency_option_world() -> SandboxOptions:
    """Business (per unit) and Platform (tiers) gain yen on June 5; a Japanese customer
    signs up for each after that and is billed in yen, with a proration valued from the
    new option. One who signed up before stays billed in dollars."""
    before = Scenario(SIGNUP, country="JP", currency="jpy", name="Yen before the option")
    before.subscribe(before.created, [("business_month_usd", 1)])
    unit = Scenario("2024-06-07T10:00:00Z", country="JP", currency="jpy", name="Yen Business")
    sub = unit.subscribe(unit.created, [("business_month_usd", 1)])
    unit.change("2024-06-14T10:00:00Z", sub, [("business_month_usd", 3)], "always_invoice")
    tiered = Scenario("2024-06-08T10:00:00Z", country="JP", currency="jpy", name="Yen Platform")
    sub = tiered.subscribe(tiered.created, [("platform_month_usd", 8)])
    tiered.change("2024-06-15T10:00:00Z", sub, [("platform_month_usd", 30)])
    changes = (
        CurrencyOptionAdded("2024-06-05T00:00:00Z", "business_month_usd", "jpy",
                            unit_amount=44900),
        CurrencyOptionAdded("2024-06-05T00:00:00Z", "platform_month_usd", "jpy",
                            tiers=((10, 3000, 0), (50, 2200, 0), (None, 1500, 0))),
    )  # fmt: skip
    return options(before, unit, tiered, catalog_changes=changes)


def coupon_world() -> SandboxOptions:
    """A 50 % coupon for 3 months attached between renewals; a promotion code stacked on a
    forever coupon while an upgrade's prorations wait for the renewal."""
    plain = Scenario(SIGNUP, name="Coupon attached")
    sub = plain.subscribe(plain.created, [("pro_month_usd", 1), ("seats_month_usd", 3)])
    plain.attach_coupon("2024-06-03T12:00:00Z", sub, "repeating50")
    stacked = Scenario(SIGNUP, name="Promotion code stacked")
    sub = stacked.subscribe(stacked.created, [("pro_month_usd", 1)], coupon="forever20")
    stacked.change("2024-06-02T08:00:00Z", sub, [("business_month_usd", 1)])
    stacked.attach_coupon("2024-06-04T08:00:00Z", sub, "promo:loyalty5")
    return options(plain, stacked)


def credit_note_world() -> SandboxOptions:
    """A paid invoice refunded in full, one credited in part to the balance, and a
    renewal whose payment fails credited while still open."""
    refunded = Scenario(SIGNUP, name="Refunded")
    sub = refunded.subscribe(refunded.created, [("pro_month_usd", 1), ("seats_month_usd", 2)])
    refunded.credit_note("2024-06-04T10:00:00Z", sub, None, "refund", "product_unsatisfactory")
    balance = Scenario(SIGNUP, name="Credited to the balance")
    sub = balance.subscribe(balance.created, [("business_month_usd", 1)])
    balance.credit_note("2024-06-05T10:00:00Z", sub, 5000, "customer_balance")
    open_invoice = Scenario(SIGNUP, name="Credited while open")
    sub = open_invoice.subscribe(open_invoice.created, [("pro_month_usd", 1)])
    open_invoice.fail_payment("2024-06-10T00:00:00Z", sub, "recover", days=6)
    open_invoice.credit_note("2024-06-12T10:00:00Z", sub, 2000, reason="order_change")
    # an invoice from before the backfill's window (since less the invoice lookback months):
    # its credit note is new, so both land it; the invoice itself neither
    old = Scenario("2022-08-01T09:00:00Z", name="Credited long after")
    sub = old.subscribe(old.created, [("pro_month_usd", 1)])
    old.cancel("2022-09-15T00:00:00Z", sub, "period_end")
    old.credit_note("2024-06-06T10:00:00Z", None, None, "refund", "duplicate")
    return options(refunded, balance, open_invoice, old, start="2022-08")


def schedule_phase_world() -> SandboxOptions:
    """Schedules made before the backfill whose next phase starts inside the window: at the
    June 10 renewal (billed by it), and inside a period with prorations."""
    ramp = Scenario(SIGNUP, segment="mid", name="Ramp at the renewal")
    sub = ramp.subscribe(ramp.created, [("pro_month_usd", 1), ("seats_month_usd", 4)])
    ramp.schedule("2024-05-20T00:00:00Z", sub,
                  [(1, [("pro_month_usd", 1), ("seats_month_usd", 9)], "none")], end=3)  # fmt: skip
    inside = Scenario(SIGNUP, name="Phase inside a period")
    sub = inside.subscribe(inside.created, [("starter_month_usd", 1)])
    inside.schedule("2024-05-22T00:00:00Z", sub,
                    [("2024-06-05T12:00:00Z", [("pro_month_usd", 1)], "create_prorations")],
                    end=2, end_behavior="cancel")  # fmt: skip
    return options(ramp, inside)


def options(*scenarios: Scenario, start: str = "2024-01", **more) -> SandboxOptions:
    return SandboxOptions(customers=0, start=start, now=NOW, archetypes=False,
                          scenarios=scenarios, **more)  # fmt: skip


def currency_option_landed(db) -> None:
    prices = query(db, "SELECT raw->>'lookup_key', currency_options FROM stripe.prices "
                       "WHERE raw->>'lookup_key' IN ('business_month_usd', "
                       "'platform_month_usd')")  # fmt: skip
    options_by_key = {key: json.loads(value) for key, value in prices}
    assert options_by_key["business_month_usd"]["jpy"]["unit_amount"] == 44900
    assert options_by_key["platform_month_usd"]["jpy"]["tiers"][1]["unit_amount"] == 2200
    billed = query(db, "SELECT DISTINCT l.currency, l.proration, m.valuation "
                       "FROM stripe.invoice_lines l JOIN report.mrr_lines m ON m.line_id = l.id "
                       "WHERE l.currency = 'jpy'")  # fmt: skip
    assert ("jpy", True, "full_price") in billed  # the proration, valued from the new option
    dollars = query(db, "SELECT DISTINCT i.currency FROM stripe.invoices i JOIN "
                        "stripe.customers c ON c.id = i.customer_id "
                        "WHERE c.name = 'Yen before the option'")  # fmt: skip
    assert dollars == [("usd",)]


def coupon_landed(db) -> None:
    rows = query(db, "SELECT d.coupon_id, d.promotion_code_id IS NOT NULL, s.raw->'discounts' "
                     "FROM stripe.invoice_discounts d JOIN stripe.subscriptions s "
                     "ON s.id = d.subscription_id JOIN stripe.invoices i ON i.id = d.invoice_id "
                     "WHERE i.billing_reason = 'subscription_cycle' "
                     "AND i.created >= '2024-06-10'")  # fmt: skip
    assert {(coupon, promo) for coupon, promo, _ in rows} == {
        ("LAUNCH50", False), ("SANDBOX20", False), ("LOYALTY5", True)}  # fmt: skip
    assert all(len(json.loads(ids)) >= 1 for *_, ids in rows)


def credit_notes_landed(db) -> None:
    notes = query(db, "SELECT type, amount, refund_amount, customer_balance_transaction_id "
                      "IS NOT NULL FROM stripe.credit_notes ORDER BY created")  # fmt: skip
    assert [(kind, refund, balance) for kind, _, refund, balance in notes] == [
        ("post_payment", 12900, False), ("post_payment", 0, True),
        ("post_payment", 9900, False), ("pre_payment", 0, False)]  # fmt: skip
    assert [amount for _, amount, *_ in notes][1:] == [5000, 9900, 2000]
    assert query(db, "SELECT sum(pre_payment_credit_notes_amount), "
                     "sum(post_payment_credit_notes_amount) FROM stripe.invoices") == [
        (2000, 17900)]  # fmt: skip


def schedule_phases_landed(db) -> None:
    items = query(db, "SELECT c.name, p.raw->>'lookup_key', i.quantity "
                      "FROM stripe.subscription_items i JOIN stripe.prices p ON p.id = i.price_id "
                      "JOIN stripe.subscriptions s ON s.id = i.subscription_id "
                      "JOIN stripe.customers c ON c.id = s.customer_id")  # fmt: skip
    assert set(items) == {("Ramp at the renewal", "pro_month_usd", 1),
                          ("Ramp at the renewal", "seats_month_usd", 9),
                          ("Phase inside a period", "pro_month_usd", 1)}  # fmt: skip
    prorations = query(db, "SELECT count(*) FROM stripe.invoice_lines WHERE proration "
                           "AND period_start >= '2024-06-05'")  # fmt: skip
    assert prorations == [(2,)]  # Starter's unused time, Pro's remaining time


def assert_report_equals_truth(db, world) -> None:
    """The truth of every customer the data can know: one who paid only before the
    backfill's window (``since`` less ``sync.invoice_lookback_months``, 12) has no
    invoice in it, and no row in the report."""
    truth = {
        customer: months
        for customer, months in truth_by_customer(world).items()
        if any(mrr > 0 and month >= WINDOW for month, mrr in months.items())
    }
    expected = expected_monthly(truth, since=SINCE)
    got = reported(db)
    assert expected
    assert sorted(got - expected)[:10] == sorted(expected - got)[:10] == []


WINDOW = "2023-01-01"


CASES = {
    "currency option added": (currency_option_world, currency_option_landed),
    "coupon attached": (coupon_world, coupon_landed),
    "credit note issued": (credit_note_world, credit_notes_landed),
    "schedule phase started": (schedule_phase_world, schedule_phases_landed),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_change_known_only_from_events_lands_as_a_fresh_backfill_would(
    tmp_path, sandbox_factory, case
):
    world_options, landed = CASES[case]
    sandbox = sandbox_factory(world=generate(world_options()))
    config = write_config(tmp_path)
    db = tmp_path / "nrr.duckdb"
    assert cli(config, ["backfill", "--since", SINCE], sandbox).exit_code == 0
    with pytest.raises((AssertionError, KeyError)):
        landed(db)  # it has not happened yet at the backfill
    before = snapshot(db)

    sandbox.advance(ADVANCE_DAYS * DAY)
    result = cli(config, ["sync"], sandbox)

    assert result.exit_code == 0, result.output
    landed(db)
    assert_report_equals_truth(db, sandbox.world)
    synced = snapshot(db)
    assert synced != before
    (tmp_path / "fresh").mkdir()
    fresh = write_config(tmp_path / "fresh")
    assert cli(fresh, ["backfill", "--since", SINCE], sandbox).exit_code == 0
    fresh_rows = without_deleted(snapshot(tmp_path / "fresh" / "nrr.duckdb"))
    for table, rows in without_deleted(synced).items():
        assert rows == fresh_rows[table], table
