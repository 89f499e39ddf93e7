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
from decimal import Decimal
from fractions import Fraction

from . import attached_coupons, cancellations, cash, catalog_changes, meters, render, schedules
from .billing import Account
from .catalog import Catalog, build_catalog, resolve_items
from .random_customers import (
    GROWTH,
    RandomPolicy,
    add_random_customer,
    manual_invoice,
    new_customer,
)
from .records import DAY, Customer, parse_time
from .scenarios import Scenario, archetypes
from .snapshots import snapshot
from .store import KINDS  # the kinds of object an account holds
from .truth import TruthOptions, customer_truth, snapshot_instants

DEFAULT_FX: dict[str, float] = {"eur": 1.1, "gbp": 1.3, "jpy": 0.0067}

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
    # Catalog edits at set times, in every account (catalog_changes.CurrencyOptionAdded).
    catalog_changes: tuple = ()


def account_ids(count: int) -> list[str]:
    return [f"acct_1SandboxA{n + 1:04d}" for n in range(count)]


# -- scripted customers -------------------------------------------------------------------


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
        items, trial_days, coupon, first_payment, missing, billing_mode, shown = args
        acct.subscribe(customer, t, resolve_items(cat, items), trial_days=trial_days,
                       coupon=resolve_coupons(cat, coupon),
                       first_payment=first_payment, missing_payment_method=missing,
                       scripted=True, billing_mode=billing_mode,
                       proration_discounts=shown)  # fmt: skip
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
    elif op == "attach_coupon":
        attached_coupons.step_attach_coupon(acct, customer, t, args[0],
                                            resolve_coupons(cat, args[1]))  # fmt: skip
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


def add_scripted(acct: Account, scenario: Scenario, idx: int) -> Customer:
    created = parse_time(scenario.created)
    customer = new_customer(acct, idx, created, scenario.country, scenario.currency,
                            scenario.segment, name=scenario.name, email=scenario.email,
                            scripted=True)  # fmt: skip
    for at, op, args in sorted(scenario.steps, key=lambda s: parse_time(s[0])):
        acct.schedule(customer, parse_time(at), "call", script_step, (op, args))
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
        self._live(acct, None, self.now)
        return acct

    def _live(self, acct: Account, after: int | None, until: int) -> None:
        """Run every customer's agenda through ``until``, stopping at each catalog change
        in (after, until] (after None: every one up to until) to apply it: actions before
        a change never see it, the ones at or after it do. (Without changes: one run per
        customer, as always.)"""
        for change in catalog_changes.due(self.options.catalog_changes, after, until):
            for customer in acct.customers:
                acct.run(customer, change.time - 1)
            acct.clock = change.time  # later runs draw fresh random streams (billing.run)
            catalog_changes.apply(acct, change)
        for customer in acct.customers:
            acct.run(customer, until)

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
        before = snapshot("products", support)
        support.description, support.updated = "24/7 support with a 1-hour response", t
        acct.emit(t, "product.updated", "products", support, previous=before)
        insights = acct.catalog.price("insights_month_usd")
        t = self.now - 2 * DAY
        before = snapshot("prices", insights)
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
            self._live(acct, old, new)
            for (kind, object_id), obj in acct.touched.items():
                if kind not in KINDS:
                    continue  # known only through its events (a discount)
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
