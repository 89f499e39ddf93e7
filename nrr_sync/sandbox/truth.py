"""Ground truth: each customer's MRR per SPEC 6.1, from the engine's own billing records.

The engine records what it billed for which service period (price, quantity, its own
rounded amounts, discount and tax) on which invoice; this module values those records
with the rules below, using exact fractions and rounding once, per customer and month.
It never reads the rendered JSON. The rules (SPEC 6.1):

- An invoice counts if ``paid``; ``open`` when open invoices are included and its
  subscription's status *now* is not unpaid / incomplete / incomplete_expired, nor
  canceled with reason payment_failed; ``draft`` with auto_advance and a billing reason
  starting ``subscription``. Never void / uncollectible / deleted.
- A line counts if it belongs to a subscription, its price is recurring and licensed
  (metered only if asked) and its period is not empty.
- net = amount - discount (if subtracting discounts) - inclusive tax; exclusive tax ignored.
- Not a proration: net / interval months (month 1, year 12, week 12/52, day 12/365).
- A proration: sign(amount) x the price's full-interval amount at the line's quantity
  (tiers, transform_quantity) x net / amount / interval months; 0 when amount is 0.
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

from .billing import Customer, Invoice, Line
from .catalog import ZERO_DECIMAL

EXCLUDED_OPEN = ("unpaid", "incomplete", "incomplete_expired")


@dataclass(frozen=True)
class TruthOptions:
    """The reporting options of SPEC 3 that change MRR (defaults = the config defaults)."""

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
    full = price.full_amount(line.quantity)
    return sign * full * Fraction(net, line.amount) / months


def month_starts(first: int, last: int, tz: str) -> list[int]:
    """Instants at which the months from ``first``'s month to ``last``'s month begin,
    plus the start of the month after."""
    zone = ZoneInfo(tz)
    start = datetime.fromtimestamp(first, zone)
    end = datetime.fromtimestamp(last, zone)
    year, month = start.year, start.month
    starts = []
    while (year, month) <= (end.year, end.month):
        starts.append(_month_start(year, month, zone))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    starts.append(_month_start(year, month, zone))
    return starts


def _month_start(year: int, month: int, zone: ZoneInfo) -> int:
    if zone.key == "UTC":
        return calendar.timegm((year, month, 1, 0, 0, 0))
    return int(datetime(year, month, 1, tzinfo=zone).timestamp())


def to_cents(value: Fraction) -> Decimal:
    """max(0, value) rounded half-up to cents."""
    if value <= 0:
        return Decimal("0.00")
    cents = int((value * 200 + 1) // 2)
    return Decimal(cents).scaleb(-2).quantize(Decimal("0.01"))


def customer_truth(customer: Customer, now: int, history_start: int, opts: TruthOptions,
                   rates: dict[str, Fraction]) -> list[tuple[str, Decimal]]:  # fmt: skip
    """[(YYYY-MM-01, mrr)] for one customer."""
    contributions: list[tuple[int, int, Fraction]] = []
    first_start = None
    for inv in customer.invoices:
        if inv.created > now or not invoice_counts(inv, opts):
            continue
        sub = inv.sub
        for line in inv.lines:
            monthly = line_monthly(line, opts)
            if monthly is None or monthly == 0:
                continue
            end = line.end
            if (
                opts.churn_recognition == "canceled_at"
                and sub is not None
                and sub.canceled_at is not None
                and sub.canceled_at <= now
            ):
                end = min(end, sub.canceled_at)
            if end <= line.start:
                continue
            currency = line.price.currency
            scale = 1 if currency in ZERO_DECIMAL else 100
            value = monthly * rates[currency] / scale
            contributions.append((line.start, end, value))
            first_start = line.start if first_start is None else min(first_start, line.start)
    if not contributions:
        return []
    starts = month_starts(min(first_start, history_start), now, opts.timezone)
    # snapshot instants: each month's last second; the month of now at now
    instants = [b - 1 for b in starts[1:]]
    instants[-1] = now
    totals = [Fraction(0)] * len(instants)
    for start, end, value in contributions:
        lo = bisect_left(instants, start)
        hi = bisect_left(instants, end)
        for k in range(lo, hi):
            totals[k] += value
    rows = []
    started = False
    zone = ZoneInfo(opts.timezone)
    for k, total in enumerate(totals):
        mrr = to_cents(total)
        if not started and mrr <= 0:
            continue
        started = True
        month = datetime.fromtimestamp(starts[k], zone)
        rows.append((f"{month.year:04d}-{month.month:02d}-01", mrr))
    return rows
