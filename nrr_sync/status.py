"""``nrr-sync status``: the job's health from the published file and the run record."""

from __future__ import annotations

import json
import os
import socket
import time
from datetime import UTC, datetime
from pathlib import Path

import typer

from . import warehouse
from .config import Config
from .report.data import built_currency, fetch_dicts, has_table, open_published, parse_instant
from .report.text import format_count, format_instant, text_table
from .terminal import printable

STALE_AFTER_HOURS = 36


def status(config: Config) -> int:
    """Print the job's health; 1 when the data is stale, never synced, or the last run failed."""
    path = warehouse.real_path(config.database.path)
    now = time.time()
    sidecar_runs = settle_running(read_sidecar_runs(path))
    if not path.exists():
        typer.echo(f"Database   {path} does not exist yet.")
        print_runs(sidecar_runs)
        unfinished = warehouse.unfinished_backfill(path)
        if unfinished:
            typer.echo(
                f"\nA backfill from {unfinished} is unfinished: `nrr-sync backfill --since "
                f"{unfinished}` or `nrr-sync sync` finishes it."
            )
            return 1
        typer.echo(
            "\nNo data yet: run `nrr-sync backfill --since YYYY-MM` (or `nrr-sync demo` to try "
            "the tool on the built-in sandbox)."
        )
        return 1
    with open_published(path) as con:
        runs = read_runs(con)
        state = read_state(con)
        counts = row_counts(con)
        migrations = read_migrations(con)
        findings = read_findings(con)
        currency = built_currency(con) or config.reporting.currency
        problems = data_problems(con, path)
    runs = settle_running(merge_runs(runs, sidecar_runs))

    size_mb = path.stat().st_size / 1e6
    published = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    typer.echo(f"Database   {path} ({size_mb:,.1f} MB, published {format_instant(published)})")
    as_of = parse_instant(state.get("report:as_of", (None, None))[0])
    since = state.get("report:since", (None, None))[0]
    typer.echo(
        f"Data       as of {format_instant(as_of)}"
        + (f", reported from {since}" if since else "")
        + f", currency {currency.upper()}"
    )

    print_runs(runs)
    print_cursors(state, now)
    typer.echo("\nRows")
    if counts:
        typer.echo(text_table(["table", "rows"], [[n, format_count(c)] for n, c in counts], "  "))
    else:
        typer.echo("  no tables yet")
    typer.echo("\nSQL versions applied")
    if migrations:
        typer.echo(
            text_table(
                ["version", "file", "kind", "last applied"],
                [
                    [m["version"], m["name"], m["kind"], format_instant(m["applied_at"])]
                    for m in migrations
                ],
                "  ",
            )
        )
    else:
        typer.echo("  none")
    print_findings(findings)
    return print_health(runs, now, problems)


# --------------------------------------------------------------------------- status parts


def read_runs(con, limit: int = 10) -> list[dict]:
    if not has_table(con, "meta", "sync_runs"):
        return []
    columns = {
        row[0]
        for row in con.execute(
            "SELECT column_name FROM duckdb_columns() "
            "WHERE schema_name = 'meta' AND table_name = 'sync_runs'"
        ).fetchall()
    }
    optional = [c for c in ("run_id", "exit_code", "message", "rate_limited") if c in columns]
    rows = fetch_dicts(
        con,
        "SELECT command, epoch(started_at) AS started, epoch(finished_at) AS finished, "
        "outcome, objects::VARCHAR AS objects, requests, retries"
        + "".join(f", {c}" for c in optional)
        + f" FROM meta.sync_runs ORDER BY started_at DESC LIMIT {int(limit)}",
    )
    for row in rows:
        row["objects"] = count_objects(row["objects"])
    return rows


def count_objects(value) -> int | None:
    """``objects`` is a JSON map of counts per kind (or a plain number)."""
    if value is None:
        return None
    try:
        parsed = json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return None
    if isinstance(parsed, dict):
        return sum(int(v) for v in parsed.values() if isinstance(v, int | float))
    if isinstance(parsed, int | float):
        return int(parsed)
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
    entries = document.get("runs", []) if isinstance(document, dict) else document
    runs = []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        started = entry.get("started") or entry.get("started_at")
        finished = entry.get("finished") or entry.get("finished_at")
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
    has_kind = con.execute(
        "SELECT count(*) FROM duckdb_columns() WHERE schema_name = 'meta' "
        "AND table_name = 'sql_migrations' AND column_name = 'kind'"
    ).fetchone()[0]
    kind = "kind" if has_kind else "'migration'"
    rows = fetch_dicts(
        con,
        f"SELECT version::VARCHAR AS version, name, {kind} AS kind, "
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
    return str(run.get("outcome") or "").lower() in ("ok", "success", "succeeded")


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
            format_duration(run["started"], run["finished"]) if run["outcome"] != "killed" else "",
            str(run["outcome"] or ""),
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


def print_cursors(state: dict[str, tuple[str, float | None]], now: float) -> None:
    typer.echo("\nCursors")
    cursors = [(key, value, updated) for key, (value, updated) in state.items()]
    checkpoints = [row for row in cursors if ":slice:" in row[0]]
    # objects an unfinished sync landed, noted so the next run does not fetch them again
    landed = [row for row in cursors if row[0].startswith("events:landed:")]
    shown = [row for row in cursors if row not in checkpoints and row not in landed]
    if not shown and not checkpoints and not landed:
        typer.echo("  none")
        return
    rows = []
    for key, value, _updated in shown:
        instant = (
            cursor_instant(value) if key.startswith("events:") or key.endswith(":as_of") else None
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
    """A cursor is an instant, unix seconds, or JSON like {"created": 1768435200, ...}."""
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
    status, since = warehouse.backfill_state(con)
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
    unfinished = warehouse.unfinished_backfill(path)
    if unfinished:
        problems.append(
            f"a backfill from {unfinished} is unfinished (the published file holds the data "
            f"from before it): `nrr-sync backfill --since {unfinished}` or `nrr-sync sync` "
            "finishes it"
        )
    return problems


def print_health(runs: list[dict], now: float, data: list[str] = ()) -> int:
    """The last line, for people and for monitoring; returns the exit code."""
    successes = [run for run in runs if run_ok(run) and run["finished"]]
    problems = list(data)
    if runs and not run_ok(runs[0]) and runs[0]["outcome"] != "running":
        problems.append(f"the last run ({runs[0]['command']}) ended {runs[0]['outcome']}")
    if not successes:
        problems.append("no successful run recorded")
    else:
        age = now - successes[0]["finished"]
        if age > STALE_AFTER_HOURS * 3600:
            problems.append(
                f"the last successful run finished {format_age(age)} "
                f"(more than {STALE_AFTER_HOURS} h): data is stale"
            )
    if problems:
        typer.secho("\nWARNING: " + "; ".join(problems) + ".", fg=typer.colors.YELLOW)
        return 1
    age = now - successes[0]["finished"]
    typer.secho(f"\nOK: last successful run finished {format_age(age)}.", fg=typer.colors.GREEN)
    return 0
