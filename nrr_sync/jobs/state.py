"""``meta.sync_state``: the job's cursors and checkpoints, as keys and values."""

from __future__ import annotations

import duckdb

from .. import landing


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
