"""Mixed intervals on one subscription: a monthly and a yearly item side by side, which Stripe
allows only in ``flexible`` billing mode (flexible.py; docs/metrics.md, "Mixed intervals").

How Stripe bills them (its guide "Mixed interval subscriptions" and the 2025-07-30.basil
changelog entries "Adds support for mixed intervals on the same subscription" and "Adds
helpers to cancel subscriptions for billing periods with mixed intervals"):

- Every item keeps the subscription's ``billing_cycle_anchor`` and has its own period,
  ``items.data[].current_period_start/end`` (the subscription itself has none since
  2025-03-31.basil; older versions showed the smallest item period there).
- The first invoice bills every item for its own first period. After that an invoice is
  made whenever an item's period ends, with the items whose periods end then: one combined
  invoice where periods align, separate ones where they diverge. Stripe's example, $100 a
  quarter and $15 a month from Jan 1: Feb 1 and Mar 1 bill the monthly price, Apr 1 both.
- A quantity or price change of one item prorates over *that item's* current period; in
  flexible mode its credit takes back the item's latest charge (flexible.py). Prorations
  left for later go onto the subscription's next invoice, whichever item renews then.
- Cancelling cancels every item. ``cancel_at_period_end`` resolves to the *earliest* item
  period end (Stripe's ``cancel_at: min_period_end``); the items whose periods run past it
  are credited for their unused rest then, as for any ``cancel_at`` that is not a period end
  (cancellations.py). An immediate cancellation with prorations credits each item's unused
  rest. Dunning is the subscription's: a failed invoice of one item makes it past_due.

The sandbox: a flexible subscription created with items of different intervals has item
periods (``Item.period``, ``Item.period_index`` from the shared anchor); the subscription's
own ``period_start/end`` is then its shortest current cycle, from the last renewal of any
item to the next, which is when its renewal runs. Scripted with ``Scenario.subscribe(...,
billing_mode="flexible")`` and items of different intervals; among random customers, a
share of the flexible sign-ups with a plan and monthly seats (a random stream of its own,
so every other customer stays as it was) take the plan yearly.

Not modeled (the engine refuses them, so no history shows what Stripe would not do):
trials on a mixed subscription; switching one item to another interval, and adding an
item whose interval no other item has (Stripe aligns its first period to the anchor);
``cancel_at: max_period_end``; metered items on an interval longer than the shortest (their
usage is billed at every renewal); subscription schedules of mixed subscriptions (refused),
and paused collection of random ones (never drawn); ``billed_until`` on items (typed by the
SDK, not in Stripe's example objects).
"""

from __future__ import annotations

import random

from .engine import Engine
from .records import Customer, Item, Sub, billing_currency, period_end

RANDOM_RATE = 0.4  # of the eligible flexible sign-ups (a plan and monthly seats)


def interval(item_or_price) -> tuple[str, int]:
    price = getattr(item_or_price, "price", item_or_price)
    return price.interval, price.interval_count


def wanted(billing_mode: str, prices, trial_end: int | None = None) -> bool:
    """Whether a new subscription's items take periods of their own: items of different
    intervals, which Stripe allows in flexible mode only (ValueError otherwise, as Stripe
    answers 400; and for a trial, which the sandbox does not model with them)."""
    if len({interval(price) for price in prices}) < 2:
        return False
    if billing_mode != "flexible":
        raise ValueError("items of different intervals need billing_mode='flexible'")
    if trial_end:
        raise ValueError("the sandbox does not model trials of mixed-interval subscriptions")
    return True


def active(sub: Sub) -> bool:
    """The subscription's items carry their own periods."""
    return bool(sub.items) and sub.items[0].period is not None


def item_period(sub: Sub, item: Item | None) -> tuple[int, int]:
    """The item's current period: its own on a mixed subscription, else the subscription's."""
    if item is not None and item.period is not None:
        return item.period
    return sub.period_start, sub.period_end


def start(sub: Sub, t: int) -> None:
    """At creation: each item's first period from the anchor; the subscription's cycle is
    the shortest of them."""
    for item in sub.items:
        item.period_index = 0
        item.period = (t, period_end(item.price, sub.anchor, 0))
    sub.period_start = t
    sub.period_end = min(item.period[1] for item in sub.items)


def renew(sub: Sub, t: int) -> list[Item]:
    """At ``t`` (the subscription's period end): the items whose period ends now start their
    next one; returns them (what the renewal invoice bills)."""
    renewing = [item for item in sub.items if item.period[1] <= t]
    for item in renewing:
        item.period_index += 1
        item.period = (t, period_end(item.price, sub.anchor, item.period_index))
    sub.period_start = t
    sub.period_end = min(item.period[1] for item in sub.items)
    return renewing


def accepts(sub: Sub, new: list) -> bool:
    """Whether a change of items is one the sandbox makes: on other subscriptions, items of
    one interval (Stripe refuses several in classic mode; a flexible subscription turning
    mixed is not modeled); on a mixed one, each item keeps its interval and a new item takes
    an interval some item has."""
    if not active(sub):
        return len({interval(price) for price, _ in new}) < 2
    old = [interval(item) for item in sub.items]
    for n, (price, _) in enumerate(new):
        if n < len(old) and interval(price) != old[n]:
            return False
        if n >= len(old) and interval(price) not in old:
            return False
    return True


def adopt_period(sub: Sub, item: Item) -> None:
    """A new item joins the period of the items of its interval."""
    twin = next(other for other in sub.items if interval(other) == interval(item))
    item.period, item.period_index = twin.period, twin.period_index


def unused_credits(acct: Engine, customer: Customer, sub: Sub, t: int) -> list:
    """At a cancellation date (the earliest item period end, or a ``cancel_at``) of a mixed
    subscription: credits for the unused rest of the items whose periods run past ``t``
    (none on other subscriptions)."""
    if not active(sub):
        return []
    credits = []
    for item in sub.items:
        if item.price.usage_type == "metered" or item.period[1] <= t:
            continue
        line = acct.credit_line(customer, sub, item, t, "invoice_item_details")
        if line is not None:
            credits.append(line)
    return credits


# -- random customers ---------------------------------------------------------------------
def random_items(acct: Engine, customer: Customer, t: int, items: list) -> list:
    """A share of the flexible sign-ups with a monthly plan and monthly seats take the plan
    yearly (an annual platform fee beside monthly seats), from a random stream of their own."""
    from . import flexible

    if len(items) < 2 or any(interval(price) != ("month", 1) for price, _ in items):
        return items
    plan = items[0][0]
    if plan.product.key not in ("pro", "business"):
        return items
    if not any(price.product.key == "seats" for price, _ in items):
        return items
    if flexible.random_mode(acct, customer, t) != "flexible":
        return items
    yearly = acct.catalog.by_key.get(plan.key.replace("_month_", "_year_"))
    if yearly is None:
        return items
    mixed = [(yearly, items[0][1])] + items[1:]
    currency = customer.currency
    if billing_currency(currency, [p for p, _ in mixed]) != billing_currency(
        currency, [p for p, _ in items]
    ):
        return items
    rng = random.Random(f"{acct.seed}:{acct.id}:{customer.idx}:mixed-intervals:{t}")
    return mixed if rng.random() < RANDOM_RATE else items
