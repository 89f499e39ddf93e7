"""Builders of hand-made Stripe objects, shaped like API version 2026-10-28.endive.

Each returns a plain dict as the API would (ids, ``object``, nested ``parent`` /
``pricing`` / ``period`` / ``discount_amounts`` / ``taxes``), so tests land them through
the real ``load.load_objects``. Times are written as ``"2024-01-16"`` or
``"2024-01-16T05:00:00"`` (UTC) and become unix seconds.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

_ids = itertools.count(1)


def ts(value: str | int | None) -> int | None:
    """``"2024-01-16"`` / ``"2024-01-16T05:00:00"`` (UTC) -> unix seconds."""
    if value is None or isinstance(value, int):
        return value
    text = value if "T" in value else f"{value}T00:00:00"
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


def add_months(day: str, months: int) -> str:
    """``add_months("2024-01-31", 1) == "2024-02-29"`` (clamped like Stripe's billing)."""
    moment = datetime.fromisoformat(day if "T" in day else f"{day}T00:00:00")
    index = moment.year * 12 + moment.month - 1 + months
    year, month = divmod(index, 12)
    for candidate in (moment.day, 30, 29, 28):
        try:
            moved = moment.replace(year=year, month=month + 1, day=candidate)
            break
        except ValueError:
            continue
    return moved.isoformat()


def next_id(prefix: str) -> str:
    return f"{prefix}_{next(_ids):06d}"


def customer(
    id: str,
    *,
    country: str | None = "US",
    currency: str = "usd",
    metadata: dict | None = None,
    deleted: bool = False,
    created: str = "2023-01-01",
) -> dict:
    obj = {
        "id": id,
        "object": "customer",
        "created": ts(created),
        "name": f"Customer {id}",
        "email": f"{id}@example.com",
        "currency": currency,
        "address": {"country": country} if country else None,
        "metadata": metadata or {},
        "livemode": False,
    }
    if deleted:
        obj["deleted"] = True
    return obj


def product(id: str, name: str | None = None) -> dict:
    return {
        "id": id,
        "object": "product",
        "created": ts("2023-01-01"),
        "name": name or id,
        "active": True,
        "metadata": {},
    }


def price(
    id: str,
    unit_amount: int | str | None,
    *,
    product: str = "prod_basic",
    currency: str = "usd",
    interval: str | None = "month",
    interval_count: int = 1,
    usage_type: str = "licensed",
    billing_scheme: str = "per_unit",
    tiers: list[dict] | None = None,
    tiers_mode: str | None = None,
    transform_quantity: dict | None = None,
    tax_behavior: str = "unspecified",
) -> dict:
    """A price; ``tiers`` as ``[{"up_to": 5 | None, "unit_amount": .., "flat_amount": ..}]``."""
    full_tiers = None
    if tiers is not None:
        full_tiers = [
            {
                "up_to": tier.get("up_to"),
                "unit_amount": tier.get("unit_amount"),
                "unit_amount_decimal": (
                    str(tier["unit_amount"]) if tier.get("unit_amount") is not None else None
                ),
                "flat_amount": tier.get("flat_amount"),
                "flat_amount_decimal": (
                    str(tier["flat_amount"]) if tier.get("flat_amount") is not None else None
                ),
            }
            for tier in tiers
        ]
    return {
        "id": id,
        "object": "price",
        "active": True,
        "billing_scheme": billing_scheme,
        "created": ts("2023-01-01"),
        "currency": currency,
        "livemode": False,
        "metadata": {},
        "nickname": None,
        "product": product,
        "recurring": (
            {
                "interval": interval,
                "interval_count": interval_count,
                "meter": None,
                "usage_type": usage_type,
                "trial_period_days": None,
            }
            if interval
            else None
        ),
        "tax_behavior": tax_behavior,
        "tiers": full_tiers,
        "tiers_mode": tiers_mode,
        "transform_quantity": transform_quantity,
        "type": "recurring" if interval else "one_time",
        "unit_amount": int(unit_amount)
        if unit_amount is not None and billing_scheme == "per_unit"
        else None,
        "unit_amount_decimal": str(unit_amount) if unit_amount is not None else None,
    }


def subscription(
    id: str,
    customer: str,
    items: list[tuple[str, dict, int]],
    *,
    status: str = "active",
    created: str = "2024-01-01",
    canceled_at: str | None = None,
    cancel_at_period_end: bool = False,
    cancel_at: str | None = None,
    ended_at: str | None = None,
    cancellation_reason: str | None = None,
    trial_end: str | None = None,
    currency: str = "usd",
    period: tuple[str, str] | None = None,
) -> dict:
    """``items`` = ``[(item_id, price_dict, quantity)]``."""
    start, end = period or (created, add_months(created, 1))
    return {
        "id": id,
        "object": "subscription",
        "customer": customer,
        "status": status,
        "currency": currency,
        "created": ts(created),
        "start_date": ts(created),
        "billing_cycle_anchor": ts(created),
        "trial_start": ts(created) if trial_end else None,
        "trial_end": ts(trial_end),
        "cancel_at_period_end": cancel_at_period_end,
        "cancel_at": ts(cancel_at),
        "canceled_at": ts(canceled_at),
        "ended_at": ts(ended_at),
        "cancellation_details": {"comment": None, "feedback": None, "reason": cancellation_reason},
        "collection_method": "charge_automatically",
        "pause_collection": None,
        "metadata": {},
        "items": {
            "object": "list",
            "data": [
                {
                    "id": item_id,
                    "object": "subscription_item",
                    "created": ts(created),
                    "current_period_start": ts(start),
                    "current_period_end": ts(end),
                    "metadata": {},
                    "price": item_price,
                    "quantity": quantity,
                    "subscription": id,
                }
                for item_id, item_price, quantity in items
            ],
            "has_more": False,
            "url": f"/v1/subscription_items?subscription={id}",
        },
    }


def line(
    amount: int,
    price: dict | str,
    period: tuple[str, str],
    *,
    subscription: str | None = None,
    subscription_item: str | None = None,
    proration: bool = False,
    invoice_item: bool = False,
    quantity: int | None = 1,
    discount: int = 0,
    taxes: list[tuple[int, str]] = (),
    currency: str | None = None,
    id: str | None = None,
) -> dict:
    """An invoice line item. ``invoice_item=True`` makes it a pending invoice item (how
    prorations invoiced later arrive); otherwise a subscription item line."""
    price_id = price["id"] if isinstance(price, dict) else price
    product_id = price["product"] if isinstance(price, dict) else None
    currency = currency or (price["currency"] if isinstance(price, dict) else "usd")
    if invoice_item:
        parent = {
            "type": "invoice_item_details",
            "invoice_item_details": {
                "invoice_item": next_id("ii"),
                "proration": proration,
                "proration_details": {"credited_items": None},
                "subscription": subscription,
            },
        }
    else:
        parent = {
            "type": "subscription_item_details",
            "subscription_item_details": {
                "invoice_item": None,
                "proration": proration,
                "proration_details": {"credited_items": None},
                "subscription": subscription,
                "subscription_item": subscription_item or next_id("si"),
            },
        }
    return {
        "id": id or next_id("il"),
        "object": "line_item",
        "amount": amount,
        "currency": currency,
        "description": None,
        "discount_amounts": [{"amount": discount, "discount": "di_test"}] if discount else [],
        "discountable": True,
        "discounts": [],
        "livemode": False,
        "metadata": {},
        "parent": parent,
        "period": {"start": ts(period[0]), "end": ts(period[1])},
        "pricing": {
            "type": "price_details",
            "price_details": {"price": price_id, "product": product_id},
            "unit_amount_decimal": None,
        },
        "quantity": quantity,
        "taxes": [
            {
                "amount": tax_amount,
                "tax_behavior": behavior,
                "tax_rate_details": {"tax_rate": "txr_test"},
                "taxability_reason": "standard_rated",
                "taxable_amount": amount - tax_amount,
                "type": "tax_rate_details",
            }
            for tax_amount, behavior in taxes
        ],
    }


def invoice(
    customer: str,
    lines: list[dict],
    *,
    id: str | None = None,
    subscription: str | None = None,
    status: str = "paid",
    created: str | None = None,
    billing_reason: str = "subscription_cycle",
    auto_advance: bool = False,
    currency: str | None = None,
    has_more: bool = False,
) -> dict:
    """An invoice embedding ``lines`` (all of them unless ``has_more``)."""
    invoice_id = id or next_id("in")
    subscription = subscription or next(
        (
            line["parent"][line["parent"]["type"]].get("subscription")
            for line in lines
            if line["parent"][line["parent"]["type"]].get("subscription")
        ),
        None,
    )
    created_at = (
        ts(created) if created else min((line["period"]["start"] for line in lines), default=0)
    )
    total = sum(line["amount"] for line in lines)
    for item in lines:
        item["invoice"] = invoice_id
    return {
        "id": invoice_id,
        "object": "invoice",
        "customer": customer,
        "status": status,
        "billing_reason": billing_reason,
        "auto_advance": auto_advance,
        "collection_method": "charge_automatically",
        "currency": currency or (lines[0]["currency"] if lines else "usd"),
        "created": created_at,
        "period_start": created_at,
        "period_end": created_at,
        "status_transitions": {
            "finalized_at": created_at if status != "draft" else None,
            "paid_at": created_at if status == "paid" else None,
            "voided_at": created_at if status == "void" else None,
            "marked_uncollectible_at": None,
        },
        "subtotal": total,
        "total": total,
        "amount_due": total,
        "amount_paid": total if status == "paid" else 0,
        "metadata": {},
        "parent": (
            {
                "type": "subscription_details",
                "quote_details": None,
                "subscription_details": {"metadata": {}, "subscription": subscription},
            }
            if subscription
            else None
        ),
        "lines": {
            "object": "list",
            "data": lines,
            "has_more": has_more,
            "url": f"/v1/invoices/{invoice_id}/lines",
        },
    }


def renewals(
    customer: str,
    subscription: str,
    price: dict,
    start: str,
    count: int,
    *,
    amount: int | None = None,
    quantity: int = 1,
    every_months: int = 1,
    discount: int = 0,
    status: str = "paid",
) -> list[dict]:
    """``count`` consecutive paid invoices of one item, each for one billing period of
    ``every_months`` months starting at ``start``."""
    amount = price["unit_amount"] * quantity if amount is None else amount
    invoices = []
    for number in range(count):
        period = (
            add_months(start, number * every_months),
            add_months(start, (number + 1) * every_months),
        )
        reason = "subscription_create" if number == 0 else "subscription_cycle"
        invoices.append(
            invoice(
                customer,
                [
                    line(
                        amount,
                        price,
                        period,
                        subscription=subscription,
                        quantity=quantity,
                        discount=discount,
                    )
                ],
                status=status,
                billing_reason=reason,
            )
        )
    return invoices


ACCOUNT = "acct_test"


def build_report(
    path,
    *,
    invoices=(),
    prices=(),
    subscriptions=(),
    customers=(),
    products=(),
    since: str | None = None,
    as_of: str | None = None,
    accounts: dict | None = None,
    **reporting,
):
    """Land the objects into a new DuckDB file at ``path`` through the real loader, set
    the report window like the sync does, run ``build.build``; return the connection.

    Customers and products referenced but not given are created with defaults.
    ``accounts`` = ``{account_id: {"invoices": [...], ...}}`` lands several accounts.
    """
    import duckdb

    from nrr_sync import build, load
    from nrr_sync.config import Config, ReportingSettings
    from nrr_sync.kinds import BY_TABLE

    con = duckdb.connect(str(path))
    build.migrate(con)
    accounts = accounts or {
        ACCOUNT: {
            "invoices": invoices,
            "prices": prices,
            "subscriptions": subscriptions,
            "customers": customers,
            "products": products,
        }
    }
    for account_id, objects in accounts.items():
        given_customers = list(objects.get("customers", ()))
        known = {c["id"] for c in given_customers}
        for item in list(objects.get("invoices", ())) + list(objects.get("subscriptions", ())):
            if item["customer"] is not None and item["customer"] not in known:
                known.add(item["customer"])
                given_customers.append(customer(item["customer"]))
        given_products = list(objects.get("products", ()))
        named = {p["id"] for p in given_products}
        for item in objects.get("prices", ()):
            if item["product"] not in named:
                named.add(item["product"])
                given_products.append(product(item["product"]))
        load.load_objects(con, account_id, BY_TABLE["customers"], given_customers)
        load.load_objects(con, account_id, BY_TABLE["products"], given_products)
        for kind in ("prices", "subscriptions", "invoices"):
            load.load_objects(con, account_id, BY_TABLE[kind], objects.get(kind, ()))
    # As a finished backfill leaves it: a report reads only a finished backfill's data.
    con.execute("INSERT OR REPLACE INTO meta.sync_state VALUES ('backfill:status', 'done', now())")
    for key, value in (("report:since", since), ("report:as_of", as_of)):
        if value is not None:
            con.execute("INSERT OR REPLACE INTO meta.sync_state VALUES (?, ?, now())", [key, value])
    if "segments" in reporting:
        reporting["segments"] = tuple(reporting["segments"])
    build.build(con, Config(reporting=ReportingSettings(**reporting)))
    return con


def mrr_by_month(con, customer_id: str, account_id: str = ACCOUNT) -> dict:
    """``{"2024-01": Decimal("200.00"), ...}`` from report.customer_mrr_monthly."""
    rows = con.execute(
        "SELECT strftime(month, '%Y-%m'), mrr FROM report.customer_mrr_monthly "
        "WHERE account_id = ? AND customer_id = ? ORDER BY month",
        [account_id, customer_id],
    ).fetchall()
    return dict(rows)


def movements(con) -> list[tuple]:
    """``[(month "YYYY-MM", customer_id, movement, amount)]`` in month order."""
    return con.execute(
        "SELECT strftime(month, '%Y-%m'), customer_id, movement, amount "
        "FROM report.mrr_movements ORDER BY month, customer_id"
    ).fetchall()


def summary(con, month: str) -> dict:
    cursor = con.execute(
        "SELECT * FROM report.mrr_summary WHERE strftime(month, '%Y-%m') = ?",
        [month],
    )
    names = [column[0] for column in cursor.description]
    return dict(zip(names, cursor.fetchone(), strict=True))
