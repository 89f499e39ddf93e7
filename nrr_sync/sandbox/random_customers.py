"""Random customers: each draws its decisions (plans, seats, upgrades, churn, failed
payments, coupons) from a random stream of its own, so customers are independent."""

from __future__ import annotations

import random

from . import attached_coupons, cancellations, free, mixed, schedules
from .billing import Account
from .catalog import Catalog
from .records import DAY, Customer, Invoice, Sub, add_months, b62

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
        elif not trial:  # some flexible sign-ups take the plan yearly beside monthly seats
            items = mixed.random_items(acct, customer, t, items)
        sub = acct.subscribe(customer, t, items, trial_days=trial, coupon=coupons,
                             first_payment=first, missing_payment_method=missing)  # fmt: skip
        if starts_free is not None:
            free.schedule_upgrade(acct, customer, sub, starts_free[1])
        elif not mixed.active(sub):  # schedules of mixed intervals are not modeled
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
        attached_coupons.maybe_offer(acct, sub, self.horizon)  # no draw from the stream
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
