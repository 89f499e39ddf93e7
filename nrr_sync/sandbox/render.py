"""Engine records -> Stripe JSON in the pinned API version's shapes (basil line and later:
``invoice.parent.subscription_details``, ``line.parent.*_details``, ``line.pricing``,
``subscription.items.data[].current_period_*``). Key sets follow Stripe's own examples
(fixtures3.json); fields the sandbox does not model carry Stripe's empty values.

Objects are rendered on demand from compact records; events keep a small snapshot of the
object's changing state so ``data.object`` shows the object as it was at the event.

This module answers ``render(kind, record)`` and events; each kind is rendered in its own
module: render_customers.py, render_catalog.py (products, prices, coupons, discounts),
render_subscriptions.py, render_invoices.py, cash.py (credit notes) and schedules.py
(subscription schedules). The snapshots are made in snapshots.py.
"""

from __future__ import annotations

from . import cash, schedules
from .render_catalog import discount, price, product
from .render_customers import customer
from .render_invoices import invoice
from .render_subscriptions import subscription

API_VERSION = "2026-10-28.endive"


def render(kind: str, obj, state: tuple | None = None) -> dict:
    if kind == "customers":
        return customer(obj, state)
    if kind == "subscriptions":
        return subscription(obj, state)
    if kind == "invoices":
        return invoice(obj, state)
    if kind == "prices":
        return price(obj, state)
    if kind == "products":
        return product(obj, state)
    if kind == "credit_notes":
        return cash.render_credit_note(obj, state)
    if kind == "subscription_schedules":
        return schedules.render_schedule(obj, state)
    if kind == "discounts":  # only as an event's object (customer.discount.*)
        return discount(obj)
    raise ValueError(kind)


def collapsed(kind: str, obj: dict) -> dict:
    """An event's object shows references as ids (an invoice's discounts)."""
    if kind == "invoices" and obj.get("discounts"):
        return {**obj, "discounts": [d["id"] for d in obj["discounts"]]}
    return obj


def event(ev, api_version: str = API_VERSION) -> dict:
    obj = collapsed(ev.kind, render(ev.kind, ev.obj, ev.state))
    data = {"object": obj}
    if ev.previous is not None:
        before = collapsed(ev.kind, render(ev.kind, ev.obj, ev.previous))
        data["previous_attributes"] = {
            key: value for key, value in before.items() if obj.get(key) != value
        }
    return {
        "id": ev.id,
        "object": "event",
        "api_version": api_version,
        "created": ev.created,
        "data": data,
        "livemode": False,
        "pending_webhooks": 0,
        "request": {"id": None, "idempotency_key": None},
        "type": ev.type,
    }
