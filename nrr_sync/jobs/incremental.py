"""The nightly sync: read the events since the last cursor, re-fetch the objects they name.

Event payloads are rendered in the account's API version of the time, so they only say
what changed; the objects are fetched again in the pinned version.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from .. import kinds, landing, load
from ..errors import ConfigError
from ..progress import describe_counts
from ..stripe_api import StripeApi
from . import state as checkpoints
from .backfill import backfill, lookback_start
from .context import COMMIT_EVERY_SECONDS, Job, rollback_quietly

log = logging.getLogger("nrr_sync")

EVENT_RETENTION = timedelta(days=30)
EVENT_OVERLAP_SECONDS = 300
FETCH_BATCH = 100  # objects re-fetched by a sync before they are landed and committed


def _land_objects(job: Job, account: str, kind: kinds.Kind, objects: list[dict]) -> None:
    """Land re-fetched objects whole: their children (lines, items) are replaced, so
    those Stripe removed since the last sync disappear too."""
    if not objects:
        return
    con = job.con
    ids = [obj["id"] for obj in objects]
    for child in kind.children:
        load.delete_children(con, child.table, child.parent_column, account, ids)
    for table, rows in landing.rows_of(kind, account, objects, landing.now_utc()).items():
        load.upsert_rows(con, table, rows)
        job.landed(table, len(rows))


# Incremental sync ---------------------------------------------------------------------


def sync(job: Job) -> None:
    con = job.con
    config = job.config
    state = checkpoints.state_with_prefix(con, "")
    if state.get(checkpoints.BACKFILL_STATUS) == "running":
        since = state[checkpoints.BACKFILL_SINCE]
        log.warning(
            "An unfinished backfill from %s (a backfill that stopped) is finished first: this "
            "sync fetches the rest of it and publishes it in place of the previous data.",
            since,
        )
        backfill(job, since, restart=False)
        return
    if state.get(checkpoints.BACKFILL_STATUS) != "done":
        since = config.sync.backfill_since
        if not since:
            raise ConfigError(
                f"Nothing was backfilled into {config.database.path} yet: run "
                "`nrr-sync backfill --since YYYY-MM` first (or set sync.backfill_since in "
                f"{config.source})."
            )
        log.info("no backfill yet: backfilling from sync.backfill_since = %s", since)
        backfill(job, since, restart=True)
        return

    since = state.get(checkpoints.BACKFILL_SINCE) or state.get(checkpoints.REPORT_SINCE)
    job.since = since
    accounts, now = job.accounts()
    cursors = {}
    for account, _ in accounts:
        cursor = state.get(checkpoints.event_cursor_key(account))
        if cursor is None:
            log.warning(
                "account %s has not been backfilled yet; refreshing everything from %s",
                account,
                since,
            )
            backfill(job, since, restart=True)
            return
        cursors[account] = checkpoints.EventCursor.load(cursor)
    oldest = min(cursor.instant for cursor in cursors.values())
    if oldest < now - EVENT_RETENTION + timedelta(hours=1):
        log.warning(
            "The last sync saw events up to %s, and Stripe keeps events for 30 days only: "
            "changes since then cannot all be known from events, so this run refreshes "
            "everything from %s (a full backfill).",
            oldest.strftime("%Y-%m-%d %H:%M UTC"),
            since,
        )
        backfill(job, since, restart=True)
        return

    for account, header in accounts:
        seen = json.loads(state.get(checkpoints.events_seen_key(account)) or "[]")
        _sync_account(job, account, header, cursors[account], set(seen))
    con.begin()
    checkpoints.set_state(con, {checkpoints.REPORT_AS_OF: now.isoformat().replace("+00:00", "Z")})
    con.commit()


def _sync_account(
    job: Job, account: str, header: str | None, cursor: checkpoints.EventCursor, seen: set
) -> None:
    api = job.api
    since = cursor.created - EVENT_OVERLAP_SECONDS
    events = {}
    for group in kinds.EVENT_GROUPS:
        params = {"created": {"gte": since}, "type": group}
        for event in api.list_all("/v1/events", params, account=header):
            events[event["id"]] = _event_outline(event)  # dedupe by id
    fresh = [event for event in events.values() if event["id"] not in seen]
    named_by = events_by_object(fresh)
    job.landed("events", len(fresh))
    log.info(
        "account %s: %d new event(s), %s changed",
        account,
        len(fresh),
        describe_counts(Counter(kind for kind, _ in named_by)),
    )

    con = job.con
    window = cursor.dump()
    landed = _landed_before(con, account, window)
    tasks = [task for task in sorted(named_by) if not named_by[task] <= landed.get(task, set())]
    for kind, count in Counter(kind for kind, _ in tasks).items():
        job.progress.expect(kind, count)
    if len(tasks) < len(named_by):
        log.info(
            "account %s: %d object(s) were landed by an earlier run that stopped; not fetched "
            "again",
            account,
            len(named_by) - len(tasks),
        )
    try:
        # Objects are landed about once a second (at most FETCH_BATCH at a time), each time
        # with a note of which they were, so a run that fails keeps its work; the cursor
        # moves only once every changed object is landed. As many threads as the in-flight
        # window allows now (the events told it the latency); the window paces them.
        with ThreadPoolExecutor(max_workers=api.window.global_limit()) as pool:
            for start in range(0, len(tasks), FETCH_BATCH):
                batch = tasks[start : start + FETCH_BATCH]
                done, fetched = [], []
                deadline = time.monotonic() + COMMIT_EVERY_SECONDS
                results = pool.map(lambda task: _refetch(api, header, *task), batch)
                for task, obj in zip(batch, results, strict=True):
                    done.append(task)
                    fetched.append(obj)
                    if time.monotonic() >= deadline or task is batch[-1]:
                        _commit_refetched(job, account, window, named_by, done, fetched)
                        done, fetched = [], []
                        deadline = time.monotonic() + COMMIT_EVERY_SECONDS
        newest = max(
            [(cursor.created, cursor.id or "")]
            + [(int(e["created"]), e["id"]) for e in events.values()]
        )
        recent = sorted(
            e["id"] for e in events.values() if e["created"] >= newest[0] - EVENT_OVERLAP_SECONDS
        )
        con.begin()
        checkpoints.delete_state_prefix(con, checkpoints.landed_notes_prefix(account))
        checkpoints.set_state(
            con,
            {
                checkpoints.event_cursor_key(account): checkpoints.EventCursor(*newest).dump(),
                checkpoints.events_seen_key(account): json.dumps(recent),
            },
        )
        con.commit()
    except BaseException:
        job.stopping.set()
        rollback_quietly(con)
        raise


def _commit_refetched(job: Job, account: str, window: str, named_by, tasks, fetched) -> None:
    con = job.con
    con.begin()
    _land_refetched(job, account, tasks, fetched)
    _note_landed(con, account, window, {task: named_by[task] for task in tasks})
    con.commit()


def _note_landed(con, account: str, window: str, landed: dict[tuple[str, str], set[str]]) -> None:
    """Remember which objects are landed, and as of which events, for the events since
    the cursor ``window``: a rerun after a failure fetches only the others again."""
    key = f"{checkpoints.landed_notes_prefix(account)}{uuid.uuid4().hex[:12]}"
    checkpoints.set_state(con, {key: checkpoints.LandedNote(window, landed).dump()})


def _landed_before(con, account: str, window: str) -> dict[tuple[str, str], set[str]]:
    """Objects an earlier, unfinished sync from the same cursor landed, with the events
    they were fetched after: one named by a newer event is fetched again."""
    landed: dict[tuple[str, str], set[str]] = {}
    for value in checkpoints.state_with_prefix(
        con, checkpoints.landed_notes_prefix(account)
    ).values():
        note = checkpoints.LandedNote.load(value)
        if note.window != window:
            continue  # from another cursor: stale
        for task, event_ids in note.objects.items():
            landed.setdefault(task, set()).update(event_ids)
    return landed


def _event_outline(event: dict) -> dict:
    """What a sync needs of an event (its payload is never data): keeps memory small."""
    obj = (event.get("data") or {}).get("object") or {}
    outline = {key: obj.get(key) for key in ("id", "object", "customer")}
    return {
        "id": event["id"],
        "type": event.get("type"),
        "created": event["created"],
        "data": {"object": outline},
    }


def events_by_object(events: list[dict]) -> dict[tuple[str, str], set[str]]:
    """{(kind, object id): ids of the events that name it as changed}."""
    named: dict[tuple[str, str], set[str]] = {}
    for event in events:
        changed = changed_object(event)
        if changed:
            named.setdefault(changed, set()).add(event["id"])
    return named


def changed_object(event: dict) -> tuple[str, str] | None:
    """(kind, id) of the object an event says changed, or None."""
    kind = kinds.kind_of_event(event.get("type") or "")
    if kind is None:
        return None
    object_id = kind.object_id((event.get("data") or {}).get("object") or {})
    return (kind.table, object_id) if object_id else None


def before_window(kind: kinds.Kind, obj: dict, listed_from: int) -> bool:
    """An invoice (or what follows invoices) created before the backfill's window, which
    lists them from ``listed_from`` (``lookback_start``): a credit note or refund can touch
    an invoice of any age, and a backfill never lists it, so a sync does not land it either
    (the reports start at ``since`` anyway)."""
    return kind.since_lookback and obj["created"] < listed_from


def _refetch(api: StripeApi, header: str | None, table: str, object_id: str) -> dict | None:
    kind = kinds.BY_TABLE[table]
    obj = api.retrieve(f"{kind.path}/{object_id}", kind.retrieve_params, account=header)
    if obj is None or obj.get("deleted"):
        return None
    return kinds.complete(api, kind, obj, account=header)


def _land_refetched(job: Job, account: str, tasks, fetched: list[dict | None]) -> None:
    by_kind: dict[str, list[dict]] = {}
    gone: dict[str, list[str]] = {}
    listed_from = lookback_start(job.since, job.config.sync.invoice_lookback_months)
    for (table, object_id), obj in zip(tasks, fetched, strict=True):
        if obj is None:
            gone.setdefault(table, []).append(object_id)
        elif before_window(kinds.BY_TABLE[table], obj, listed_from):
            continue
        else:
            by_kind.setdefault(table, []).append(obj)
    for table, objects in by_kind.items():
        _land_objects(job, account, kinds.BY_TABLE[table], objects)
    con = job.con
    for table, ids in gone.items():
        kind = kinds.BY_TABLE[table]
        if kind.on_delete == "remove":
            for child in kind.children:
                load.delete_children(con, child.table, child.parent_column, account, ids)
            load.delete_rows(con, kind.table, [(account, i) for i in ids])
        else:
            load.mark_deleted(con, kind.table, account, ids)
        job.landed(f"{table}_deleted", len(ids))
