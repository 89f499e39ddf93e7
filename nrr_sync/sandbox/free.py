"""Free plans and trials: customers at 0 are never paying customers (docs/metrics.md, "Free
plans and trials").

- **Free plan.** ``free_month_usd`` has ``unit_amount`` 0 (0 in its eur, gbp and jpy
  currency options too). Stripe bills it like any price: a paid invoice of total 0 every
  month. Some small customers start on it; some of them upgrade to a paid plan later, with
  prorations invoiced at the next renewal or at once (``always_invoice``), and only from
  then do they count (a ``new`` movement in the month of the upgrade).
- **Trials** (billing.py) have 0 lines until they end; a trial that spans a month end is 0
  at that month end, one that converts counts from its first paid period, one whose first
  payment fails is never counted (its open invoice belongs to a subscription that ends
  ``unpaid`` or canceled).

Random customers get the free plan at a realistic rate through a random stream of their own
(the rest of their decisions stay as they were); scripted customers through
``Scenario.subscribe(at, [("free_month_usd", 1)])`` and ``Scenario.change``.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from .records import DAY, Customer, Sub

if TYPE_CHECKING:  # the engine calls these hooks; they only name its type
    from .billing import Account

# Of small customers signing up without a trial: how many start on the free plan, and of
# those how many upgrade to the plan they would have bought.
FREE_RATE = 0.08
UPGRADE_RATE = 0.45


def free_instead(acct: Account, customer: Customer, t: int, items: list) -> tuple | None:
    """For a small customer signing up at ``t``: (the free plan's items, the paid items and
    when and how to upgrade to them, or None) when they start free; None otherwise."""
    if customer.segment != "smb":
        return None
    rng = random.Random(f"{acct.seed}:{acct.id}:{customer.idx}:free:{t}")
    if rng.random() >= FREE_RATE:
        return None
    free = acct.catalog.price("free_month_usd")
    if not free.supports(customer.currency):
        return None
    upgrade = None
    if rng.random() < UPGRADE_RATE:
        proration = rng.choice(("create_prorations", "create_prorations", "always_invoice"))
        upgrade = (t + rng.randint(5, 150) * DAY + rng.randint(0, DAY), items, proration)
    return [(free, 1)], upgrade


def schedule_upgrade(acct: Account, customer: Customer, sub: Sub, upgrade) -> None:
    if upgrade is not None:
        at, items, proration = upgrade
        acct.schedule(customer, at, "call", upgrade_from_free, (sub, items, proration))


def upgrade_from_free(acct: Account, customer: Customer, t: int, sub: Sub, items, proration):
    """A free subscription still running moves to a paid plan (Stripe refuses nothing here:
    the paid prices support the subscription's currency, as they were chosen for it)."""
    if sub.status != "active" or sub.cancel_at_period_end or sub.items[0].price.unit_amount:
        return
    acct.change_items(customer, sub, t, items, proration)


# -- archetypes ---------------------------------------------------------------------------
def archetypes(scenario, ago, later) -> None:
    """Scripted customers that make free plans and every way a trial ends occur in every
    account (see scenarios.archetypes)."""
    # free for good; free then paid with prorations at the next renewal, and at once
    c = scenario(ago(8, 4.0))
    c.subscribe(c.created, [("free_month_usd", 1)])
    c = scenario(ago(9, 12.5))
    sub = c.subscribe(c.created, [("free_month_usd", 1)])
    c.change(later(c.created, 3, 17.0), sub, [("pro_month_usd", 1)])
    c = scenario(ago(7, 20.3), country="DE", currency="eur")
    sub = c.subscribe(c.created, [("free_month_usd", 1)])
    c.change(later(c.created, 2, 9.5), sub, [("pro_month_usd", 1), ("seats_month_usd", 2)],
             "always_invoice")  # fmt: skip
    # a 30-day trial over a month end that converts; one whose first payment never comes
    # (unpaid); one canceled for non-payment with its invoice voided
    c = scenario(ago(6, 1.0))
    c.subscribe(c.created, [("pro_month_usd", 1)], trial_days=30)
    c = scenario(ago(7, 3.0))
    sub = c.subscribe(c.created, [("starter_month_usd", 1)], trial_days=30)
    c.fail_payment(later(c.created, 0, 29), sub, "unpaid")
    c = scenario(ago(5, 9.0))
    sub = c.subscribe(c.created, [("pro_month_usd", 1)], trial_days=14)
    c.fail_payment(later(c.created, 0, 13), sub, "cancel_void")
