"""Invoices as Stripe JSON (render.py): the lines with their parents, pricing, discounts
and taxes, and the invoice's amounts, totals and status transitions."""

from __future__ import annotations

from . import flexible
from .records import Invoice, Line, b62, discounts_included
from .render_catalog import discount, unit_amount_decimal
from .render_customers import address
from .snapshots import snapshot


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
