"""Flexible billing mode (``billing_mode.type = flexible``), Stripe's default for new
subscriptions since 2025 (docs/metrics.md, "Flexible billing mode").

What changes against ``classic``: a credit proration takes back what was *charged* for the
rest of the period, not the current price prorated. The credit is the charge it credits
(the item's latest debit line: a renewal line or an earlier proration) times the unused
share of that line's period, with that line's own discounts prorated the same way (shown
itemized, ``billing_mode.flexible.proration_discounts = "itemized"``), and it names that
line in ``parent.*.proration_details.credited_items = {invoice, invoice_line_items}``. So a
customer whose coupon has ended (a ``once`` coupon, a repeating one that ran out) gets back
the discounted amount they paid, not the list price.

A fifth of random subscriptions are flexible (a random stream of their own); scripted ones
with ``Scenario.subscribe(..., billing_mode="flexible")``.

Mixed intervals on one subscription (a monthly and a yearly item, which Stripe allows in
flexible mode only) are in mixed.py: each item renews on its own cycle, and a change of one
item prorates over that item's own period.

A flexible subscription shows its prorations' discounts itemized, or, with
``proration_discounts = "included"`` (a share of random ones; scripted with
``subscribe(..., proration_discounts="included")``), included in their amounts as classic
subscriptions do (records.discounts_included).

Not modeled: switching a subscription's mode.
"""

from __future__ import annotations

import random

from .engine import Engine
from .records import Customer, Item, Line, Sub, b62, divide_half_up

FLEXIBLE_RATE = 0.2


def random_mode(acct: Engine, customer: Customer, t: int) -> str:
    rng = random.Random(f"{acct.seed}:{acct.id}:{customer.idx}:billing-mode:{t}")
    return "flexible" if rng.random() < FLEXIBLE_RATE else "classic"


INCLUDED_RATE = 0.3  # of random flexible subscriptions: proration discounts included


def random_proration_discounts(acct: Engine, customer: Customer, t: int) -> str:
    rng = random.Random(f"{acct.seed}:{acct.id}:{customer.idx}:proration-discounts:{t}")
    return "included" if rng.random() < INCLUDED_RATE else "itemized"


def credit_line(acct: Engine, customer: Customer, sub: Sub, item: Item, t: int,
                parent: str) -> Line | None:  # fmt: skip
    """The credit for the unused rest of ``item``'s latest charge at ``t`` (None if 0)."""
    debit = item.debit
    if debit is None or not debit.start <= t < debit.end or debit.amount <= 0:
        return None  # nothing charged for now (a trial, a free price): nothing to give back
    remaining, length = debit.end - t, debit.end - debit.start
    amount = -divide_half_up(debit.amount * remaining, length)
    if not amount:
        return None
    line = acct.new_line(customer, t, debit.price, debit.quantity, amount, t, debit.end,
                         sub=sub, item=item, proration=True, parent=parent)  # fmt: skip
    line.credited = debit
    line.discounts = tuple(
        (discount, -divide_half_up(taken * remaining, length))
        for discount, taken in debit.discounts
    )
    line.discount_amount = sum(taken for _, taken in line.discounts)
    return line


# -- rendering ----------------------------------------------------------------------------
def billing_mode(sub: Sub) -> dict:
    """``subscription.billing_mode`` (the SDK's Subscription.BillingMode)."""
    if sub.billing_mode != "flexible":
        return {"type": "classic"}
    return {
        "flexible": {"proration_discounts": sub.proration_discounts},
        "type": "flexible",
        "updated_at": sub.created,
    }


def credited_items(line: Line) -> dict | None:
    """``proration_details.credited_items`` of a flexible credit: the line it takes back."""
    debit = line.credited
    if debit is None or debit.invoice is None:
        return None
    invoice_id = debit.invoice.id
    return {
        "invoice": invoice_id,
        "invoice_line_items": [f"il_{invoice_id[3:]}{b62(debit.position, 2)}"],
    }


# -- archetypes ---------------------------------------------------------------------------
def archetypes(scenario, ago, later) -> None:
    """Scripted customers that make flexible-mode credits occur in every account."""
    # a once coupon on the first invoice, then a downgrade prorated at the next renewal:
    # the credit takes back the discounted charge of that first period
    c = scenario(ago(8, 6.2))
    sub = c.subscribe(c.created, [("business_month_usd", 1)], coupon="once25",
                      billing_mode="flexible")  # fmt: skip
    c.change(later(c.created, 0, 12.0), sub, [("pro_month_usd", 1)])
    # two seat changes in one period invoiced at once: the second credits the first's charge;
    # then an immediate cancellation whose credit goes to the customer balance
    c = scenario(ago(9, 2.8), segment="mid")
    sub = c.subscribe(c.created, [("pro_month_usd", 1), ("seats_month_usd", 4)],
                      coupon="amount10", billing_mode="flexible")  # fmt: skip
    c.change(later(c.created, 2, 5.0), sub, [("pro_month_usd", 1), ("seats_month_usd", 8)],
             "always_invoice")  # fmt: skip
    c.change(later(c.created, 2, 17.0), sub, [("pro_month_usd", 1), ("seats_month_usd", 6)],
             "always_invoice")  # fmt: skip
    c.cancel(later(c.created, 5, 9.0), sub, "now_prorate")
