"""``nrr-sync status`` as text for people: runs, cursors, row counts, findings, the verdict."""

from __future__ import annotations

from datetime import UTC, datetime

import typer

from .jobs import state as state_keys
from .report.text import format_count, format_instant, text_table
from .status_data import Status, cursor_instant, format_age, format_duration, run_ok, running_run
from .terminal import printable


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
