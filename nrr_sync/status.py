"""``nrr-sync status``: the job's health from the published file and the run record."""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import typer

from . import dbfile
from .config import Config
from .errors import ConfigError
from .jobs import state as state_keys
from .report.data import built_currency, fetch_dicts, has_table, open_published, parse_instant
from .report.text import format_count, format_instant, text_table
from .terminal import printable

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


def status(config: Config, output_format: str = "text") -> int:
    """Print the job's health; 1 when the data is stale, never synced, a backfill is
    unfinished, the report is empty, or the last run failed (the same in both forms)."""
    if output_format not in ("text", "json"):
        raise ConfigError(f"--format must be text or json, not {output_format!r}.")
    now = time.time()
    found = collect(config)
    problems = health_problems(found, now)
    if output_format == "json":
        typer.echo(json.dumps(status_document(found, problems, now), indent=2))
    else:
        print_status(found, problems, now)
    return 1 if problems else 0


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


def print_status(found: Status, problems: list[str], now: float) -> None:
    if not found.exists:
        typer.echo(f"Database   {found.path} does not exist yet.")
        print_runs(found.runs)
        print_health(found.runs, now, problems)
        return
    size_mb = (found.size_bytes or 0) / 1e6
    typer.echo(
        f"Database   {found.path} ({size_mb:,.1f} MB, published {format_instant(found.published)})"
    )
    typer.echo(
        f"Data       as of {format_instant(found.as_of)}"
        + (f", reported from {found.since}" if found.since else "")
        + f", currency {(found.currency or '').upper()}"
    )
    print_runs(found.runs)
    print_cursors(found.state, now)
    typer.echo("\nRows")
    if found.counts:
        rows = [[name, format_count(count)] for name, count in found.counts]
        typer.echo(text_table(["table", "rows"], rows, "  "))
    else:
        typer.echo("  no tables yet")
    typer.echo("\nSQL versions applied")
    if found.migrations:
        typer.echo(
            text_table(
                ["version", "file", "kind", "last applied"],
                [
                    [m["version"], m["name"], m["kind"], format_instant(m["applied_at"])]
                    for m in found.migrations
                ],
                "  ",
            )
        )
    else:
        typer.echo("  none")
    print_findings(found.findings)
    print_health(found.runs, now, problems)


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


def print_runs(runs: list[dict]) -> None:
    typer.echo("\nLast runs")
    if not runs:
        typer.echo("  none recorded")
        return
    rows = [
        [
            format_instant(datetime.fromtimestamp(run["started"], UTC))[:-4]
            if run["started"]
            else "",
            run["command"] or "",
            format_duration(run["started"], run["finished"])
            if run["outcome"] not in ("killed", "running")
            else "",
            outcome_text(run),
            format_count(run["objects"]),
            format_count(run["requests"]),
            format_count(run["retries"]),
        ]
        for run in runs
    ]
    headers = ["started (UTC)", "command", "duration", "outcome", "objects", "requests", "retries"]
    typer.echo(text_table(headers, rows, "  "))
    failed = [run for run in runs if not run_ok(run) and run.get("message")]
    if failed and not run_ok(runs[0]):
        typer.echo(f"  last failure: {printable(failed[0]['message'])}")


def outcome_text(run: dict) -> str:
    if run.get("outcome") == "running" and run.get("pid"):
        return f"running (pid {run['pid']})"
    return str(run.get("outcome") or "")


def print_cursors(state: dict[str, tuple[str, float | None]], now: float) -> None:
    typer.echo("\nCursors")
    cursors = [(key, value, updated) for key, (value, updated) in state.items()]
    checkpoints = [row for row in cursors if row[0].startswith(state_keys.SLICE)]
    # objects an unfinished sync landed, noted so the next run does not fetch them again
    landed = [row for row in cursors if row[0].startswith(state_keys.EVENTS_LANDED)]
    # the ids of the last events seen, kept to skip them next time: internal, not a cursor
    internal = [row for row in cursors if row[0].startswith(state_keys.EVENTS_SEEN)]
    shown = [row for row in cursors if row not in checkpoints and row not in landed + internal]
    if not shown and not checkpoints and not landed:
        typer.echo("  none")
        return
    rows = []
    for key, value, _updated in shown:
        instant = (
            cursor_instant(value)
            if key.startswith(state_keys.EVENTS) or key.endswith(":as_of")
            else None
        )
        if instant:
            rows.append([key, format_instant(instant), format_age(now - instant.timestamp())])
        else:
            rows.append([key, str(value)[:40], ""])
    if rows:
        typer.echo(text_table(["key", "value", "age"], rows, "  "))
    if checkpoints:
        typer.echo(f"  {len(checkpoints):,} backfill slice checkpoints")
    if landed:
        typer.echo(f"  {len(landed):,} batches of an unfinished sync landed (not fetched again)")


def cursor_instant(value: str | None) -> datetime | None:
    """A cursor is JSON like {"created": 1768435200, "id": ...}; other state, an instant."""
    if value and value.lstrip().startswith("{"):
        try:
            created = json.loads(value).get("created")
        except (ValueError, AttributeError):
            return None
        return datetime.fromtimestamp(created, UTC) if isinstance(created, int | float) else None
    return parse_instant(value)


def plural(count: int, word: str) -> str:
    return f"{count:,} {word}" + ("s" if count != 1 and word in ("error", "warning") else "")


def print_findings(findings: list[tuple[str, str, int]] | None) -> None:
    typer.echo("\nData quality")
    if findings is None:
        typer.echo("  not built yet")
        return
    if not findings:
        typer.echo("  no findings")
        return
    totals: dict[str, int] = {}
    for _, severity, count in findings:
        totals[severity] = totals.get(severity, 0) + count
    typer.echo("  " + ", ".join(plural(count, severity) for severity, count in totals.items()))
    typer.echo(
        text_table(
            ["check", "severity", "findings"],
            [[check, severity, format_count(count)] for check, severity, count in findings],
            "  ",
        )
    )
    typer.echo("  details: SELECT * FROM report.data_quality")


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


def print_health(runs: list[dict], now: float, problems: list[str]) -> None:
    """The last lines, for people and for monitoring."""
    running = running_run(runs)
    if running:
        typer.echo(
            f"\nIn progress: a {running['command']} (pid {running.get('pid')}) started "
            f"{format_age(now - running['started']) if running.get('started') else ''}."
        )
    if problems:
        typer.secho("\nWARNING: " + "; ".join(problems) + ".", fg=typer.colors.YELLOW)
        return
    successes = [run for run in runs if run_ok(run) and run["finished"]]
    age = now - successes[0]["finished"]
    typer.secho(f"\nOK: last successful run finished {format_age(age)}.", fg=typer.colors.GREEN)


# --------------------------------------------------------------------------- json


def iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat()


def hours_since(epoch: float | None, now: float) -> float | None:
    return None if epoch is None else round((now - epoch) / 3600, 2)


def run_document(run: dict) -> dict:
    document = {
        "command": run.get("command"),
        "started_at": iso(run.get("started")),
        "finished_at": iso(run.get("finished")),
        "outcome": run.get("outcome"),
        "exit_code": exit_code_of(run),
        "objects": run.get("objects"),
        "requests": run.get("requests"),
        "retries": run.get("retries"),
        "message": run.get("message"),
    }
    if run.get("outcome") == "running":
        document.update(pid=run.get("pid"), host=run.get("host"))
    return document


def cursor_documents(state: dict[str, tuple[str, float | None]], now: float) -> list[dict]:
    cursors = []
    for key, (value, _updated) in state.items():
        if not key.startswith(state_keys.EVENT_CURSOR):
            continue
        instant = cursor_instant(value)
        cursors.append(
            {
                "account": key.removeprefix(state_keys.EVENT_CURSOR),
                "at": None if instant is None else instant.isoformat(),
                "age_hours": None if instant is None else hours_since(instant.timestamp(), now),
            }
        )
    return cursors


def quality_document(findings: list[tuple[str, str, int]] | None) -> dict | None:
    if findings is None:
        return None
    by_severity: dict[str, int] = {}
    for _, severity, count in findings:
        by_severity[severity] = by_severity.get(severity, 0) + count
    return {
        "by_severity": by_severity,
        "checks": [
            {"check": check, "severity": severity, "findings": count}
            for check, severity, count in findings
        ],
    }


def status_document(found: Status, problems: list[str], now: float) -> dict:
    """One JSON object for monitoring; ``health.exit_code`` is the command's exit code."""
    successes = [run for run in found.runs if run_ok(run) and run["finished"]]
    last_success = successes[0]["finished"] if successes else None
    running = running_run(found.runs)
    published_backfill = published_backfill_month(found)
    return {
        "database": {
            "path": str(found.path),
            "exists": found.exists,
            "size_bytes": found.size_bytes,
            "published_at": None if found.published is None else found.published.isoformat(),
        },
        "data": {
            "as_of": None if found.as_of is None else found.as_of.isoformat(),
            "reported_from": found.since,
            "currency": found.currency,
        },
        "freshness": {
            "last_success_at": iso(last_success),
            "age_hours": hours_since(last_success, now),
            "stale_after_hours": STALE_AFTER_HOURS,
            "stale": last_success is None or now - last_success > STALE_AFTER_HOURS * 3600,
        },
        "running": None if running is None else run_document(running),
        "runs": [run_document(run) for run in found.runs],
        "unfinished_backfill": published_backfill or found.unfinished,
        "cursors": cursor_documents(found.state, now),
        "rows": dict(found.counts),
        "data_quality": quality_document(found.findings),
        "sql_versions": [
            {
                "version": m["version"],
                "file": m["name"],
                "kind": m["kind"],
                "applied_at": None if m["applied_at"] is None else m["applied_at"].isoformat(),
            }
            for m in found.migrations
        ],
        "health": {"ok": not problems, "exit_code": 1 if problems else 0, "problems": problems},
    }


def published_backfill_month(found: Status) -> str | None:
    """The month of an unfinished backfill held by the published file itself."""
    status_value = found.state.get(state_keys.BACKFILL_STATUS, (None, None))[0]
    if status_value == "running":
        return found.state.get(state_keys.BACKFILL_SINCE, (None, None))[0]
    return None
