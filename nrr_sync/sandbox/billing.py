"""The billing engine: subscriptions, invoices and events, produced the way Stripe does.

Each customer owns an agenda (a heap of timed actions) and a random stream; running the
agenda up to a time moves every subscription through Stripe's life cycle: creation
invoice, renewals (draft, finalized an hour later, paid or failed), prorations, coupons,
taxes, cancellations, pauses and dunning. The engine keeps compact records; render.py
turns them into Stripe JSON, truth.py values them per docs/metrics.md.

``Account`` is made of this module's subscription life cycle and three parts of its own:
invoicing.py (invoices, discounts, taxes), payments.py (payment attempts and dunning) and
proration.py (item changes and their prorations).
"""

from __future__ import annotations

import heapq
import random

from . import mixed
from .catalog import Catalog, Coupon, Price
from .invoicing import Invoicing
from .payments import Payments
from .proration import Proration
from .records import (
    DAY,
    HOUR,
    INCOMPLETE_HOURS,
    Customer,
    Discount,
    Event,
    Invoice,
    Item,
    Sub,
    b62,
    billing_currency,
    period_end,
)
from .snapshots import snapshot


class Account(Invoicing, Payments, Proration):
    """One Stripe account's history: catalog, customers and the engine that moves them."""

    def __init__(self, account_id: str, seed: str, catalog_factory, now: int):
        self.id = account_id
        self.seed = seed
        self.fragment = b62(int.from_bytes(account_id.encode()[-8:], "big"), 10)[-8:]
        self.id_rng = random.Random(f"{seed}:{account_id}:ids")
        self.clock = now
        self.event_floor = now - 30 * DAY
        self.catalog: Catalog = catalog_factory(self)
        self.customers: list[Customer] = []
        self.discounts: dict[str, Discount] = {}  # id -> discount, for expand[]=discounts
        self.events: list[Event] = []
        self.event_seq = 0
        self.ticks = 0  # tie-breaker of agenda entries at the same second
        self.touched: dict[tuple[str, str], object] | None = None  # set during advance()
        self.random_policy = None  # set by the generator: decisions for unscripted customers

    # -- ids -------------------------------------------------------------------------------
    def make_id(self, prefix: str, ts: int, rng: random.Random | None = None, long=True) -> str:
        rng = rng or self.id_rng
        if not long:
            return f"{prefix}_{b62(rng.getrandbits(84), 14)}"
        return f"{prefix}_1{b62(ts, 6)}{self.fragment}{b62(rng.getrandbits(48), 8)}"

    # -- events ----------------------------------------------------------------------------
    def emit(self, t: int, type_: str, kind: str, obj, previous: tuple | None = None) -> None:
        if self.touched is not None:
            self.touched[(kind, obj.id)] = obj
        if t < self.event_floor:
            return
        self.event_seq += 1
        eid = f"evt_1{b62(t, 6)}{self.fragment}{b62(self.event_seq, 8)}"
        event = Event(eid, t, type_, kind, obj, snapshot(kind, obj), previous)
        self.events.append(event)
        if self.touched is not None:
            self.touched[("events", eid)] = event

    # -- agenda ----------------------------------------------------------------------------
    def schedule(self, customer: Customer, t: int, action: str, *args) -> None:
        self.ticks += 1
        heapq.heappush(customer.agenda, (t, self.ticks, action, args))

    def run(self, customer: Customer, until: int) -> None:
        """Carry out the customer's agenda up to ``until``. The customer's random stream
        lives only while it runs (a Mersenne Twister is 5 kB: too big to keep 100k of);
        a later run reseeds it from the clock at which that run starts."""
        agenda = customer.agenda
        if not agenda or agenda[0][0] > until:
            customer.rng = None
            return
        if customer.rng is None:
            customer.rng = random.Random(f"{self.seed}:{self.id}:{customer.idx}:{self.clock}")
        while agenda and agenda[0][0] <= until:
            t, _tick, action, args = heapq.heappop(agenda)
            getattr(self, "do_" + action)(customer, t, *args)
        customer.rng = None

    # -- subscriptions ---------------------------------------------------------------------
    def sub_updated(self, sub: Sub, t: int, before: tuple) -> None:
        self.emit(t, "customer.subscription.updated", "subscriptions", sub, previous=before)

    def snap(self, kind: str, obj, t: int) -> tuple | None:
        """The object's state before a change at ``t``, if an event will need it."""
        if t < self.event_floor and self.touched is None:
            return None
        return snapshot(kind, obj)

    def subscribe(self, customer: Customer, t: int, items: list[tuple[Price, int]], *,
                  trial_days: int = 0, coupon=None, first_payment: str = "ok",
                  missing_payment_method: bool = False, scripted: bool = False,
                  billing_mode: str | None = None,
                  proration_discounts: str = "itemized") -> Sub:  # fmt: skip
        rng = customer.rng
        sub_id = self.make_id("sub", t, rng)
        sub_items = [Item(self.make_id("si", t, rng, long=False), price, qty, t)
                     for price, qty in items]  # fmt: skip
        trial_end = t + trial_days * DAY if trial_days else None
        anchor = trial_end or t
        first = sub_items[0].price
        end = trial_end or period_end(first, anchor, 0)
        sub = Sub(sub_id, customer, t, sub_items, anchor, -1 if trial_end else 0, t, end,
                  scripted=scripted)  # fmt: skip
        sub.missing_payment_method = missing_payment_method
        if billing_mode is None and not scripted:
            from . import flexible

            billing_mode = flexible.random_mode(self, customer, t)
            if billing_mode == "flexible":
                proration_discounts = flexible.random_proration_discounts(self, customer, t)
        sub.billing_mode = billing_mode or "classic"
        sub.proration_discounts = proration_discounts
        if mixed.wanted(sub.billing_mode, [price for price, _ in items], trial_end):
            mixed.start(sub, t)  # each item on its own cycle; the renewal at the earliest end
            end = sub.period_end
        sub.currency = billing_currency(customer.currency, [price for price, _ in items])
        if trial_end:
            sub.status = "trialing"
            sub.trial_start, sub.trial_end = t, trial_end
        # a coupon, or ((coupon, promotion code id or None), ...) stacked in order
        coupons = ((coupon, None),) if isinstance(coupon, Coupon) else coupon or ()
        for entry, code in coupons:
            sub.discounts += (self.new_discount(customer, sub, t, entry, code),)
        if first_payment != "ok":
            sub.status = "incomplete"
        customer.subs.append(sub)
        if not customer.ever_subscribed:
            before = self.snap("customers", customer, t)
            customer.ever_subscribed = True
            customer.updated = t
            self.emit(t, "customer.updated", "customers", customer, previous=before)
        self.emit(t, "customer.subscription.created", "subscriptions", sub)
        lines = []
        for item in sub.items:
            amount = 0 if trial_end or item.price.usage_type == "metered" else \
                item.price.full_amount(item.quantity, sub.currency)  # fmt: skip
            qty = 0 if item.price.usage_type == "metered" else item.quantity
            desc = f"Trial period for {item.price.product.name}" if trial_end else None
            item_end = mixed.item_period(sub, item)[1]
            lines.append(self.new_line(customer, t, item.price, qty, amount, t, item_end, sub=sub,
                                       item=item, description=desc))  # fmt: skip
        inv = self.create_invoice(customer, sub, t, "subscription_create", lines, (t, t))
        self.finalize(inv, t)
        if first_payment == "ok" or inv.total() <= 0:
            self.mark_paid(inv, t + 1)
            if sub.status == "incomplete":
                sub.status = "active"
        else:
            inv.attempt_count = 1
            self.emit(t + 1, "invoice.payment_failed", "invoices", inv)
            if first_payment == "recover":
                self.schedule(customer, t + rng.randint(HOUR, 20 * HOUR), "incomplete_paid",
                              sub, inv)  # fmt: skip
            else:
                self.schedule(customer, t + INCOMPLETE_HOURS * HOUR, "incomplete_expire", sub,
                              inv)  # fmt: skip
        self.schedule(customer, end, "renew", sub, sub.version)
        if self.random_policy and not sub.scripted and sub.status != "incomplete":
            self.random_policy.period_started(self, sub)
        return sub

    def do_incomplete_paid(self, customer: Customer, t: int, sub: Sub, inv: Invoice) -> None:
        before = self.snap("subscriptions", sub, t)
        self.mark_paid(inv, t)
        sub.status = "active"
        self.sub_updated(sub, t, before)
        if self.random_policy and not sub.scripted:
            self.random_policy.period_started(self, sub)

    def do_incomplete_expire(self, customer: Customer, t: int, sub: Sub, inv: Invoice) -> None:
        before = self.snap("subscriptions", sub, t)
        self.void(inv, t)
        sub.status = "incomplete_expired"
        sub.ended_at = t
        sub.version += 1
        self.sub_updated(sub, t, before)
        self.subscription_ended(customer, sub, t)

    def do_renew(self, customer: Customer, t: int, sub: Sub, version: int) -> None:
        if version != sub.version or not sub.live:
            return
        if sub.cancel_at is not None and t >= sub.cancel_at:
            if sub.status in ("active", "past_due"):
                from . import meters

                meters.final_usage(self, sub, t)
                credits = mixed.unused_credits(self, customer, sub, t)  # items running on
                if credits:
                    self.invoice_now(customer, sub, t, credits, (t, t))
            self.end_subscription(sub, t)
            return
        if sub.status == "paused":
            return
        before = self.snap("subscriptions", sub, t)
        if sub.status == "trialing":
            if sub.missing_payment_method:
                sub.status = "paused"
                sub.version += 1
                self.sub_updated(sub, t, before)
                self.emit(t, "customer.subscription.paused", "subscriptions", sub)
                return
            sub.status = "active"
        if sub.schedule is not None:
            from . import schedules

            schedules.at_renewal(self, sub, t)
        old_start = sub.period_start
        sub.period_index += 1
        renewing = sub.items
        if mixed.active(sub):  # only the items whose own period ends now
            renewing = mixed.renew(sub, t)
        else:
            sub.period_start = t
            sub.period_end = period_end(sub.cycle_price, sub.anchor, sub.period_index)
        lines = list(sub.pending)
        sub.pending = []
        from . import meters

        lines.extend(meters.usage_lines(self, customer, sub, t, old_start))
        for item in renewing:
            price = item.price
            if price.usage_type != "metered":
                lines.append(self.new_line(customer, t, price, item.quantity,
                                           price.full_amount(item.quantity, sub.currency), t,
                                           mixed.item_period(sub, item)[1],
                                           sub=sub, item=item))  # fmt: skip
        inv = self.create_invoice(customer, sub, t, "subscription_cycle", lines, (old_start, t))
        if sub.status == "unpaid":
            inv.auto_advance = False
        elif sub.pause is not None:
            behavior, _ = sub.pause
            if behavior == "keep_as_draft":
                inv.auto_advance = False
            else:
                self.schedule(customer, t + HOUR, "finalize", inv, behavior)
        else:
            self.schedule(customer, t + HOUR, "finalize", inv, "charge")
        self.sub_updated(sub, t, before)
        self.schedule(customer, sub.period_end, "renew", sub, sub.version)
        if self.random_policy and not sub.scripted:
            self.random_policy.period_started(self, sub)

    def cancel(self, customer: Customer, sub: Sub, t: int, mode: str,
               reason: str = "cancellation_requested") -> None:  # fmt: skip
        """mode: period_end | now | now_prorate (credit for the unused time, invoiced now)."""
        if not sub.live or sub.status == "incomplete":
            return
        before = self.snap("subscriptions", sub, t)
        sub.canceled_at = t
        sub.cancel_reason = reason
        if mode == "period_end" and sub.status not in ("paused", "unpaid"):
            sub.cancel_at_period_end = True
            sub.cancel_at = sub.period_end
            self.sub_updated(sub, t, before)
            return
        if mode == "now_prorate" and sub.status in ("active", "past_due"):
            credits = []
            for item in sub.items:
                if item.price.usage_type == "metered":
                    continue
                line = self.credit_line(customer, sub, item, t, "invoice_item_details")
                if line is not None:
                    credits.append(line)
            if credits:
                self.invoice_now(customer, sub, t, credits, (t, t))
        if sub.status == "unpaid":
            # write off what stays unpaid; the renewal drafts made meanwhile are voided
            # (Stripe deletes only one-off drafts: a subscription's draft can only be voided)
            for inv in customer.invoices:
                if inv.sub is sub and inv.status == "open":
                    self.mark_uncollectible(inv, t)
                elif inv.sub is sub and inv.status == "draft" and not inv.deleted:
                    self.finalize_and_void(inv, t)
        self.end_subscription(sub, t)

    def end_subscription(self, sub: Sub, t: int) -> None:
        sub.status = "canceled"
        sub.ended_at = t
        sub.version += 1
        sub.pending = []
        self.end_schedule(sub, t)
        self.emit(t, "customer.subscription.deleted", "subscriptions", sub)
        self.subscription_ended(sub.customer, sub, t)

    def end_schedule(self, sub: Sub, t: int) -> None:
        if sub.schedule is not None:
            from . import schedules

            schedules.subscription_ended(self, sub, t)

    def subscription_ended(self, customer: Customer, sub: Sub, t: int) -> None:
        if self.random_policy and not sub.scripted:
            self.random_policy.subscription_ended(self, customer, sub, t)

    def pause_collection(self, sub: Sub, t: int, behavior: str, resumes_at: int | None) -> None:
        if sub.status not in ("active",):
            return
        before = self.snap("subscriptions", sub, t)
        sub.pause = (behavior, resumes_at)
        self.sub_updated(sub, t, before)
        if resumes_at:
            self.schedule(sub.customer, resumes_at, "resume_collection", sub)

    def do_resume_collection(self, customer: Customer, t: int, sub: Sub) -> None:
        if sub.pause is None or not sub.live:
            return
        before = self.snap("subscriptions", sub, t)
        sub.pause = None
        self.sub_updated(sub, t, before)

    # -- actions scheduled by policies and scripts -----------------------------------------
    def do_call(self, customer: Customer, t: int, fn, args) -> None:
        fn(self, customer, t, *args)

    def delete_customer(self, customer: Customer, t: int) -> None:
        for sub in customer.subs:
            if sub.live:
                self.cancel(customer, sub, t, "now", reason="cancellation_requested")
        customer.deleted_at = t
        self.emit(t, "customer.deleted", "customers", customer)

    def update_customer(self, customer: Customer, t: int, key: str, value: str) -> None:
        before = self.snap("customers", customer, t)
        customer.metadata_extra = tuple(sorted(dict(customer.metadata_extra, **{key: value})
                                               .items()))  # fmt: skip
        customer.updated = t
        self.emit(t, "customer.updated", "customers", customer, previous=before)
