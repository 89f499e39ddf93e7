"""The small snapshot of an object's changing state that an event keeps, so that its
``data.object`` (and ``previous_attributes``) show the object as it was at the event; the
renderers (render.py) take one in place of the record's current state.
"""

from __future__ import annotations

from . import cash, schedules
from .records import Customer, Invoice, Sub


def snapshot(kind: str, obj) -> tuple | None:
    if kind == "subscriptions":
        sub: Sub = obj
        return (
            sub.status, sub.cancel_at_period_end, sub.cancel_at, sub.canceled_at, sub.ended_at,
            sub.cancel_reason, sub.pause, sub.discounts,
            tuple((i.id, i.price, i.quantity, i.created, i.period) for i in sub.items),
            sub.period_start, sub.period_end, sub.trial_start, sub.trial_end, sub.latest_invoice,
            sub.anchor, sub.schedule.id if sub.schedule is not None else None,
        )  # fmt: skip
    if kind == "invoices":
        inv: Invoice = obj
        return (
            inv.status, inv.auto_advance, inv.finalized_at, inv.paid_at, inv.voided_at,
            inv.uncollectible_at, inv.attempt_count, inv.next_payment_attempt, inv.number,
            inv.starting_balance, inv.pre_payment_credit, inv.post_payment_credit,
        )  # fmt: skip
    if kind == "customers":
        c: Customer = obj
        return (c.email, c.ever_subscribed, c.metadata_extra, c.updated, c.invoice_seq, c.balance)
    if kind == "products":
        return (obj.name, obj.description, obj.active, obj.updated)
    if kind == "prices":
        # options are only ever added (catalog_changes.py), so the pairs are a faithful copy
        return (obj.nickname, obj.active, tuple(obj.currency_options.items()))
    if kind == "credit_notes":
        return cash.snapshot(obj)
    if kind == "subscription_schedules":
        return schedules.snapshot(obj)
    return None
