"""What `nrr-sync status` reports, gathered once: the published file, the run record, the
working copy, and the problems that make its exit code 1."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from . import dbfile
from .config import Config
from .jobs import state as state_keys
from .report.data import built_currency, fetch_dicts, has_table, open_published, parse_instant

STALE_AFTER_HOURS = 36


@dataclass
class Status:
    """Everything `status` reports, gathered once for the text and the json form."""

    path: Path
    exists: bool
    size_bytes: int | None = None
    published: datetime | None = None
    as_of: datetime | None = None
    since: str | None = None
    currency: str | None = None
    runs: list[dict] = field(default_factory=list)
    state: dict[str, tuple[str, float | None]] = field(default_factory=dict)
    counts: list[tuple[str, int]] = field(default_factory=list)
    migrations: list[dict] = field(default_factory=list)
    findings: list[tuple[str, str, int]] | None = None
    problems: list[str] = field(default_factory=list)
    unfinished: str | None = None  # the month of an unfinished backfill in the working copy


def collect(config: Config) -> Status:
    path = dbfile.real_path(config.database.path)
    sidecar_runs = settle_running(read_sidecar_runs(path))
    unfinished = dbfile.unfinished_backfill(path)
    if not path.exists():
        return Status(path, False, runs=sidecar_runs, unfinished=unfinished)
    with open_published(path) as con:
        runs = read_runs(con)
        state = read_state(con)
        found = Status(
            path,
            True,
            size_bytes=path.stat().st_size,
            published=datetime.fromtimestamp(path.stat().st_mtime, UTC),
            as_of=parse_instant(state.get(state_keys.REPORT_AS_OF, (None, None))[0]),
            since=state.get(state_keys.REPORT_SINCE, (None, None))[0],
            currency=built_currency(con) or config.reporting.currency,
            state=state,
            counts=row_counts(con),
            migrations=read_migrations(con),
            findings=read_findings(con),
            problems=data_problems(con, path),
            unfinished=unfinished,
        )
    found.runs = settle_running(merge_runs(runs, sidecar_runs))
    return found


# --------------------------------------------------------------------------- status parts


def read_runs(con, limit: int = 10) -> list[dict]:
    if not has_table(con, "meta", "sync_runs"):
        return []
    rows = fetch_dicts(
        con,
        "SELECT command, epoch(started_at) AS started, epoch(finished_at) AS finished, "
        "outcome, objects::VARCHAR AS objects, requests, retries, run_id, exit_code, "
        f"message, rate_limited FROM meta.sync_runs ORDER BY started_at DESC LIMIT {int(limit)}",
    )
    for row in rows:
        row["objects"] = count_objects(row["objects"])
    return rows


def count_objects(value) -> int | None:
    """``objects`` is a JSON map of counts per kind: their sum."""
    if value is None:
        return None
    try:
        parsed = json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return None
    if isinstance(parsed, dict):
        return sum(int(v) for v in parsed.values() if isinstance(v, int | float))
    return None


def read_sidecar_runs(path: Path) -> list[dict]:
    """Failed runs never publish the database; the job notes them in ``<db>.runs.json``."""
    sidecar = path.with_name(path.name + ".runs.json")
    if not sidecar.exists():
        return []
    try:
        document = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        return []
    runs = []
    for entry in document if isinstance(document, list) else []:
        if not isinstance(entry, dict):
            continue
        started = entry.get("started_at")
        finished = entry.get("finished_at")
        runs.append(
            {
                "run_id": entry.get("run_id"),
                "command": entry.get("command"),
                "started": to_epoch(started),
                "finished": to_epoch(finished),
                "outcome": entry.get("outcome"),
                "objects": count_objects(entry.get("objects")),
                "requests": entry.get("requests"),
                "retries": entry.get("retries"),
                "message": entry.get("message"),
                "exit_code": entry.get("exit_code"),
                "pid": entry.get("pid"),
                "host": entry.get("host"),
            }
        )
    return runs


def settle_running(runs: list[dict]) -> list[dict]:
    """A run marked running whose process is gone was killed: say so, never "running".

    The published file never holds a run in progress (a run records its end before it
    publishes), so there "running" always means killed; the run record next to it holds
    the pid of a run in progress, which must still be alive on this host.
    """
    for run in runs:
        if run.get("outcome") == "running" and not process_alive(run.get("pid"), run.get("host")):
            run["outcome"] = "killed"
            pid = f" (pid {run['pid']})" if run.get("pid") else ""
            run["message"] = (
                f"the {run.get('command') or 'run'}{pid} ended without recording an outcome: "
                "killed (SIGKILL, out of memory, a reboot). The next run resumes."
            )
    return runs


def process_alive(pid, host) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    if host and host != socket.gethostname():
        return True  # cannot tell from here: another host's run is taken at its word
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, run by another user
    return True


def to_epoch(value) -> float | None:
    if isinstance(value, int | float):
        return float(value)
    parsed = parse_instant(value) if isinstance(value, str) else None
    return parsed.timestamp() if parsed else None


def merge_runs(runs: list[dict], more: list[dict], limit: int = 10) -> list[dict]:
    def key(run):
        return run.get("run_id") or (run["command"], round(run["started"] or 0))

    seen = {key(run) for run in runs}
    merged = runs + [run for run in more if key(run) not in seen]
    merged.sort(key=lambda run: run["started"] or 0, reverse=True)
    return merged[:limit]


def read_state(con) -> dict[str, tuple[str, float | None]]:
    if not has_table(con, "meta", "sync_state"):
        return {}
    rows = con.execute(
        "SELECT key, value, epoch(updated_at) FROM meta.sync_state ORDER BY key"
    ).fetchall()
    return {key: (value, updated) for key, value, updated in rows}


def row_counts(con) -> list[tuple[str, int]]:
    tables = con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() "
        "WHERE schema_name IN ('stripe', 'report', 'meta') "
        "ORDER BY CASE schema_name WHEN 'stripe' THEN 0 WHEN 'report' THEN 1 ELSE 2 END, "
        "table_name"
    ).fetchall()
    return [
        (
            f"{schema}.{table}",
            con.execute(f'SELECT count(*) FROM "{schema}"."{table}"').fetchone()[0],
        )
        for schema, table in tables
    ]


def read_migrations(con) -> list[dict]:
    if not has_table(con, "meta", "sql_migrations"):
        return []
    rows = fetch_dicts(
        con,
        "SELECT version::VARCHAR AS version, name, kind, "
        "epoch(applied_at) AS applied FROM meta.sql_migrations "
        "ORDER BY left(version::VARCHAR, 1) = 'R', version",
    )
    for row in rows:
        applied = row.pop("applied")
        row["applied_at"] = None if applied is None else datetime.fromtimestamp(applied, UTC)
    return rows


def read_findings(con) -> list[tuple[str, str, int]] | None:
    if not has_table(con, "report", "data_quality"):
        return None
    return con.execute(
        'SELECT "check", severity, count(*) FROM report.data_quality '
        "GROUP BY 1, 2 ORDER BY CASE lower(severity) WHEN 'error' THEN 0 "
        "WHEN 'warning' THEN 1 ELSE 2 END, 3 DESC, 1"
    ).fetchall()


def format_age(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 72 * 3600:
        return f"{seconds / 3600:.1f} h ago"
    return f"{seconds / 86400:.1f} days ago"


def format_duration(started: float | None, finished: float | None) -> str:
    if started is None or finished is None:
        return "running" if started is not None else ""
    seconds = finished - started
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def run_ok(run: dict) -> bool:
    return run.get("outcome") == "ok"


def cursor_instant(value: str | None) -> datetime | None:
    """A cursor is JSON like {"created": 1768435200, "id": ...}; other state, an instant."""
    if value and value.lstrip().startswith("{"):
        try:
            return state_keys.EventCursor.load(value).instant
        except ValueError:
            return None
    return parse_instant(value)


def data_problems(con, path: Path) -> list[str]:
    """Why the published data is not the whole truth, whatever the runs say."""
    problems = []
    status, since = dbfile.backfill_state(con)
    if status == "running":
        problems.append(
            f"the published file holds an unfinished backfill from {since}: "
            f"`nrr-sync backfill --since {since}` finishes it"
        )
    elif status != "done":
        problems.append("nothing fetched yet: run `nrr-sync backfill --since YYYY-MM`")
    elif (
        not has_table(con, "report", "mrr_summary")
        or not con.execute("SELECT count(*) FROM report.mrr_summary").fetchone()[0]
    ):
        problems.append("the report is empty")
    unfinished = dbfile.unfinished_backfill(path)
    if unfinished:
        problems.append(
            f"a backfill from {unfinished} is unfinished (the published file holds the data "
            f"from before it): `nrr-sync backfill --since {unfinished}` or `nrr-sync sync` "
            "finishes it"
        )
    return problems


def running_run(runs: list[dict]) -> dict | None:
    """A run in progress now (its process is alive: ``settle_running`` checked)."""
    return next((run for run in runs if run.get("outcome") == "running"), None)


def exit_code_of(run: dict) -> int | None:
    """The run's exit code: recorded, or read from an outcome like ``failed:6``."""
    if isinstance(run.get("exit_code"), int):
        return run["exit_code"]
    outcome = str(run.get("outcome") or "")
    if run_ok(run):
        return 0
    if outcome.startswith("failed:") and outcome[7:].isdigit():
        return int(outcome[7:])
    return None


def failed_build_hint(run: dict) -> str:
    """After a failed SQL build the fetched data waits in the working copy."""
    if exit_code_of(run) != 6:
        return ""
    return (
        ": the SQL build failed and the fetched data is kept; fix the cause (the last failure "
        "above) and run `nrr-sync build`, which fetches nothing again"
    )


def health_problems(found: Status, now: float) -> list[str]:
    """Why `status` exits 1; none means healthy."""
    runs = found.runs
    problems = list(found.problems)
    finished = [run for run in runs if run.get("outcome") != "running"]
    last = finished[0] if finished else None
    last_failed = last is not None and not run_ok(last)
    if not found.exists:
        if found.unfinished:
            problems.append(
                f"a backfill from {found.unfinished} is unfinished: `nrr-sync backfill --since "
                f"{found.unfinished}` or `nrr-sync sync` finishes it"
            )
        elif not (last_failed and exit_code_of(last) == 6):
            problems.append(
                "No data yet: run `nrr-sync backfill --since YYYY-MM` (or `nrr-sync demo` to "
                "try the tool on the built-in sandbox)"
            )
    if last_failed:
        problems.append(
            f"the last run ({last['command']}) ended {last['outcome']}{failed_build_hint(last)}"
        )
    successes = [run for run in runs if run_ok(run) and run["finished"]]
    if not successes:
        if found.exists or runs:
            problems.append("no successful run recorded")
    else:
        age = now - successes[0]["finished"]
        if age > STALE_AFTER_HOURS * 3600:
            problems.append(
                f"the last successful run finished {format_age(age)} "
                f"(more than {STALE_AFTER_HOURS} h): data is stale"
            )
    return problems


# --------------------------------------------------------------------------- json


def published_backfill_month(found: Status) -> str | None:
    """The month of an unfinished backfill held by the published file itself."""
    status_value = found.state.get(state_keys.BACKFILL_STATUS, (None, None))[0]
    if status_value == "running":
        return found.state.get(state_keys.BACKFILL_SINCE, (None, None))[0]
    return None
