"""The billing engine's compact records (items, discounts, lines, invoices, subscriptions,
customers, events) and the arithmetic of Stripe's calendar and rounding."""

from __future__ import annotations

import calendar
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from .catalog import Coupon, Price, TaxRate

HOUR = 3600
DAY = 86400
DUNNING_DAYS = 14
INCOMPLETE_HOURS = 23
B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


PAIRS = [a + b for a in B62 for b in B62]


def b62(number: int, width: int) -> str:
    """``number`` in base 62, ``width`` characters (width even or odd), most significant first."""
    out = ""
    for _ in range(width // 2):
        number, pair = divmod(number, 3844)
        out = PAIRS[pair] + out
    if width % 2:
        out = B62[number % 62] + out
    return out


def divide_half_up(numerator: int, denominator: int) -> int:
    """numerator / denominator to the nearest integer, halves away from zero (Stripe's
    rounding of minor units); denominator > 0."""
    quotient = (2 * abs(numerator) + denominator) // (2 * denominator)
    return -quotient if numerator < 0 else quotient


EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
MONTH_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def add_months(anchor: int, months: int) -> int:
    """``anchor`` moved by ``months``, the day clamped to the month's end (Stripe's anchors)."""
    days, seconds = divmod(anchor, DAY)
    day = date.fromordinal(days + EPOCH_ORDINAL)
    year, month0 = divmod(day.month - 1 + months, 12)
    year += day.year
    last = MONTH_DAYS[month0]
    if month0 == 1 and calendar.isleap(year):
        last = 29
    moved = date(year, month0 + 1, min(day.day, last))
    return (moved.toordinal() - EPOCH_ORDINAL) * DAY + seconds


def period_end(price: Price, anchor: int, index: int) -> int:
    """End of the ``index``-th period (0-based) of a cycle anchored at ``anchor``."""
    n = (index + 1) * price.interval_count
    if price.interval == "month":
        return add_months(anchor, n)
    if price.interval == "year":
        return add_months(anchor, 12 * n)
    if price.interval == "week":
        return anchor + 7 * DAY * n
    return anchor + DAY * n


def billing_currency(customer_currency: str, prices: list[Price]) -> str:
    """A subscription bills in the customer's currency when every price has an amount in
    it (its own currency or a currency_options entry), else in its first price's currency."""
    if all(price.supports(customer_currency) for price in prices):
        return customer_currency
    return prices[0].currency


def apply_percent_off(lines: list[Line], discount: Discount) -> None:
    """Per line, rounded half away from zero, on what earlier discounts left; same sign
    as the line (a credit's discount is negative)."""
    basis_points = round(discount.coupon.percent_off * 100)
    for line in lines:
        if line.amount and line.credited is None:  # a flexible credit carries its own (flexible.py)
            amount = divide_half_up((line.amount - line.discount_amount) * basis_points, 10000)
            line.discounts += ((discount, amount),)
            line.discount_amount += amount


def apply_amount_off(lines: list[Line], discount: Discount, amount_off: int | None) -> None:
    """Spread over the positive non-proration lines in proportion to what they still owe;
    a coupon with no amount in the invoice's currency does not apply."""
    eligible = [line for line in lines if line.amount > 0 and not line.proration]
    base = sum(line.amount - line.discount_amount for line in eligible)
    if amount_off is None or base <= 0:
        return
    total = min(amount_off, base)
    given = 0
    for n, line in enumerate(eligible):
        left = line.amount - line.discount_amount
        share = total - given if n == len(eligible) - 1 else total * left // base
        line.discounts += ((discount, share),)
        line.discount_amount += share
        given += share


def discounts_included(line: Line, sub: Sub | None) -> bool:
    """Whether Stripe shows this line's discounts already taken off its amount.

    Prorations of a ``classic`` subscription, and of a ``flexible`` one with
    ``proration_discounts = "included"``, are shown net: ``amount`` is after the discounts
    and each ``discount_amounts`` entry is 0 (Stripe's changelog 2025-09-30, "itemize
    proration discount amounts"). Flexible subscriptions with ``itemized`` show them apart.
    """
    itemized = (sub is not None and sub.billing_mode == "flexible"
                and sub.proration_discounts == "itemized")  # fmt: skip
    return bool(line.proration and line.discounts and not itemized)


@dataclass(slots=True)
class Item:
    id: str
    price: Price
    quantity: int
    created: int
    debit: Line | None = None  # the item's latest charge (what a flexible credit takes back)
    # mixed intervals (mixed.py): the item's own current period and its index from the
    # subscription's anchor; None on other subscriptions, whose items share the sub's period
    period: tuple[int, int] | None = None
    period_index: int = 0


@dataclass(slots=True)
class Discount:
    id: str
    coupon: Coupon
    start: int
    end: int | None
    sub_id: str | None
    customer_id: str
    promotion_code: str | None = None  # promo_... when redeemed through a promotion code
    invoice_id: str | None = None  # set for a discount put on one invoice only


@dataclass(slots=True)
class Line:
    """An invoice line; its id is the invoice's id core plus its position (render.py)."""

    price: Price
    quantity: int
    amount: int
    start: int
    end: int
    proration: bool
    parent_type: str  # subscription_item_details | invoice_item_details
    sub_id: str | None
    si_id: str | None
    ii_id: str | None
    description: str | None  # None: Stripe's default text (render.py)
    discount_amount: int = 0  # sum of the amounts below
    discounts: tuple[tuple[Discount, int], ...] = ()  # (discount, amount) in applied order
    tax_amount: int = 0
    tax_rate: TaxRate | None = None
    currency: str = ""  # the invoice's currency: the price's own or one of its currency_options
    credited: Line | None = None  # flexible billing mode: the charge this credit takes back
    invoice: Invoice | None = None  # set when the line goes onto an invoice, with its position
    position: int = -1


@dataclass(slots=True)
class Invoice:
    id: str
    customer: Customer
    sub: Sub | None
    created: int
    billing_reason: str
    period_start: int
    period_end: int
    lines: list[Line]
    status: str = "draft"
    auto_advance: bool = True
    finalized_at: int | None = None
    paid_at: int | None = None
    voided_at: int | None = None
    uncollectible_at: int | None = None
    attempt_count: int = 0
    next_payment_attempt: int | None = None
    number: str | None = None
    discounts: tuple[Discount, ...] = ()
    deleted: bool = False
    # cash (cash.py): the customer balance applied, credit notes before / after payment
    starting_balance: int = 0
    pre_payment_credit: int = 0
    post_payment_credit: int = 0

    def totals(self) -> tuple[int, int, int, int]:
        """subtotal, discounts, inclusive tax, exclusive tax."""
        subtotal = discount = inclusive = exclusive = 0
        for line in self.lines:
            subtotal += line.amount
            discount += line.discount_amount
            if line.tax_rate is not None:
                if line.tax_rate.inclusive:
                    inclusive += line.tax_amount
                else:
                    exclusive += line.tax_amount
        return subtotal, discount, inclusive, exclusive

    def total(self) -> int:
        subtotal, discount, _inclusive, exclusive = self.totals()
        return subtotal - discount + exclusive


@dataclass(slots=True)
class Sub:
    id: str
    customer: Customer
    created: int
    items: list[Item]
    anchor: int
    period_index: int
    period_start: int
    period_end: int
    status: str = "active"
    trial_start: int | None = None
    trial_end: int | None = None
    cancel_at_period_end: bool = False
    cancel_at: int | None = None
    canceled_at: int | None = None
    ended_at: int | None = None
    cancel_reason: str | None = None
    pause: tuple[str, int | None] | None = None  # behavior, resumes_at
    discounts: tuple[Discount, ...] = ()  # stacked, applied in order
    next_invoice_discounts: tuple[Discount, ...] = ()  # invoice-level, on the next invoice
    pending: list[Line] = field(default_factory=list)
    latest_invoice: str | None = None
    version: int = 0  # bumps when the renewal schedule changes; stale actions are skipped
    failures: list[tuple[int, str, int]] = field(default_factory=list)  # from, outcome, days
    missing_payment_method: bool = False
    scripted: bool = False
    currency: str = ""  # the customer's currency where every price supports it
    schedule: object | None = None  # the subscription schedule attached (schedules.py)
    billing_mode: str = "classic"  # classic | flexible (flexible.py)
    proration_discounts: str = "itemized"  # flexible mode: itemized | included

    @property
    def cycle_price(self) -> Price:
        return self.items[0].price

    @property
    def live(self) -> bool:
        return self.status not in ("canceled", "incomplete_expired")


@dataclass(slots=True)
class Customer:
    idx: int
    id: str
    created: int
    name: str
    email: str
    country: str
    currency: str
    segment: str
    invoice_prefix: str
    rng: random.Random | None
    subs: list[Sub] = field(default_factory=list)
    invoices: list[Invoice] = field(default_factory=list)
    agenda: list = field(default_factory=list)
    deleted_at: int | None = None
    updated: int = 0
    metadata_extra: tuple[tuple[str, str], ...] = ()
    invoice_seq: int = 0
    scripted: bool = False
    ever_subscribed: bool = False
    balance: int = 0  # Stripe's customer balance; < 0 is a credit (cash.py)
    credit_notes: list = field(default_factory=list)
    schedules: list = field(default_factory=list)  # subscription schedules (schedules.py)


@dataclass(slots=True)
class Event:
    id: str
    created: int
    type: str
    kind: str  # customers | subscriptions | invoices | prices | products | credit_notes
    obj: object
    state: tuple | None  # snapshot of the object's state at the event
    previous: tuple | None  # snapshot before, for *.updated


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
