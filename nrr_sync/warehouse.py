"""The DuckDB file: bulk loads into the landing tables, and publishing it safely.

Loads go through DuckDB's appender (``action="upsert"``), never row-by-row
``executemany``, so landing a page of 100 invoices is one statement.

Publishing (SPEC 4.4): a run holds a job lock (``<db>.lock``), works in a copy next to
the published file (``<db>.work``, kept after a failure so the next run resumes from
it), and atomically replaces the published file when done. Analysts' read-only
sessions on the published file never block a run and keep their old view.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path

import duckdb

from . import landing
from .clone import clone_file
from .errors import ConfigError, DatabaseBusyError


def upsert_rows(con: duckdb.DuckDBPyConnection, kind: str, rows: Sequence[tuple]) -> int:
    """Insert or replace ``rows`` (tuples in ``landing.COLUMNS[kind]`` order)."""
    if not rows:
        return 0
    with con.appender(f"stripe.{kind}", columns=list(landing.COLUMNS[kind]), action="upsert") as ap:
        ap.append_rows(rows)
    return len(rows)


def insert_rows(con: duckdb.DuckDBPyConnection, kind: str, rows: Sequence[tuple]) -> int:
    """Append ``rows`` to a table known not to hold them (a key already there raises
    ``duckdb.ConstraintException``); about twice as fast as ``upsert_rows``."""
    if not rows:
        return 0
    with con.appender(f"stripe.{kind}", columns=list(landing.COLUMNS[kind])) as ap:
        ap.append_rows(rows)
    return len(rows)


def delete_rows(con: duckdb.DuckDBPyConnection, kind: str, keys: Iterable[tuple[str, str]]) -> None:
    """Delete rows by ``(account_id, id)``."""
    keys = list(keys)
    if keys:
        with con.appender(f"stripe.{kind}", action="delete", key=["account_id", "id"]) as ap:
            ap.append_rows(keys)


def landing_rows(
    account_id: str, kind: str, objects: Iterable[dict], synced_at: datetime
) -> dict[str, list[tuple]]:
    """The landing rows of complete Stripe objects of one kind, per table.

    Invoices bring their lines (``lines.data``) and subscriptions their items
    (``items.data``). An invoice whose ``lines.has_more`` is still true is recorded
    with ``lines_complete = false``.
    """
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
        return {"invoices": invoices, "invoice_lines": lines}
    rows: dict[str, list[tuple]] = {}
    if kind == "subscriptions":
        rows["subscription_items"] = [
            landing.subscription_item_row(account_id, item, synced_at)
            for subscription in objects
            for item in (subscription.get("items") or {}).get("data") or []
        ]
    build_row = landing.ROW_BUILDERS[kind]
    rows[kind] = [build_row(account_id, obj, synced_at) for obj in objects]
    return rows


def load_objects(
    con: duckdb.DuckDBPyConnection,
    account_id: str,
    kind: str,
    objects: Iterable[dict],
    synced_at: datetime | None = None,
) -> int:
    """Land complete Stripe objects of one kind (see ``landing_rows``).

    The caller is responsible for having fetched every page of the embedded lists
    (``has_more`` false).
    """
    rows = landing_rows(account_id, kind, objects, synced_at or landing.now_utc())
    for table, table_rows in rows.items():
        upsert_rows(con, table, table_rows)
    return len(rows[kind])


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


# meta.sync_state: cursors and checkpoints ------------------------------------------


def get_state(con: duckdb.DuckDBPyConnection, key: str) -> str | None:
    row = con.execute("SELECT value FROM meta.sync_state WHERE key = ?", [key]).fetchone()
    return row[0] if row else None


def state_with_prefix(con: duckdb.DuckDBPyConnection, prefix: str) -> dict[str, str]:
    rows = con.execute(
        "SELECT key, value FROM meta.sync_state WHERE starts_with(key, ?) ORDER BY key", [prefix]
    ).fetchall()
    return dict(rows)


def set_state(con: duckdb.DuckDBPyConnection, values: dict[str, str | None]) -> None:
    """Upsert ``values`` into meta.sync_state (a value of None deletes the key)."""
    deleted = [key for key, value in values.items() if value is None]
    if deleted:
        con.execute(
            "DELETE FROM meta.sync_state WHERE key IN (SELECT unnest(?::VARCHAR[]))", [deleted]
        )
    rows = [(key, value, landing.now_utc()) for key, value in values.items() if value is not None]
    if rows:
        with con.appender("meta.sync_state", action="upsert") as ap:
            ap.append_rows(rows)


def delete_state_prefix(con: duckdb.DuckDBPyConnection, prefix: str) -> None:
    con.execute("DELETE FROM meta.sync_state WHERE starts_with(key, ?)", [prefix])


# Job lock, working copy, publish ----------------------------------------------------


def sibling(db_path: Path, suffix: str) -> Path:
    return db_path.with_name(db_path.name + suffix)


@contextlib.contextmanager
def job_lock(db_path: Path) -> Iterator[None]:
    """Hold ``<db>.lock`` for the whole run; a second run on the same file exits 5 at once."""
    db_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(sibling(db_path, ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise DatabaseBusyError(
            f"another nrr-sync run (pid {holder}) is working on {db_path}; "
            "this run stops without changing anything."
        ) from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


_HOLDER = re.compile(r"Conflicting lock is held in (.*?) \(PID (\d+)\)")


def open_read_only(db_path: Path, timeout: float) -> duckdb.DuckDBPyConnection:
    """Open the published file read-only, waiting up to ``timeout`` s for a read-write holder.

    Read-only sessions of other processes are fine; a process holding the file
    read-write past the timeout -> exit 5 naming it; not a DuckDB file -> exit 2.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return duckdb.connect(str(db_path), read_only=True)
        except duckdb.IOException as error:
            message = str(error)
            if "not a valid DuckDB database" in message:
                raise ConfigError(
                    f"{db_path} is not a DuckDB database. Point database.path (or "
                    "NRR_SYNC_DATABASE) at a DuckDB file, or at a path that does not exist yet."
                ) from None
            holder = _HOLDER.search(message)
            if not holder:
                raise ConfigError(f"Cannot open {db_path}: {message}") from None
            if time.monotonic() >= deadline:
                raise DatabaseBusyError(
                    f"{db_path} is held read-write by {holder.group(1)} (PID {holder.group(2)}) "
                    f"and stayed locked for {timeout:g} s (database.lock_timeout_seconds). Close "
                    "that session or open it with read_only=True, then run again."
                ) from None
            time.sleep(min(0.5, max(0.05, deadline - time.monotonic())))


def open_working_copy(db_path: Path, timeout: float) -> tuple[duckdb.DuckDBPyConnection, Path]:
    """A read-write connection to ``<db>.work``: the one a failed run left, else a fresh copy."""
    work_path = sibling(db_path, ".work")
    if work_path.exists():
        try:
            return duckdb.connect(str(work_path)), work_path
        except duckdb.IOException as error:
            if "not a valid DuckDB database" not in str(error):
                raise ConfigError(f"Cannot open the working copy {work_path}: {error}") from None
        _remove(work_path)
    _remove(sibling(work_path, ".wal"))
    if db_path.exists():
        reader = open_read_only(db_path, timeout)
        try:
            partial = sibling(db_path, ".copying")
            clone_file(db_path, partial)
            if sibling(db_path, ".wal").exists():
                clone_file(sibling(db_path, ".wal"), sibling(work_path, ".wal"))
            os.replace(partial, work_path)
        finally:
            reader.close()
    return duckdb.connect(str(work_path)), work_path


def publish(con: duckdb.DuckDBPyConnection, work_path: Path, db_path: Path, timeout: float) -> None:
    """Checkpoint and close the working copy, then atomically make it the published file."""
    if db_path.exists():
        # Nobody may have opened the published file read-write while we worked.
        open_read_only(db_path, timeout).close()
    con.execute("CHECKPOINT")
    con.close()
    _fsync(work_path)
    _remove(sibling(db_path, ".wal"))
    os.replace(work_path, db_path)
    _remove(sibling(work_path, ".wal"))
    _fsync(db_path.parent)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
