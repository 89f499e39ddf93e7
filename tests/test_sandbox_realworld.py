"""What real Stripe accounts bring beyond the basics, generated in Stripe's shapes:
only one-off drafts are ever deleted, multi-currency prices, stacked and full discounts,
free prices and trials (see docs/sandbox.md)."""

from __future__ import annotations

import pytest

from nrr_sync.sandbox.generator import SandboxOptions, Scenario, generate

KINDS = ("customers", "products", "prices", "subscriptions", "invoices", "events")


def scripted_world(*scenarios, now="2024-06-05T00:00:00Z", **kw):
    options = SandboxOptions(customers=0, start="2023-10", now=now, archetypes=False,
                             scenarios=scenarios, **kw)  # fmt: skip
    return generate(options)


def objects_of(world, kind):
    return list(world.objects(world.account_ids[0], kind))


def subscription_of(inv):
    parent = inv.get("parent") or {}
    return (parent.get("subscription_details") or {}).get("subscription")


def test_a_canceled_unpaid_subscription_voids_its_drafts_and_deletes_none():
    s = Scenario("2024-01-01", name="Unpaid, then canceled")
    sub = s.subscribe("2024-01-01", [("pro_month_usd", 1)])
    s.fail_payment("2024-03-01", sub, "unpaid")
    s.cancel("2024-05-20", sub, "now")
    s.manual_invoice("2024-05-21", delete_draft=True)  # a one-off draft may be deleted
    world = scripted_world(s)
    invoices = objects_of(world, "invoices")
    renewals_unpaid = [i for i in invoices if i["billing_reason"] == "subscription_cycle"
                       and i["created"] > 1711929600]  # fmt: skip  # from 2024-04-01
    assert renewals_unpaid and {i["status"] for i in renewals_unpaid} == {"void"}
    events = objects_of(world, "events")
    voided = {e["data"]["object"]["id"] for e in events if e["type"] == "invoice.voided"}
    assert {i["id"] for i in renewals_unpaid if i["created"] > 1714000000} <= voided
    deleted = [e["data"]["object"] for e in events if e["type"] == "invoice.deleted"]
    assert len(deleted) == 1 and subscription_of(deleted[0]) is None  # positive control
    assert world.deleted_ids(world.account_ids[0], "invoices") == [deleted[0]["id"]]


@pytest.mark.parametrize("seed", [3, 7])
def test_no_subscription_invoice_is_ever_deleted(seed):
    world = generate(SandboxOptions(seed=seed, customers=300))
    account = world.account_ids[0]
    subscription_invoices = {
        inv.id for acct in world.accounts.values() for c in acct.customers
        for inv in c.invoices if inv.sub is not None
    }  # fmt: skip
    assert subscription_invoices
    assert not set(world.deleted_ids(account, "invoices")) & subscription_invoices
    for event in world.objects(account, "events"):
        if event["type"] == "invoice.deleted":
            assert subscription_of(event["data"]["object"]) is None


def free_price_objects(world):
    account = world.account_ids[0]
    (free,) = [p for p in world.objects(account, "prices") if p["lookup_key"] == "free_month_usd"]
    return account, free


def test_the_free_price_is_a_zero_amount_price_in_stripes_shape(stripe_fixtures):
    account, free = free_price_objects(generate(SandboxOptions(customers=0, archetypes=False)))
    assert set(free) - {"currency_options"} == set(stripe_fixtures["price"])  # expandable
    assert (free["unit_amount"], free["unit_amount_decimal"], free["billing_scheme"]) == (
        0, "0", "per_unit")  # fmt: skip
    assert free["recurring"]["interval"] == "month" and free["type"] == "recurring"
    assert {c: o["unit_amount"] for c, o in free["currency_options"].items()} == {
        "usd": 0, "eur": 0, "gbp": 0, "jpy": 0}  # fmt: skip


@pytest.mark.parametrize("seed", [3, 11, 29])
def test_free_plans_and_every_trial_ending_occur_in_every_seed_at_zero(seed):
    world = generate(SandboxOptions(seed=seed, customers=60, start="2023-01",
                                    now="2025-03-18T09:30:00Z"))  # fmt: skip
    acct = world.accounts[world.account_ids[0]]
    truth = {(c, m): mrr for _, c, m, mrr in world.truth()}
    free_subs, upgraded, over_month_end, unpaid_trials = [], [], [], []
    for customer in acct.customers:
        for sub in customer.subs:
            lines = [(inv, line) for inv in customer.invoices if inv.sub is sub
                     for line in inv.lines]  # fmt: skip
            keys = {line.price.key for _, line in lines}
            if "free_month_usd" in keys:
                free_subs.append(sub)
                paid = [inv for inv, line in lines if line.amount > 0 and inv.status == "paid"]
                if paid:
                    upgraded.append(sub)
                    # never a customer before the first paid line's period starts
                    first = min(line.start for inv, line in lines if line.amount > 0)
                    for (cid, month), mrr in truth.items():
                        if cid == customer.id and len(customer.subs) == 1 and mrr > 0:
                            assert month >= _month(first)
                elif len(customer.subs) == 1:
                    assert not any(m for (cid, _), m in truth.items() if cid == customer.id)
            if sub.trial_end and _month(sub.trial_start) != _month(sub.trial_end):
                over_month_end.append(sub)
            if sub.trial_end and sub.status == "unpaid":
                unpaid_trials.append(sub)
                assert not any(m for (cid, _), m in truth.items() if cid == customer.id)
    assert free_subs and upgraded and over_month_end and unpaid_trials
    converted = [s for s in over_month_end if s.status == "active"]
    assert converted


def _month(ts: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-01")
