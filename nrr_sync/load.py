"""Writing rows into the landing tables, in bulk.

Loads go through DuckDB's appender (``action="upsert"``), never row-by-row
``executemany``, so landing a page of 100 invoices is one statement.

The appender converts the rows it is handed in one call that holds Python's GIL; a
second of a backfill's pages (about 6,000 rows) held it for 30-40 ms, during which no
fetch worker could take its request slot from the rate limiter: slots went unused, and
the late requests left together, enough to make Stripe answer 429. Rows are handed over
``APPEND_CHUNK_ROWS`` at a time, so the other threads run between chunks (about 10 ms
at most), at no cost in CPU (docs/benchmarks.md, section 1).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import duckdb

from . import landing

APPEND_CHUNK_ROWS = 100


def upsert_rows(con: duckdb.DuckDBPyConnection, kind: str, rows: Sequence[tuple]) -> int:
    """Insert or replace ``rows`` (tuples in ``landing.COLUMNS[kind]`` order)."""
    if not rows:
        return 0
    with con.appender(f"stripe.{kind}", columns=list(landing.COLUMNS[kind]), action="upsert") as ap:
        _append_in_chunks(ap, rows)
    return len(rows)


def insert_rows(con: duckdb.DuckDBPyConnection, kind: str, rows: Sequence[tuple]) -> int:
    """Append ``rows`` to a table known not to hold them (a key already there raises
    ``duckdb.ConstraintException``); about twice as fast as ``upsert_rows``."""
    if not rows:
        return 0
    with con.appender(f"stripe.{kind}", columns=list(landing.COLUMNS[kind])) as ap:
        _append_in_chunks(ap, rows)
    return len(rows)


def _append_in_chunks(appender, rows: Sequence[tuple]) -> None:
    for start in range(0, len(rows), APPEND_CHUNK_ROWS):
        appender.append_rows(rows[start : start + APPEND_CHUNK_ROWS])


def delete_rows(con: duckdb.DuckDBPyConnection, kind: str, keys: Iterable[tuple[str, str]]) -> None:
    """Delete rows by ``(account_id, id)``."""
    keys = list(keys)
    if keys:
        with con.appender(f"stripe.{kind}", action="delete", key=["account_id", "id"]) as ap:
            ap.append_rows(keys)


def load_objects(
    con: duckdb.DuckDBPyConnection,
    account_id: str,
    kind,
    objects: Iterable[dict],
    synced_at: datetime | None = None,
) -> int:
    """Land complete Stripe objects of one kind (an entry of ``kinds.KINDS``) with their
    children, as upserts. The caller has paged in every embedded list (``has_more``
    false)."""
    rows = landing.rows_of(kind, account_id, objects, synced_at or landing.now_utc())
    for table, table_rows in rows.items():
        upsert_rows(con, table, table_rows)
    return len(rows[kind.table])


def delete_children(
    con: duckdb.DuckDBPyConnection,
    kind: str,
    parent_column: str,
    account_id: str,
    parent_ids: Iterable[str],
) -> None:
    """Delete every row of ``kind`` whose ``parent_column`` is one of ``parent_ids``.

    Used before re-landing a re-fetched invoice or subscription, so lines and items
    Stripe removed since the last sync disappear too.
    """
    parent_ids = list(parent_ids)
    if parent_ids:
        con.execute(
            f"DELETE FROM stripe.{kind} WHERE account_id = ? AND {parent_column} IN "
            "(SELECT unnest(?::VARCHAR[]))",
            [account_id, parent_ids],
        )


def mark_deleted(
    con: duckdb.DuckDBPyConnection, kind: str, account_id: str, ids: Iterable[str]
) -> None:
    """Flag objects Stripe deleted (customers, products, prices keep their rows)."""
    ids = list(ids)
    if ids:
        con.execute(
            f"UPDATE stripe.{kind} SET deleted = true, synced_at = now() "
            "WHERE account_id = ? AND id IN (SELECT unnest(?::VARCHAR[]))",
            [account_id, ids],
        )
