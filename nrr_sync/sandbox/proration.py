"""Changing a running subscription's items, with Stripe's prorations: the credit for the
unused rest of the period, the charge for the new items, a new billing cycle when the
interval changes, and invoicing the prorations at once when asked.

``Proration`` is a part of ``billing.Account`` (a mixin): its methods use the account's
agenda, events and invoice steps.
"""

from __future__ import annotations

from . import mixed
from .catalog import Price
from .records import Customer, Item, Line, Sub, divide_half_up, period_end


class Proration:
    """Item changes and the proration lines they make."""

    def prorate(self, sub: Sub, t: int, price: Price, quantity: int, sign: int,
                item: Item | None = None) -> int:  # fmt: skip
        """``price`` at ``quantity`` for the rest of the period (``item``'s own period on a
        mixed-interval subscription) at ``t``, rounded half away from zero."""
        start, end = mixed.item_period(sub, item)
        full = price.full_amount(quantity, sub.currency)
        return sign * divide_half_up(full * (end - t), end - start)

    def change_items(self, customer: Customer, sub: Sub, t: int, new: list[tuple[Price, int]],
                     proration: str = "create_prorations") -> None:  # fmt: skip
        """Replace the subscription's items (position i keeps item i's id) at ``t``."""
        if not sub.live or sub.status in ("incomplete", "paused") or t >= sub.period_end:
            return
        if not all(price.supports(sub.currency) for price, _ in new):
            return  # Stripe refuses a price that has no amount in the subscription's currency
        if not mixed.accepts(sub, new):
            return  # items of several intervals that Stripe or the sandbox does not allow
        is_mixed = mixed.active(sub)
        before = self.snap("subscriptions", sub, t)
        old = [(item.price, item.quantity) for item in sub.items]
        new_interval = (new[0][0].interval, new[0][0].interval_count)
        reset = new_interval != (sub.cycle_price.interval, sub.cycle_price.interval_count)
        reset = reset and not is_mixed
        if sub.status == "trialing":
            proration = "none"
            reset = False
        prorate = proration != "none"
        lines: list[Line] = []
        parent = "subscription_item_details" if proration == "always_invoice" or reset else \
            "invoice_item_details"  # fmt: skip
        items: list[Item] = []
        for n in range(max(len(old), len(new))):
            item = sub.items[n] if n < len(sub.items) else None
            credit = (
                item is not None
                and prorate
                and item.price.usage_type != "metered"
                and (n >= len(new) or new[n] != old[n] or reset)
            )
            if credit:
                line = self.credit_line(customer, sub, item, t, parent)
                if line is not None:
                    lines.append(line)
            if n >= len(new):
                continue
            price, quantity = new[n]
            if item is None:
                item = Item(self.make_id("si", t, customer.rng, long=False), price, quantity, t)
                if is_mixed:
                    mixed.adopt_period(sub, item)
            changed = n >= len(old) or new[n] != old[n]
            item.price, item.quantity = price, quantity
            items.append(item)
            if prorate and (changed or reset) and price.usage_type != "metered" and not reset:
                amount = self.prorate(sub, t, price, quantity, 1, item)
                if amount:
                    lines.append(self.new_line(customer, t, price, quantity, amount, t,
                                               mixed.item_period(sub, item)[1], sub=sub,
                                               item=item, proration=True,
                                               parent=parent))  # fmt: skip
        sub.items = items
        if reset:
            # A new interval restarts the billing cycle now and bills the new period at once.
            sub.anchor = t
            sub.period_index = 0
            start = sub.period_start
            sub.period_start = t
            sub.period_end = period_end(sub.cycle_price, t, 0)
            sub.version += 1
            for item in sub.items:
                if item.price.usage_type == "metered":
                    continue
                lines.append(self.new_line(customer, t, item.price, item.quantity,
                                           item.price.full_amount(item.quantity, sub.currency), t,
                                           sub.period_end, sub=sub, item=item))  # fmt: skip
            self.invoice_now(customer, sub, t, lines, (start, t))
            self.schedule(customer, sub.period_end, "renew", sub, sub.version)
        elif proration == "always_invoice" and lines:
            self.invoice_now(customer, sub, t, lines, (t, t))
        else:
            sub.pending.extend(lines)
        self.sub_updated(sub, t, before)

    def credit_line(self, customer: Customer, sub: Sub, item: Item, t: int,
                    parent: str) -> Line | None:  # fmt: skip
        """The credit for the unused rest of ``item``'s period at ``t`` (None if 0): in
        classic mode the current price prorated, in flexible mode what was charged."""
        if sub.billing_mode == "flexible":
            from . import flexible

            return flexible.credit_line(self, customer, sub, item, t, parent)
        amount = self.prorate(sub, t, item.price, item.quantity, -1, item)
        if not amount:
            return None
        return self.new_line(customer, t, item.price, item.quantity, amount, t,
                             mixed.item_period(sub, item)[1],
                             sub=sub, item=item, proration=True, parent=parent)  # fmt: skip

    def invoice_now(self, customer, sub, t, lines, period, reason="subscription_update"):
        lines = list(sub.pending) + lines
        sub.pending = []
        inv = self.create_invoice(customer, sub, t, reason, lines, period)
        self.finalize(inv, t)
        self.attempt_payment(customer, inv, t + 1)
        return inv
