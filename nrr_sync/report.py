"""``nrr-sync report`` and ``nrr-sync status``: read the published DuckDB file, never write it.

The file is opened read-only, so a report never waits for (or blocks) an analyst's
session, and never takes the lock the nightly job needs.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import typer

from . import warehouse
from .config import Config, parse_month
from .errors import ConfigError
from .terminal import one_line, printable

STALE_AFTER_HOURS = 36
CENTS = Decimal("0.01")

MONEY_COLUMNS = (
    "mrr_start",
    "new_mrr",
    "expansion_mrr",
    "reactivation_mrr",
    "contraction_mrr",
    "churned_mrr",
    "mrr_end",
)
SUMMARY_COLUMNS = (
    "month",
    "month_complete",
    *MONEY_COLUMNS,
    "customers_start",
    "customers_end",
    "new_customers",
    "reactivated_customers",
    "churned_customers",
)
RETENTION_COLUMNS = (
    "month",
    "window_months",
    "segment_type",
    "segment",
    "customers_start",
    "customers_retained",
    "mrr_start",
    "mrr_end",
    "mrr_retained_capped",
    "nrr",
    "grr",
    "logo_retention",
)
RATIO_COLUMNS = ("nrr", "grr", "logo_retention")
RETENTION_MONEY = ("mrr_start", "mrr_end", "mrr_retained_capped")


class NoReportData(ConfigError):
    """The database has no report rows yet (exit 2: the user has to backfill first)."""


# --------------------------------------------------------------------------- reading


@contextmanager
def open_published(path: str | Path):
    """A read-only connection to the published database (symbolic links resolved); a file
    that is not a whole nrr-sync database, or fails while it is read, is exit 2."""
    path = warehouse.real_path(path)
    if not path.exists():
        raise NoReportData(
            f"No database at {path} yet: run `nrr-sync backfill --since YYYY-MM` first "
            "(or point database.path in the config at the right file)."
        )
    con = warehouse.open_published(path, timeout=0)
    try:
        yield con
    except duckdb.Error as error:
        raise ConfigError(
            f"{path} cannot be read ({str(error).strip().splitlines()[0]}): {warehouse.START_OVER}."
        ) from None
    finally:
        con.close()


def require_data(con, path: Path) -> None:
    """A report shows the data of a finished backfill (and the syncs after it) only."""
    status, since = warehouse.backfill_state(con)
    if status == "running":
        raise NoReportData(
            f"{path} holds an unfinished backfill from {since}, so its numbers are not the "
            f"whole truth: finish it with `nrr-sync backfill --since {since}`."
        )
    if status != "done":
        raise NoReportData(
            f"No report data in {path} yet: nothing fetched yet: run "
            "`nrr-sync backfill --since YYYY-MM` first."
        )


def has_table(con, schema: str, table: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?",
            [schema, table],
        ).fetchone()[0]
    )


def fetch_dicts(con, sql: str, params=None) -> list[dict]:
    cursor = con.execute(sql, params or [])
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def state_value(con, key: str) -> str | None:
    if not has_table(con, "meta", "sync_state"):
        return None
    row = con.execute("SELECT value FROM meta.sync_state WHERE key = ?", [key]).fetchone()
    return row[0] if row else None


def month_start(value: str | None) -> date | None:
    if value is None:
        return None
    year, month = parse_month(value, "month")
    return date(year, month, 1)


def money(value) -> Decimal | None:
    """Exact cents, whatever numeric type the column has."""
    if value is None:
        return None
    if not isinstance(value, Decimal):
        value = Decimal(repr(float(value)))
    return value.quantize(CENTS)


@dataclass
class ReportData:
    """What a report shows; read once, rendered by every format."""

    database: str
    currency: str
    window: int
    segment_type: str
    as_of: datetime | None
    since: str | None
    accounts: list[str]
    months: list[dict]  # mrr_summary rows plus nrr / grr / logo_retention of segment 'all'
    segments: list[dict] = field(default_factory=list)  # retention rows of segment_type
    configured_currency: str | None = None  # reporting.currency now; may differ from the build

    @property
    def complete_months(self) -> list[dict]:
        return [row for row in self.months if row["month_complete"]]


def read_report(
    con,
    *,
    database: str,
    currency: str,
    window: int = 12,
    segment: str = "all",
    from_month: str | None = None,
    to_month: str | None = None,
) -> ReportData:
    """Read the roll-forward and retention of the chosen window and segment type."""
    first, last = month_start(from_month), month_start(to_month)
    if first and last and first > last:
        raise ConfigError(f"--from {from_month} is after --to {to_month}.")
    if not has_table(con, "report", "mrr_summary"):
        raise NoReportData(
            f"No report data in {database} yet: run `nrr-sync backfill --since YYYY-MM` first."
        )
    span = con.execute("SELECT min(month), max(month), count(*) FROM report.mrr_summary").fetchone()
    if not span[2]:
        raise NoReportData(
            f"No report data in {database} yet: run `nrr-sync backfill --since YYYY-MM` first."
        )
    segment_types = available_segment_types(con)
    if segment not in segment_types:
        raise ConfigError(
            f"Unknown segment type {segment!r}; this database has: {', '.join(segment_types)}."
        )

    where, params = "WHERE true", []
    if first:
        where, params = where + " AND month >= ?", [*params, first]
    if last:
        where, params = where + " AND month <= ?", [*params, last]
    months = fetch_dicts(
        con,
        f"SELECT {', '.join(SUMMARY_COLUMNS)} FROM report.mrr_summary {where} ORDER BY month",
        params,
    )
    if not months:
        raise ConfigError(
            f"No months in the chosen range: the report covers {span[0]:%Y-%m} to {span[1]:%Y-%m}."
        )
    retention = read_retention(con, window, "all", where, params)
    by_month = {row["month"]: row for row in retention}
    for row in months:
        for column in MONEY_COLUMNS:
            row[column] = money(row[column])
        found = by_month.get(row["month"], {})
        for column in RATIO_COLUMNS:
            row[column] = found.get(column)
    segments = read_retention(con, window, segment, where, params) if segment != "all" else []

    as_of = state_value(con, "report:as_of")
    built_in = built_currency(con)
    return ReportData(
        database=database,
        currency=built_in or currency,
        configured_currency=currency,
        window=window,
        segment_type=segment,
        as_of=parse_instant(as_of),
        since=state_value(con, "report:since"),
        accounts=read_accounts(con),
        months=months,
        segments=segments,
    )


def read_retention(con, window: int, segment_type: str, where: str, params: list) -> list[dict]:
    if not has_table(con, "report", "retention"):
        return []
    rows = fetch_dicts(
        con,
        f"SELECT {', '.join(RETENTION_COLUMNS)} FROM report.retention {where} "
        "AND window_months = ? AND segment_type = ? ORDER BY segment, month",
        [*params, window, segment_type],
    )
    for row in rows:
        for column in RETENTION_MONEY:
            row[column] = money(row[column])
    return rows


def built_currency(con) -> str | None:
    """The reporting currency the report tables were built in (the config may have moved on)."""
    if not has_table(con, "meta", "build_settings"):
        return None
    row = con.execute("SELECT reporting_currency FROM meta.build_settings LIMIT 1").fetchone()
    return row[0].lower() if row and row[0] else None


def available_segment_types(con) -> list[str]:
    if not has_table(con, "report", "retention"):
        return ["all"]
    found = [
        row[0]
        for row in con.execute(
            "SELECT DISTINCT segment_type FROM report.retention ORDER BY segment_type"
        ).fetchall()
    ]
    return ["all"] + [name for name in found if name != "all"]


def read_accounts(con) -> list[str]:
    if not has_table(con, "report", "customer_mrr_monthly"):
        return []
    rows = con.execute(
        "SELECT DISTINCT account_id FROM report.customer_mrr_monthly ORDER BY 1"
    ).fetchall()
    return [row[0] for row in rows]


def parse_instant(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        if value.replace(".", "", 1).isdigit():
            return datetime.fromtimestamp(float(value), UTC)
        parsed = datetime.fromisoformat(value.strip().replace(" ", "T", 1))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# --------------------------------------------------------------------------- formatting


def format_money(value: Decimal | None) -> str:
    return "" if value is None else f"{value:,.2f}"


def format_percent(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.1f}%"


def format_count(value) -> str:
    return "" if value is None else f"{int(value):,}"


def format_instant(value: datetime | None) -> str:
    return "unknown" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def month_label(row: dict) -> str:
    return f"{row['month']:%Y-%m}" + ("" if row["month_complete"] else "*")


def ratio(value: float | None) -> float | None:
    """Ratios in csv / json: 6 decimal places, enough for a tenth of a basis point."""
    return None if value is None else round(float(value), 6)


ROLL_FORWARD_HEADERS = (
    "Month",
    "MRR start",
    "New",
    "Expansion",
    "Reactivation",
    "Contraction",
    "Churn",
    "MRR end",
    "Customers",
)


def roll_forward_table(data: ReportData) -> tuple[list[str], list[list[str]]]:
    """Rows as shown to people: contraction and churn carry their minus sign, so each row
    reads as a sum (start + new + expansion + reactivation - contraction - churn = end)."""
    k = data.window
    headers = [
        *ROLL_FORWARD_HEADERS,
        f"NRR {k}m",
        f"GRR {k}m",
        f"Logos {k}m",
    ]
    rows = [
        [
            month_label(row),
            format_money(row["mrr_start"]),
            format_money(row["new_mrr"]),
            format_money(row["expansion_mrr"]),
            format_money(row["reactivation_mrr"]),
            format_money(-row["contraction_mrr"]),
            format_money(-row["churned_mrr"]),
            format_money(row["mrr_end"]),
            format_count(row["customers_end"]),
            format_percent(row["nrr"]),
            format_percent(row["grr"]),
            format_percent(row["logo_retention"]),
        ]
        for row in data.months
    ]
    return headers, rows


def segment_blocks(data: ReportData) -> list[tuple[str, list[str], list[list[str]]]]:
    """One block per segment value: (segment, headers, rows)."""
    k = data.window
    complete = {row["month"]: row["month_complete"] for row in data.months}
    headers = [
        "Month",
        f"Customers {k}m ago",
        "Retained",
        f"MRR {k}m ago",
        "MRR now",
        f"NRR {k}m",
        f"GRR {k}m",
        f"Logos {k}m",
    ]
    blocks: dict[str, list[list[str]]] = {}
    for row in data.segments:
        label = month_label({**row, "month_complete": complete.get(row["month"], True)})
        blocks.setdefault(str(row["segment"]), []).append(
            [
                label,
                format_count(row["customers_start"]),
                format_count(row["customers_retained"]),
                format_money(row["mrr_start"]),
                format_money(row["mrr_end"]),
                format_percent(row["nrr"]),
                format_percent(row["grr"]),
                format_percent(row["logo_retention"]),
            ]
        )
    return [(segment, headers, rows) for segment, rows in blocks.items()]


NUMBER = re.compile(r"^[-+]?[\d,]+(\.\d+)?( s| min|%)?$")


def text_table(headers: list[str], rows: list[list[str]], indent: str = "") -> str:
    """A plain aligned table: first column left, the numbers right."""
    headers = [one_line(cell) for cell in headers]
    rows = [[one_line(cell) for cell in row] for row in rows]
    columns = list(zip(headers, *rows, strict=True))
    widths = [max(len(str(cell)) for cell in column) for column in columns]
    right = [
        index > 0 and all(NUMBER.match(str(cell)) for cell in column[1:] if cell != "")
        for index, column in enumerate(columns)
    ]

    def line(cells):
        padded = [
            str(cell).rjust(width) if is_right else str(cell).ljust(width)
            for cell, width, is_right in zip(cells, widths, right, strict=True)
        ]
        return indent + "  ".join(padded).rstrip()

    rule = indent + "  ".join("-" * width for width in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    align = [":---"] + ["---:"] * (len(headers) - 1)
    lines = [headers, align, *rows]
    return "\n".join(
        "| " + " | ".join(one_line(cell).replace("|", "\\|") for cell in cells) + " |"
        for cells in lines
    )


def describe_accounts(accounts: list[str], shown: int = 3) -> str:
    if not accounts:
        return "unknown account"
    if len(accounts) <= shown:
        return ", ".join(accounts)
    return f"{', '.join(accounts[:shown])} and {len(accounts) - shown} more accounts"


def title(data: ReportData) -> str:
    accounts = describe_accounts(data.accounts)
    return (
        f"MRR roll-forward in {data.currency.upper()} · {accounts} · "
        f"data as of {format_instant(data.as_of)}"
    )


def footnotes(data: ReportData) -> list[str]:
    notes = []
    if any(not row["month_complete"] for row in data.months):
        notes.append(
            "* month in progress: MRR valued at the data's as-of time "
            f"({format_instant(data.as_of)})."
        )
    if data.configured_currency and data.configured_currency != data.currency:
        notes.append(
            f"Built in {data.currency.upper()}; the config now says "
            f"{data.configured_currency.upper()}: run `nrr-sync build` to recompute."
        )
    months = f"{data.window} month{'s' if data.window > 1 else ''}"
    notes.append(
        f"NRR / GRR / Logos {data.window}m: what the customers paying {months} earlier pay at "
        "the month's end; blank before the report reaches back that far."
    )
    return notes


def render_table(data: ReportData) -> str:
    headers, rows = roll_forward_table(data)
    parts = [title(data), "", text_table(headers, rows), ""]
    for segment, block_headers, block_rows in segment_blocks(data):
        parts += [f"{data.segment_type} = {segment}", text_table(block_headers, block_rows), ""]
    if data.segment_type != "all" and not data.segments:
        parts += [f"No {data.segment_type} retention rows in the chosen months.", ""]
    parts += footnotes(data)
    return "\n".join(parts)


def render_markdown(data: ReportData) -> str:
    headers, rows = roll_forward_table(data)
    parts = [f"## {title(data)}", "", markdown_table(headers, rows), ""]
    for segment, block_headers, block_rows in segment_blocks(data):
        parts += [
            f"### {data.segment_type} = {segment}",
            "",
            markdown_table(block_headers, block_rows),
            "",
        ]
    parts += [f"_{note}_" if not note.startswith("*") else f"\\{note}" for note in footnotes(data)]
    return "\n".join(parts) + "\n"


def month_records(data: ReportData) -> list[dict]:
    """Machine-readable month rows: money as exact decimal strings, ratios as numbers."""
    records = []
    for row in data.months:
        record = {"month": row["month"].isoformat(), "month_complete": bool(row["month_complete"])}
        record.update({column: str(row[column]) for column in MONEY_COLUMNS})
        record.update(
            {
                column: None if row[column] is None else int(row[column])
                for column in SUMMARY_COLUMNS[2 + len(MONEY_COLUMNS) :]
            }
        )
        record["window_months"] = data.window
        record.update({column: ratio(row[column]) for column in RATIO_COLUMNS})
        records.append(record)
    return records


def segment_records(data: ReportData) -> list[dict]:
    records = []
    for row in data.segments:
        record = dict(row)
        record["month"] = row["month"].isoformat()
        for column in RETENTION_MONEY:
            record[column] = None if row[column] is None else str(row[column])
        for column in ("customers_start", "customers_retained", "window_months"):
            record[column] = None if row[column] is None else int(row[column])
        for column in RATIO_COLUMNS:
            record[column] = ratio(row[column])
        records.append(record)
    return records


def render_json(data: ReportData) -> str:
    document = {
        "database": data.database,
        "currency": data.currency,
        "accounts": data.accounts,
        "as_of": None if data.as_of is None else data.as_of.astimezone(UTC).isoformat(),
        "since": data.since,
        "window_months": data.window,
        "segment_type": data.segment_type,
        "months": month_records(data),
    }
    if data.segment_type != "all":
        document["segments"] = segment_records(data)
    return json.dumps(document, indent=2) + "\n"


def render_csv(data: ReportData) -> str:
    """One table: the months with the 'all' retention, or with --segment the retention rows
    by segment (the roll-forward has no segment dimension)."""
    records = month_records(data) if data.segment_type == "all" else segment_records(data)
    columns = list(records[0]) if records else list(RETENTION_COLUMNS)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow({key: csv_value(value) for key, value in record.items()})
    return buffer.getvalue()


def csv_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


RENDERERS = {
    "table": render_table,
    "markdown": render_markdown,
    "json": render_json,
    "csv": render_csv,
}


# --------------------------------------------------------------------------- commands


def show(
    config: Config,
    *,
    window: int = 12,
    segment: str = "all",
    from_month: str | None = None,
    to_month: str | None = None,
    output_format: str = "table",
    html_path: str | Path | None = None,
    metrics: bool = False,
) -> int:
    """Print the report (with ``metrics``: report.saas_metrics instead of the roll-forward);
    with ``html_path`` also write the HTML report there."""
    if output_format not in RENDERERS:
        raise ConfigError(f"--format must be one of {', '.join(RENDERERS)}, not {output_format!r}.")
    if window not in (1, 3, 12):
        raise ConfigError(f"--window must be 1, 3 or 12, not {window}.")
    if html_path is not None:
        from . import html_report

        html_report.require_plotly()
    path = warehouse.real_path(config.database.path)
    if html_path is not None:
        html_path = warehouse.check_output_path(Path(html_path), path)
    with open_published(path) as con:
        require_data(con, path)
        data = read_report(
            con,
            database=str(path),
            currency=config.reporting.currency,
            window=window,
            segment=segment,
            from_month=from_month,
            to_month=to_month,
        )
        text = (
            render_metrics(con, data, from_month, to_month, output_format)
            if metrics
            else RENDERERS[output_format](data)
        )
        html_data = None
        if html_path is not None:
            html_data = html_report.read_html_data(con, data, from_month, to_month)
    if output_format in ("table", "markdown"):  # for people: no terminal escapes from data
        text = printable(text)
    # color=True: click would strip colour codes from csv piped to a file; data stays exact
    typer.echo(text, nl=output_format in ("table",), color=output_format == "csv" or None)
    if html_data is not None:
        written = html_report.write(html_data, Path(html_path))
        typer.echo(f"HTML report written to {written}", err=True)
    return 0


def render_metrics(con, data: ReportData, from_month, to_month, output_format: str) -> str:
    from . import metrics_report

    rows = metrics_report.read_metrics(con, data.database, from_month, to_month)
    return metrics_report.RENDERERS[output_format](data, rows)


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
