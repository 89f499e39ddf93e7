"""``cancel_at`` a date that is not a period end, as Stripe does it.

Setting ``cancel_at`` to a future date keeps ``cancel_at_period_end`` false and sets
``canceled_at`` to the time of the request (as for a cancellation at period end).
Renewals before the date bill full periods as usual. At the date the subscription ends,
and Stripe credits the unused rest of the period it had billed: a proration credit for
``[cancel_at, period end)`` of each licensed item, invoiced at once; a negative total goes
to the customer balance (cash.py), never back to the card (Stripe's docs: with a custom
cancellation date "a credit proration is always generated"; only a date inside the
current period with ``proration_behavior=none`` avoids it).

So under ``churn_recognition: period_end`` the customer's MRR is the full price until
``cancel_at`` and 0 after it (the credit cancels the rest of the paid period); under
``canceled_at`` it stops at the request. Without the credit (``none``, date inside the
current period) the paid period counts to its end, like an immediate cancellation
without a credit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import meters, mixed
from .records import DAY, Customer, Sub

if TYPE_CHECKING:  # the engine calls these hooks; they only name its type
    from .billing import Account


def set_cancel_at(acct: Account, customer: Customer, sub: Sub, t: int, when: int,
                  proration: str = "create_prorations") -> None:  # fmt: skip
    if not sub.live or sub.status == "incomplete" or when <= t or sub.cancel_at is not None:
        return
    if sub.schedule is not None:  # Stripe: update the schedule instead
        return
    before = acct.snap("subscriptions", sub, t)
    sub.cancel_at = when
    sub.canceled_at = t
    sub.cancel_reason = "cancellation_requested"
    acct.sub_updated(sub, t, before)
    credit = proration != "none" or when > sub.period_end
    acct.schedule(customer, when, "call", end_at, (sub, when, credit))


def end_at(acct: Account, customer: Customer, t: int, sub: Sub, when: int, credit: bool) -> None:
    """The subscription reaches its cancel_at (a renewal at exactly that time ends it too)."""
    if not sub.live or sub.cancel_at != when:
        return
    if credit and sub.status in ("active", "past_due") and t < sub.period_end:
        own_periods = mixed.active(sub)  # mixed intervals: each item's own unused rest
        lines = mixed.unused_credits(acct, customer, sub, t)
        for item in sub.items:
            if item.price.usage_type == "metered" or own_periods:
                continue
            amount = acct.prorate(sub, t, item.price, item.quantity, -1)
            if amount:
                lines.append(acct.new_line(customer, t, item.price, item.quantity, amount, t,
                                           sub.period_end, sub=sub, item=item,
                                           proration=True))  # fmt: skip
        lines.extend(meters.usage_lines(acct, customer, sub, t, sub.period_start))
        if lines or sub.pending:
            acct.invoice_now(customer, sub, t, lines, (t, t))
    acct.end_subscription(sub, t)


def step_cancel_at(acct: Account, customer: Customer, t: int, sub_index: int, when: int,
                   proration: str) -> None:  # fmt: skip
    set_cancel_at(acct, customer, customer.subs[sub_index], t, when, proration)


STEPS = {"cancel_at": step_cancel_at}


def random_date(customer: Customer, sub: Sub, t: int) -> tuple[int, str]:
    """A cancellation date 3 to 75 days ahead, not a period end, and its proration."""
    rng = customer.rng
    when = t + rng.randint(3, 75) * DAY + rng.randint(1, DAY - 1)
    if when == sub.period_end:
        when += 3600
    return when, "none" if rng.random() < 0.3 else "create_prorations"


def archetypes(scenario, ago, later) -> None:
    """cancel_at inside the current period with the credit, and without it; cancel_at in a
    later period (always credited); one still pending at now."""
    for proration, months in (("create_prorations", 9), ("none", 8)):
        c = scenario(ago(months, 3.5))
        sub = c.subscribe(c.created, [("pro_month_usd", 1)])
        c.cancel_at(later(c.created, 3, 2.0), sub, later(c.created, 3, 17.5), proration)
    c = scenario(ago(10, 1.5), segment="mid")
    sub = c.subscribe(c.created, [("pro_month_usd", 1), ("seats_month_usd", 6)])
    c.cancel_at(later(c.created, 4, 20.0), sub, later(c.created, 6, 9.25), "none")
    c = scenario(ago(7, 12.0))
    sub = c.subscribe(c.created, [("pro_year_usd", 1)])
    c.cancel_at(ago(0, 20.0), sub, ago(-2, 0.0))
