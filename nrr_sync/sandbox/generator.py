"""A deterministic, seeded Stripe account history and its ground truth.

``generate(SandboxOptions(...))`` simulates every customer of every account from the
history start to ``now`` with the billing engine (billing.py) and returns a ``World``:
Stripe JSON objects on demand (render.py), ``advance(seconds)`` to move the clock on, and
``truth()`` — each customer's MRR per docs/metrics.md from the engine's own records (truth.py).

Customers are of two kinds: scripted (the archetypes that make sure every case of
docs/sandbox.md occurs, and any ``Scenario`` a test passes) and random (decisions drawn from the
customer's own random stream, so customers are independent of each other).
"""

from __future__ import annotations

import gc
import math
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction

from . import cancellations, cash, flexible, free, meters, render, schedules
from .billing import DAY, HOUR, Account, Customer, Invoice, Sub, add_months, b62
from .catalog import Catalog, build_catalog
from .truth import TruthOptions, customer_truth, snapshot_instants

DEFAULT_FX: dict[str, float] = {"eur": 1.1, "gbp": 1.3, "jpy": 0.0067}
KINDS = (
    "customers",
    "products",
    "prices",
    "subscriptions",
    "invoices",
    "credit_notes",
    "subscription_schedules",
    "billing_meters",
    "events",
)

Change = tuple[str, str, dict | None, str]  # (account_id, kind, object or None if deleted, id)


@dataclass
class SandboxOptions:
    seed: int = 7
    customers: int = 500
    start: str = "2023-01"
    now: str = "2026-01-15T00:00:00Z"
    accounts: int = 1
    currency: str = "usd"
    fx: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_FX))
    # Scripted customers added to the first account (see Scenario), and whether the first
    # customers of each account are the archetypes that cover every case docs/sandbox.md lists.
    scenarios: tuple = ()
    archetypes: bool = True


def parse_time(value: str | int) -> int:
    """'2024-01-16', '2024-01-16T00:00:00Z' or unix seconds -> unix seconds (UTC)."""
    if isinstance(value, int):
        return value
    text = value.strip().replace("Z", "+00:00")
    if len(text) == 7:
        text += "-01"
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp())


def account_ids(count: int) -> list[str]:
    return [f"acct_1SandboxA{n + 1:04d}" for n in range(count)]


# -- scripted customers -------------------------------------------------------------------
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
                  missing_payment_method=False, billing_mode="classic") -> int:  # fmt: skip
        """first_payment: ok | recover (paid within hours) | fail (incomplete_expired);
        billing_mode: classic | flexible (credits take back what was charged)."""
        self.steps.append((at, "subscribe", (items, trial_days, coupon, first_payment,
                                             missing_payment_method, billing_mode)))  # fmt: skip
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


def resolve_items(catalog: Catalog, items) -> list:
    return [(catalog.price(p) if isinstance(p, str) else p, q) for p, q in items]


def resolve_coupons(catalog: Catalog, coupon) -> tuple:
    """A key or a tuple of keys -> ((Coupon, promotion code id or None), ...)."""
    keys = () if coupon is None else (coupon,) if isinstance(coupon, str) else tuple(coupon)
    resolved = []
    for key in keys:
        code = None
        if key.startswith("promo:"):
            key = key.removeprefix("promo:")
            code = catalog.promotion_codes[key]
        resolved.append((catalog.coupons[key], code))
    return tuple(resolved)


def script_step(acct: Account, customer: Customer, t: int, op: str, args: tuple) -> None:
    cat = acct.catalog
    if op == "subscribe":
        items, trial_days, coupon, first_payment, missing, billing_mode = args
        acct.subscribe(customer, t, resolve_items(cat, items), trial_days=trial_days,
                       coupon=resolve_coupons(cat, coupon),
                       first_payment=first_payment, missing_payment_method=missing,
                       scripted=True, billing_mode=billing_mode)  # fmt: skip
        return
    if op == "manual":
        price_key, delete_draft = args
        manual_invoice(acct, customer, t, cat.price(price_key), delete_draft)
        return
    if op == "update":
        acct.update_customer(customer, t, *args)
        return
    if op == "delete":
        acct.delete_customer(customer, t)
        return
    if op in EXTRA_STEPS:
        EXTRA_STEPS[op](acct, customer, t, *args)
        return
    sub = customer.subs[args[0]]
    if op == "discount_invoice":
        acct.discount_invoice(customer, sub, t, cat.coupons[args[1]])
    elif op == "change":
        acct.change_items(customer, sub, t, resolve_items(cat, args[1]), args[2])
    elif op == "cancel":
        acct.cancel(customer, sub, t, args[1])
    elif op == "pause":
        resumes = parse_time(args[2]) if args[2] is not None else None
        acct.pause_collection(sub, t, args[1], resumes)
    elif op == "fail":
        sub.failures.append((t, args[1], args[2]))


EXTRA_STEPS = {**cash.STEPS, **schedules.STEPS, **cancellations.STEPS}


def manual_invoice(acct: Account, customer: Customer, t: int, price, delete_draft: bool):
    line = acct.new_line(customer, t, price, 1, price.full_amount(1), t, t,
                         parent="invoice_item_details")  # fmt: skip
    inv = acct.create_invoice(customer, None, t, "manual", [line], (t, t))
    inv.auto_advance = False
    if delete_draft:
        inv.deleted = True
        acct.emit(t + 600, "invoice.deleted", "invoices", inv)
        return inv
    acct.finalize(inv, t + 300)
    acct.mark_paid(inv, t + 301)
    return inv


def add_scripted(acct: Account, scenario: Scenario, idx: int) -> Customer:
    created = parse_time(scenario.created)
    customer = new_customer(acct, idx, created, scenario.country, scenario.currency,
                            scenario.segment, name=scenario.name, email=scenario.email,
                            scripted=True)  # fmt: skip
    for at, op, args in sorted(scenario.steps, key=lambda s: parse_time(s[0])):
        acct.schedule(customer, parse_time(at), "call", script_step, (op, args))
    return customer


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


# -- random customers ---------------------------------------------------------------------
COUNTRIES = (("US", "usd", 46), ("CA", "usd", 5), ("AU", "usd", 4), ("GB", "gbp", 10),
             ("DE", "eur", 11), ("FR", "eur", 8), ("NL", "eur", 6), ("JP", "jpy", 5),
             ("IN", "usd", 5))  # fmt: skip
SEGMENTS = (("smb", 70), ("mid", 22), ("enterprise", 8))
CHURN_PER_MONTH = {"smb": 0.03, "mid": 0.015, "enterprise": 0.008}
WORDS = ("Acme", "Blue", "Nimbus", "Orbit", "Pixel", "Quartz", "River", "Summit", "Vertex",
         "Willow", "Zenith", "Atlas", "Beacon", "Cobalt", "Delta", "Ember", "Fable", "Granite",
         "Harbor", "Indigo", "Juniper", "Kepler", "Lumen", "Maple", "Nova", "Onyx")  # fmt: skip
SUFFIXES = ("Labs", "Inc", "GmbH", "Ltd", "Studio", "Systems", "Analytics", "Health", "Co")


def pick(rng: random.Random, weighted) -> tuple:
    total = sum(w[-1] for w in weighted)
    x = rng.random() * total
    for entry in weighted:
        x -= entry[-1]
        if x < 0:
            return entry
    return weighted[-1]


def new_customer(acct: Account, idx: int, created: int, country: str, currency: str,
                 segment: str, *, name=None, email=None, scripted=False,
                 rng: random.Random | None = None) -> Customer:  # fmt: skip
    rng = rng or random.Random(f"{acct.seed}:{acct.id}:customer:{idx}")
    if name is None:
        name = f"{rng.choice(WORDS)} {rng.choice(WORDS)} {rng.choice(SUFFIXES)}"
    if email is None:
        email = f"billing+{idx}@{name.split()[0].lower()}{idx}.example"
    customer = Customer(idx, acct.make_id("cus", created, rng, long=False), created, name,
                        email, country, currency, segment, b62(rng.getrandbits(40), 8).upper(),
                        rng, scripted=scripted)  # fmt: skip
    acct.customers.append(customer)
    acct.emit(created, "customer.created", "customers", customer)
    return customer


def plan_items(catalog: Catalog, rng: random.Random, customer: Customer) -> list:
    cur, seg = customer.currency, customer.segment
    r = rng.random()
    key = catalog.by_key.get

    def price(plan: str, interval: str):
        return key(f"{plan}_{interval}_{cur}") or key(f"{plan}_month_{cur}")

    if seg == "smb":
        if cur == "usd" and r < 0.05:
            return [(catalog.price("boost_week_usd"), rng.randint(1, 3))]
        plan = "starter" if r < 0.55 else "pro"
        interval = "year" if rng.random() < 0.18 else "month"
        return [(price(plan, interval), 1)]
    if seg == "mid":
        if cur == "usd" and r < 0.12:
            return [(catalog.price(rng.choice(("platform_month_usd", "api_plan_month_usd"))),
                     rng.randint(4, 40))]  # fmt: skip
        interval = rng.choice(("month", "month", "month", "quarter", "year"))
        if interval == "quarter":
            return [(price("pro", "quarter"), 1)]
        items = [(price("pro", interval), 1), (price("seats", interval), rng.randint(2, 20))]
        if cur == "usd" and interval == "month" and rng.random() < 0.15:
            items.append((catalog.price("api_usage_month_usd"), 1))
        if cur == "usd" and interval == "month" and rng.random() < 0.1:
            items.append((catalog.price("events_month_usd"), 1))
        if cur == "usd" and interval == "month" and rng.random() < 0.15:
            items.append((catalog.price("storage_month_usd"), rng.randint(5, 80)))
        return items
    interval = "year" if rng.random() < 0.5 else "month"
    if cur not in ("usd", "eur", "gbp"):
        return [(price("pro", interval), 1), (price("seats", interval), rng.randint(20, 150))]
    items = [(price("business", interval), 1), (price("seats", interval), rng.randint(20, 200))]
    if cur == "usd" and interval == "month" and rng.random() < 0.3:
        addons = [p for p in catalog.prices if p.key.startswith("addon_")]
        for p in rng.sample(addons, rng.randint(2, len(addons))):
            items.append((p, 1))
    return [item for item in items if item[0] is not None]


def global_prices(acct: Account, customer: Customer, t: int, items: list) -> list:
    """A third of eur / gbp customers are sold the usd prices, billed in their currency
    through the prices' currency_options (a stream of its own, so that every other decision
    of the customer stays as it was)."""
    if customer.currency not in ("eur", "gbp"):
        return items
    rng = random.Random(f"{acct.seed}:{acct.id}:{customer.idx}:global:{t}")
    if rng.random() >= 0.33:
        return items
    suffix = "_" + customer.currency
    usd = [acct.catalog.by_key.get(price.key.removesuffix(suffix) + "_usd") for price, _ in items]
    if any(price is None or not price.supports(customer.currency) for price in usd):
        return items
    if customer.segment == "mid" and rng.random() < 0.2:
        return [(acct.catalog.price("platform_month_usd"), rng.randint(4, 40))]
    return [(price, qty) for price, (_, qty) in zip(usd, items, strict=True)]


def rng_of(acct: Account, customer: Customer, t: int, purpose: str) -> random.Random:
    """A random stream of its own for a newer decision, so that adding it leaves every
    other decision of the customer as it was."""
    return random.Random(f"{acct.seed}:{acct.id}:{customer.idx}:{purpose}:{t}")


def more_discounts(acct: Account, customer: Customer, t: int, coupon) -> tuple:
    """Of the sign-ups with a coupon, a fifth stack a 5% loyalty coupon on it and a tenth
    redeem theirs through a promotion code."""
    if coupon is None:
        return ()
    rng = rng_of(acct, customer, t, "discounts")
    cat = acct.catalog
    first = (coupon, cat.promotion_codes.get(coupon_key(cat, coupon)) if rng.random() < 0.1
             else None)  # fmt: skip
    if rng.random() < 0.2 and coupon.percent_off != 100:
        return (first, (cat.coupons["loyalty5"], None))
    return (first,)


def coupon_key(catalog: Catalog, coupon) -> str:
    return next(key for key, c in catalog.coupons.items() if c is coupon)


class RandomPolicy:
    """Decisions for unscripted customers, drawn from each customer's own stream."""

    def __init__(self, now: int):
        self.horizon = now

    def start_subscription(self, acct: Account, customer: Customer, t: int) -> None:
        if customer.deleted_at is not None:
            return
        rng = customer.rng
        items = global_prices(acct, customer, t, plan_items(acct.catalog, rng, customer))
        coupon = None
        if rng.random() < 0.15:
            key = pick(rng, (("forever20", 4), ("repeating50", 4), ("once25", 3), ("amount10", 2),
                             ("percent15", 2), ("partner100", 0.3)))[0]  # fmt: skip
            coupon = acct.catalog.coupons[key]
            if coupon.percent_off is None and coupon.amount_in(customer.currency) is None:
                coupon = None
        trial = 14 if customer.segment == "smb" and rng.random() < 0.25 else 0
        first = "ok"
        r = rng.random()
        if r < 0.015:
            first = "fail"
        elif r < 0.03:
            first = "recover"
        missing = bool(trial) and rng.random() < 0.1
        coupons = more_discounts(acct, customer, t, coupon)
        starts_free = None if trial else free.free_instead(acct, customer, t, items)
        if starts_free is not None:  # the free plan instead, maybe upgraded to items later
            items, coupons, first, missing = starts_free[0], (), "ok", False
        sub = acct.subscribe(customer, t, items, trial_days=trial, coupon=coupons,
                             first_payment=first, missing_payment_method=missing)  # fmt: skip
        if starts_free is not None:
            free.schedule_upgrade(acct, customer, sub, starts_free[1])
        else:
            schedules.maybe_ramp(acct, customer, sub, t)
        if starts_free is None and rng_of(acct, customer, t, "invoice-discount").random() < 0.03:
            welcome = acct.catalog.coupons["welcome_month"]
            if welcome.amount_in(customer.currency) is not None:
                acct.discount_invoice(customer, customer.subs[-1], t, welcome)
        if customer.segment == "enterprise" and rng.random() < 0.3 and customer.currency == "usd":
            manual_invoice(acct, customer, t + 900, acct.catalog.price("onboarding_usd"), False)
        if len(customer.subs) == 1 and rng.random() < 0.08:
            acct.schedule(customer, t + rng.randint(20, 200) * DAY, "call",
                          RandomPolicy.second_subscription, (self,))  # fmt: skip

    @staticmethod
    def second_subscription(acct: Account, customer: Customer, t: int, self) -> None:
        if customer.deleted_at is not None:
            return
        rng = customer.rng
        cat = acct.catalog
        price = cat.by_key.get(f"support_{rng.choice(('month', 'year'))}_{customer.currency}")
        if price is None:
            price = cat.price(f"starter_month_{customer.currency}")
        acct.subscribe(customer, t, [(price, 1)])

    def period_started(self, acct: Account, sub: Sub) -> None:
        customer = sub.customer
        rng = customer.rng
        if sub.status not in ("active", "trialing") or sub.cancel_at is not None:
            return
        if sub.schedule is not None:  # a ramp deal: its schedule decides until it ends
            return
        length = sub.period_end - sub.period_start
        months = length / (30.44 * DAY)
        p_cancel = 1 - (1 - CHURN_PER_MONTH[customer.segment]) ** months
        r = rng.random()
        at = sub.period_start + int(length * (0.05 + 0.9 * rng.random()))
        if r < p_cancel:
            mode = pick(rng, (("period_end", 70), ("now_prorate", 15), ("now", 15),
                              ("cancel_at", 8)))[0]  # fmt: skip
            if sub.status == "trialing":
                mode = "period_end"
            acct.schedule(customer, at, "call", RandomPolicy.cancel, (sub, mode))
            return
        if sub.status != "active":
            return
        r = rng.random()
        p = 1 - (1 - 0.04) ** months
        if r < p:
            acct.schedule(customer, at, "call", RandomPolicy.change, (sub, "up"))
            return
        r -= p
        p = 1 - (1 - 0.015) ** months
        if r < p:
            acct.schedule(customer, at, "call", RandomPolicy.change, (sub, "down"))
            return
        r -= p
        if any(i.price.product.key == "seats" for i in sub.items):
            p = 1 - (1 - 0.12) ** months
            if r < p:
                for _ in range(rng.choice((1, 1, 1, 2, 3))):
                    when = sub.period_start + int(length * (0.05 + 0.9 * rng.random()))
                    acct.schedule(customer, when, "call", RandomPolicy.change, (sub, "seats"))
                return
            r -= p
        if r < 1 - (1 - 0.004) ** months and sub.cycle_price.interval == "month":
            behavior = rng.choice(("void", "keep_as_draft", "mark_uncollectible"))
            resumes = add_months(at, rng.randint(1, 3)) if rng.random() < 0.7 else None
            acct.schedule(customer, at, "call", RandomPolicy.pause, (sub, behavior, resumes))

    @staticmethod
    def cancel(acct: Account, customer: Customer, t: int, sub: Sub, mode: str) -> None:
        if sub.status not in ("active", "trialing", "past_due") or sub.cancel_at is not None:
            return
        if mode == "cancel_at":
            when, proration = cancellations.random_date(customer, sub, t)
            cancellations.set_cancel_at(acct, customer, sub, t, when, proration)
        else:
            acct.cancel(customer, sub, t, mode)

    @staticmethod
    def pause(acct: Account, customer: Customer, t: int, sub: Sub, behavior, resumes) -> None:
        if sub.pause is None:
            acct.pause_collection(sub, t, behavior, resumes)

    @staticmethod
    def change(acct: Account, customer: Customer, t: int, sub: Sub, how: str) -> None:
        if sub.status != "active" or sub.cancel_at is not None or t >= sub.period_end:
            return
        if sub.schedule is not None:
            return
        rng = customer.rng
        cat = acct.catalog
        items = [(i.price, i.quantity) for i in sub.items]
        first = items[0][0]
        key = first.key
        proration = pick(rng, (("create_prorations", 55), ("always_invoice", 25), ("none", 20)))[0]
        if how == "seats":
            for n, (price, qty) in enumerate(items):
                if price.product.key == "seats":
                    items[n] = (price, max(1, qty + rng.choice((-3, -2, -1, 1, 1, 2, 3, 5))))
        elif first.billing_scheme == "tiered" or first.transform:
            qty = items[0][1]
            items[0] = (first, max(1, qty + (rng.randint(2, 20) if how == "up" else -3)))
        else:
            ladder = ("starter", "pro", "business")
            plan = first.product.key
            if plan not in ladder:
                return
            step = 1 if how == "up" else -1
            n = ladder.index(plan) + step
            interval = key.split("_")[1]
            if how == "up" and interval == "month" and rng.random() < 0.2:
                target = cat.by_key.get(f"{plan}_year_{first.currency}")
                if target is not None:
                    items[0] = (target, 1)
                    items = [(cat.by_key.get(p.key.replace("_month_", "_year_")), q)
                             for p, q in items]  # fmt: skip
                    if any(p is None for p, _ in items):
                        return
                    acct.change_items(customer, sub, t, items, "always_invoice")
                    return
            if not 0 <= n < len(ladder):
                return
            target = cat.by_key.get(f"{ladder[n]}_{interval}_{first.currency}")
            if target is None:
                return
            items[0] = (target, 1)
        acct.change_items(customer, sub, t, items, proration)

    def payment_outcome(self, acct: Account, sub: Sub, inv: Invoice):
        rng = sub.customer.rng
        if sub.cycle_price.interval == "week" or rng.random() >= 0.04:
            return None
        what = pick(rng, (("recover", 75), ("unpaid", 8), ("cancel_void", 6),
                          ("cancel_uncollectible", 6), ("cancel_open", 5)))[0]  # fmt: skip
        return what, rng.randint(1, 13)

    def became_unpaid(self, acct: Account, sub: Sub, t: int) -> None:
        """Most merchants cancel an unpaid subscription after a while."""
        rng = sub.customer.rng
        if rng.random() < 0.8:
            acct.schedule(sub.customer, t + rng.randint(20, 90) * DAY, "call",
                          RandomPolicy.cancel_unpaid, (sub,))  # fmt: skip

    @staticmethod
    def cancel_unpaid(acct: Account, customer: Customer, t: int, sub: Sub) -> None:
        if sub.status == "unpaid":
            acct.cancel(customer, sub, t, "now")

    def subscription_ended(self, acct: Account, customer: Customer, sub: Sub, t: int) -> None:
        if any(s.live for s in customer.subs) or customer.deleted_at is not None:
            return
        rng = customer.rng
        r = rng.random()
        if r < 0.25:
            acct.schedule(customer, t + rng.randint(30, 300) * DAY, "call",
                          RandomPolicy.come_back, (self,))  # fmt: skip
        elif r < 0.28:
            acct.schedule(customer, t + rng.randint(20, 400) * DAY, "call",
                          RandomPolicy.delete, ())  # fmt: skip

    @staticmethod
    def come_back(acct: Account, customer: Customer, t: int, self) -> None:
        if not any(s.live for s in customer.subs):
            self.start_subscription(acct, customer, t)

    @staticmethod
    def delete(acct: Account, customer: Customer, t: int) -> None:
        if customer.deleted_at is None and not any(s.live for s in customer.subs):
            acct.delete_customer(customer, t)

    @staticmethod
    def first_subscription(acct: Account, customer: Customer, t: int, self) -> None:
        self.start_subscription(acct, customer, t)

    @staticmethod
    def touch(acct: Account, customer: Customer, t: int, key: str, value: str) -> None:
        if customer.deleted_at is None:
            acct.update_customer(customer, t, key, value)


GROWTH = 1.2  # customer sign-ups grow e^(1.2 x) over the history


def add_random_customer(acct: Account, idx: int, created: int, policy: RandomPolicy) -> Customer:
    rng = random.Random(f"{acct.seed}:{acct.id}:customer:{idx}")
    country, currency, _ = pick(rng, COUNTRIES)
    segment = pick(rng, SEGMENTS)[0]
    customer = new_customer(acct, idx, created, country, currency, segment, rng=rng)
    if rng.random() < 0.95:
        acct.schedule(customer, created + rng.randint(60, 3 * DAY), "call",
                      RandomPolicy.first_subscription, (policy,))  # fmt: skip
    if rng.random() < 0.03:
        when = acct.event_floor + rng.randint(0, 30 * DAY)
        if when > created:
            acct.schedule(customer, when, "call", RandomPolicy.touch,
                          ("crm_id", f"crm_{rng.randint(10000, 99999)}"))  # fmt: skip
    return customer


# -- the world ----------------------------------------------------------------------------
@contextmanager
def no_cyclic_gc():
    """Millions of small records: the cyclic collector would rescan them over and over
    while they are made (3x slower). (gc.freeze() would spare later collections too, but
    then native extensions such as duckdb report leaks at exit.)"""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class World:
    """Every account's history at ``now``; see the module docstring."""

    def __init__(self, options: SandboxOptions):
        self.options = options
        self.start = parse_time(options.start)
        self.now = parse_time(options.now)
        self.account_ids = account_ids(options.accounts)
        self.policy = RandomPolicy(self.now)
        self.accounts: dict[str, Account] = {}
        with no_cyclic_gc():
            for n, account_id in enumerate(self.account_ids):
                self.accounts[account_id] = self._build_account(account_id, n)

    def _build_account(self, account_id: str, n: int) -> Account:
        opts = self.options
        launch = self.now - 12 * DAY

        def catalog(acct: Account) -> Catalog:
            return build_catalog(lambda prefix, ts, long=True: acct.make_id(prefix, ts, long=long),
                                 self.start, launch)  # fmt: skip

        acct = Account(account_id, str(opts.seed), catalog, self.now)
        acct.random_policy = self.policy
        self._catalog_events(acct)
        scripted = archetypes(self.start, self.now) if opts.archetypes else []
        scripted = scripted[: opts.customers]
        for scenario in scripted:
            add_scripted(acct, scenario, len(acct.customers))
        if n == 0:
            for scenario in opts.scenarios:
                add_scripted(acct, scenario, len(acct.customers))
        span = self.now - self.start
        for _ in range(opts.customers - len(scripted)):
            idx = len(acct.customers)
            u = random.Random(f"{acct.seed}:{acct.id}:signup:{idx}").random()
            x = math.log1p(u * math.expm1(GROWTH)) / GROWTH
            add_random_customer(acct, idx, self.start + int(x * span), self.policy)
        acct.arrivals = random.Random(f"{acct.seed}:{acct.id}:arrivals")
        acct.arrival_rate = (opts.customers / span) * GROWTH * math.exp(GROWTH) / math.expm1(GROWTH)
        for customer in acct.customers:
            acct.run(customer, self.now)
        return acct

    def _catalog_events(self, acct: Account) -> None:
        """The launch of a product shortly before now, and two recent catalog edits."""
        for product in acct.catalog.products:
            if product.created >= acct.event_floor:
                acct.emit(product.created, "product.created", "products", product)
        for price in acct.catalog.prices:
            if price.created >= acct.event_floor:
                acct.emit(price.created, "price.created", "prices", price)
        support = next(p for p in acct.catalog.products if p.key == "support")
        t = self.now - 3 * DAY
        before = render.snapshot("products", support)
        support.description, support.updated = "24/7 support with a 1-hour response", t
        acct.emit(t, "product.updated", "products", support, previous=before)
        insights = acct.catalog.price("insights_month_usd")
        t = self.now - 2 * DAY
        before = render.snapshot("prices", insights)
        insights.nickname = "Insights (launch price)"
        acct.emit(t, "price.updated", "prices", insights, previous=before)

    # -- objects ---------------------------------------------------------------------------
    def objects(self, account_id: str, kind: str) -> Iterator[dict]:
        """Every object of ``kind`` as Stripe would list it at ``now`` (deleted customers and
        deleted drafts excluded; events of the last 30 days only)."""
        acct = self.accounts[account_id]
        now = self.now
        if kind == "customers":
            for c in acct.customers:
                if c.created <= now and c.deleted_at is None:
                    yield render.customer(c)
        elif kind == "products":
            for p in acct.catalog.products:
                if p.created <= now:
                    yield render.product(p)
        elif kind == "prices":
            for p in acct.catalog.prices:
                if p.created <= now:
                    yield render.price(p)
        elif kind == "subscriptions":
            for c in acct.customers:
                for sub in c.subs:
                    yield render.subscription(sub)
        elif kind == "invoices":
            for c in acct.customers:
                for inv in c.invoices:
                    if not inv.deleted:
                        yield render.invoice(inv)
        elif kind == "credit_notes":
            for c in acct.customers:
                for note in c.credit_notes:
                    yield cash.render_credit_note(note)
        elif kind == "billing_meters":
            for price in meters.meters(acct.catalog.prices):
                if price.created <= now:
                    yield meters.render_meter(price)
        elif kind == "subscription_schedules":
            for c in acct.customers:
                for schedule in c.schedules:
                    yield schedules.render_schedule(schedule)
        elif kind == "events":
            floor = now - 30 * DAY
            for ev in acct.events:
                if floor <= ev.created <= now:
                    yield render.event(ev)
        else:
            raise ValueError(f"unknown kind {kind!r}; one of {', '.join(KINDS)}")

    def index_entries(self, account_id: str, kind: str) -> Iterator[tuple[int, str, dict, object]]:
        """``(created, id, fields, record)`` of each object ``objects()`` lists, in the same
        order, without rendering it (what lets a server index a million objects in seconds).
        ``fields`` are the values lists filter on, as the JSON holds them: customers none;
        subscriptions status, customer and item_ids; invoices status, customer and
        subscription; events type. ``render(account_id, kind, record)`` gives the JSON."""
        acct = self.accounts[account_id]
        now = self.now
        if kind == "customers":
            for c in acct.customers:
                if c.created <= now and c.deleted_at is None:
                    yield c.created, c.id, {}, c
        elif kind == "subscriptions":
            for c in acct.customers:
                for sub in c.subs:
                    fields = {"status": sub.status, "customer": c.id,
                              "item_ids": [item.id for item in sub.items]}  # fmt: skip
                    yield sub.created, sub.id, fields, sub
        elif kind == "invoices":
            for c in acct.customers:
                for inv in c.invoices:
                    if not inv.deleted:
                        sub_id = inv.sub.id if inv.sub is not None else None
                        fields = {"status": inv.status, "customer": c.id, "subscription": sub_id}
                        yield inv.created, inv.id, fields, inv
        elif kind == "events":
            floor = now - 30 * DAY
            for ev in acct.events:
                if floor <= ev.created <= now:
                    yield ev.created, ev.id, {"type": ev.type}, ev
        else:
            raise ValueError(f"no index entries for {kind!r}; customers, subscriptions, "
                             "invoices or events")  # fmt: skip

    def render(self, account_id: str, kind: str, record) -> dict:
        """The Stripe JSON of a record from ``index_entries``, as ``objects()`` gives it."""
        return render.event(record) if kind == "events" else render.render(kind, record)

    def discount_objects(self, account_id: str) -> dict[str, dict]:
        """Every discount of the account by id, its coupon expanded (what
        ``expand[]=data.discounts.source.coupon`` puts in an invoice)."""
        return {
            discount_id: render.discount(discount, expand_coupon=True)
            for discount_id, discount in self.accounts[account_id].discounts.items()
        }

    def deleted_ids(self, account_id: str, kind: str) -> list[str]:
        """Ids of deleted customers / invoices (drafts): retrieving them answers
        ``{"id": ..., "object": ..., "deleted": true}``."""
        acct = self.accounts[account_id]
        if kind == "customers":
            return [c.id for c in acct.customers if c.deleted_at is not None]
        if kind == "invoices":
            return [inv.id for c in acct.customers for inv in c.invoices if inv.deleted]
        return []

    def counts(self, account_id: str) -> dict[str, int]:
        acct = self.accounts[account_id]
        return {
            "customers": sum(1 for c in acct.customers if c.deleted_at is None),
            "subscriptions": sum(len(c.subs) for c in acct.customers),
            "invoices": sum(1 for c in acct.customers for i in c.invoices if not i.deleted),
            "invoice_lines": sum(
                len(i.lines) for c in acct.customers for i in c.invoices if not i.deleted
            ),
            "credit_notes": sum(len(c.credit_notes) for c in acct.customers),
            "events": sum(1 for e in acct.events if e.created >= self.now - 30 * DAY),
        }

    # -- time ------------------------------------------------------------------------------
    def advance(self, seconds: int) -> list[Change]:
        """Move the clock on by ``seconds``: renewals, payments, new customers, changes and
        their events happen; returns the objects that changed (obj None = deleted)."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        old, new = self.now, self.now + int(seconds)
        changes: list[Change] = []
        for account_id, acct in self.accounts.items():
            acct.touched = {}
            acct.clock = old
            arrivals = acct.arrivals
            t = old
            while acct.arrival_rate > 0:
                t += int(arrivals.expovariate(acct.arrival_rate)) + 1
                if t > new:
                    break
                add_random_customer(acct, len(acct.customers), t, self.policy)
            for customer in acct.customers:
                acct.run(customer, new)
            for (kind, object_id), obj in acct.touched.items():
                if kind == "events":
                    changes.append((account_id, kind, render.event(obj), object_id))
                elif is_deleted(kind, obj):
                    changes.append((account_id, kind, None, object_id))
                else:
                    changes.append((account_id, kind, render.render(kind, obj), object_id))
            acct.touched = None
        self.now = new
        return changes

    # -- ground truth ----------------------------------------------------------------------
    def truth(self, options: TruthOptions | None = None) -> list[tuple[str, str, str, Decimal]]:
        """[(account_id, customer_id, 'YYYY-MM-01', mrr)] sorted; see truth.py for the rules."""
        opts = options or TruthOptions(currency=self.options.currency,
                                       fx=tuple(sorted(self.options.fx.items())))  # fmt: skip
        rates = {cur: Fraction(str(rate)) for cur, rate in opts.fx}
        rates[opts.currency] = Fraction(1)
        priced = {p.currency for acct in self.accounts.values() for p in acct.catalog.prices}
        missing = sorted(priced - set(rates))
        if missing:  # fail only for the currencies that were billed, like the report build
            billed = {
                line.currency
                for acct in self.accounts.values()
                for c in acct.customers
                for inv in c.invoices
                for line in inv.lines
            }
            missing = sorted(billed - set(rates))
        if missing:
            raise ValueError(f"no fx rate to {opts.currency} for: {', '.join(missing)}")
        rows = []
        for account_id, acct in self.accounts.items():
            first = min([self.start] + [s.created for c in acct.customers for s in c.subs])
            instants, labels = snapshot_instants(first, self.now, opts.timezone)
            cache: dict = {}
            for c in acct.customers:
                if c.created > self.now:
                    continue
                for month, mrr in customer_truth(c, self.now, opts, rates, instants, labels,
                                                 cache):  # fmt: skip
                    rows.append((account_id, c.id, month, mrr))
        rows.sort()
        return rows


def is_deleted(kind: str, obj) -> bool:
    if kind == "customers":
        return obj.deleted_at is not None
    return kind == "invoices" and obj.deleted


def generate(options: SandboxOptions | None = None) -> World:
    return World(options or SandboxOptions())
