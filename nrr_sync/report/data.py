"""Reading the published report tables: one read-only connection, typed rows.

The file is opened read-only, so a report never waits for (or blocks) an analyst's
session, and never takes the lock the nightly job needs.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb

from .. import dbfile
from ..config import parse_month
from ..errors import ConfigError
from ..jobs import state as checkpoints

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
    path = dbfile.real_path(path)
    if not path.exists():
        raise NoReportData(
            f"No database at {path} yet: run `nrr-sync backfill --since YYYY-MM` first "
            "(or point database.path in the config at the right file)."
        )
    con = dbfile.open_published(path, timeout=0)
    try:
        yield con
    except duckdb.Error as error:
        raise ConfigError(
            f"{path} cannot be read ({str(error).strip().splitlines()[0]}): {dbfile.START_OVER}."
        ) from None
    finally:
        con.close()


def require_data(con, path: Path) -> None:
    """A report shows the data of a finished backfill (and the syncs after it) only."""
    status, since = dbfile.backfill_state(con)
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
        raise ConfigError(unknown_segment_message(segment, segment_types))

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

    as_of = state_value(con, checkpoints.REPORT_AS_OF)
    built_in = built_currency(con)
    return ReportData(
        database=database,
        currency=built_in or currency,
        configured_currency=currency,
        window=window,
        segment_type=segment,
        as_of=parse_instant(as_of),
        since=state_value(con, checkpoints.REPORT_SINCE),
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


def unknown_segment_message(segment: str, segment_types: list[str]) -> str:
    """What the database has; for a customer metadata key, how to get it segmented."""
    message = f"Unknown segment type {segment!r}; this database has: {', '.join(segment_types)}."
    if segment.startswith("metadata:"):
        message += (
            f" To segment by {segment}, add it to reporting.segments in the config and run "
            "`nrr-sync build` (seconds: no data is fetched again)."
        )
    return message


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
        parsed = datetime.fromisoformat(value.strip().replace(" ", "T", 1))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
