"""Invoices of the billing engine: their lines, stacked discounts and taxes, and the steps
of an invoice's life (finalized, paid, voided, marked uncollectible), each with its event.

``Invoicing`` is a part of ``billing.Account`` (a mixin): its methods use the account's
ids, events and catalog.
"""

from __future__ import annotations

from .catalog import Coupon
from .records import (
    Customer,
    Discount,
    Invoice,
    Line,
    Sub,
    add_months,
    apply_amount_off,
    apply_percent_off,
    divide_half_up,
)


class Invoicing:
    """Invoice lines, invoices, their discounts and taxes, and their status changes."""

    # -- invoices --------------------------------------------------------------------------
    def new_line(self, customer, t, price, quantity, amount, start, end, *, sub=None,
                 item=None, proration=False, parent=None, description=None) -> Line:  # fmt: skip
        parent = parent or ("invoice_item_details" if proration else "subscription_item_details")
        ii_id = None
        if parent == "invoice_item_details" or proration:
            ii_id = self.make_id("ii", t, customer.rng)
        line = Line(price, quantity, amount, start, end,
                    proration, parent, sub.id if sub else None, item.id if item else None, ii_id,
                    description)  # fmt: skip
        line.currency = sub.currency if sub is not None else price.currency
        if item is not None and amount >= 0 and price.usage_type != "metered":
            item.debit = line
        return line

    def create_invoice(self, customer: Customer, sub: Sub | None, t: int, reason: str,
                       lines: list[Line], period: tuple[int, int]) -> Invoice:  # fmt: skip
        inv = Invoice(self.make_id("in", t, customer.rng), customer, sub, t, reason,
                      period[0], period[1], lines)  # fmt: skip
        inv.starting_balance = customer.balance  # a draft shows the current balance
        for position, line in enumerate(lines):
            line.invoice, line.position = inv, position
        self.apply_discounts(inv, sub, t)
        self.apply_taxes(inv)
        customer.invoices.append(inv)
        if sub is not None:
            sub.latest_invoice = inv.id
        self.emit(t, "invoice.created", "invoices", inv)
        return inv

    def apply_discounts(self, inv: Invoice, sub: Sub | None, t: int) -> None:
        """The subscription's discounts still running, then the invoice-level ones, each
        on what the ones before left (Stripe applies stacked discounts in order)."""
        if sub is None:
            return
        running = tuple(d for d in sub.discounts if d.end is None or t < d.end)
        on_invoice = sub.next_invoice_discounts
        for discount in on_invoice:
            discount.invoice_id = inv.id
        sub.next_invoice_discounts = ()
        applied = running + on_invoice
        currency = inv.lines[0].currency if inv.lines else sub.currency
        for discount in applied:
            if discount.coupon.percent_off is not None:
                apply_percent_off(inv.lines, discount)
            else:
                apply_amount_off(inv.lines, discount, discount.coupon.amount_in(currency))
        inv.discounts = applied
        sub.discounts = tuple(d for d in running if d.coupon.duration != "once")

    def new_discount(self, customer: Customer, sub: Sub, t: int, coupon: Coupon,
                     promotion_code: str | None = None) -> Discount:  # fmt: skip
        months = coupon.duration_in_months if coupon.duration == "repeating" else None
        discount = Discount(self.make_id("di", t, customer.rng), coupon, t,
                            add_months(t, months) if months else None, sub.id, customer.id,
                            promotion_code)  # fmt: skip
        self.discounts[discount.id] = discount
        return discount

    def discount_invoice(self, customer: Customer, sub: Sub, t: int, coupon: Coupon) -> None:
        """A coupon put on the subscription's next invoice only (an invoice-level discount)."""
        discount = self.new_discount(customer, sub, t, coupon)
        discount.sub_id = None
        discount.end = None
        sub.next_invoice_discounts += (discount,)

    def apply_taxes(self, inv: Invoice) -> None:
        country = inv.customer.country
        for line in inv.lines:
            behavior = line.price.tax_behavior_in(line.currency)
            if behavior == "unspecified":
                continue
            rate = self.catalog.tax_rate(country, behavior == "inclusive")
            if rate is None:
                continue
            taxable = line.amount - line.discount_amount
            pct = rate.percentage
            if rate.inclusive:
                line.tax_amount = divide_half_up(taxable * pct, 100 + pct)
            else:
                line.tax_amount = divide_half_up(taxable * pct, 100)
            line.tax_rate = rate

    def finalize(self, inv: Invoice, t: int) -> None:
        from . import cash

        cash.apply_balance(self, inv, t)
        inv.status = "open"
        inv.finalized_at = t
        inv.auto_advance = True
        customer = inv.customer
        customer.invoice_seq += 1
        inv.number = f"{customer.invoice_prefix}-{customer.invoice_seq:04d}"
        self.emit(t, "invoice.finalized", "invoices", inv)

    def mark_paid(self, inv: Invoice, t: int) -> None:
        from . import cash

        inv.status = "paid"
        inv.paid_at = t
        inv.next_payment_attempt = None
        if cash.amount_due(inv) > 0 and not inv.attempt_count:
            inv.attempt_count = 1
        self.emit(t, "invoice.paid", "invoices", inv)
        cash.after_paid(self, inv, t)

    def void(self, inv: Invoice, t: int) -> None:
        from . import cash

        if inv.finalized_at is not None:
            cash.give_back_balance(self, inv, t)
        inv.status = "void"
        inv.voided_at = t
        inv.auto_advance = False
        inv.next_payment_attempt = None
        self.emit(t, "invoice.voided", "invoices", inv)

    def finalize_and_void(self, inv: Invoice, t: int) -> None:
        """A subscription's draft cannot be deleted: Stripe voids it (void needs a finalized
        invoice, so it is finalized first, as the Dashboard does)."""
        self.finalize(inv, t)
        self.void(inv, t)

    def mark_uncollectible(self, inv: Invoice, t: int) -> None:
        inv.status = "uncollectible"
        inv.uncollectible_at = t
        inv.auto_advance = False
        inv.next_payment_attempt = None
        self.emit(t, "invoice.marked_uncollectible", "invoices", inv)
