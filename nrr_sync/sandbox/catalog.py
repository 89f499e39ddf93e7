"""The sandbox account's products, prices, coupons and tax rates.

Every account gets the same catalog (ids differ per account). Amounts are minor units;
jpy is zero-decimal, so its amounts are whole yen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

ZERO_DECIMAL = frozenset({"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf",
                          "ugx", "vnd", "vuv", "xaf", "xof", "xpf"})  # fmt: skip

# List prices in other currencies: units per usd, rounded to whole units (jpy: to 100 yen).
CURRENCY_FACTOR = {"usd": 1.0, "eur": 0.92, "gbp": 0.79, "jpy": 150.0}

# Tax behaviour of the prices in each currency (usd overridden per product below).
CURRENCY_TAX = {"usd": "unspecified", "eur": "inclusive", "gbp": "exclusive", "jpy": "unspecified"}

# Tax rates by customer country: percent. Taxes apply only to prices with a tax behaviour.
COUNTRY_TAX = {"DE": 19, "FR": 20, "NL": 21, "GB": 20, "US": 8}


@dataclass(slots=True)
class Product:
    key: str
    id: str
    name: str
    created: int
    description: str | None = None
    active: bool = True
    updated: int = 0
    default_price: str | None = None


@dataclass(slots=True)
class CurrencyOption:
    """What a price costs in another currency (Stripe's ``currency_options[<currency>]``)."""

    unit_amount: int | None
    tiers: list[tuple[int | None, int, int]] = field(default_factory=list)
    tax_behavior: str = "unspecified"


@dataclass(slots=True)
class Price:
    key: str
    id: str
    product: Product
    currency: str
    interval: str | None  # None for one-time prices
    interval_count: int
    unit_amount: int | None
    created: int
    billing_scheme: str = "per_unit"
    tiers_mode: str | None = None
    tiers: list[tuple[int | None, int, int]] = field(default_factory=list)  # up_to, unit, flat
    transform: tuple[int, str] | None = None  # divide_by, round
    tax_behavior: str = "unspecified"
    usage_type: str = "licensed"
    active: bool = True
    nickname: str | None = None
    meter: str | None = None
    currency_options: dict[str, CurrencyOption] = field(default_factory=dict)
    unit_amount_decimal: str | None = None  # a fractional unit amount (unit_amount None)

    @property
    def recurring(self) -> bool:
        return self.interval is not None

    def months(self) -> Fraction:
        """The interval in months: month 1, year 12, week 12/52, day 12/365."""
        per = {"month": Fraction(1), "year": Fraction(12), "week": Fraction(12, 52),
               "day": Fraction(12, 365)}[self.interval]  # fmt: skip
        return per * self.interval_count

    def supports(self, currency: str) -> bool:
        return currency == self.currency or currency in self.currency_options

    def tax_behavior_in(self, currency: str) -> str:
        option = self.currency_options.get(currency) if currency != self.currency else None
        return self.tax_behavior if option is None else option.tax_behavior

    def full_amount(self, quantity: int, currency: str | None = None) -> int:
        """What one full interval costs at ``quantity`` (tiers and transform_quantity applied),
        in ``currency`` (the price's own by default, else one of its currency_options)."""
        unit_amount, tiers = self.unit_amount, self.tiers
        if currency is not None and currency != self.currency:
            option = self.currency_options[currency]
            unit_amount, tiers = option.unit_amount, option.tiers
        if self.billing_scheme == "tiered":
            return tiered_amount(self.tiers_mode, tiers, quantity)
        units = quantity
        if self.transform:
            divide_by, rounding = self.transform
            units = math.ceil(quantity / divide_by) if rounding == "up" else quantity // divide_by
        return unit_amount * units


def tiered_amount(mode: str, tiers: list[tuple[int | None, int, int]], quantity: int) -> int:
    if mode == "volume":
        for up_to, unit, flat in tiers:
            if up_to is None or quantity <= up_to:
                return unit * quantity + flat
    total, below = 0, 0
    for up_to, unit, flat in tiers:
        if quantity <= below:
            break
        top = quantity if up_to is None else min(quantity, up_to)
        total += unit * (top - below) + flat
        below = top if up_to is None else up_to
    return total


@dataclass(slots=True)
class Coupon:
    id: str
    name: str
    duration: str  # forever | repeating | once
    percent_off: float | None = None
    amount_off: int | None = None
    currency: str | None = None
    duration_in_months: int | None = None
    created: int = 0
    currency_options: dict[str, int] = field(default_factory=dict)  # currency -> amount_off

    def amount_in(self, currency: str) -> int | None:
        """amount_off in ``currency`` (its own, or a currency option); None if it has none."""
        if currency == self.currency:
            return self.amount_off
        return self.currency_options.get(currency)


@dataclass(slots=True)
class TaxRate:
    id: str
    country: str
    percentage: int
    inclusive: bool


# key -> (name, usd monthly amount, intervals, currencies, usd tax behaviour)
PLANS = {
    "starter": ("Starter", 2900, ("month", "year"), ("usd", "eur", "gbp", "jpy"), "unspecified"),
    "pro": ("Pro", 9900, ("month", "quarter", "year"), ("usd", "eur", "gbp", "jpy"),
            "unspecified"),
    "business": ("Business", 29900, ("month", "year"), ("usd", "eur", "gbp"), "exclusive"),
    "seats": ("Team seats", 1500, ("month", "year"), ("usd", "eur", "gbp", "jpy"), "unspecified"),
    "support": ("Priority support", 4900, ("month", "year"), ("usd", "eur"), "exclusive"),
    "storage": ("Storage (per 10 GB)", 500, ("month",), ("usd",), "unspecified"),
    "boost": ("Weekly boost", 1500, ("week",), ("usd",), "unspecified"),
}  # fmt: skip
ADDONS = ("SSO", "Audit log", "Sandbox environments", "Data export", "Analytics",
          "Webhooks+", "Custom roles", "IP allowlist", "Extra region", "Premium SLA",
          "Dedicated IP")  # fmt: skip
ADDON_AMOUNT = 1900


def convert(usd_minor: int, currency: str) -> int:
    major = usd_minor / 100.0 * CURRENCY_FACTOR[currency]
    if currency in ZERO_DECIMAL:
        return max(100, int(round(major / 100.0)) * 100)
    return max(100, int(round(major)) * 100)


@dataclass
class Catalog:
    products: list[Product]
    prices: list[Price]
    coupons: dict[str, Coupon]
    tax_rates: list[TaxRate]
    by_key: dict[str, Price]
    promotion_codes: dict[str, str] = field(default_factory=dict)  # coupon key -> promo id

    def price(self, key: str) -> Price:
        return self.by_key[key]

    def tax_rate(self, country: str, inclusive: bool) -> TaxRate | None:
        for rate in self.tax_rates:
            if rate.country == country and rate.inclusive == inclusive:
                return rate
        return None


def price_key(plan: str, interval: str, currency: str) -> str:
    return f"{plan}_{interval}_{currency}"


def build_catalog(make_id, created: int, launch_time: int) -> Catalog:
    """The account's catalog. ``make_id(prefix, ts)`` makes ids; ``launch_time`` is when the
    late product (launched shortly before ``now``) appears."""
    products: list[Product] = []
    prices: list[Price] = []
    by_key: dict[str, Price] = {}

    def product(key: str, name: str, when: int = created, description: str | None = None):
        prod = Product(key, make_id("prod", when, long=False), name, when, description,
                       updated=when)  # fmt: skip
        products.append(prod)
        return prod

    def add(price: Price) -> Price:
        if price.product.default_price is None:  # the first: usd, the shortest interval
            price.product.default_price = price.id
        prices.append(price)
        by_key[price.key] = price
        return price

    def interval_amount(month: int, interval: str) -> tuple[str, int, int]:
        return {
            "month": ("month", 1, month),
            "quarter": ("month", 3, month * 3 - (month * 3) // 20),
            "year": ("year", 1, month * 10),
            "week": ("week", 1, month),
        }[interval]

    t = created
    for plan, (name, usd_month, intervals, currencies, usd_tax) in PLANS.items():
        prod = product(plan, name)
        for currency in currencies:
            month = convert(usd_month, currency)
            tax = usd_tax if currency == "usd" else CURRENCY_TAX[currency]
            for interval in intervals:
                t += 60
                interval_name, count, amount = interval_amount(month, interval)
                transform = (10, "up") if plan == "storage" else None
                price = add(Price(price_key(plan, interval, currency), make_id("price", t), prod,
                                  currency, interval_name, count, amount, t, transform=transform,
                                  tax_behavior=tax, nickname=f"{name} {interval}ly"))  # fmt: skip
                if currency == "usd":
                    # One price for every currency, as many accounts sell: the usd price
                    # also bills the plan's other currencies through its currency_options.
                    price.currency_options = {
                        other: CurrencyOption(
                            interval_amount(convert(usd_month, other), interval)[2],
                            tax_behavior=CURRENCY_TAX[other])
                        for other in currencies if other != "usd"
                    }  # fmt: skip

    prod = product("platform", "Platform (volume pricing)")
    t += 60
    add(Price("platform_month_usd", make_id("price", t), prod, "usd", "month", 1, None, t,
              billing_scheme="tiered", tiers_mode="volume",
              tiers=[(10, 2000, 0), (50, 1500, 0), (None, 1000, 0)],
              nickname="Platform monthly",
              currency_options={
                  "eur": CurrencyOption(None, [(10, 1850, 0), (50, 1390, 0), (None, 920, 0)],
                                        "inclusive"),
                  "gbp": CurrencyOption(None, [(10, 1590, 0), (50, 1190, 0), (None, 790, 0)],
                                        "exclusive"),
              }))  # fmt: skip
    prod = product("api_plan", "API plan (graduated)")
    t += 60
    add(Price("api_plan_month_usd", make_id("price", t), prod, "usd", "month", 1, None, t,
              billing_scheme="tiered", tiers_mode="graduated",
              tiers=[(5, 0, 5000), (20, 800, 0), (None, 500, 0)],
              nickname="API plan monthly"))  # fmt: skip
    prod = product("api_usage", "API usage (metered)")
    t += 60
    add(Price("api_usage_month_usd", make_id("price", t), prod, "usd", "month", 1, 2, t,
              usage_type="metered", meter=make_id("mtr", t, long=False),
              nickname="API calls"))  # fmt: skip
    prod = product("events", "Events (metered)")
    t += 60
    add(Price("events_month_usd", make_id("price", t), prod, "usd", "month", 1, None, t,
              usage_type="metered", meter=make_id("mtr", t, long=False),
              unit_amount_decimal="0.05", nickname="Events"))  # fmt: skip
    for name in ADDONS:
        key = "addon_" + name.lower().replace(" ", "_").replace("+", "_plus")
        prod = product(key, f"Add-on: {name}")
        t += 60
        add(Price(f"{key}_month_usd", make_id("price", t), prod, "usd", "month", 1,
                  ADDON_AMOUNT, t, nickname=f"{name} monthly"))  # fmt: skip
    prod = product("onboarding", "Onboarding package")
    t += 60
    add(Price("onboarding_usd", make_id("price", t), prod, "usd", None, 1, 50000, t))
    # A price that was replaced: inactive, still referenced by old invoices.
    t += 60
    legacy = add(Price("pro_legacy_month_usd", make_id("price", t), by_key["pro_month_usd"].product,
                       "usd", "month", 1, 7900, t, active=False, nickname="Pro 2023"))  # fmt: skip
    del legacy
    # Round prices of the worked examples of docs/metrics.md, for scripted scenarios.
    prod = product("example", "Example plan")
    for key, currency, interval, amount in (
        ("example_basic_month_usd", "usd", "month", 10000),
        ("example_pro_month_usd", "usd", "month", 20000),
        ("example_annual_year_usd", "usd", "year", 120000),
        ("example_seat_month_usd", "usd", "month", 5000),
        ("example_month_eur", "eur", "month", 9000),
    ):
        t += 60
        add(Price(key, make_id("price", t), prod, currency, interval, 1, amount, t,
                  nickname=key))  # fmt: skip
    # A product launched shortly before now (product.created / price.created events).
    prod = product("insights", "Insights", when=launch_time, description="Usage insights")
    add(
        Price(
            "insights_month_usd",
            make_id("price", launch_time + 5),
            prod,
            "usd",
            "month",
            1,
            3900,
            launch_time + 5,
            tax_behavior="exclusive",
            nickname="Insights monthly",
        )
    )

    coupons = {
        "forever20": Coupon("SANDBOX20", "20% off forever", "forever", percent_off=20.0),
        "repeating50": Coupon(
            "LAUNCH50", "50% off for 3 months", "repeating", percent_off=50.0, duration_in_months=3
        ),  # fmt: skip
        "once25": Coupon("WELCOME25", "25% off the first invoice", "once", percent_off=25.0),
        "amount10": Coupon(
            "TENOFF",
            "$10 off forever",
            "forever",
            amount_off=1000,
            currency="usd",
            currency_options={"eur": 900, "gbp": 800, "jpy": 1500},
        ),  # fmt: skip
        "loyalty5": Coupon(
            "LOYALTY5", "5% loyalty discount", "forever", percent_off=5.0
        ),  # fmt: skip
        "welcome_month": Coupon(
            "WELCOME1M",
            "$25 off the first month",
            "once",
            amount_off=2500,
            currency="usd",
            currency_options={"eur": 2300, "gbp": 2000},
        ),  # fmt: skip
        "repeating12_5": Coupon(
            "SPRING125",
            "12.5% off for 6 months",
            "repeating",
            percent_off=12.5,
            duration_in_months=6,
        ),  # fmt: skip
        "partner100": Coupon("PARTNER100", "Partner: 100% off", "forever", percent_off=100.0),
        "percent15": Coupon("NONPROFIT15", "15% off forever", "forever", percent_off=15.0),
    }
    for coupon in coupons.values():
        coupon.created = created
    tax_rates = []
    for country, pct in COUNTRY_TAX.items():
        for inclusive in (True, False):
            tax_rates.append(TaxRate(make_id("txr", created), country, pct, inclusive))
    # Promotion codes (customer-facing codes for a coupon), made last so that every other
    # id of the catalog stays as it was.
    promotion_codes = {key: make_id("promo", created, long=False) for key in coupons}
    # A free plan (unit_amount 0) in every currency, made after everything else so that no
    # other id moves: customers on it are never paying customers (docs/metrics.md).
    prod = product("free", "Free plan")
    options = {other: CurrencyOption(0) for other in ("eur", "gbp", "jpy")}
    add(Price("free_month_usd", make_id("price", t + 60), prod, "usd", "month", 1, 0, t + 60,
              nickname="Free monthly", currency_options=options))  # fmt: skip
    return Catalog(products, prices, coupons, tax_rates, by_key, promotion_codes)


def resolve_items(catalog: Catalog, items) -> list:
    return [(catalog.price(p) if isinstance(p, str) else p, q) for p, q in items]
