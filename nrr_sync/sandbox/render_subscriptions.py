"""Subscriptions as Stripe JSON (render.py), their items with each item's current period."""

from __future__ import annotations

from . import flexible
from .records import Sub
from .render_catalog import default_price, plan
from .snapshots import snapshot


def subscription_item(sub_id: str, item: tuple, period: tuple[int, int]) -> dict:
    """``period``: the subscription's, unless the item has its own (mixed intervals)."""
    item_id, p, quantity, created, own_period = item
    period = own_period or period
    obj = {
        "id": item_id,
        "object": "subscription_item",
        "billing_thresholds": None,
        "created": created,
        "current_period_end": period[1],
        "current_period_start": period[0],
        "discounts": [],
        "metadata": {},
        "plan": plan(p),
        "price": default_price(p),
        "quantity": quantity,
        "subscription": sub_id,
        "tax_rates": [],
    }
    if p.usage_type == "metered":
        del obj["quantity"]
    return obj


def subscription(sub: Sub, state: tuple | None = None) -> dict:
    (status, cancel_at_period_end, cancel_at, canceled_at, ended_at, reason, pause, disc,
     items, period_start, period_end, trial_start, trial_end, latest_invoice,
     anchor, schedule) = state or snapshot("subscriptions", sub)  # fmt: skip
    discounts = disc
    c = sub.customer
    item_dicts = [subscription_item(sub.id, item, (period_start, period_end)) for item in items]
    return {
        "id": sub.id,
        "object": "subscription",
        "application": None,
        "application_fee_percent": None,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_cycle_anchor": anchor,
        "billing_cycle_anchor_config": None,
        "billing_mode": flexible.billing_mode(sub),
        "billing_schedules": [],
        "billing_thresholds": None,
        "cancel_at": cancel_at,
        "cancel_at_period_end": cancel_at_period_end,
        "canceled_at": canceled_at,
        "cancellation_details": {"comment": None, "feedback": None, "reason": reason},
        "collection_method": "charge_automatically",
        "created": sub.created,
        "currency": sub.currency,
        "customer": c.id,
        "customer_account": None,
        "days_until_due": None,
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [d.id for d in discounts],
        "ended_at": ended_at,
        "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
        "items": {
            "object": "list",
            "data": item_dicts,
            "has_more": False,
            "url": f"/v1/subscription_items?subscription={sub.id}",
        },
        "latest_invoice": latest_invoice,
        "livemode": False,
        "managed_payments": {"enabled": False},
        "metadata": {},
        "next_pending_invoice_item_invoice": None,
        "on_behalf_of": None,
        "pause_collection": None
        if pause is None
        else {"behavior": pause[0], "resumes_at": pause[1]},
        "payment_settings": {
            "payment_method_options": None,
            "payment_method_types": None,
            "save_default_payment_method": "off",
        },
        "pending_invoice_item_interval": None,
        "pending_setup_intent": None,
        "pending_update": None,
        "schedule": schedule,
        "start_date": sub.created,
        "status": status,
        "test_clock": None,
        "transfer_data": None,
        "trial_end": trial_end,
        "trial_settings": {
            "end_behavior": {
                "missing_payment_method": "pause"
                if sub.missing_payment_method
                else "create_invoice"
            }
        },
        "trial_start": trial_start,
    }
