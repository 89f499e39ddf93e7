"""Collecting an invoice: a renewal draft finalized an hour after it is made, the payment
attempt, and dunning after a failure (recovered, unpaid, or the subscription canceled).

``Payments`` is a part of ``billing.Account`` (a mixin): its methods use the account's
agenda, events and invoice steps.
"""

from __future__ import annotations

from .records import DAY, DUNNING_DAYS, Customer, Invoice


class Payments:
    """Finalization of renewal drafts, payment attempts and dunning."""

    def do_finalize(self, customer: Customer, t: int, inv: Invoice, how: str) -> None:
        if inv.status != "draft" or inv.deleted:
            return
        self.finalize(inv, t)
        if how == "void":
            self.void(inv, t + 1)
            return
        if how == "mark_uncollectible":
            self.mark_uncollectible(inv, t + 1)
            return
        self.attempt_payment(customer, inv, t + 1)

    def attempt_payment(self, customer: Customer, inv: Invoice, t: int) -> None:
        from . import cash

        sub = inv.sub
        if cash.amount_due(inv) <= 0:
            self.mark_paid(inv, t)
            return
        outcome = None
        if sub is not None:
            for n, (since, what, days) in enumerate(sub.failures):
                if t >= since:
                    outcome = (what, days)
                    del sub.failures[n]
                    break
            if outcome is None and self.random_policy and not sub.scripted:
                outcome = self.random_policy.payment_outcome(self, sub, inv)
        inv.attempt_count += 1
        if outcome is None:
            self.mark_paid(inv, t)
            return
        what, days = outcome
        inv.next_payment_attempt = t + 3 * DAY
        self.emit(t, "invoice.payment_failed", "invoices", inv)
        before = self.snap("subscriptions", sub, t)
        sub.status = "past_due"
        self.sub_updated(sub, t, before)
        if what == "recover":
            cash.after_failed_payment(self, inv, t, t + days * DAY)
            self.schedule(customer, t + days * DAY, "dunning_recovered", inv)
        else:
            self.schedule(customer, t + DUNNING_DAYS * DAY, "dunning_exhausted", inv, what)

    def do_dunning_recovered(self, customer: Customer, t: int, inv: Invoice) -> None:
        sub = inv.sub
        inv.attempt_count += 1
        self.mark_paid(inv, t)
        if sub.status == "past_due":
            before = self.snap("subscriptions", sub, t)
            sub.status = "active"
            self.sub_updated(sub, t, before)

    def do_dunning_exhausted(self, customer: Customer, t: int, inv: Invoice, what: str) -> None:
        sub = inv.sub
        inv.attempt_count += 3
        inv.next_payment_attempt = None
        # Stripe tells of each failed retry; the last one says no attempt is left
        self.emit(t, "invoice.payment_failed", "invoices", inv)
        if sub.status != "past_due":
            return
        before = self.snap("subscriptions", sub, t)
        if what == "unpaid":
            sub.status = "unpaid"
            self.sub_updated(sub, t, before)
            if self.random_policy and not sub.scripted:
                self.random_policy.became_unpaid(self, sub, t)
            return
        # canceled for non-payment; the invoice is voided, written off or left open
        sub.status = "canceled"
        sub.canceled_at = sub.ended_at = t
        sub.cancel_reason = "payment_failed"
        sub.version += 1
        self.end_schedule(sub, t)
        if what == "cancel_void":
            self.void(inv, t)
        elif what == "cancel_uncollectible":
            self.mark_uncollectible(inv, t)
        self.emit(t, "customer.subscription.deleted", "subscriptions", sub)
        self.subscription_ended(customer, sub, t)
