"""The DuckDB file: bulk loads into the landing tables.

Loads go through DuckDB's appender (``action="upsert"``), never row-by-row
``executemany``, so landing a page of 100 invoices is one statement.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import duckdb

from . import landing


def upsert_rows(con: duckdb.DuckDBPyConnection, kind: str, rows: Sequence[tuple]) -> int:
    """Insert or replace ``rows`` (tuples in ``landing.COLUMNS[kind]`` order)."""
    if not rows:
        return 0
    with con.appender(f"stripe.{kind}", columns=list(landing.COLUMNS[kind]), action="upsert") as ap:
        ap.append_rows(rows)
    return len(rows)


def delete_rows(con: duckdb.DuckDBPyConnection, kind: str, keys: Iterable[tuple[str, str]]) -> None:
    """Delete rows by ``(account_id, id)``."""
    keys = list(keys)
    if keys:
        with con.appender(f"stripe.{kind}", action="delete", key=["account_id", "id"]) as ap:
            ap.append_rows(keys)


def load_objects(
    con: duckdb.DuckDBPyConnection,
    account_id: str,
    kind: str,
    objects: Iterable[dict],
    synced_at: datetime | None = None,
) -> int:
    """Land complete Stripe objects of one kind.

    Invoices carry their lines in ``lines.data`` and subscriptions their items in
    ``items.data``; both are landed with their parent. The caller is responsible for
    having fetched every page of those lists (``has_more`` false); an invoice whose
    ``lines.has_more`` is still true is recorded with ``lines_complete = false``.
    """
    synced_at = synced_at or landing.now_utc()
    objects = list(objects)
    if kind == "invoices":
        invoices, lines = [], []
        for invoice in objects:
            invoice_lines = (invoice.get("lines") or {}).get("data") or []
            complete = not (invoice.get("lines") or {}).get("has_more", False)
            invoices.append(
                landing.invoice_row(
                    account_id,
                    invoice,
                    synced_at,
                    line_count=len(invoice_lines),
                    lines_complete=complete,
                )
            )
            lines.extend(
                landing.invoice_line_row(account_id, invoice["id"], line, synced_at)
                for line in invoice_lines
            )
        upsert_rows(con, "invoices", invoices)
        upsert_rows(con, "invoice_lines", lines)
        return len(invoices)
    if kind == "subscriptions":
        items = [
            landing.subscription_item_row(account_id, item, synced_at)
            for subscription in objects
            for item in (subscription.get("items") or {}).get("data") or []
        ]
        upsert_rows(con, "subscription_items", items)
    build_row = landing.ROW_BUILDERS[kind]
    return upsert_rows(con, kind, [build_row(account_id, obj, synced_at) for obj in objects])
