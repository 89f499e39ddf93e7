"""Scripted customers: ``Scenario`` (a customer's life, step by step) and the archetypes
that make every case docs/sandbox.md lists occur in every account."""

from __future__ import annotations

from dataclasses import dataclass, field

from . import cancellations, cash, flexible, free, schedules
from .records import DAY, HOUR, add_months, parse_time


@dataclass
class Scenario:
    """One customer's scripted life, e.g. docs/metrics.md, worked example 1::

        s = Scenario("2024-01-01", name="Example 1")
        sub = s.subscribe("2024-01-01", [("basic_month_usd", 1)])
        s.change("2024-01-16", sub, [("pro_month_usd", 1)], proration="create_prorations")

    Items name catalog price keys (``catalog.price_key``: "pro_month_usd",
    "seats_year_eur", ...) or ``Price`` objects; coupons name catalog coupon keys
    ("forever20", "repeating50", "once25", "amount10", "partner100", "percent15",
    "loyalty5", "welcome_month", "repeating12_5"): one key, or a tuple of keys for stacked
    discounts applied in order; "promo:<key>" redeems the coupon through its promotion code.
    Steps happen in time order; ``sub`` is the ordinal the subscribe step returned.
    """

    created: str | int
    country: str = "US"
    currency: str = "usd"
    segment: str = "smb"
    name: str | None = None
    email: str | None = None
    steps: list = field(default_factory=list)
    subscriptions: int = 0

    def subscribe(self, at, items, *, trial_days=0, coupon=None, first_payment="ok",
                  missing_payment_method=False, billing_mode="classic",
                  proration_discounts="itemized") -> int:  # fmt: skip
        """first_payment: ok | recover (paid within hours) | fail (incomplete_expired);
        billing_mode: classic | flexible (credits take back what was charged);
        proration_discounts (flexible only): itemized | included (in the amounts)."""
        self.steps.append((at, "subscribe", (items, trial_days, coupon, first_payment,
                                             missing_payment_method, billing_mode,
                                             proration_discounts)))  # fmt: skip
        self.subscriptions += 1
        return self.subscriptions - 1

    def change(self, at, sub: int, items, proration: str = "create_prorations") -> None:
        """proration: create_prorations (invoiced at the next renewal) | always_invoice | none."""
        self.steps.append((at, "change", (sub, items, proration)))

    def cancel(self, at, sub: int, mode: str = "period_end") -> None:
        """mode: period_end | now | now_prorate (credit for unused time, invoiced at once)."""
        self.steps.append((at, "cancel", (sub, mode)))

    def cancel_at(self, at, sub: int, when, proration: str = "create_prorations") -> None:
        """Set ``cancel_at`` to ``when`` (a date that need not be a period end); at that date
        the unused rest of the period is credited (cancellations.py) unless ``when`` is in the
        current period and proration is none."""
        self.steps.append((at, "cancel_at", (sub, parse_time(when), proration)))

    def pause(self, at, sub: int, behavior: str = "void", resumes_at=None) -> None:
        self.steps.append((at, "pause", (sub, behavior, resumes_at)))

    def fail_payment(self, at, sub: int, outcome: str = "recover", days: int = 3) -> None:
        """The first payment attempt of ``sub`` at or after ``at`` fails. outcome: recover
        (paid ``days`` later) | unpaid | cancel_void | cancel_uncollectible | cancel_open."""
        self.steps.append((at, "fail", (sub, outcome, days)))

    def discount_invoice(self, at, sub: int, coupon: str) -> None:
        """Put ``coupon`` on the subscription's next invoice only (an invoice-level discount)."""
        self.steps.append((at, "discount_invoice", (sub, coupon)))

    def attach_coupon(self, at, sub: int, coupon) -> None:
        """Attach ``coupon`` (a key, "promo:<key>", or a tuple of them, stacked after the
        discounts ``sub`` has) to the running subscription: it applies from the next invoice
        on, nothing is prorated (attached_coupons.py)."""
        self.steps.append((at, "attach_coupon", (sub, coupon)))

    def manual_invoice(self, at, price_key: str = "onboarding_usd", *, delete_draft=False):
        self.steps.append((at, "manual", (price_key, delete_draft)))

    def update(self, at, key: str, value: str) -> None:
        self.steps.append((at, "update", (key, value)))

    def delete(self, at) -> None:
        self.steps.append((at, "delete", ()))

    def credit_note(self, at, sub: int | None = None, amount: int | None = None,
                    settle: str = "refund", reason: str | None = None) -> None:  # fmt: skip
        """A credit note on the newest open or paid invoice of ``sub`` (None: of the
        customer): ``amount`` in minor units, None for the whole (paid) invoice. On an open
        invoice it lowers what is due; on a paid one ``settle`` says where the money goes:
        refund | customer_balance | out_of_band. Cash only: MRR does not change."""
        self.steps.append((at, "credit_note", (sub, amount, settle, reason)))

    def credit_balance(self, at, amount: int) -> None:
        """Adjust the customer balance by ``amount`` (< 0: a credit the next invoices use)."""
        self.steps.append((at, "credit_balance", (amount,)))

    def schedule(self, at, sub: int, phases, end: int, end_behavior: str = "release") -> None:
        """Put ``sub`` on a subscription schedule (schedules.py). ``phases``: [(start, items,
        proration)] after the current one; start: k (the k-th renewal from ``at``: the renewal
        invoice bills the new items) or a date inside a period (an update with proration
        create_prorations | none). ``end``: the renewal (k) where the last phase ends;
        ``end_behavior``: release | cancel."""
        self.steps.append((at, "schedule", (sub, phases, end, end_behavior)))


def archetypes(start: int, now: int) -> list[Scenario]:
    """Customers whose scripted lives make every case docs/sandbox.md lists occur in every
    account."""
    s: list[Scenario] = []

    def ago(months: int, days: float = 0) -> int:
        return int(add_months(now, -months) - days * DAY)

    def scenario(created: int, **kw) -> Scenario:
        created = max(created, start + DAY)
        sc = Scenario(created, **kw)
        s.append(sc)
        return sc

    def later(t: int, months: int = 0, days: float = 0) -> int:
        return int(add_months(t, months) + days * DAY)

    # upgrade, prorations invoiced at the next renewal
    c = scenario(ago(9, 3.3))
    sub = c.subscribe(c.created, [("starter_month_usd", 1)])
    c.change(later(c.created, 2, 10.2), sub, [("pro_month_usd", 1)])
    # upgrade invoiced at once (always_invoice)
    c = scenario(ago(11, 7.1), segment="mid")
    sub = c.subscribe(c.created, [("pro_month_usd", 1), ("seats_month_usd", 3)])
    c.change(later(c.created, 3, 5.4), sub, [("business_month_usd", 1), ("seats_month_usd", 3)],
             "always_invoice")  # fmt: skip
    # downgrade with prorations
    c = scenario(ago(14, 2.6), segment="mid")
    sub = c.subscribe(c.created, [("business_month_usd", 1)])
    c.change(later(c.created, 4, 12.7), sub, [("pro_month_usd", 1)])
    # many seat changes in one period -> renewal invoice with > 10 lines
    c = scenario(ago(7, 9.9), segment="mid")
    sub = c.subscribe(c.created, [("pro_month_usd", 1), ("seats_month_usd", 5)])
    base = later(c.created, 2)
    for n, qty in enumerate((7, 9, 8, 12, 11, 14)):
        c.change(base + int((n + 1) * 3.7 * DAY), sub, [("pro_month_usd", 1),
                                                        ("seats_month_usd", qty)])  # fmt: skip
    # twelve items on every invoice
    c = scenario(ago(16, 4.2), segment="enterprise")
    addons = [(f"addon_{key}_month_usd", 1) for key in (
        "sso", "audit_log", "sandbox_environments", "data_export", "analytics", "webhooks_plus",
        "custom_roles", "ip_allowlist", "extra_region", "premium_sla")]  # fmt: skip
    c.subscribe(c.created, [("pro_month_usd", 1), ("seats_month_usd", 40)] + addons)
    # coupons
    for coupon, months in (("forever20", 13), ("repeating50", 10), ("once25", 8),
                           ("amount10", 12), ("percent15", 6)):  # fmt: skip
        c = scenario(ago(months, 5.5))
        sub = c.subscribe(c.created, [("pro_month_usd", 1), ("seats_month_usd", 2)],
                          coupon=coupon)  # fmt: skip
        if coupon == "forever20":
            c.change(later(c.created, 3, 11.1), sub, [("pro_month_usd", 1),
                                                      ("seats_month_usd", 4)])  # fmt: skip
    # tax inclusive (eur, DE) with a coupon and an upgrade; tax exclusive (gbp, GB; usd, US)
    c = scenario(ago(12, 1.2), country="DE", currency="eur")
    sub = c.subscribe(c.created, [("starter_month_eur", 1)], coupon="forever20")
    c.change(later(c.created, 5, 9.3), sub, [("pro_month_eur", 1)])
    c = scenario(ago(10, 2.2), country="GB", currency="gbp", segment="mid")
    sub = c.subscribe(c.created, [("pro_month_gbp", 1), ("seats_month_gbp", 4)])
    c.change(later(c.created, 2, 16.0), sub, [("pro_month_gbp", 1), ("seats_month_gbp", 6)],
             "always_invoice")  # fmt: skip
    c = scenario(ago(8, 3.0), segment="mid")
    c.subscribe(c.created, [("business_year_usd", 1), ("seats_year_usd", 10)])
    # cancel at period end (churned); immediate cancel with credit
    c = scenario(ago(12, 4.4))
    sub = c.subscribe(c.created, [("pro_month_usd", 1)])
    c.cancel(later(c.created, 6, 12.0), sub, "period_end")
    c = scenario(ago(15, 6.6))
    sub = c.subscribe(c.created, [("pro_year_usd", 1)])
    c.cancel(later(c.created, 7, 3.3), sub, "now_prorate")
    c = scenario(ago(6, 6.1))
    sub = c.subscribe(c.created, [("starter_month_usd", 1)])
    c.cancel(later(c.created, 2, 20.0), sub, "now")
    # failed payments: recover, unpaid, canceled (void / uncollectible / left open)
    for outcome, months in (("recover", 9), ("unpaid", 8), ("cancel_void", 10),
                            ("cancel_uncollectible", 11), ("cancel_open", 7)):  # fmt: skip
        c = scenario(ago(months, 2.8))
        sub = c.subscribe(c.created, [("pro_month_usd", 1)])
        c.fail_payment(later(c.created, 3, -1), sub, outcome, days=4)
    # dunning ending within the last 30 days (invoice.voided / marked_uncollectible events)
    for outcome, days in (("cancel_void", 25), ("cancel_uncollectible", 24)):
        c = scenario(ago(4, days))
        sub = c.subscribe(c.created, [("pro_month_usd", 1)])
        c.fail_payment(ago(0, days + 2), sub, outcome)
    # past due right now (renewal a few days ago failed, retries still running)
    c = scenario(ago(5, 4.0))
    sub = c.subscribe(c.created, [("starter_month_usd", 1)])
    c.fail_payment(ago(0, 6.0), sub, "unpaid")
    # paused collection: void (resumed), keep_as_draft (still paused), mark_uncollectible
    c = scenario(ago(10, 1.7))
    sub = c.subscribe(c.created, [("pro_month_usd", 1)])
    c.pause(later(c.created, 4, 3), sub, "void", resumes_at=later(c.created, 6, 10))
    c = scenario(ago(6, 8.4))
    sub = c.subscribe(c.created, [("starter_month_usd", 1)])
    c.pause(later(c.created, 3, 2), sub, "keep_as_draft")
    c = scenario(ago(9, 0.6))
    sub = c.subscribe(c.created, [("pro_month_usd", 1)])
    c.pause(later(c.created, 5, 2), sub, "mark_uncollectible", resumes_at=later(c.created, 7, 1))
    # trials: converted; trialing now; ended without a payment method (status paused)
    c = scenario(ago(7, 2.0))
    c.subscribe(c.created, [("pro_month_usd", 1)], trial_days=14)
    c = scenario(ago(0, 5.0))
    c.subscribe(c.created, [("pro_month_usd", 1)], trial_days=30)
    c = scenario(ago(3, 2.0))
    c.subscribe(c.created, [("starter_month_usd", 1)], trial_days=14,
                missing_payment_method=True)  # fmt: skip
    # several subscriptions; churned and came back
    c = scenario(ago(13, 9.0), segment="mid")
    c.subscribe(c.created, [("pro_month_usd", 1)])
    c.subscribe(later(c.created, 2, 4), [("support_year_usd", 1)])
    c = scenario(ago(20, 3.1))
    sub = c.subscribe(c.created, [("starter_month_usd", 1)])
    c.cancel(later(c.created, 4, 10), sub, "period_end")
    c.subscribe(later(c.created, 9, 2), [("pro_month_usd", 1)])
    # a renewal draft awaiting finalization (created within the hour before now)
    c = scenario(add_months(now - 1800, -5))
    c.subscribe(c.created, [("pro_month_usd", 1)])
    # deleted in the last 30 days (churned earlier)
    c = scenario(ago(14, 4.0))
    sub = c.subscribe(c.created, [("starter_month_usd", 1)])
    c.cancel(later(c.created, 5, 1), sub, "period_end")
    c.delete(ago(0, 10.0))
    free.archetypes(scenario, ago, later)  # free plans; trials over a month end, unpaid
    flexible.archetypes(scenario, ago, later)  # credits of what was charged
    # currencies, intervals and price models
    c = scenario(ago(12, 6.0), country="JP", currency="jpy")
    sub = c.subscribe(c.created, [("pro_month_jpy", 1)])
    c.change(later(c.created, 4, 15.0), sub, [("pro_year_jpy", 1)])  # interval switch
    c = scenario(ago(13, 3.5), segment="mid")
    c.subscribe(c.created, [("pro_quarter_usd", 1)])
    c = scenario(ago(4, 1.5))
    c.subscribe(c.created, [("boost_week_usd", 2)])
    c = scenario(ago(9, 7.7), segment="enterprise")
    sub = c.subscribe(c.created, [("platform_month_usd", 25)])
    c.change(later(c.created, 3, 8.0), sub, [("platform_month_usd", 60)])
    c = scenario(ago(8, 5.2), segment="mid")
    sub = c.subscribe(c.created, [("api_plan_month_usd", 12)])
    c.change(later(c.created, 2, 14.0), sub, [("api_plan_month_usd", 30)], "always_invoice")
    c = scenario(ago(11, 2.4), segment="mid")
    sub = c.subscribe(c.created, [("pro_month_usd", 1), ("storage_month_usd", 37)])
    c.change(later(c.created, 5, 6.0), sub, [("pro_month_usd", 1), ("storage_month_usd", 58)])
    c = scenario(ago(10, 3.9), segment="mid")
    c.subscribe(c.created, [("pro_month_usd", 1), ("api_usage_month_usd", 1)])
    # licensed beside two meters (whole cents and a fractional unit_amount_decimal), ending
    # at a period end with its last usage on a final invoice
    c = scenario(ago(9, 8.6), segment="mid")
    sub = c.subscribe(
        c.created,
        [
            ("pro_month_usd", 1),
            ("seats_month_usd", 3),
            ("api_usage_month_usd", 1),
            ("events_month_usd", 1),
        ],
    )
    c.cancel(later(c.created, 5, 3.0), sub, "period_end")
    c = scenario(ago(6, 9.3), segment="mid")
    c.subscribe(c.created, [("pro_month_usd", 1), ("events_month_usd", 1)])
    # incomplete: expired long ago, and one still incomplete now
    c = scenario(ago(6, 0.0))
    c.subscribe(c.created, [("pro_month_usd", 1)], first_payment="fail")
    c = scenario(now - 5 * HOUR)
    c.subscribe(c.created, [("starter_month_usd", 1)], first_payment="fail")
    # monthly -> annual (new cycle, credit for the unused month, invoiced at once)
    c = scenario(ago(9, 4.1))
    sub = c.subscribe(c.created, [("pro_month_usd", 1)])
    c.change(later(c.created, 4, 9.0), sub, [("pro_year_usd", 1)], "always_invoice")
    # 100% coupon (MRR 0); annual plan set to cancel at its period end (still active)
    c = scenario(ago(5, 2.2))
    c.subscribe(c.created, [("pro_month_usd", 1)], coupon="partner100")
    c = scenario(ago(10, 4.0))
    sub = c.subscribe(c.created, [("pro_year_usd", 1)])
    c.cancel(ago(0, 20.0), sub, "period_end")
    # recent changes (events with previous_attributes): upgrade invoiced at once, a change
    # still pending (invoiced at the next renewal, after now), metadata update
    c = scenario(ago(6, 12.5))
    sub = c.subscribe(c.created, [("starter_month_usd", 1)])
    c.change(ago(0, 7.0), sub, [("pro_month_usd", 1)], "always_invoice")
    c.update(ago(0, 3.0), "plan_tier", "pro")
    c = scenario(ago(5, 20.0), segment="mid")
    sub = c.subscribe(c.created, [("pro_month_usd", 1), ("seats_month_usd", 8)])
    c.change(ago(0, 2.0), sub, [("pro_month_usd", 1), ("seats_month_usd", 5)])
    # one price for every currency: usd prices billed in eur (tax inclusive, DE) and gbp
    # through their currency_options, with seat changes prorated at the next renewal and at
    # once, and a tiered price whose tiers differ per currency
    c = scenario(ago(9, 4.6), country="DE", currency="eur", segment="mid")
    sub = c.subscribe(c.created, [("pro_month_usd", 1), ("seats_month_usd", 4)])
    c.change(later(c.created, 2, 11.3), sub, [("pro_month_usd", 1), ("seats_month_usd", 7)])
    c.change(later(c.created, 4, 6.8), sub, [("business_month_usd", 1), ("seats_month_usd", 7)],
             "always_invoice")  # fmt: skip
    c = scenario(ago(8, 2.9), country="GB", currency="gbp", segment="mid")
    sub = c.subscribe(c.created, [("platform_month_usd", 8)])
    c.change(later(c.created, 3, 9.4), sub, [("platform_month_usd", 23)])
    # stacked discounts: two percent-off coupons (one through a promotion code) on an
    # upgrade prorated at the next renewal; percent and amount-off on an upgrade invoiced
    # at once; an amount-off coupon in eur (its currency option) with a seat change; a
    # 100%-off coupon through an upgrade; a one-invoice discount on a renewal
    c = scenario(ago(10, 3.7), segment="mid")
    sub = c.subscribe(c.created, [("pro_month_usd", 1), ("seats_month_usd", 3)],
                      coupon=("forever20", "promo:loyalty5"))  # fmt: skip
    c.change(later(c.created, 3, 12.6), sub, [("business_month_usd", 1), ("seats_month_usd", 3)])
    c = scenario(ago(9, 1.9))
    sub = c.subscribe(c.created, [("starter_month_usd", 1), ("seats_month_usd", 2)],
                      coupon=("repeating12_5", "amount10"))  # fmt: skip
    c.change(later(c.created, 1, 17.2), sub, [("pro_month_usd", 1), ("seats_month_usd", 2)],
             "always_invoice")  # fmt: skip
    c = scenario(ago(8, 6.3), country="FR", currency="eur")
    sub = c.subscribe(c.created, [("pro_month_eur", 1), ("seats_month_eur", 2)],
                      coupon="amount10")  # fmt: skip
    c.change(later(c.created, 2, 3.1), sub, [("pro_month_eur", 1), ("seats_month_eur", 5)])
    c = scenario(ago(7, 5.0))
    sub = c.subscribe(c.created, [("starter_month_usd", 1)], coupon="partner100")
    c.change(later(c.created, 2, 8.0), sub, [("pro_month_usd", 1)])
    c = scenario(ago(6, 2.4), country="GB", currency="gbp")
    sub = c.subscribe(c.created, [("pro_month_gbp", 1)])
    c.discount_invoice(later(c.created, 2, 5.0), sub, "welcome_month")
    # an inactive (legacy) price still billed; a manual invoice and a deleted draft
    c = scenario(ago(30, 0.0))
    c.subscribe(c.created, [("pro_legacy_month_usd", 1)])
    c = scenario(ago(4, 3.0), segment="enterprise")
    c.subscribe(c.created, [("business_month_usd", 1), ("seats_month_usd", 25)])
    c.manual_invoice(c.created + 600)
    c.manual_invoice(ago(0, 4.0), delete_draft=True)
    cash.archetypes(scenario, ago, later)
    schedules.archetypes(scenario, ago, later)
    cancellations.archetypes(scenario, ago, later)
    return [sc for sc in s if parse_time(sc.created) < now]
