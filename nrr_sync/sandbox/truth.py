"""Ground truth: each customer's MRR per docs/metrics.md, from the engine's own billing records.

The engine records what it billed for which service period (price, quantity, its own
rounded amounts, discount and tax) on which invoice; this module values those records
with the rules below, using exact fractions and rounding once, per customer and month.
It never reads the rendered JSON. The rules (docs/metrics.md):

- An invoice counts if ``paid``; ``open`` when open invoices are included and its
  subscription's status *now* is not unpaid / incomplete / incomplete_expired, nor
  canceled with reason payment_failed; ``draft`` with auto_advance and a billing reason
  starting ``subscription``. Never void / uncollectible / deleted.
- A line counts if it belongs to a subscription, its price is recurring and licensed
  (metered only if asked) and its period is not empty.
- net = amount - discount (if subtracting discounts) - inclusive tax; exclusive tax ignored.
- Not a proration: net / interval months (month 1, year 12, week 12/52, day 12/365), the
  interval of the line's own price: a subscription mixing monthly and yearly items
  (mixed.py) needs no rule of its own.
- A proration: sign(amount) x the price's full-interval amount at the line's quantity
  (tiers, transform_quantity), in the line's currency (its currency option when the line
  is billed in another currency than the price's) x net / amount / interval months; 0
  when amount is 0. With percent-off coupons (and subtract_discounts): the full amount
  x prod(1 - percent_off / 100) x net / (amount - the percent-off discount amounts).
  A classic subscription's proration is shown with its coupons included in its amount
  (records.discounts_included): with subtract_discounts the same rule holds on what is
  shown; without, the full amount x (shown - inclusive tax x prod(...)) / |shown|, and 0
  when it shows 0 (a 100%-off coupon: nothing says whether it was a credit or a charge).
- Flexible billing mode: a credit proration naming the line it credits
  (``credited_items``), when that line counts, is worth minus that line's monthly value
  (whatever its own amounts), so the two cancel exactly over the credited rest of the period.
- churn_recognition canceled_at: a subscription's lines stop at its canceled_at.
- A line is active at instant t iff start <= t < end. Month m is valued at its last
  instant (next month's start - 1 s), the month of ``now`` at ``now``.
- Minor units / 100 (zero-decimal currencies / 1), times the fx rate (1 for the reporting
  currency); summed per customer; max(0, sum); rounded half-up to cents.
- Rows run from the customer's first month whose rounded MRR > 0 through the month of
  now, zero months included.
"""

from __future__ import annotations

import calendar
from bisect import bisect_left
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

from .catalog import ZERO_DECIMAL
from .records import Customer, Invoice, Line, discounts_included

EXCLUDED_OPEN = ("unpaid", "incomplete", "incomplete_expired")


@dataclass(frozen=True)
class TruthOptions:
    """The reporting options that change MRR (defaults = the config defaults)."""

    currency: str = "usd"
    fx: tuple[tuple[str, float], ...] = ()
    include_open_invoices: bool = True
    include_metered: bool = False
    subtract_discounts: bool = True
    churn_recognition: str = "period_end"
    timezone: str = "UTC"


def invoice_counts(inv: Invoice, opts: TruthOptions) -> bool:
    if inv.deleted:
        return False
    if inv.status == "paid":
        return True
    if inv.status == "open":
        if not opts.include_open_invoices:
            return False
        sub = inv.sub
        if sub is None:
            return True
        if sub.status in EXCLUDED_OPEN:
            return False
        return not (sub.status == "canceled" and sub.cancel_reason == "payment_failed")
    if inv.status == "draft":
        return inv.auto_advance and inv.billing_reason.startswith("subscription")
    return False


def line_monthly(line: Line, opts: TruthOptions) -> Fraction | None:
    """The line's monthly value in its currency's minor units, or None if it does not count."""
    price = line.price
    if line.sub_id is None or not price.recurring or line.end <= line.start:
        return None
    if price.usage_type == "metered" and not opts.include_metered:
        return None
    if line.tax_rate is None and not line.discount_amount and not line.proration:
        return Fraction(line.amount) / price.months()
    net = line.amount
    if opts.subtract_discounts:
        net -= line.discount_amount
    if line.tax_rate is not None and line.tax_rate.inclusive:
        net -= line.tax_amount
    months = price.months()
    if not line.proration:
        return Fraction(net) / months
    if line.amount == 0:
        return Fraction(0)
    sign = 1 if line.amount > 0 else -1
    full = price.full_amount(line.quantity, line.currency)
    percent = [(d, a) for d, a in line.discounts if d.coupon.percent_off is not None]
    included = discounts_included(line, line.invoice.sub if line.invoice else None)
    if not opts.subtract_discounts and percent and (included or not any(a for _, a in percent)):
        # shown net of its percent-off coupons: the list price before them, with the
        # inclusive tax in the share it has of the undiscounted amount (as on a renewal)
        shown = line.amount - line.discount_amount if included else line.amount
        if shown == 0:
            return Fraction(0)  # nothing says whether it was a credit or a charge
        tax = line.tax_amount if line.tax_rate is not None and line.tax_rate.inclusive else 0
        factor = percent_factor(percent)
        return full * (shown - tax * factor) / abs(shown) / months
    if opts.subtract_discounts and percent:
        # percent-off coupons apply to the full-period amount exactly; what else the line
        # carries (amount-off coupons, inclusive tax) keeps its ratio to what they left
        factor = percent_factor(percent)
        rest = line.amount - sum(a for _, a in percent)
        if rest == 0 or factor == 0:
            return Fraction(0)
        return sign * full * factor * Fraction(net, rest) / months
    return sign * full * Fraction(net, line.amount) / months


def percent_factor(percent) -> Fraction:
    """Π (1 − percent_off / 100) of stacked percent-off coupons, in basis points."""
    factor = Fraction(1)
    for d, _ in percent:
        factor *= Fraction(10000 - round(d.coupon.percent_off * 100), 10000)
    return factor


def line_value(line: Line, opts: TruthOptions, rates: dict[str, Fraction], cache: dict):
    """The line's monthly value in the reporting currency (0 if it does not count);
    ``cache`` memoizes it by what it depends on."""
    key = (line.price.id, line.proration, line.amount, line.discount_amount,
           line.tax_amount, line.quantity, line.sub_id is None, line.currency,
           tuple((d.coupon.id, a) for d, a in line.discounts),
           discounts_included(line, line.invoice.sub if line.invoice else None))  # fmt: skip
    value = cache.get(key)
    if value is None:
        monthly = line_monthly(line, opts)
        if monthly is None:
            value = cache[key] = 0
        else:
            currency = line.currency
            scale = 1 if currency in ZERO_DECIMAL else 100
            value = cache[key] = monthly * rates[currency] / scale
    return value


def credits_a_counted_line(line: Line, now: int, opts: TruthOptions) -> bool:
    """A flexible-mode credit proration whose credited line is on a counted invoice."""
    debit = line.credited
    if debit is None or not line.proration or debit.invoice is None:
        return False
    return debit.invoice.created <= now and invoice_counts(debit.invoice, opts)


def snapshot_instants(first: int, now: int, tz: str) -> tuple[list[int], list[str]]:
    """The instants at which months are valued, from ``first``'s month through ``now``'s:
    each month's last second, the month of now at ``now``; and the months' labels."""
    zone = ZoneInfo(tz)
    start = datetime.fromtimestamp(first, zone)
    end = datetime.fromtimestamp(now, zone)
    year, month = start.year, start.month
    instants, labels = [], []
    while (year, month) <= (end.year, end.month):
        labels.append(f"{year:04d}-{month:02d}-01")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        instants.append(_month_start(year, month, zone) - 1)
    instants[-1] = now
    return instants, labels


def _month_start(year: int, month: int, zone: ZoneInfo) -> int:
    if zone.key == "UTC":
        return calendar.timegm((year, month, 1, 0, 0, 0))
    return int(datetime(year, month, 1, tzinfo=zone).timestamp())


def to_cents(value: Fraction) -> Decimal:
    """max(0, value) rounded half-up to cents."""
    numerator, denominator = value.numerator, value.denominator
    if numerator <= 0:
        return ZERO
    cents = (200 * numerator + denominator) // (2 * denominator)
    return Decimal(cents).scaleb(-2)


ZERO = Decimal("0.00")


def customer_truth(customer: Customer, now: int, opts: TruthOptions,
                   rates: dict[str, Fraction], instants: list[int], labels: list[str],
                   cache: dict) -> list[tuple[str, Decimal]]:  # fmt: skip
    """[(YYYY-MM-01, mrr)] for one customer; ``cache`` memoizes line values across calls."""
    totals: dict[int, Fraction] = {}
    for inv in customer.invoices:
        if inv.created > now or not invoice_counts(inv, opts):
            continue
        sub = inv.sub
        cut = None
        if (
            opts.churn_recognition == "canceled_at"
            and sub is not None
            and sub.canceled_at is not None
            and sub.canceled_at <= now
        ):
            cut = sub.canceled_at
        for line in inv.lines:
            if credits_a_counted_line(line, now, opts):
                # flexible billing mode: the credit takes back what the line it credits counted
                value = -line_value(line.credited, opts, rates, cache)
            else:
                value = line_value(line, opts, rates, cache)
            if not value:
                continue
            end = line.end if cut is None else min(line.end, cut)
            if end <= line.start:
                continue
            lo = bisect_left(instants, line.start)
            hi = bisect_left(instants, end)
            for k in range(lo, hi):
                totals[k] = totals[k] + value if k in totals else value
    rows = []
    started = False
    for k in range(min(totals, default=len(instants)), len(instants)):
        mrr = to_cents(totals[k]) if k in totals else ZERO
        if not started and not mrr:
            continue
        started = True
        rows.append((labels[k], mrr))
    return rows
