"""Engine records -> Stripe JSON in the pinned API version's shapes (basil line and later:
``invoice.parent.subscription_details``, ``line.parent.*_details``, ``line.pricing``,
``subscription.items.data[].current_period_*``). Key sets follow Stripe's own examples
(fixtures3.json); fields the sandbox does not model carry Stripe's empty values.

Objects are rendered on demand from compact records; events keep a small snapshot of the
object's changing state so ``data.object`` shows the object as it was at the event.
"""

from __future__ import annotations

from . import cash, flexible, schedules
from .catalog import Price, Product
from .records import Customer, Invoice, Line, Sub, b62, discounts_included
from .shapes import PRICE_INCLUDABLE

API_VERSION = "2026-10-28.endive"


def snapshot(kind: str, obj) -> tuple | None:
    if kind == "subscriptions":
        sub: Sub = obj
        return (
            sub.status, sub.cancel_at_period_end, sub.cancel_at, sub.canceled_at, sub.ended_at,
            sub.cancel_reason, sub.pause, sub.discounts,
            tuple((i.id, i.price, i.quantity, i.created, i.period) for i in sub.items),
            sub.period_start, sub.period_end, sub.trial_start, sub.trial_end, sub.latest_invoice,
            sub.anchor, sub.schedule.id if sub.schedule is not None else None,
        )  # fmt: skip
    if kind == "invoices":
        inv: Invoice = obj
        return (
            inv.status, inv.auto_advance, inv.finalized_at, inv.paid_at, inv.voided_at,
            inv.uncollectible_at, inv.attempt_count, inv.next_payment_attempt, inv.number,
            inv.starting_balance, inv.pre_payment_credit, inv.post_payment_credit,
        )  # fmt: skip
    if kind == "customers":
        c: Customer = obj
        return (c.email, c.ever_subscribed, c.metadata_extra, c.updated, c.invoice_seq, c.balance)
    if kind == "products":
        return (obj.name, obj.description, obj.active, obj.updated)
    if kind == "prices":
        # options are only ever added (catalog_changes.py), so the pairs are a faithful copy
        return (obj.nickname, obj.active, tuple(obj.currency_options.items()))
    if kind == "credit_notes":
        return cash.snapshot(obj)
    if kind == "subscription_schedules":
        return schedules.snapshot(obj)
    return None


def address(country: str | None) -> dict:
    """A customer's address as Stripe renders it; the sandbox knows only the country."""
    return {
        "city": None,
        "country": country,
        "line1": None,
        "line2": None,
        "postal_code": None,
        "state": None,
    }


def customer(c: Customer, state: tuple | None = None) -> dict:
    email, subscribed, extra, _updated, seq, balance = state or snapshot("customers", c)
    metadata = {"segment": c.segment}
    metadata.update(extra)
    return {
        "id": c.id,
        "object": "customer",
        "address": address(c.country),
        "balance": balance,
        "created": c.created,
        "currency": c.currency if subscribed else None,
        "default_source": None,
        "delinquent": False,
        "description": None,
        "discount": None,
        "email": email,
        "invoice_prefix": c.invoice_prefix,
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },  # fmt: skip
        "livemode": False,
        "metadata": metadata,
        "name": c.name,
        "next_invoice_sequence": seq + 1,
        "phone": None,
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }


def deleted(kind: str, object_id: str) -> dict:
    return {"id": object_id, "object": kind, "deleted": True}


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


def subscription_item(sub_id: str, item: tuple, period: tuple[int, int]) -> dict:
    """``period``: the subscription's, unless the item has its own (mixed intervals)."""
    item_id, p, quantity, created, own_period = item
    period = own_period or period
    obj = {
        "id": item_id,
        "object": "subscription_item",
        "billing_thresholds": None,
        "created": created,
        "current_period_end": period[1],
        "current_period_start": period[0],
        "discounts": [],
        "metadata": {},
        "plan": plan(p),
        "price": default_price(p),
        "quantity": quantity,
        "subscription": sub_id,
        "tax_rates": [],
    }
    if p.usage_type == "metered":
        del obj["quantity"]
    return obj


def subscription(sub: Sub, state: tuple | None = None) -> dict:
    (status, cancel_at_period_end, cancel_at, canceled_at, ended_at, reason, pause, disc,
     items, period_start, period_end, trial_start, trial_end, latest_invoice,
     anchor, schedule) = state or snapshot("subscriptions", sub)  # fmt: skip
    discounts = disc
    c = sub.customer
    item_dicts = [subscription_item(sub.id, item, (period_start, period_end)) for item in items]
    return {
        "id": sub.id,
        "object": "subscription",
        "application": None,
        "application_fee_percent": None,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_cycle_anchor": anchor,
        "billing_cycle_anchor_config": None,
        "billing_mode": flexible.billing_mode(sub),
        "billing_schedules": [],
        "billing_thresholds": None,
        "cancel_at": cancel_at,
        "cancel_at_period_end": cancel_at_period_end,
        "canceled_at": canceled_at,
        "cancellation_details": {"comment": None, "feedback": None, "reason": reason},
        "collection_method": "charge_automatically",
        "created": sub.created,
        "currency": sub.currency,
        "customer": c.id,
        "customer_account": None,
        "days_until_due": None,
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [d.id for d in discounts],
        "ended_at": ended_at,
        "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
        "items": {
            "object": "list",
            "data": item_dicts,
            "has_more": False,
            "url": f"/v1/subscription_items?subscription={sub.id}",
        },
        "latest_invoice": latest_invoice,
        "livemode": False,
        "managed_payments": {"enabled": False},
        "metadata": {},
        "next_pending_invoice_item_invoice": None,
        "on_behalf_of": None,
        "pause_collection": None
        if pause is None
        else {"behavior": pause[0], "resumes_at": pause[1]},
        "payment_settings": {
            "payment_method_options": None,
            "payment_method_types": None,
            "save_default_payment_method": "off",
        },
        "pending_invoice_item_interval": None,
        "pending_setup_intent": None,
        "pending_update": None,
        "schedule": schedule,
        "start_date": sub.created,
        "status": status,
        "test_clock": None,
        "transfer_data": None,
        "trial_end": trial_end,
        "trial_settings": {
            "end_behavior": {
                "missing_payment_method": "pause"
                if sub.missing_payment_method
                else "create_invoice"
            }
        },
        "trial_start": trial_start,
    }


def line_description(line: Line) -> str:
    if line.description is not None:
        return line.description
    name = line.price.product.name
    if line.proration:
        what = "Unused time on" if line.amount < 0 else "Remaining time on"
        return f"{what} {line.quantity} × {name}"
    return f"{line.quantity} × {name}"


def line_item(line: Line, inv: Invoice, position: int) -> dict:
    details = {
        "invoice_item": line.ii_id,
        "proration": line.proration,
        "proration_details": {"credited_items": flexible.credited_items(line)},
        "subscription": line.sub_id,
    }
    if line.parent_type == "subscription_item_details":
        details["subscription_item"] = line.si_id
        parent = {"invoice_item_details": None, "subscription_item_details": details}
    else:
        parent = {"invoice_item_details": details, "subscription_item_details": None}
    parent["type"] = line.parent_type
    taxes = []
    if line.tax_rate is not None:
        taxes.append(
            {
                "amount": line.tax_amount,
                "tax_behavior": "inclusive" if line.tax_rate.inclusive else "exclusive",
                "tax_rate_details": {"tax_rate": line.tax_rate.id},
                "taxability_reason": "standard_rated",
                "taxable_amount": line.amount
                - line.discount_amount
                - (line.tax_amount if line.tax_rate.inclusive else 0),
                "type": "tax_rate_details",
            }
        )
    # a classic subscription's proration shows its discounts included in its amount
    included = discounts_included(line, inv.sub)
    shown = line.amount - line.discount_amount if included else line.amount
    discount_amounts = [
        {"amount": 0 if included else amount, "discount": d.id} for d, amount in line.discounts
    ]
    p = line.price
    unit_amount = p.unit_amount
    if line.currency != p.currency:
        unit_amount = p.currency_options[line.currency].unit_amount
    return {
        "id": f"il_{inv.id[3:]}{b62(position, 2)}",
        "object": "line_item",
        "amount": shown,
        "currency": line.currency,
        "description": line_description(line),
        "discount_amounts": discount_amounts,
        "discountable": True,
        # the line's own discounts; an invoice-level discount shows in discount_amounts only
        "discounts": [d.id for d, _ in line.discounts if d.invoice_id is None],
        "invoice": inv.id,
        "livemode": False,
        "metadata": {},
        "parent": parent,
        "period": {"end": line.end, "start": line.start},
        "pretax_credit_amounts": [],
        "pricing": {
            "price_details": {"price": p.id, "product": p.product.id},
            "type": "price_details",
            "unit_amount_decimal": (
                unit_amount_decimal(p)
                if line.currency == p.currency
                else None
                if unit_amount is None
                else str(unit_amount)
            ),
        },
        "quantity": line.quantity,
        "quantity_decimal": str(line.quantity),
        "subscription": line.sub_id,
        "subtotal": shown,
        "taxes": taxes,
    }


def invoice(inv: Invoice, state: tuple | None = None) -> dict:
    (status, auto_advance, finalized_at, paid_at, voided_at, uncollectible_at, attempt_count,
     next_attempt, number, starting_balance, pre_credit,
     post_credit) = state or snapshot("invoices", inv)  # fmt: skip
    c = inv.customer
    subtotal, discount_total, inclusive, exclusive = inv.totals()
    total = subtotal - discount_total + exclusive
    # the customer balance applied at finalization, then pre-payment credit notes (cash.py)
    due = max(total + starting_balance, 0) - pre_credit
    paid = due if status == "paid" else 0
    remaining = due - paid if status in ("open", "draft") else 0
    lines = [line_item(line, inv, n) for n, line in enumerate(inv.lines)]
    discounts: dict[str, int] = {}
    taxes: dict[str, dict] = {}
    for line in inv.lines:
        # discounts included in a proration's amount are in the subtotal, not the discounts
        included = discounts_included(line, inv.sub)
        if included:
            subtotal -= line.discount_amount
            discount_total -= line.discount_amount
        for d, amount in line.discounts:
            discounts[d.id] = discounts.get(d.id, 0) + (0 if included else amount)
        if line.tax_rate is not None:
            entry = taxes.setdefault(line.tax_rate.id, {
                "amount": 0,
                "tax_behavior": "inclusive" if line.tax_rate.inclusive else "exclusive",
                "tax_rate_details": {"tax_rate": line.tax_rate.id},
                "taxability_reason": "standard_rated",
                "taxable_amount": 0,
                "type": "tax_rate_details",
            })  # fmt: skip
            entry["amount"] += line.tax_amount
            entry["taxable_amount"] += (
                line.amount
                - line.discount_amount
                - (line.tax_amount if line.tax_rate.inclusive else 0)
            )
    sub = inv.sub
    parent = None
    if sub is not None:
        parent = {
            "quote_details": None,
            "subscription_details": {"metadata": {}, "subscription": sub.id},
            "type": "subscription_details",
        }
    draft = status == "draft"
    return {
        "id": inv.id,
        "object": "invoice",
        "account_country": "US",
        "account_name": "Sandbox SaaS Inc.",
        "account_tax_ids": None,
        "amount_due": due,
        "amount_overpaid": 0,
        "amount_paid": paid,
        "amount_remaining": remaining,
        "amount_shipping": 0,
        "application": None,
        "attempt_count": attempt_count,
        "attempted": attempt_count > 0,
        "auto_advance": auto_advance,
        "automatic_tax": {
            "disabled_reason": None,
            "enabled": False,
            "liability": None,
            "provider": None,
            "status": None,
        },  # fmt: skip
        "automatically_finalizes_at": inv.created + 3600 if draft and auto_advance else None,
        "billing_reason": inv.billing_reason,
        "collection_method": "charge_automatically",
        "created": inv.created,
        "currency": inv.lines[0].currency if inv.lines else c.currency,
        "custom_fields": None,
        "customer": c.id,
        "customer_account": None,
        "customer_address": address(c.country),
        "customer_email": c.email,
        "customer_name": c.name,
        "customer_phone": None,
        "customer_shipping": None,
        "customer_tax_exempt": "none",
        "customer_tax_ids": [],
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        # expanded with their coupons; lists and retrieves show ids unless asked to expand
        "discounts": [discount(d, expand_coupon=True) for d in inv.discounts],
        "due_date": None,
        "effective_at": finalized_at,
        "ending_balance": None if draft else min(total + starting_balance, 0),
        "footer": None,
        "from_invoice": None,
        "hosted_invoice_url": None if draft else f"https://invoice.sandbox.invalid/{inv.id}",
        "invoice_pdf": None if draft else f"https://invoice.sandbox.invalid/{inv.id}/pdf",
        "issuer": {"type": "self"},
        "last_finalization_error": None,
        "latest_revision": None,
        "lines": {
            "object": "list",
            "data": lines,
            "has_more": False,
            "url": f"/v1/invoices/{inv.id}/lines",
        },
        "livemode": False,
        "metadata": {},
        "next_payment_attempt": next_attempt,
        "number": number,
        "on_behalf_of": None,
        "parent": parent,
        "payment_settings": {
            "default_mandate": None,
            "payment_method_options": None,
            "payment_method_types": None,
        },  # fmt: skip
        "period_end": inv.period_end,
        "period_start": inv.period_start,
        "post_payment_credit_notes_amount": post_credit,
        "pre_payment_credit_notes_amount": pre_credit,
        "receipt_number": None,
        "rendering": None,
        "shipping_cost": None,
        "shipping_details": None,
        "starting_balance": starting_balance,
        "statement_descriptor": None,
        "status": status,
        "status_transitions": {
            "finalized_at": finalized_at,
            "marked_uncollectible_at": uncollectible_at,
            "paid_at": paid_at,
            "voided_at": voided_at,
        },
        "subtotal": subtotal,
        "subtotal_excluding_tax": subtotal - inclusive,
        "test_clock": None,
        "total": total,
        "total_discount_amounts": [{"amount": a, "discount": d} for d, a in discounts.items()],
        "total_excluding_tax": subtotal - discount_total - inclusive,
        "total_pretax_credit_amounts": [],
        "total_taxes": list(taxes.values()),
        "webhooks_delivered_at": inv.created,
    }


def render(kind: str, obj, state: tuple | None = None) -> dict:
    if kind == "customers":
        return customer(obj, state)
    if kind == "subscriptions":
        return subscription(obj, state)
    if kind == "invoices":
        return invoice(obj, state)
    if kind == "prices":
        return price(obj, state)
    if kind == "products":
        return product(obj, state)
    if kind == "credit_notes":
        return cash.render_credit_note(obj, state)
    if kind == "subscription_schedules":
        return schedules.render_schedule(obj, state)
    if kind == "discounts":  # only as an event's object (customer.discount.*)
        return discount(obj)
    raise ValueError(kind)


def collapsed(kind: str, obj: dict) -> dict:
    """An event's object shows references as ids (an invoice's discounts)."""
    if kind == "invoices" and obj.get("discounts"):
        return {**obj, "discounts": [d["id"] for d in obj["discounts"]]}
    return obj


def event(ev, api_version: str = API_VERSION) -> dict:
    obj = collapsed(ev.kind, render(ev.kind, ev.obj, ev.state))
    data = {"object": obj}
    if ev.previous is not None:
        before = collapsed(ev.kind, render(ev.kind, ev.obj, ev.previous))
        data["previous_attributes"] = {
            key: value for key, value in before.items() if obj.get(key) != value
        }
    return {
        "id": ev.id,
        "object": "event",
        "api_version": api_version,
        "created": ev.created,
        "data": data,
        "livemode": False,
        "pending_webhooks": 0,
        "request": {"id": None, "idempotency_key": None},
        "type": ev.type,
    }
