"""Customers as Stripe JSON (render.py): the customer and its address."""

from __future__ import annotations

from .records import Customer
from .snapshots import snapshot


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
