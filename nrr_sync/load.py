"""Writing rows into the landing tables, in bulk.

Rows go to DuckDB column by column, as Arrow arrays: one ``INSERT`` (``INSERT OR
REPLACE``, the nightly sync's upsert) takes a table's rows of a batch, never row-by-row
``executemany``. Python hands over one array per column instead of every value one at a
time, and Stripe's timestamps stay unix seconds, typed here for the whole column instead
of made into ``datetime`` objects one by one in ``landing.py``: a page of 100 invoices
costs 1.7 ms for its rows and 5.2 ms to land, against 2.3 ms and 7.4 ms with DuckDB's
appender. Each array's type is named, not guessed from its values: a page landed on its
own costs 12-14 ms instead of 20-21 (docs/benchmarks.md, section 4).

Python's GIL is held while each column's array is made (under a millisecond for a second
of pages), not for a whole table, and DuckDB inserts without it: a fetch worker waiting
for its request slot is never held up long enough to miss it, which would bunch the late
requests and make Stripe answer 429 (docs/benchmarks.md, section 1).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import duckdb
import pyarrow

from . import landing
from .errors import MalformedAnswer

# The Arrow array a landing column's values go in, by the column's DuckDB type (without
# its precision) and the one Python type of its values. Naming it spares Arrow looking at
# every value to guess it, a fixed cost per column that made a page landed on its own
# 20-21 ms instead of 12-14 (docs/benchmarks.md, section 4). DuckDB casts each array to
# its column as it inserts.
ARROW_TYPES: dict[tuple[str, type], pyarrow.DataType] = {
    ("VARCHAR", str): pyarrow.string(),
    # Arrow's JSON type: DuckDB takes it as JSON without parsing every text again to check
    # it, about 0.5 ms of CPU a page of 100 invoices (docs/benchmarks.md, section 4). Every
    # JSON column's text is written by fastjson from objects just parsed (landing.py).
    ("JSON", str): pyarrow.json_(pyarrow.string()),
    ("BIGINT", int): pyarrow.int64(),
    ("INTEGER", int): pyarrow.int32(),
    ("BOOLEAN", bool): pyarrow.bool_(),
    # Stripe's timestamps, as landing.py leaves them: unix seconds
    ("TIMESTAMP WITH TIME ZONE", int): pyarrow.timestamp("s", tz="UTC"),
    ("TIMESTAMP WITH TIME ZONE", datetime): pyarrow.timestamp("us", tz="UTC"),  # synced_at
    # a price's unit_amount_decimal, a coupon's percent_off: text, which DuckDB reads exactly
    ("DECIMAL", str): pyarrow.string(),
}


def upsert_rows(con: duckdb.DuckDBPyConnection, kind: str, rows: Sequence[tuple]) -> int:
    """Insert or replace ``rows`` (tuples in ``landing.COLUMNS[kind]`` order)."""
    return _insert(con, "INSERT OR REPLACE", kind, rows)


def insert_rows(con: duckdb.DuckDBPyConnection, kind: str, rows: Sequence[tuple]) -> int:
    """Append ``rows`` to a table known not to hold them (a key already there raises
    ``duckdb.ConstraintException``); faster than ``upsert_rows``, which looks up every
    key."""
    return _insert(con, "INSERT", kind, rows)


def _insert(con: duckdb.DuckDBPyConnection, verb: str, kind: str, rows: Sequence[tuple]) -> int:
    if not rows:
        return 0
    names = landing.COLUMNS[kind]
    column_types = _column_types(con, kind)
    columns = zip(*rows, strict=True)
    arrays = [
        _array(f"stripe.{kind}.{name}", column_types[name], values)
        for name, values in zip(names, columns, strict=True)
    ]
    # DuckDB reads a Python variable named in a query (a replacement scan): nothing is
    # registered on the connection, so nothing is left to undo when the insert fails
    # (a key already there raises ConstraintException, and the transaction is aborted).
    arrow_rows = pyarrow.table(arrays, names=list(names))  # noqa: F841
    con.execute(f"{verb} INTO stripe.{kind} ({', '.join(names)}) SELECT * FROM arrow_rows")
    return len(rows)


def _array(column: str, column_type: str, values: Sequence) -> pyarrow.Array:
    """One column's values as an Arrow array of the type ``ARROW_TYPES`` names for its
    DuckDB column and its values' one Python type. Values of two types in one column, or
    of a type the column does not take (a number where Stripe sends text), are a
    malformed answer, refused."""
    python_types = set(map(type, values))
    python_types.discard(type(None))
    if not python_types:
        return pyarrow.nulls(len(values))
    if len(python_types) > 1:
        names = ", ".join(sorted(python_type.__name__ for python_type in python_types))
        raise _refused(column, f"values of different types ({names})")
    (python_type,) = python_types
    arrow_type = ARROW_TYPES.get((column_type.partition("(")[0], python_type))
    if arrow_type is None:
        raise _refused(column, f"values of type {python_type.__name__}, not {column_type}")
    try:
        return pyarrow.array(values, arrow_type)
    except (pyarrow.ArrowInvalid, OverflowError):
        raise _refused(column, f"a value out of the range of {column_type}") from None


def _refused(column: str, what: str) -> MalformedAnswer:
    # the types only: the values may be customer data
    return MalformedAnswer(
        f"Stripe sent a malformed answer: {column} holds {what}; nothing of this batch was landed."
    )


# kind -> {column: DuckDB type}. The migrations give every file the same landing tables,
# and every file is migrated before anything lands in it, so the first file's answer holds
# for the process; asking DuckDB on every insert took 0.3-0.7 ms, half the CPU of the
# Arrow arrays of a batch of one page.
_column_types_of: dict[str, dict[str, str]] = {}


def _column_types(con: duckdb.DuckDBPyConnection, kind: str) -> dict[str, str]:
    """The DuckDB type of every column of ``stripe.<kind>``, as the migrations made it."""
    if kind not in _column_types_of:
        table = con.table(f"stripe.{kind}")
        _column_types_of[kind] = dict(zip(table.columns, map(str, table.dtypes), strict=True))
    return _column_types_of[kind]


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
