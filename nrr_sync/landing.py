"""Turn Stripe objects (as JSON dicts) into rows of the ``stripe`` landing tables.

One function per object kind, each returning a tuple in the column order of ``COLUMNS``
(the tables of ``sql/V001__landing.sql`` and later migrations). Missing fields become
NULL rather than errors, so a new or absent field in Stripe's answer never breaks a
load; what the reports need is checked by the SQL models and ``report.data_quality``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from . import fastjson

COLUMNS: dict[str, tuple[str, ...]] = {
    "customers": (
        "account_id", "id", "created", "name", "email", "currency", "country",
        "metadata", "deleted", "livemode", "raw", "synced_at", "balance",
    ),
    "products": (
        "account_id", "id", "created", "name", "active", "metadata", "deleted", "raw",
        "synced_at",
    ),
    "prices": (
        "account_id", "id", "product_id", "created", "active", "currency", "type",
        "billing_scheme", "unit_amount", "unit_amount_decimal", "tiers_mode", "tiers",
        "recurring_interval", "recurring_interval_count", "recurring_usage_type",
        "transform_quantity_divide_by", "transform_quantity_round", "tax_behavior",
        "nickname", "metadata", "deleted", "raw", "synced_at", "currency_options",
    ),
    "subscriptions": (
        "account_id", "id", "customer_id", "status", "currency", "created", "start_date",
        "billing_cycle_anchor", "trial_start", "trial_end", "cancel_at_period_end",
        "cancel_at", "canceled_at", "ended_at", "cancellation_reason", "collection_method",
        "pause_collection_behavior", "metadata", "raw", "synced_at",
    ),
    "subscription_items": (
        "account_id", "id", "subscription_id", "price_id", "quantity", "created",
        "current_period_start", "current_period_end", "metadata", "raw", "synced_at",
    ),
    "invoices": (
        "account_id", "id", "customer_id", "subscription_id", "status", "billing_reason",
        "auto_advance", "collection_method", "currency", "created", "period_start",
        "period_end", "finalized_at", "paid_at", "voided_at", "subtotal", "total",
        "amount_due", "amount_paid", "line_count", "lines_complete", "metadata", "raw",
        "synced_at", "starting_balance", "ending_balance", "amount_remaining",
        "pre_payment_credit_notes_amount", "post_payment_credit_notes_amount",
    ),
    "invoice_lines": (
        "account_id", "id", "invoice_id", "parent_type", "subscription_id",
        "subscription_item_id", "invoice_item_id", "proration", "price_id", "product_id",
        "currency", "amount", "quantity", "period_start", "period_end", "discount_amount",
        "inclusive_tax_amount", "exclusive_tax_amount", "description", "raw", "synced_at",
        "other_tax_amount", "discount_amounts", "credited_line_ids",
    ),
    "credit_notes": (
        "account_id", "id", "invoice_id", "customer_id", "number", "status", "type", "reason",
        "currency", "amount", "subtotal", "discount_amount", "pre_payment_amount",
        "post_payment_amount", "refund_amount", "out_of_band_amount",
        "customer_balance_transaction_id", "created", "effective_at", "voided_at", "metadata",
        "raw", "synced_at",
    ),
    "invoice_discounts": (
        "account_id", "invoice_id", "discount_id", "position", "customer_id",
        "subscription_id", "discount_invoice_id", "promotion_code_id", "coupon_id",
        "percent_off", "amount_off", "coupon_currency", "duration", "duration_in_months",
        "starts_at", "ends_at", "deleted", "raw", "synced_at",
    ),
}  # fmt: skip


def timestamp(value: Any) -> int | None:
    """Stripe's unix seconds, checked to be a number, for a TIMESTAMPTZ column: load.py
    hands a column of them to DuckDB as one Arrow array of seconds, where making a
    ``datetime`` of each took a third of the CPU of a page's rows (a page of 100 invoices
    holds about 900, benchmarks/page_cpu.py)."""
    if value is None or isinstance(value, bool):
        return None
    return int(value)


def dig(obj: Any, *path: str) -> Any:
    """``dig(line, "parent", "subscription_item_details", "proration")`` or None."""
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def ref(value: Any) -> str | None:
    """A reference that may be an id or an expanded object -> its id."""
    if isinstance(value, dict):
        return value.get("id")
    return value


def as_json(value: Any) -> str | None:
    return None if value is None else fastjson.dumps_sorted(value)


def without(obj: dict, field: str) -> dict:
    """A shallow copy of ``obj`` without ``field``, the other keys in their order (a
    copy and a ``pop`` in C, several times faster than a comprehension over an
    invoice's 80 keys)."""
    copy = dict(obj)
    copy.pop(field, None)
    return copy


def raw_json(obj: dict) -> str:
    """The whole object for the ``raw`` column, in Stripe's key order (sorting every
    nested dict would cost a backfill about a fifth of its CPU)."""
    return fastjson.dumps(obj)


def customer_row(account_id: str, obj: dict, synced_at: datetime) -> tuple:
    return (
        account_id, obj["id"], timestamp(obj.get("created")), obj.get("name"),
        obj.get("email"), obj.get("currency"), dig(obj, "address", "country"),
        as_json(obj.get("metadata") or {}), bool(obj.get("deleted", False)),
        obj.get("livemode"), raw_json(obj), synced_at, obj.get("balance"),
    )  # fmt: skip


def product_row(account_id: str, obj: dict, synced_at: datetime) -> tuple:
    return (
        account_id, obj["id"], timestamp(obj.get("created")), obj.get("name"),
        obj.get("active"), as_json(obj.get("metadata") or {}),
        bool(obj.get("deleted", False)), raw_json(obj), synced_at,
    )  # fmt: skip


def price_row(account_id: str, obj: dict, synced_at: datetime) -> tuple:
    recurring = obj.get("recurring") or {}
    transform = obj.get("transform_quantity") or {}
    return (
        account_id, obj["id"], ref(obj.get("product")), timestamp(obj.get("created")),
        obj.get("active"), obj.get("currency"), obj.get("type"), obj.get("billing_scheme"),
        obj.get("unit_amount"), obj.get("unit_amount_decimal"), obj.get("tiers_mode"),
        as_json(obj.get("tiers")), recurring.get("interval"),
        recurring.get("interval_count"), recurring.get("usage_type"),
        transform.get("divide_by"), transform.get("round"), obj.get("tax_behavior"),
        obj.get("nickname"), as_json(obj.get("metadata") or {}),
        bool(obj.get("deleted", False)), raw_json(obj), synced_at,
        as_json(obj.get("currency_options")),
    )  # fmt: skip


def subscription_row(account_id: str, obj: dict, synced_at: datetime) -> tuple:
    # The embedded items live in stripe.subscription_items; keep raw small.
    raw = without(obj, "items")
    return (
        account_id, obj["id"], ref(obj.get("customer")), obj.get("status"),
        obj.get("currency"), timestamp(obj.get("created")), timestamp(obj.get("start_date")),
        timestamp(obj.get("billing_cycle_anchor")), timestamp(obj.get("trial_start")),
        timestamp(obj.get("trial_end")), obj.get("cancel_at_period_end"),
        timestamp(obj.get("cancel_at")), timestamp(obj.get("canceled_at")),
        timestamp(obj.get("ended_at")), dig(obj, "cancellation_details", "reason"),
        obj.get("collection_method"), dig(obj, "pause_collection", "behavior"),
        as_json(obj.get("metadata") or {}), raw_json(raw), synced_at,
    )  # fmt: skip


def subscription_item_row(account_id: str, obj: dict, synced_at: datetime) -> tuple:
    return (
        account_id, obj["id"], ref(obj.get("subscription")), ref(obj.get("price")),
        obj.get("quantity"), timestamp(obj.get("created")),
        timestamp(obj.get("current_period_start")), timestamp(obj.get("current_period_end")),
        as_json(obj.get("metadata") or {}), raw_json(obj), synced_at,
    )  # fmt: skip


def invoice_row(account_id: str, obj: dict, synced_at: datetime) -> tuple:
    """An invoice; its lines land in their own table (``raw`` leaves them out). An
    invoice whose ``lines.has_more`` is still true is recorded ``lines_complete = false``."""
    raw = without(obj, "lines")
    lines = obj.get("lines") or {}
    line_count = len(lines.get("data") or [])
    lines_complete = not lines.get("has_more", False)
    transitions = obj.get("status_transitions") or {}
    return (
        account_id, obj["id"], ref(obj.get("customer")),
        ref(dig(obj, "parent", "subscription_details", "subscription")), obj.get("status"),
        obj.get("billing_reason"), obj.get("auto_advance"), obj.get("collection_method"),
        obj.get("currency"), timestamp(obj.get("created")),
        timestamp(obj.get("period_start")), timestamp(obj.get("period_end")),
        timestamp(transitions.get("finalized_at")), timestamp(transitions.get("paid_at")),
        timestamp(transitions.get("voided_at")), obj.get("subtotal"), obj.get("total"),
        obj.get("amount_due"), obj.get("amount_paid"), line_count, lines_complete,
        as_json(obj.get("metadata") or {}), raw_json(raw), synced_at,
        obj.get("starting_balance"), obj.get("ending_balance"), obj.get("amount_remaining"),
        obj.get("pre_payment_credit_notes_amount"), obj.get("post_payment_credit_notes_amount"),
    )  # fmt: skip


def invoice_line_row(account_id: str, invoice_id: str, obj: dict, synced_at: datetime) -> tuple:
    parent = obj.get("parent") or {}
    parent_type = parent.get("type")
    details = parent.get(parent_type) if parent_type else None
    details = details if isinstance(details, dict) else {}
    discounts = obj.get("discount_amounts") or []
    taxes = obj.get("taxes") or []
    credited = dig(details, "proration_details", "credited_items", "invoice_line_items")
    return (
        account_id, obj["id"], invoice_id, parent_type, ref(details.get("subscription")),
        ref(details.get("subscription_item")), ref(details.get("invoice_item")),
        details.get("proration"), ref(dig(obj, "pricing", "price_details", "price")),
        ref(dig(obj, "pricing", "price_details", "product")), obj.get("currency"),
        obj.get("amount"), obj.get("quantity"), timestamp(dig(obj, "period", "start")),
        timestamp(dig(obj, "period", "end")),
        sum(int(d.get("amount") or 0) for d in discounts),
        sum(int(t.get("amount") or 0) for t in taxes if t.get("tax_behavior") == "inclusive"),
        sum(int(t.get("amount") or 0) for t in taxes if t.get("tax_behavior") == "exclusive"),
        obj.get("description"), raw_json(obj), synced_at,
        sum(
            int(t.get("amount") or 0)
            for t in taxes
            if t.get("tax_behavior") not in ("inclusive", "exclusive")
        ),
        fastjson.dumps(discounts) if discounts else None,
        fastjson.dumps(credited) if credited and details.get("proration") else None,
    )  # fmt: skip


def credit_note_row(account_id: str, obj: dict, synced_at: datetime) -> tuple:
    refunds = obj.get("refunds") or []
    return (
        account_id, obj["id"], ref(obj.get("invoice")), ref(obj.get("customer")),
        obj.get("number"), obj.get("status"), obj.get("type"), obj.get("reason"),
        obj.get("currency"), obj.get("amount"), obj.get("subtotal"),
        obj.get("discount_amount"), obj.get("pre_payment_amount"),
        obj.get("post_payment_amount"),
        sum(int(r.get("amount_refunded") or 0) for r in refunds if isinstance(r, dict)),
        obj.get("out_of_band_amount"), ref(obj.get("customer_balance_transaction")),
        timestamp(obj.get("created")), timestamp(obj.get("effective_at")),
        timestamp(obj.get("voided_at")), as_json(obj.get("metadata") or {}), raw_json(obj),
        synced_at,
    )  # fmt: skip


def invoice_discount_rows(account_id: str, invoice: dict, synced_at: datetime) -> list[tuple]:
    """The invoice's expanded discounts (ids alone, not expanded, carry nothing to land)."""
    rows = []
    for position, discount in enumerate(invoice.get("discounts") or []):
        if not isinstance(discount, dict):
            continue
        coupon = dig(discount, "source", "coupon")
        coupon = coupon if isinstance(coupon, dict) else {"id": coupon}
        percent_off = coupon.get("percent_off")
        rows.append((
            account_id, invoice["id"], discount.get("id"), position,
            ref(discount.get("customer")), ref(discount.get("subscription")),
            ref(discount.get("invoice")), ref(discount.get("promotion_code")), coupon.get("id"),
            None if percent_off is None else str(percent_off), coupon.get("amount_off"),
            coupon.get("currency"), coupon.get("duration"), coupon.get("duration_in_months"),
            timestamp(discount.get("start")), timestamp(discount.get("end")),
            bool(discount.get("deleted", False)), raw_json(discount), synced_at,
        ))  # fmt: skip
    return rows


def embedded(obj: dict, field: str) -> list:
    """The objects of an embedded list (``invoice.lines``, ``subscription.items``)."""
    return (obj.get(field) or {}).get("data") or []


def invoice_lines_rows(account_id: str, invoice: dict, synced_at: datetime) -> list[tuple]:
    return [
        invoice_line_row(account_id, invoice["id"], line, synced_at)
        for line in embedded(invoice, "lines")
    ]


def subscription_items_rows(account_id: str, subscription: dict, synced_at: datetime) -> list:
    return [
        subscription_item_row(account_id, item, synced_at)
        for item in embedded(subscription, "items")
    ]


def rows_of(kind, account_id: str, objects, synced_at: datetime) -> dict[str, list[tuple]]:
    """The landing rows of complete Stripe objects of one kind (an entry of the catalogue
    in ``kinds.py``), per table: the kind's own and each of its children's."""
    objects = list(objects)
    rows = {kind.table: [kind.row(account_id, obj, synced_at) for obj in objects]}
    for child in kind.children:
        rows[child.table] = [
            row for obj in objects for row in child.rows(account_id, obj, synced_at)
        ]
    return rows


def now_utc() -> datetime:
    return datetime.now(tz=UTC)
