"""The sandbox's objects have Stripe's fields in Stripe's places (fixtures3.json)."""

import pytest

from nrr_sync.sandbox.generator import KINDS, SandboxOptions, generate

# Stripe's invoice example still carries the top-level `subscription` removed in the basil
# API line; the sandbox follows the pinned version (parent.subscription_details).
NOT_IN_PINNED_VERSION = {"invoice": {"subscription"}}

# The paths the sync and the SQL models read (landing.py).
RELIED_ON = {
    "customer": [("id",), ("created",), ("currency",), ("address", "country"), ("metadata",),
                 ("email",), ("name",), ("livemode",)],
    "product": [("id",), ("name",), ("active",), ("created",), ("metadata",)],
    "price": [("id",), ("product",), ("active",), ("currency",), ("type",), ("billing_scheme",),
              ("unit_amount",), ("unit_amount_decimal",), ("tiers_mode",),
              ("recurring", "interval"), ("recurring", "interval_count"),
              ("recurring", "usage_type"), ("transform_quantity",), ("tax_behavior",),
              ("created",), ("nickname",)],
    "subscription": [("id",), ("customer",), ("status",), ("currency",), ("created",),
                     ("start_date",), ("billing_cycle_anchor",), ("trial_start",),
                     ("trial_end",), ("cancel_at_period_end",), ("cancel_at",), ("canceled_at",),
                     ("ended_at",), ("cancellation_details", "reason"), ("collection_method",),
                     ("pause_collection",), ("items", "data"), ("items", "has_more"),
                     ("discounts",), ("metadata",)],
    "subscription_item": [("id",), ("subscription",), ("price", "id"), ("quantity",),
                          ("created",), ("current_period_start",), ("current_period_end",)],
    "invoice": [("id",), ("customer",), ("status",), ("billing_reason",), ("auto_advance",),
                ("collection_method",), ("currency",), ("created",), ("period_start",),
                ("period_end",), ("status_transitions", "finalized_at"),
                ("status_transitions", "paid_at"), ("status_transitions", "voided_at"),
                ("status_transitions", "marked_uncollectible_at"), ("subtotal",), ("total",),
                ("amount_due",), ("amount_paid",), ("lines", "data"), ("lines", "has_more"),
                ("parent", "subscription_details", "subscription"), ("parent", "type")],
    "line_item": [("id",), ("amount",), ("currency",), ("quantity",), ("period", "start"),
                  ("period", "end"), ("parent", "type"), ("discount_amounts",), ("taxes",),
                  ("pricing", "type"), ("description",), ("invoice",)],
    "event": [("id",), ("type",), ("created",), ("data", "object"), ("api_version",)],
    "credit_note": [("id",), ("invoice",), ("customer",), ("number",), ("status",), ("type",),
                    ("reason",), ("currency",), ("amount",), ("subtotal",), ("discount_amount",),
                    ("pre_payment_amount",), ("post_payment_amount",), ("refunds",),
                    ("out_of_band_amount",), ("customer_balance_transaction",), ("created",),
                    ("effective_at",), ("voided_at",), ("metadata",)],
    "credit_note_line_item": [("id",), ("amount",), ("type",), ("invoice_line_item",)],
    # not landed; served so that the sandbox is a faithful account (schedules.py, meters.py)
    "subscription_schedule": [("id",), ("status",), ("subscription",), ("end_behavior",),
                              ("phases",), ("current_phase",)],
    "billing.meter": [("id",), ("event_name",), ("status",)],
}  # fmt: skip


@pytest.fixture(scope="module")
def objects():
    world = generate(SandboxOptions(customers=80, seed=3))
    account = world.account_ids[0]
    return {kind: list(world.objects(account, kind)) for kind in KINDS}


def dig(obj, path):
    for key in path:
        assert isinstance(obj, dict), path
        assert key in obj, path
        obj = obj[key]
    return obj


def samples(objects, name):
    """Several of our objects of the fixture's kind, with the interesting variants."""
    if name == "customer":
        return objects["customers"][:5]
    if name == "product":
        return objects["products"]
    if name == "price":
        return objects["prices"]
    if name == "subscription":
        return objects["subscriptions"]
    if name == "subscription_item":
        return [i for s in objects["subscriptions"] for i in s["items"]["data"]
                if "quantity" in i]  # fmt: skip
    if name == "invoice":
        return objects["invoices"]
    if name == "line_item":
        return [line for inv in objects["invoices"] for line in inv["lines"]["data"]]
    if name == "credit_note":
        return objects["credit_notes"]
    if name == "credit_note_line_item":  # custom lines have no invoice_line_item, as Stripe's
        return [line for note in objects["credit_notes"] for line in note["lines"]["data"]
                if line["type"] == "invoice_line_item"]  # fmt: skip
    if name == "subscription_schedule":
        return objects["subscription_schedules"]
    if name == "billing.meter":
        return objects["billing_meters"]
    return objects["events"]


def test_schedule_phases_have_stripes_fields(objects, stripe_fixtures):
    phase = stripe_fixtures["subscription_schedule"]["phases"][0]
    schedules = objects["subscription_schedules"]
    assert {s["status"] for s in schedules} >= {"active", "released", "completed"}
    for schedule in schedules:
        for ours in schedule["phases"]:
            assert set(ours) == set(phase)
            for item in ours["items"]:
                assert set(item) == set(phase["items"][0])


@pytest.mark.parametrize("name", sorted(RELIED_ON))
def test_every_fixture_field_is_present_at_the_same_place(objects, stripe_fixtures, name):
    fixture = stripe_fixtures[name]
    expected = set(fixture) - NOT_IN_PINNED_VERSION.get(name, set())
    ours = samples(objects, name)
    assert ours
    for obj in ours:
        missing = expected - set(obj)
        assert not missing, f"{name} {obj['id']} lacks {sorted(missing)}"


@pytest.mark.parametrize("name", sorted(RELIED_ON))
def test_fields_the_sync_relies_on_are_where_stripe_puts_them(objects, stripe_fixtures, name):
    for path in RELIED_ON[name]:
        dig(stripe_fixtures[name], path)
        for obj in samples(objects, name)[:50]:
            if path[0] == "parent" and name == "invoice" and obj["parent"] is None:
                continue
            if path == ("current_phase",) and obj["status"] != "active":
                continue
            dig(obj, path)


def test_line_parent_and_pricing_follow_the_basil_shapes(objects, stripe_fixtures):
    fixture_parent = stripe_fixtures["line_item"]["parent"]
    lines = samples(objects, "line_item")
    kinds = {line["parent"]["type"] for line in lines}
    assert kinds == {"subscription_item_details", "invoice_item_details"}
    for line in lines:
        parent = line["parent"]
        details = parent[parent["type"]]
        assert set(details) == set(fixture_parent[parent["type"]])
        price_details = line["pricing"]["price_details"]
        assert price_details["price"].startswith("price_")
        assert price_details["product"].startswith("prod_")
        for tax in line["taxes"]:
            assert set(tax) >= {"amount", "tax_behavior", "taxable_amount", "type",
                                "tax_rate_details"}  # fmt: skip
            assert tax["type"] == "tax_rate_details"
            assert tax["tax_rate_details"]["tax_rate"].startswith("txr_")
        for discount in line["discount_amounts"]:
            assert set(discount) == {"amount", "discount"}


def test_tax_and_discounts_appear_on_lines(objects):
    lines = samples(objects, "line_item")
    behaviors = {tax["tax_behavior"] for line in lines for tax in line["taxes"]}
    assert behaviors == {"inclusive", "exclusive"}
    assert any(line["discount_amounts"] for line in lines)


def test_subscription_items_carry_their_current_period(objects):
    for sub in objects["subscriptions"]:
        for item in sub["items"]["data"]:
            assert item["current_period_start"] < item["current_period_end"]
            assert item["subscription"] == sub["id"]
            assert item["price"]["object"] == "price"


def test_prices_cover_the_models_of_real_accounts(objects):
    prices = objects["prices"]
    recurring = [p for p in prices if p["type"] == "recurring"]
    intervals = {(p["recurring"]["interval"], p["recurring"]["interval_count"]) for p in recurring}
    assert {("month", 1), ("month", 3), ("year", 1), ("week", 1)} <= intervals
    assert {p["currency"] for p in prices} >= {"usd", "eur", "gbp", "jpy"}
    assert {p["tax_behavior"] for p in prices} == {"inclusive", "exclusive", "unspecified"}
    assert {p["tiers_mode"] for p in prices} >= {"volume", "graduated"}
    assert any(p["transform_quantity"] for p in prices)
    assert any(p["recurring"]["usage_type"] == "metered" for p in recurring)
    assert any(p["type"] == "one_time" for p in prices)
    assert any(not p["active"] for p in prices)
    tiered = [p for p in prices if p["billing_scheme"] == "tiered"]
    assert all(set(p["tiers"][0]) >= {"up_to", "unit_amount", "flat_amount"} for p in tiered)


def test_updated_events_carry_previous_attributes(objects):
    updated = [e for e in objects["events"] if e["type"].endswith(".updated")]
    assert {e["type"] for e in updated} >= {"customer.updated", "customer.subscription.updated",
                                            "product.updated", "price.updated"}  # fmt: skip
    for event in updated:
        assert event["data"]["previous_attributes"], event["id"]
        for key in event["data"]["previous_attributes"]:
            assert key in event["data"]["object"]
