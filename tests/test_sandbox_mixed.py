"""Mixed intervals on one flexible subscription, as Stripe bills them (nrr_sync/sandbox/mixed.py,
docs/sandbox.md): each item has its own current period in Stripe's shapes, renews on its
own cycle and prorates over its own period; the truth values each line by its own price
(docs/metrics.md, "Mixed intervals") and the report equals it to the cent."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import stripe
from test_metrics_truth import expected_monthly, land_world, reported_monthly, truth_by_customer
from test_sandbox_truth import by_customer_name

from nrr_sync import build
from nrr_sync.config import Config, ReportingSettings
from nrr_sync.sandbox import mixed
from nrr_sync.sandbox.generator import SandboxOptions, Scenario, generate

DAY = 86400


def ts(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


def world_of(*scenarios, now="2024-06-01T00:00:00Z"):
    options = SandboxOptions(customers=0, start="2024-01", now=now, archetypes=False,
                             scenarios=scenarios)  # fmt: skip
    return generate(options)


def objects(world, kind: str) -> list[dict]:
    return list(world.objects(world.account_ids[0], kind))


def lines_by_invoice(world) -> list[tuple[str, str, list[tuple]]]:
    """[(invoice created date, billing_reason, [(lookup_key, amount, start, end)])] by date."""
    prices = {p["id"]: p["lookup_key"] for p in objects(world, "prices")}
    out = []
    for inv in sorted(objects(world, "invoices"), key=lambda inv: inv["created"]):
        lines = [(prices[line["pricing"]["price_details"]["price"]], line["amount"],
                  line["period"]["start"], line["period"]["end"])
                 for line in inv["lines"]["data"]]  # fmt: skip
        day = datetime.fromtimestamp(inv["created"], UTC).strftime("%Y-%m-%d")
        out.append((day, inv["billing_reason"], lines))
    return out


def seats_and_yearly_plan() -> Scenario:
    s = Scenario("2024-01-10T00:00:00Z", name="mixed", segment="mid")
    s.subscribe(s.created, [("seats_month_usd", 4), ("pro_year_usd", 1)], billing_mode="flexible")
    return s


def test_each_item_carries_its_own_period_in_stripes_shape(stripe_fixtures):
    world = world_of(seats_and_yearly_plan(), now="2024-03-01T00:00:00Z")
    (obj,) = objects(world, "subscriptions")
    fixture_item = stripe_fixtures["subscription_item"]
    for item in obj["items"]["data"]:
        assert set(fixture_item) <= set(item)
    sub = stripe.Subscription.construct_from(obj, "sk_test_sandbox")
    assert sub.billing_mode.type == "flexible"
    seats, plan = sub["items"].data
    assert isinstance(seats, stripe.SubscriptionItem)
    # one anchor (Jan 10), two cycles: the monthly item in its second period, the yearly in
    # its first
    assert seats.current_period_start == ts("2024-02-10")
    assert seats.current_period_end == ts("2024-03-10")
    assert plan.current_period_start == ts("2024-01-10")
    assert plan.current_period_end == ts("2025-01-10")
    assert sub.billing_cycle_anchor == ts("2024-01-10")


def test_renewals_bill_only_the_items_whose_period_ends_then():
    # Stripe's example: $15 a month and a quarterly price from Jan 1: Feb 1 and Mar 1 bill
    # the monthly price, Apr 1 both
    s = Scenario("2024-01-01T00:00:00Z", name="quarterly and monthly")
    s.subscribe(s.created, [("pro_quarter_usd", 1), ("seats_month_usd", 1)],
                billing_mode="flexible")  # fmt: skip
    world = world_of(s, now="2024-05-15T00:00:00Z")
    billed = [(day, reason, sorted(key for key, *_ in lines))
              for day, reason, lines in lines_by_invoice(world)]  # fmt: skip
    assert billed == [
        ("2024-01-01", "subscription_create", ["pro_quarter_usd", "seats_month_usd"]),
        ("2024-02-01", "subscription_cycle", ["seats_month_usd"]),
        ("2024-03-01", "subscription_cycle", ["seats_month_usd"]),
        ("2024-04-01", "subscription_cycle", ["pro_quarter_usd", "seats_month_usd"]),
        ("2024-05-01", "subscription_cycle", ["seats_month_usd"]),
    ]
    quarter = [line for *_, lines in lines_by_invoice(world) for line in lines
               if line[0] == "pro_quarter_usd"]  # fmt: skip
    assert [(start, end) for *_, start, end in quarter] == [
        (ts("2024-01-01"), ts("2024-04-01")), (ts("2024-04-01"), ts("2024-07-01"))]  # fmt: skip


def test_a_change_of_one_item_prorates_over_that_items_own_period():
    s = seats_and_yearly_plan()
    s.change("2024-04-18T00:00:00Z", 0, [("seats_month_usd", 4), ("business_year_usd", 1)],
             "always_invoice")  # fmt: skip
    world = world_of(s)
    (update,) = [inv for inv in objects(world, "invoices")
                 if inv["billing_reason"] == "subscription_update"]  # fmt: skip
    credit, charge = update["lines"]["data"]
    year = (ts("2024-01-10"), ts("2025-01-10"))
    rest = (ts("2024-04-18"), year[1])
    assert (credit["period"]["start"], credit["period"]["end"]) == rest
    assert (charge["period"]["start"], charge["period"]["end"]) == rest
    # the yearly prices prorated by the yearly item's period (267 of 366 days), not the month's
    assert charge["amount"] == round(299000 * 267 / 366)
    assert credit["amount"] == -round(99000 * 267 / 366)
    # flexible: the credit names the yearly charge of the first invoice it takes back
    (first,) = [inv for inv in objects(world, "invoices")
                if inv["billing_reason"] == "subscription_create"]  # fmt: skip
    yearly_line = first["lines"]["data"][1]["id"]
    details = credit["parent"][credit["parent"]["type"]]["proration_details"]
    assert details["credited_items"] == {"invoice": first["id"],
                                         "invoice_line_items": [yearly_line]}  # fmt: skip
    assert by_customer_name(world)["mixed"]["2024-04"] == Decimal("309.17")  # 60 + 2990 / 12


def test_cancel_at_period_end_ends_at_the_earliest_item_period_end_crediting_the_rest():
    s = seats_and_yearly_plan()
    s.cancel("2024-03-20T00:00:00Z", 0, "period_end")
    world = world_of(s)
    (sub,) = objects(world, "subscriptions")
    assert (sub["status"], sub["cancel_at"], sub["ended_at"]) == (
        "canceled", ts("2024-04-10"), ts("2024-04-10"))  # fmt: skip
    day, reason, lines = lines_by_invoice(world)[-1]
    assert (day, reason) == ("2024-04-10", "subscription_update")
    assert lines == [("pro_year_usd", -round(99000 * 275 / 366), ts("2024-04-10"),
                      ts("2025-01-10"))]  # fmt: skip
    mrr = by_customer_name(world)["mixed"]
    assert (mrr["2024-03"], mrr["2024-04"]) == (Decimal("142.50"), Decimal("0.00"))


def test_only_flexible_subscriptions_mix_intervals_and_what_is_not_modeled_is_refused():
    for mode, trial in (("classic", 0), ("flexible", 14)):
        s = Scenario("2024-01-10T00:00:00Z")
        s.subscribe(s.created, [("seats_month_usd", 4), ("pro_year_usd", 1)], trial_days=trial,
                    billing_mode=mode)  # fmt: skip
        with pytest.raises(ValueError, match="flexible|trials"):
            world_of(s)
    s = seats_and_yearly_plan()
    s.schedule("2024-02-01T00:00:00Z", 0, [(2, [("seats_month_usd", 8), ("pro_year_usd", 1)],
                                            "none")], 4)  # fmt: skip
    with pytest.raises(ValueError, match="schedules"):
        world_of(s)
    s = seats_and_yearly_plan()
    s.change("2024-02-20T00:00:00Z", 0, [("seats_month_usd", 4), ("pro_month_usd", 1)])
    s.change("2024-03-20T00:00:00Z", 0, [("seats_month_usd", 6), ("pro_year_usd", 1)])
    (sub,) = objects(world_of(s), "subscriptions")
    # the interval switch of the plan is refused; the later seat change goes through
    assert [(i["price"]["lookup_key"], i["quantity"]) for i in sub["items"]["data"]] == [
        ("seats_month_usd", 6), ("pro_year_usd", 1)]  # fmt: skip


def test_worked_example_a_50_dollar_seat_and_a_1200_dollar_platform_make_150(tmp_path):
    # docs/metrics.md, "Mixed intervals on one subscription"
    s = Scenario("2024-01-15T00:00:00Z", name="seat and platform")
    s.subscribe(s.created, [("example_seat_month_usd", 1), ("example_annual_year_usd", 1)],
                billing_mode="flexible")  # fmt: skip
    s.change("2024-04-20T00:00:00Z", 0, [("example_seat_month_usd", 2),
                                         ("example_annual_year_usd", 1)])  # fmt: skip
    s.cancel("2024-07-02T00:00:00Z", 0, "period_end")
    world = world_of(s, now="2024-08-01T00:00:00Z")
    expected = {"2024-01": Decimal("150.00"), "2024-02": Decimal("150.00"),
                "2024-03": Decimal("150.00"), "2024-04": Decimal("200.00"),
                "2024-05": Decimal("200.00"), "2024-06": Decimal("200.00"),
                "2024-07": Decimal("0.00"), "2024-08": Decimal("0.00")}  # fmt: skip
    assert by_customer_name(world)["seat and platform"] == expected
    assert lines_by_invoice(world)[-1][2] == [
        ("example_annual_year_usd", -60328, ts("2024-07-15"), ts("2025-01-15"))]  # fmt: skip
    con = land_world(tmp_path / "nrr.duckdb", world)
    build.build(con, Config())
    reported = {month[:7]: mrr for _, _, month, mrr in reported_monthly(con)}
    assert reported == expected


def mixed_customers(world) -> set[str]:
    acct = world.accounts[world.account_ids[0]]
    return {c.id for c in acct.customers for sub in c.subs if mixed.active(sub)}


def test_a_share_of_random_flexible_sign_ups_mix_intervals_leaving_the_others_as_they_were(
    monkeypatch,
):
    options = SandboxOptions(seed=9, customers=150, start="2023-01", now="2025-03-18T09:30:00Z")
    world = generate(options)
    acct = world.accounts[world.account_ids[0]]
    subs = [sub for c in acct.customers for sub in c.subs if mixed.active(sub)]
    assert 0 < len(subs) < 0.05 * sum(len(c.subs) for c in acct.customers)
    for sub in subs:
        assert sub.billing_mode == "flexible" and not sub.scripted
        intervals = [mixed.interval(item) for item in sub.items]
        assert intervals[0] == ("year", 1) and set(intervals[1:]) == {("month", 1)}
    monkeypatch.setattr(mixed, "RANDOM_RATE", 0.0)
    without = generate(options)
    assert not mixed_customers(without)

    def truth_of(w) -> dict:
        rows = defaultdict(list)
        for _, customer, month, mrr in w.truth():
            rows[customer].append((month, mrr))
        return rows

    changed = {c for c, rows in truth_of(world).items() if truth_of(without).get(c) != rows}
    assert changed and changed <= mixed_customers(world)


@pytest.mark.parametrize("seed", [8, 9])
def test_report_equals_the_truth_for_random_mixed_subscriptions(tmp_path, seed):
    options = SandboxOptions(seed=seed, customers=150, start="2023-01",
                             now="2025-03-18T09:30:00Z")  # fmt: skip
    world = generate(options)
    assert mixed_customers(world)
    con = land_world(tmp_path / "nrr.duckdb", world)
    build.build(con, Config(reporting=ReportingSettings(fx_rates=dict(options.fx))))
    expected, reported = expected_monthly(truth_by_customer(world)), reported_monthly(con)
    assert {c for _, c, _, _ in expected} >= mixed_customers(world)
    assert sorted(reported - expected)[:10] == sorted(expected - reported)[:10] == []
