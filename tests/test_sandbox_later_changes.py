"""Changes to what is already running, as Stripe emits them: a coupon attached to a live
subscription (attached_coupons.py) and a currency option added to a price
(catalog_changes.py); random worlds bring retention coupons only after the instant they
were generated at (docs/sandbox.md)."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest

from nrr_sync.sandbox.catalog_changes import CurrencyOptionAdded
from nrr_sync.sandbox.generator import SandboxOptions, Scenario, generate
from nrr_sync.sandbox.records import parse_time

DAY = 86400


def events_of(world, since: int) -> list[dict]:
    account = world.account_ids[0]
    return [e for e in world.objects(account, "events") if e["created"] >= since]


def mrr_of(world, name: str) -> dict[str, Decimal]:
    account = world.account_ids[0]
    (customer,) = [c["id"] for c in world.objects(account, "customers") if c["name"] == name]
    return {month[:7]: mrr for _, cid, month, mrr in world.truth() if cid == customer}


def test_a_coupon_attached_emits_the_discount_and_the_update_then_discounts_the_next_invoice(
    stripe_fixtures,
):
    s = Scenario("2024-01-10", name="Attached")
    sub = s.subscribe(s.created, [("pro_month_usd", 1), ("seats_month_usd", 3)])
    s.attach_coupon("2024-03-03", sub, "repeating50")
    world = generate(SandboxOptions(customers=0, start="2024-01", now="2024-03-20",
                                    archetypes=False, scenarios=(s,)))  # fmt: skip
    events = events_of(world, parse_time("2024-03-03"))
    created = [e for e in events if e["type"] == "customer.discount.created"]
    assert len(created) == 1
    discount = created[0]["data"]["object"]
    assert set(discount) == set(stripe_fixtures["discount"])
    assert discount["source"] == {"coupon": "LAUNCH50", "type": "coupon"}
    assert discount["end"] == parse_time("2024-06-03")  # 3 months from the attachment
    (update,) = [e for e in events if e["type"] == "customer.subscription.updated"
                 and e["created"] == created[0]["created"]]  # fmt: skip
    assert update["data"]["object"]["discounts"] == [discount["id"]]
    assert update["data"]["previous_attributes"]["discounts"] == []
    # (99 + 3 × 15) = 144 until the March 10 renewal, half for three renewals, then 144
    world.advance(parse_time("2024-07-01") - world.now)
    assert mrr_of(world, "Attached") == {
        "2024-01": Decimal("144.00"), "2024-02": Decimal("144.00"),
        "2024-03": Decimal("72.00"), "2024-04": Decimal("72.00"),
        "2024-05": Decimal("72.00"), "2024-06": Decimal("144.00"),
        "2024-07": Decimal("144.00"),
    }  # fmt: skip


def test_a_coupon_cannot_be_attached_to_an_ended_subscription():
    s = Scenario("2024-01-10", name="Gone")
    sub = s.subscribe(s.created, [("pro_month_usd", 1)])
    s.cancel("2024-02-01", sub, "now")
    s.attach_coupon("2024-03-03", sub, "forever20")
    with pytest.raises(ValueError, match="takes no coupon"):
        generate(SandboxOptions(customers=0, start="2024-01", now="2024-04-01",
                                archetypes=False, scenarios=(s,)))  # fmt: skip


def currency_world(now: str) -> SandboxOptions:
    before = Scenario("2024-02-01", country="JP", currency="jpy", name="Before")
    before.subscribe(before.created, [("business_month_usd", 1)])
    after = Scenario("2024-03-01", country="JP", currency="jpy", name="After")
    after.subscribe(after.created, [("business_month_usd", 2)])
    change = CurrencyOptionAdded("2024-02-15", "business_month_usd", "jpy", unit_amount=44900)
    return SandboxOptions(customers=0, start="2024-01", now=now, archetypes=False,
                          scenarios=(before, after), catalog_changes=(change,))  # fmt: skip


def test_a_currency_option_added_emits_price_updated_and_bills_later_subscriptions_in_it():
    world = generate(currency_world("2024-03-10"))
    account = world.account_ids[0]
    (event,) = [e for e in events_of(world, 0) if e["type"] == "price.updated"
                and e["data"]["object"]["lookup_key"] == "business_month_usd"]  # fmt: skip
    assert event["created"] == parse_time("2024-02-15")
    assert event["data"]["object"]["currency_options"]["jpy"]["unit_amount"] == 44900
    assert set(event["data"]["previous_attributes"]) == {"currency_options"}
    assert "jpy" not in event["data"]["previous_attributes"]["currency_options"]
    currencies = {s["customer"]: s["currency"] for s in world.objects(account, "subscriptions")}
    names = {c["id"]: c["name"] for c in world.objects(account, "customers")}
    assert {names[c]: cur for c, cur in currencies.items()} == {"Before": "usd", "After": "jpy"}
    # 2 × ¥44,900 at 0.0067 = $601.66; the earlier customer stays at $299 (+ no US tax: JP)
    assert mrr_of(world, "After")["2024-03"] == Decimal("601.66")
    assert mrr_of(world, "Before")["2024-03"] == Decimal("299.00")


def test_a_currency_option_added_after_now_comes_with_advance():
    world = generate(currency_world("2024-02-10"))
    account = world.account_ids[0]
    price = next(p for p in world.objects(account, "prices")
                 if p["lookup_key"] == "business_month_usd")  # fmt: skip
    assert "jpy" not in price["currency_options"]
    changes = world.advance(25 * DAY)
    kinds = Counter(kind for _, kind, _, _ in changes)
    assert kinds["prices"] == 1
    (price,) = [obj for _, kind, obj, _ in changes if kind == "prices"]
    assert price["currency_options"]["jpy"]["unit_amount"] == 44900
    # the same history as a world generated at the later instant
    later = generate(currency_world("2024-03-06"))
    assert world.truth() == later.truth()


def test_embedded_prices_leave_out_what_stripe_includes_only_when_expanded():
    world = generate(currency_world("2024-03-10"))
    for sub in world.objects(world.account_ids[0], "subscriptions"):
        for item in sub["items"]["data"]:
            assert "currency_options" not in item["price"] and "tiers" not in item["price"]


def test_random_worlds_attach_retention_coupons_only_after_they_were_generated():
    world = generate(SandboxOptions(seed=11, customers=400))
    account = world.account_ids[0]
    now = world.now
    assert not [e for e in world.objects(account, "events")
                if e["type"] == "customer.discount.created"]  # fmt: skip
    changes = world.advance(40 * DAY)
    offers = [obj for _, kind, obj, _ in changes
              if kind == "events" and obj["type"] == "customer.discount.created"]  # fmt: skip
    assert offers and all(e["created"] > now for e in offers)
    subs = {s["id"]: s for s in world.objects(account, "subscriptions")}
    for event in offers:
        discount = event["data"]["object"]
        assert discount["id"] in subs[discount["subscription"]]["discounts"]
