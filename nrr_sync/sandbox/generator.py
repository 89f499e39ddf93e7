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

from . import cancellations, cash, free, meters, render, schedules
from .billing import Account
from .catalog import Catalog, build_catalog, resolve_items
from .records import DAY, Customer, Invoice, Sub, add_months, b62, parse_time
from .scenarios import Scenario, archetypes
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
