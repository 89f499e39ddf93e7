"""Catalog edits at a set time: a price gains a currency option.

Stripe lets a merchant add currencies to an existing price (``POST /v1/prices/{id}`` with
``currency_options``); the change emits ``price.updated``. From that instant a customer
whose currency is the new option can be billed in it: a subscription made later bills in
that currency (records.billing_currency), and its prorations are valued from the option
(docs/metrics.md). Subscriptions made before keep the currency they were made in.

Changes are scripted with ``SandboxOptions(catalog_changes=(CurrencyOptionAdded(...),))``
and happen in every account. The world runs its customers up to each change's instant,
applies it, then runs on (generator.py), so every customer action at or after the change
sees it and every action before does not.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import snapshots
from .catalog import CurrencyOption
from .engine import Engine
from .records import parse_time


@dataclass(frozen=True)
class CurrencyOptionAdded:
    """``price`` (a catalog price key) gains ``currency`` at ``at``: ``unit_amount`` for a
    per-unit price, ``tiers`` ((up_to or None, unit_amount, flat_amount), ...) for a tiered
    one; ``tax_behavior`` of the new option (Stripe's: inclusive | exclusive | unspecified)."""

    at: str | int
    price: str
    currency: str
    unit_amount: int | None = None
    tiers: tuple[tuple[int | None, int, int], ...] = ()
    tax_behavior: str = "unspecified"

    @property
    def time(self) -> int:
        return parse_time(self.at)


def due(changes: tuple, after: int | None, until: int) -> list:
    """The changes that happen in (after, until] (after None: up to until), in time order."""
    return sorted(
        (c for c in changes if (after is None or after < c.time) and c.time <= until),
        key=lambda c: c.time,
    )


def apply(acct: Engine, change: CurrencyOptionAdded) -> None:
    price = acct.catalog.price(change.price)
    if price.supports(change.currency):
        raise ValueError(f"{change.price} already has an amount in {change.currency}")
    tiered = price.billing_scheme == "tiered"
    if tiered != bool(change.tiers) or tiered == (change.unit_amount is not None):
        raise ValueError(f"{change.price}: give {'tiers' if tiered else 'unit_amount'} only")
    before = snapshots.snapshot("prices", price)
    price.currency_options[change.currency] = CurrencyOption(
        change.unit_amount, list(change.tiers), change.tax_behavior
    )
    acct.emit(change.time, "price.updated", "prices", price, previous=before)
