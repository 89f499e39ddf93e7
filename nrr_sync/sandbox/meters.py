"""Billing Meters: usage-based prices billed in arrears, as Stripe does since the basil
API line (usage records are gone; every metered price names a meter).

- A metered price has ``recurring.usage_type = metered`` and ``recurring.meter`` (a
  ``mtr_`` id, served at ``/v1/billing/meters``). Its per-unit amount is either whole minor
  units (``unit_amount``) or fractional (``unit_amount`` null, ``unit_amount_decimal``
  "0.05": a twentieth of a cent per event), as Stripe allows.
- A subscription item on it has no ``quantity``. The creation invoice carries a $0 line
  for it; each renewal invoice bills the usage of the period that just ended (period =
  the previous ``[start, end)``), beside the licensed items billed for the period ahead;
  a subscription that ends at its period end or at a ``cancel_at`` bills the last usage
  on its final invoice. The line's amount is usage × unit amount, rounded half up to a
  minor unit; metered items are never prorated.

MRR (docs/metrics.md, "Metered usage"): excluded by default; with ``include_metered`` a
usage line is valued like any other non-proration line, net / interval months, over the
period it measured, so a month's metered MRR appears once the next renewal bills it.
"""

from __future__ import annotations

from fractions import Fraction

from .catalog import Price
from .engine import Engine
from .records import Customer, Line, Sub


def usage_amount(price: Price, usage: int) -> int:
    """usage × the unit amount (``unit_amount`` or ``unit_amount_decimal``), half up."""
    if price.unit_amount is not None:
        return price.unit_amount * usage
    exact = Fraction(price.unit_amount_decimal) * usage
    return int((2 * exact.numerator + exact.denominator) // (2 * exact.denominator))


def draw_usage(customer: Customer, price: Price) -> int:
    """A period's usage: API calls by the hundred, events by the tens of thousands."""
    rng = customer.rng
    if price.unit_amount is None:
        return rng.randint(0, 400) * 1000 + rng.randint(0, 999)
    return rng.randint(0, 20000)


def usage_lines(acct: Engine, customer: Customer, sub: Sub, t: int, start: int) -> list[Line]:
    """One line per metered item for the usage of ``[start, t)``."""
    lines = []
    for item in sub.items:
        price = item.price
        if price.usage_type != "metered" or t <= start:
            continue
        usage = draw_usage(customer, price)
        lines.append(acct.new_line(customer, t, price, usage, usage_amount(price, usage), start,
                                   t, sub=sub, item=item))  # fmt: skip
    return lines


def final_usage(acct: Engine, sub: Sub, t: int) -> None:
    """A subscription ending at ``t`` bills its last usage on a final invoice."""
    customer = sub.customer
    lines = usage_lines(acct, customer, sub, t, sub.period_start)
    if lines:
        acct.invoice_now(customer, sub, t, lines, (sub.period_start, t),
                         reason="subscription_cycle")  # fmt: skip


# -- rendering ------------------------------------------------------------------------------
def meters(prices: list[Price]) -> list[Price]:
    """The metered prices, one meter each (a meter is rendered from its price)."""
    return [p for p in prices if p.meter is not None]


def render_meter(price: Price) -> dict:
    event_name = price.product.key.replace("_", "-")
    return {
        "id": price.meter,
        "object": "billing.meter",
        "created": price.created,
        "customer_mapping": {"event_payload_key": "stripe_customer_id", "type": "by_id"},
        "default_aggregation": {"formula": "sum"},
        "display_name": price.product.name,
        "event_name": event_name,
        "event_time_window": None,
        "livemode": False,
        "status": "active",
        "status_transitions": {"deactivated_at": None},
        "updated": price.created,
        "value_settings": {"event_payload_key": "value"},
    }
