"""``meta.sync_state``: the job's cursors and checkpoints, as keys and values.

The keys are named here, once, and the structured values have a type here
(``EventCursor``, ``LandedNote``) that writes and reads their JSON; the job writes them,
and the build, ``report`` and ``status`` read them through these names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

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


# What a backfill remembers while it runs (and its outcome once done).
BACKFILL = "backfill:"  # every key of a backfill starts so
BACKFILL_STATUS = "backfill:status"  # running | done
BACKFILL_SINCE = "backfill:since"  # its first reported month, YYYY-MM
BACKFILL_AS_OF = "backfill:as_of"  # the API's clock when it started
SLICE = "backfill:slice:"  # + account:kind:id -> a slice's checkpoint (JSON)
BACKFILL_CURSOR = "backfill:cursor:"  # + account -> where the sync will start
# What the published report covers.
REPORT = "report:"
REPORT_SINCE = "report:since"  # YYYY-MM
REPORT_AS_OF = "report:as_of"  # ISO instant of the data
# What the nightly sync remembers per account.
EVENTS = "events:"
EVENT_CURSOR = "events:cursor:"  # + account -> {"created": unix seconds, "id": event id}
EVENTS_SEEN = "events:seen:"  # + account -> ids of the newest events, not read twice
EVENTS_LANDED = "events:landed:"  # + account:note -> objects an unfinished sync landed


def event_cursor_key(account: str) -> str:
    return f"{EVENT_CURSOR}{account}"


def backfill_cursor_key(account: str) -> str:
    return f"{BACKFILL_CURSOR}{account}"


def events_seen_key(account: str) -> str:
    return f"{EVENTS_SEEN}{account}"


def landed_notes_prefix(account: str) -> str:
    return f"{EVENTS_LANDED}{account}:"


@dataclass(frozen=True)
class EventCursor:
    """Where an account's next sync starts: the newest event seen (``id`` None when the
    account had no event yet, ``created`` then the moment its backfill started)."""

    created: int
    id: str | None = None

    def dump(self) -> str:
        return json.dumps({"created": self.created, "id": self.id}, sort_keys=True)

    @staticmethod
    def load(text: str) -> EventCursor:
        value = json.loads(text)
        if not isinstance(value, dict) or not isinstance(value.get("created"), int):
            raise ValueError(f"not an event cursor: {text[:80]!r}")
        return EventCursor(created=value["created"], id=value.get("id"))

    @property
    def instant(self) -> datetime:
        return datetime.fromtimestamp(self.created, UTC)


@dataclass(frozen=True)
class LandedNote:
    """Objects an unfinished sync landed, with the events each was fetched after, for the
    events since the cursor ``window`` (an ``EventCursor.dump()``)."""

    window: str
    objects: dict[tuple[str, str], set[str]]

    def dump(self) -> str:
        objects = [
            [kind, object_id, sorted(ids)] for (kind, object_id), ids in self.objects.items()
        ]
        return json.dumps({"window": self.window, "objects": objects})

    @staticmethod
    def load(text: str) -> LandedNote:
        value = json.loads(text)
        objects = {(kind, object_id): set(ids) for kind, object_id, ids in value["objects"]}
        return LandedNote(window=value["window"], objects=objects)
