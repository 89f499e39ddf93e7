"""Coupons attached to a subscription that is already running (a retention offer, a
negotiated discount), the way Stripe does it.

Updating a subscription's ``discounts`` creates a discount object: Stripe emits
``customer.discount.created`` (its ``data.object`` is the discount, naming its
``customer`` and ``subscription``) and ``customer.subscription.updated`` (the new id in
``discounts``, the old list in ``previous_attributes``). Nothing is prorated: the
discount applies from the subscription's next invoice on (the pending proration items it
bills included), stacked after the discounts already there; a repeating coupon runs its
months from the attachment.

Scripted with ``Scenario.attach_coupon``. Random customers get a retention offer now and
then, decided by a hash of the subscription and its renewal (not the customer's random
stream) and only after the instant the world was generated at, so a seed's history up to
its ``now`` stays what it was; ``World.advance`` brings them.
"""

from __future__ import annotations

import zlib

from .engine import Engine
from .records import DAY, Customer, Sub

# Of renewals of random subscriptions without a discount: how many get a coupon attached
# within the period, and which coupons merchants offer (catalog keys).
OFFER_RATE = 0.015
OFFERS = ("repeating50", "forever20", "percent15", "once25")


def attach(acct: Engine, customer: Customer, sub: Sub, t: int, coupons) -> bool:
    """Attach ``coupons`` ((Coupon, promotion code id or None), ...) to ``sub`` at ``t``;
    False where Stripe would have nothing to apply them to (ended or incomplete)."""
    if not sub.live or sub.status in ("incomplete", "incomplete_expired"):
        return False
    before = acct.snap("subscriptions", sub, t)
    added = tuple(acct.new_discount(customer, sub, t, coupon, code) for coupon, code in coupons)
    sub.discounts += added
    for discount in added:
        acct.emit(t, "customer.discount.created", "discounts", discount)
    acct.sub_updated(sub, t, before)
    return True


def step_attach_coupon(acct: Engine, customer: Customer, t: int, sub_index: int,
                       coupons) -> None:  # fmt: skip
    if not attach(acct, customer, customer.subs[sub_index], t, coupons):
        raise ValueError(f"subscription {sub_index} of {customer.id} takes no coupon at {t}")


def draw(sub: Sub, what: str) -> float:
    """A uniform draw in [0, 1) fixed by the subscription and its current period."""
    return zlib.crc32(f"{sub.id}:{sub.period_start}:{what}".encode()) / 2**32


def maybe_offer(acct: Engine, sub: Sub, generated_at: int) -> None:
    """At a renewal of a random subscription: now and then a coupon some days later."""
    if sub.discounts or sub.status != "active" or draw(sub, "offer") >= OFFER_RATE:
        return
    length = sub.period_end - sub.period_start
    at = sub.period_start + min(length - 1, int(draw(sub, "when") * 20 * DAY) + 1)
    if at <= generated_at:
        return  # the world's history up to the instant it was generated at stays as it was
    key = OFFERS[int(draw(sub, "coupon") * len(OFFERS))]
    acct.schedule(sub.customer, at, "call", offer, (sub, acct.catalog.coupons[key]))


def offer(acct: Engine, customer: Customer, t: int, sub: Sub, coupon) -> None:
    if sub.status == "active" and sub.cancel_at is None and not sub.discounts:
        attach(acct, customer, sub, t, ((coupon, None),))
