"""``nrr-sync status --format json``: one JSON object for monitoring systems."""

from __future__ import annotations

from datetime import UTC, datetime

from .jobs import state as state_keys
from .status_data import (
    STALE_AFTER_HOURS,
    Status,
    cursor_instant,
    exit_code_of,
    published_backfill_month,
    run_ok,
    running_run,
)


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
