"""The generated account history has every case docs/sandbox.md lists, is deterministic,
and moves on."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from nrr_sync.sandbox.generator import SandboxOptions, generate

KINDS = ("customers", "products", "prices", "subscriptions", "invoices", "events")


@pytest.fixture(scope="module")
def world():
    return generate(SandboxOptions(customers=300))


@pytest.fixture(scope="module")
def objects(world):
    account = world.account_ids[0]
    return {kind: list(world.objects(account, kind)) for kind in KINDS}


def lines(objects):
    return [line for inv in objects["invoices"] for line in inv["lines"]["data"]]


def details(line):
    return line["parent"][line["parent"]["type"]]


def test_subscriptions_go_through_every_status(objects):
    statuses = Counter(s["status"] for s in objects["subscriptions"])
    expected = {"trialing", "active", "past_due", "unpaid", "canceled", "incomplete",
                "incomplete_expired", "paused"}  # fmt: skip
    assert expected <= set(statuses)
    assert statuses["active"] > statuses["canceled"] / 2  # realistic: most are active


def test_invoices_have_every_status_and_billing_reason(objects):
    invoices = objects["invoices"]
    assert {"draft", "open", "paid", "void", "uncollectible"} <= {i["status"] for i in invoices}
    reasons = {i["billing_reason"] for i in invoices}
    assert {"subscription_create", "subscription_cycle", "subscription_update", "manual"} <= reasons


def test_prorations_both_at_renewal_and_invoiced_at_once(objects):
    renewal = [i for i in objects["invoices"] if i["billing_reason"] == "subscription_cycle"
               and any(details(line)["proration"] for line in i["lines"]["data"])]  # fmt: skip
    at_once = [i for i in objects["invoices"] if i["billing_reason"] == "subscription_update"
               and any(details(line)["proration"] for line in i["lines"]["data"])]  # fmt: skip
    assert renewal and at_once
    prorations = [line for line in lines(objects) if details(line)["proration"]]
    assert any(line["amount"] < 0 for line in prorations)  # credit for unused time
    assert any(line["amount"] > 0 for line in prorations)
    assert {line["parent"]["type"] for line in prorations} == {
        "invoice_item_details", "subscription_item_details"}  # fmt: skip
    for line in prorations:
        assert details(line)["subscription"]
        assert line["period"]["start"] < line["period"]["end"]


def test_upgrades_downgrades_and_seat_changes_happen(objects):
    events = objects["events"]
    # over the whole history: a subscription item's price or quantity changes mid-period
    prorated = [line for line in lines(objects) if details(line)["proration"]]
    prices = {line["pricing"]["price_details"]["price"] for line in prorated}
    assert len(prices) >= 4
    quantities = {line["quantity"] for line in prorated if line["quantity"] > 1}
    assert len(quantities) >= 3
    assert any("items" in e["data"].get("previous_attributes", {}) for e in events)


def test_coupons_of_every_kind(objects):
    discounted = [line for line in lines(objects) if line["discount_amounts"]]
    assert discounted
    subs_with_discounts = [s for s in objects["subscriptions"] if s["discounts"]]
    assert subs_with_discounts
    # once / repeating coupons end: some invoices of the same subscription carry no discount
    by_sub = {}
    for inv in objects["invoices"]:
        if inv["parent"]:
            sub = inv["parent"]["subscription_details"]["subscription"]
            by_sub.setdefault(sub, []).append(bool(inv["discounts"]))
    assert any(flags[0] and not all(flags) for flags in by_sub.values())
    # amount_off coupons give whole-currency amounts, percent coupons rounded percentages
    amounts = {d["amount"] for line in discounted for d in line["discount_amounts"]}
    assert 1000 in amounts


def test_taxes_inclusive_and_exclusive(objects):
    taxes = [t for line in lines(objects) for t in line["taxes"]]
    assert {t["tax_behavior"] for t in taxes} == {"inclusive", "exclusive"}
    for inv in objects["invoices"]:
        exclusive = sum(t["amount"] for t in inv["total_taxes"] if t["tax_behavior"] ==
                        "exclusive")  # fmt: skip
        discounts = sum(d["amount"] for d in inv["total_discount_amounts"])
        assert inv["total"] == inv["subtotal"] - discounts + exclusive


def test_cancellations_at_period_end_immediate_and_for_failed_payment(objects):
    subs = objects["subscriptions"]
    canceled = [s for s in subs if s["status"] == "canceled"]
    reasons = Counter(s["cancellation_details"]["reason"] for s in canceled)
    assert reasons["cancellation_requested"] and reasons["payment_failed"]
    assert any(s["cancel_at_period_end"] and s["status"] == "active" for s in subs)
    assert any(s["cancel_at_period_end"] and s["status"] == "canceled" for s in subs)
    assert any(not s["cancel_at_period_end"] and s["ended_at"] and s["ended_at"] <
               s["items"]["data"][0]["current_period_end"] for s in canceled)  # fmt: skip
    # immediate cancel with credit: a proration credit on an update invoice for a sub
    canceled_ids = {s["id"] for s in canceled}
    assert any(
        inv["billing_reason"] == "subscription_update" and inv["total"] < 0
        and inv["parent"]["subscription_details"]["subscription"] in canceled_ids
        for inv in objects["invoices"]
    )  # fmt: skip
    failed = {s["id"]: s for s in canceled if s["cancellation_details"]["reason"] ==
              "payment_failed"}  # fmt: skip
    left = {inv["status"] for inv in objects["invoices"] if inv["parent"]
            and inv["parent"]["subscription_details"]["subscription"] in failed
            and inv["status"] != "paid"}  # fmt: skip
    assert {"void", "uncollectible", "open"} <= left


def test_failed_payments_recover(objects):
    recovered = [i for i in objects["invoices"] if i["status"] == "paid" and i["attempt_count"] > 1]
    assert recovered


def test_paused_collection(objects):
    paused = [s for s in objects["subscriptions"] if s["pause_collection"]]
    assert paused
    behaviors = {s["pause_collection"]["behavior"] for s in paused}
    assert "keep_as_draft" in behaviors


def test_trials_bill_zero(objects):
    trial_lines = [line for inv in objects["invoices"] for line in inv["lines"]["data"]
                   if line["description"].startswith("Trial period")]  # fmt: skip
    assert trial_lines and all(line["amount"] == 0 for line in trial_lines)


def test_customers_with_several_subscriptions_and_comebacks(objects):
    per_customer = Counter(s["customer"] for s in objects["subscriptions"])
    assert any(n >= 2 for n in per_customer.values())
    by_customer = {}
    for sub in objects["subscriptions"]:
        by_customer.setdefault(sub["customer"], []).append(sub)
    came_back = [
        c for c, subs in by_customer.items()
        if any(a["ended_at"] and b["created"] > a["ended_at"] for a in subs for b in subs)
    ]  # fmt: skip
    assert came_back


def test_invoices_with_more_than_ten_lines(objects):
    assert any(len(inv["lines"]["data"]) > 10 for inv in objects["invoices"])
    assert any(len(sub["items"]["data"]) > 10 for sub in objects["subscriptions"])


def test_a_renewal_draft_awaits_finalization(world, objects):
    drafts = [i for i in objects["invoices"] if i["status"] == "draft" and i["auto_advance"]
              and i["billing_reason"] == "subscription_cycle"]  # fmt: skip
    assert drafts
    assert all(world.now - 3600 <= i["created"] <= world.now for i in drafts)


def test_a_customer_deleted_in_the_last_30_days(world, objects):
    deleted = [e for e in objects["events"] if e["type"] == "customer.deleted"]
    assert deleted
    account = world.account_ids[0]
    gone = set(world.deleted_ids(account, "customers"))
    assert {e["data"]["object"]["id"] for e in deleted} <= gone
    assert not gone & {c["id"] for c in objects["customers"]}


def test_currencies_intervals_and_price_models_are_billed(objects):
    prices = {p["id"]: p for p in objects["prices"]}
    billed = [prices[line["pricing"]["price_details"]["price"]] for line in lines(objects)]
    assert {p["currency"] for p in billed} >= {"usd", "eur", "gbp", "jpy"}
    recurring = [p for p in billed if p["recurring"]]
    assert {(p["recurring"]["interval"], p["recurring"]["interval_count"]) for p in recurring} >= {
        ("month", 1), ("month", 3), ("year", 1), ("week", 1)}  # fmt: skip
    assert {p["tiers_mode"] for p in billed} >= {"volume", "graduated"}
    assert any(p["transform_quantity"] for p in billed)
    assert any(p["recurring"]["usage_type"] == "metered" for p in recurring)
    assert any(not p["active"] for p in billed)


def test_events_cover_the_last_30_days_only(world, objects):
    events = objects["events"]
    assert all(world.now - 30 * 86400 <= e["created"] <= world.now for e in events)
    types = {e["type"] for e in events}
    assert {"customer.created", "customer.updated", "customer.deleted",
            "customer.subscription.created", "customer.subscription.updated",
            "customer.subscription.deleted", "invoice.created", "invoice.finalized",
            "invoice.paid", "invoice.payment_failed", "invoice.deleted", "invoice.voided",
            "invoice.marked_uncollectible", "product.created", "product.updated",
            "price.created", "price.updated"} <= types  # fmt: skip
    assert len({e["id"] for e in events}) == len(events)


def test_ids_are_unique_and_stripe_like(objects):
    for kind, prefix in (
        ("customers", "cus_"),
        ("subscriptions", "sub_"),
        ("invoices", "in_"),
        ("prices", "price_"),
        ("products", "prod_"),
        ("events", "evt_"),
    ):
        ids = [o["id"] for o in objects[kind]]
        assert len(ids) == len(set(ids)), kind
        assert all(i.startswith(prefix) for i in ids), kind
    line_ids = [line["id"] for line in lines(objects)]
    assert len(line_ids) == len(set(line_ids))
    assert all(i.startswith("il_") for i in line_ids)


def dump(world):
    return json.dumps(
        {
            account: {kind: list(world.objects(account, kind)) for kind in KINDS}
            for account in world.account_ids
        },
        sort_keys=True,
    ) + repr(world.truth())


def test_same_options_give_byte_identical_objects_and_truth():
    options = SandboxOptions(seed=42, customers=120, accounts=2)
    assert dump(generate(options)) == dump(generate(options))


def test_another_seed_gives_another_history():
    a = generate(SandboxOptions(seed=1, customers=60))
    b = generate(SandboxOptions(seed=2, customers=60))
    assert dump(a) != dump(b)


def test_several_accounts_each_have_their_own_history():
    world = generate(SandboxOptions(customers=50, accounts=3))
    assert world.account_ids == ["acct_1SandboxA0001", "acct_1SandboxA0002",
                                 "acct_1SandboxA0003"]  # fmt: skip
    ids = [{c["id"] for c in world.objects(a, "customers")} for a in world.account_ids]
    assert all(ids) and not ids[0] & ids[1] and not ids[1] & ids[2]
    assert {row[0] for row in world.truth()} == set(world.account_ids)


def test_advance_moves_now_and_produces_new_invoices_and_events():
    world = generate(SandboxOptions(customers=80, seed=3))
    account = world.account_ids[0]
    before_now = world.now
    before = {i["id"] for i in world.objects(account, "invoices")}
    waiting = {i["id"] for i in world.objects(account, "invoices")
               if i["status"] == "draft" and i["auto_advance"]}  # fmt: skip
    assert waiting
    changes = world.advance(10 * 86400)
    assert world.now == before_now + 10 * 86400
    kinds = Counter(kind for _, kind, _, _ in changes)
    assert kinds["invoices"] and kinds["events"] and kinds["subscriptions"]
    after = {i["id"] for i in world.objects(account, "invoices")}
    assert after > before
    new_events = [obj for _, kind, obj, _ in changes if kind == "events"]
    assert all(before_now < e["created"] <= world.now for e in new_events)
    for acct, _kind, obj, object_id in changes:
        assert acct == account
        assert obj is None or obj["id"] == object_id
    # the draft that awaited finalization is finalized now
    statuses = {i["id"]: i["status"] for i in world.objects(account, "invoices")}
    assert all(statuses[i] in ("paid", "open") for i in waiting)
    months = {row[2] for row in world.truth()}
    assert "2026-01-01" in months


def test_advance_past_a_month_end_adds_a_truth_month_and_new_customers():
    world = generate(SandboxOptions(customers=60, seed=8))
    account = world.account_ids[0]
    customers = {c["id"] for c in world.objects(account, "customers")}
    world.advance(40 * 86400)
    assert max(row[2] for row in world.truth()) == "2026-02-01"
    assert {c["id"] for c in world.objects(account, "customers")} - customers


def test_an_account_of_scripted_customers_only_advances_without_new_sign_ups():
    world = generate(SandboxOptions(customers=0))
    assert world.truth() == []
    assert world.advance(86400) == []
