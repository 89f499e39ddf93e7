"""The catalog as Stripe JSON (render.py): products, prices with their tiers and currency
options, the plan a subscription item still carries, coupons and discounts."""

from __future__ import annotations

from .catalog import Price, Product
from .shapes import PRICE_INCLUDABLE
from .snapshots import snapshot


def product(p: Product, state: tuple | None = None) -> dict:
    name, description, active, updated = state or snapshot("products", p)
    return {
        "id": p.id,
        "object": "product",
        "active": active,
        "created": p.created,
        "default_price": p.default_price,
        "description": description,
        "images": [],
        "livemode": False,
        "marketing_features": [],
        "metadata": {"sandbox_key": p.key},
        "name": name,
        "package_dimensions": None,
        "shippable": None,
        "statement_descriptor": None,
        "tax_code": None,
        "type": "service",
        "unit_label": None,
        "updated": updated,
        "url": None,
    }


def tiers(rows: list[tuple[int | None, int, int]]) -> list[dict]:
    return [
        {
            "flat_amount": flat,
            "flat_amount_decimal": str(flat),
            "unit_amount": unit,
            "unit_amount_decimal": str(unit),
            "up_to": up_to,
        }
        for up_to, unit, flat in rows
    ]


def currency_option(unit_amount: int | None, rows: list, tax_behavior: str, tiered: bool) -> dict:
    option = {
        "custom_unit_amount": None,
        "tax_behavior": tax_behavior,
        "unit_amount": unit_amount,
        "unit_amount_decimal": None if unit_amount is None else str(unit_amount),
    }
    if tiered:
        option["tiers"] = tiers(rows)
    return option


def price(p: Price, state: tuple | None = None) -> dict:
    """The price with its ``tiers`` and ``currency_options`` (Stripe returns them only under
    expand[]=tiers / expand[]=currency_options: the server strips them otherwise)."""
    nickname, active, currency_options = state or snapshot("prices", p)
    obj = {
        "id": p.id,
        "object": "price",
        "active": active,
        "billing_scheme": p.billing_scheme,
        "created": p.created,
        "currency": p.currency,
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": p.key,
        "metadata": {},
        "nickname": nickname,
        "product": p.product.id,
        "recurring": None,
        "tax_behavior": p.tax_behavior,
        "tiers_mode": p.tiers_mode,
        "transform_quantity": None,
        "type": "recurring" if p.recurring else "one_time",
        "unit_amount": p.unit_amount,
        "unit_amount_decimal": unit_amount_decimal(p),
    }
    if p.recurring:
        obj["recurring"] = {
            "interval": p.interval,
            "interval_count": p.interval_count,
            "meter": p.meter,
            "trial_period_days": None,
            "usage_type": p.usage_type,
        }
    if p.transform:
        obj["transform_quantity"] = {"divide_by": p.transform[0], "round": p.transform[1]}
    tiered = p.billing_scheme == "tiered"
    if tiered:
        obj["tiers"] = tiers(p.tiers)
    if currency_options:
        # Stripe lists the price's own currency among its options too
        options = {p.currency: currency_option(p.unit_amount, p.tiers, p.tax_behavior, tiered)}
        for currency, option in sorted(currency_options):
            options[currency] = currency_option(option.unit_amount, option.tiers,
                                                option.tax_behavior, tiered)  # fmt: skip
        obj["currency_options"] = options
    return obj


def default_price(p: Price) -> dict:
    """The price as Stripe embeds it (a subscription item's): without the fields it
    includes only when expanded (``tiers``, ``currency_options``)."""
    return {key: value for key, value in price(p).items() if key not in PRICE_INCLUDABLE}


def unit_amount_decimal(p: Price) -> str | None:
    if p.unit_amount_decimal is not None:
        return p.unit_amount_decimal
    return None if p.unit_amount is None else str(p.unit_amount)


def plan(p: Price) -> dict:
    return {
        "id": p.id,
        "object": "plan",
        "active": p.active,
        "amount": p.unit_amount,
        "amount_decimal": unit_amount_decimal(p),
        "billing_scheme": p.billing_scheme,
        "created": p.created,
        "currency": p.currency,
        "interval": p.interval,
        "interval_count": p.interval_count,
        "livemode": False,
        "metadata": {},
        "meter": p.meter,
        "nickname": p.nickname,
        "product": p.product.id,
        "tiers_mode": p.tiers_mode,
        "transform_usage": None
        if not p.transform
        else {"divide_by": p.transform[0], "round": p.transform[1]},
        "trial_period_days": None,
        "usage_type": p.usage_type,
    }


def coupon(c) -> dict:
    return {
        "id": c.id,
        "object": "coupon",
        "amount_off": c.amount_off,
        "created": c.created,
        "currency": c.currency,
        "duration": c.duration,
        "duration_in_months": c.duration_in_months,
        "livemode": False,
        "max_redemptions": None,
        "metadata": {},
        "name": c.name,
        "percent_off": c.percent_off,
        "redeem_by": None,
        "times_redeemed": 0,
        "valid": True,
    }


def discount(d, expand_coupon: bool = False) -> dict:
    """The discount; its coupon (``source.coupon``) is an id unless expanded."""
    return {
        "id": d.id,
        "object": "discount",
        "checkout_session": None,
        "customer": d.customer_id,
        "customer_account": None,
        "end": d.end,
        "invoice": d.invoice_id,
        "invoice_item": None,
        "promotion_code": d.promotion_code,
        "source": {"coupon": coupon(d.coupon) if expand_coupon else d.coupon.id, "type": "coupon"},
        "start": d.start,
        "subscription": d.sub_id,
        "subscription_item": None,
    }
