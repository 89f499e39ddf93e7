"""A run: the job lock, the working copy, the SQL build, publishing, and the run record.

Every run holds the job lock, works in the working copy (``<db>.work``), runs the SQL
build and atomically replaces the published file. A failed run leaves the published
file as it was and keeps the working copy, so the next run resumes from it
(docs/operations.md).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
import uuid
from pathlib import Path

import duckdb

from .. import STRIPE_API_VERSION, dbfile, landing, publish, signals
from .. import build as models
from ..config import Config, parse_month
from ..errors import NrrSyncError
from ..failures import redact
from ..progress import Progress, describe_counts
from .context import Job, rollback_quietly

log = logging.getLogger("nrr_sync")
# The one line a run always ends with, --quiet included (the cron log's record of the night).
summary_log = logging.getLogger("nrr_sync.summary")

RUNS_KEPT_IN_SIDECAR = 50
KILLED_MESSAGE = "the process ended without recording an outcome (killed)"


# Entry points -------------------------------------------------------------------------


def run_backfill(
    config: Config, since: str, restart: bool = False, *, api_key: str | None = None
) -> int:
    """``api_key``: the key to use instead of the one in the environment (the demo's)."""
    from .backfill import backfill  # the engines load the Stripe SDK and Arrow: not for `build`

    parse_month(since, "--since")
    return _run(
        config, "backfill", lambda job: backfill(job, since, restart), since=since, api_key=api_key
    )


def run_sync(config: Config) -> int:
    from .incremental import sync  # the engines load the Stripe SDK and Arrow: not for `build`

    return _run(config, "sync", sync)


def run_build(config: Config) -> int:
    return _run(config, "build", None)


def _run(
    config: Config, command: str, work, *, since: str | None = None, api_key: str | None = None
) -> int:
    db_path = dbfile.real_path(config.database.path)
    timeout = config.database.lock_timeout_seconds
    started_at = landing.now_utc()
    started = time.monotonic()
    run_id = f"{started_at:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    record = {
        "run_id": run_id,
        "command": command,
        "started_at": started_at.isoformat(),
        "since_month": since,
        "pid": os.getpid(),  # `status` tells a run in progress from one that was killed
        "host": socket.gethostname(),
    }
    with publish.job_lock(db_path):
        con = None
        job = None
        _write_sidecar(db_path, {**record, "outcome": "running"})
        try:
            con, work_path = publish.open_working_copy(db_path, timeout)
            migrate(con)
            _insert_run(con, record)
            with Progress() as progress:
                job = Job(con, config, progress, api_key=api_key)
                job.since = since
                if work is not None:
                    work(job)
                dbfile.check_publishable(con)
                with progress.step("build (sql/ models)"):
                    build_result = build(con, config)
                record.update(_outcome(job, started, "ok", 0, None))
                record["since_month"] = job.since
                _finish_run(con, record)
                with progress.step("publish"):
                    publish.publish(con, work_path, db_path, timeout)
                con = None
        except BaseException as raised:
            if job is not None:  # wherever it failed: its requests in flight are cut
                job.stopping.set()
            error = signals.translated(raised)  # DuckDB reports a signal as its own error
            exit_code = error.exit_code if isinstance(error, NrrSyncError) else 1
            exit_code = signals.exit_code(error) or exit_code
            note = _unfinished_backfill_note(con) if con is not None else None
            if note and isinstance(error, NrrSyncError):
                error.args = (f"{error}\n{note}",)  # the message the user sees says it too
            key = api_key or _api_key_or_none(config)
            message = redact(str(error) or type(error).__name__, key)
            record.update(_outcome(job, started, f"failed:{exit_code}", exit_code, message))
            if job is not None:
                record["since_month"] = job.since
            if con is not None:
                _record_failure(con, record)
            _write_sidecar(db_path, record)
            summary_log.info(_summary_line(record))
            if error is not raised:
                raise error from None
            raise
        finally:
            if con is not None:
                con.close()
        _write_sidecar(db_path, record)
        summary_log.info(_summary_line(record))
        log.debug("build: %s", build_result)
        if job is not None and job.request_totals()["requests"]:
            log.debug("requests by endpoint: %s", job.api.stats.by_endpoint())
    return 0


def _unfinished_backfill_note(con: duckdb.DuckDBPyConnection) -> str | None:
    """What the next runs do with a backfill this failure left unfinished: any `sync`
    finishes it, from its own month, and then replaces the published data with it."""
    rollback_quietly(con)
    try:
        status, since = dbfile.backfill_state(con)
    except duckdb.Error:
        return None
    if status != "running":
        return None
    return (
        f"The unfinished backfill from {since} is kept: the next `nrr-sync sync` (or "
        f"`nrr-sync backfill --since {since}`) finishes it and then publishes it, replacing "
        "the published data; the published file is unchanged until then."
    )


def migrate(con: duckdb.DuckDBPyConnection) -> None:
    models.migrate(con)


def build(con: duckdb.DuckDBPyConnection, config: Config) -> dict:
    with signals.interruptible(con):  # a long query stops at SIGINT / SIGTERM
        return models.build(con, config)


def _api_key_or_none(config: Config) -> str | None:
    return os.environ.get(config.stripe.api_key_env) or None


def _outcome(job: Job | None, started: float, outcome: str, code: int, message) -> dict:
    totals = job.request_totals() if job else {"requests": 0, "retries": 0, "rate_limited": 0}
    return {
        "finished_at": landing.now_utc().isoformat(),
        "duration_s": round(time.monotonic() - started, 2),
        "outcome": outcome,
        "exit_code": code,
        "message": message,
        "objects": dict(job.objects) if job else {},
        **totals,
    }


def _insert_run(con: duckdb.DuckDBPyConnection, record: dict) -> None:
    # This run holds the job lock: a run still marked running was killed before it could
    # record its end (SIGKILL, out of memory, power loss).
    con.execute(
        "UPDATE meta.sync_runs SET outcome = 'killed', message = ? WHERE outcome = 'running'",
        [KILLED_MESSAGE],
    )
    con.execute(
        "INSERT INTO meta.sync_runs (run_id, command, started_at, outcome, api_version, "
        "since_month) VALUES (?, ?, ?::TIMESTAMPTZ, 'running', ?, ?)",
        [
            record["run_id"],
            record["command"],
            record["started_at"],
            STRIPE_API_VERSION,
            record["since_month"],
        ],
    )


def _finish_run(con: duckdb.DuckDBPyConnection, record: dict) -> None:
    con.execute(
        "UPDATE meta.sync_runs SET finished_at = ?::TIMESTAMPTZ, outcome = ?, exit_code = ?, "
        "message = ?, objects = ?, requests = ?, retries = ?, rate_limited = ?, since_month = ? "
        "WHERE run_id = ?",
        [
            record["finished_at"],
            record["outcome"],
            record["exit_code"],
            record["message"],
            json.dumps(record["objects"]),
            record["requests"],
            record["retries"],
            record["rate_limited"],
            record["since_month"],
            record["run_id"],
        ],
    )


def _record_failure(con: duckdb.DuckDBPyConnection, record: dict) -> None:
    """Note the failure in the working copy; it is published with the next good run."""
    with contextlib.suppress(duckdb.Error):
        con.rollback()
    with contextlib.suppress(duckdb.Error):
        _finish_run(con, record)


def _write_sidecar(db_path: Path, record: dict) -> None:
    """``<db>.runs.json``: the last runs, failed ones included, for ``nrr-sync status``.

    A failed run never touches the published database, so this file is where its
    outcome is visible until the next successful run publishes it in meta.sync_runs.
    """
    path = dbfile.sibling(db_path, ".runs.json")
    try:
        runs = json.loads(publish.read_side_file(path) or "[]")
        if not isinstance(runs, list):
            runs = []
    except ValueError:
        runs = []
    runs = [
        run for run in runs if not isinstance(run, dict) or run.get("run_id") != record["run_id"]
    ]
    runs = [*runs, record][-RUNS_KEPT_IN_SIDECAR:]
    try:
        publish.write_side_file(path, json.dumps(runs, indent=1, default=str))
    except OSError as error:
        log.warning("could not write %s: %s", path, error.strerror)


def _summary_line(record: dict) -> str:
    objects = describe_counts(record.get("objects") or {})
    outcome = record["outcome"]
    if outcome.startswith("failed:"):
        outcome = f"failed (exit {record['exit_code']})"
    return (
        f"{record['command']} {outcome} in {record['duration_s']:.1f} s: "
        f"fetched {objects}; {record['requests']:,} requests, {record['retries']:,} retries, "
        f"{record['rate_limited']:,} rate-limited (429)"
    )
