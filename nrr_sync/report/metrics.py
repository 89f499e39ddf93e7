"""``nrr-sync report --metrics``: report.saas_metrics by month, in the four formats.

Every figure is read from the table as the build computed it (docs/metrics.md, "SaaS
metrics"); this module only formats.
"""

from __future__ import annotations

import json
import textwrap
from datetime import UTC

from ..errors import ConfigError
from .data import ReportData, fetch_dicts, has_table, money, month_start
from .text import (
    csv_text,
    currency_notes,
    describe_accounts,
    format_count,
    format_instant,
    format_money,
    markdown_table,
    month_label,
    ratio,
    text_table,
)

COLUMNS = (
    "month",
    "month_complete",
    "mrr",
    "arr",
    "customers",
    "arpa",
    "new_customers",
    "reactivated_customers",
    "churned_customers",
    "logo_churn_rate",
    "gross_mrr_churn_rate",
    "net_mrr_churn_rate",
    "quick_ratio",
    "ltv",
)
MONEY = ("mrr", "arr", "arpa", "ltv")
COUNTS = ("customers", "new_customers", "reactivated_customers", "churned_customers")
RATIOS = ("logo_churn_rate", "gross_mrr_churn_rate", "net_mrr_churn_rate", "quick_ratio")

# The table format prints two blocks of at most eight columns, so that it fits a
# 100-column terminal even for an account with a nine-figure MRR.
REVENUE_HEADERS = ("Month", "MRR", "ARR", "Customers", "ARPA", "LTV")
CHURN_HEADERS = (
    "Month",
    "New",
    "Reactivated",
    "Churned",
    "Logo churn",
    "Gross MRR churn",
    "Net MRR churn",
    "Quick ratio",
)


def read_metrics(con, database: str, from_month: str | None, to_month: str | None) -> list[dict]:
    """The months of report.saas_metrics in the chosen range, money as exact cents."""
    if not has_table(con, "report", "saas_metrics"):
        raise ConfigError(
            f"{database} has no table report.saas_metrics: it was built by an earlier "
            "nrr-sync. Run `nrr-sync build` to add it."
        )
    first, last = month_start(from_month), month_start(to_month)
    rows = fetch_dicts(
        con,
        f"SELECT {', '.join(COLUMNS)} FROM report.saas_metrics "
        "WHERE month >= coalesce(?, month) AND month <= coalesce(?, month) ORDER BY month",
        [first, last],
    )
    for row in rows:
        for column in MONEY:
            row[column] = money(row[column])
    return rows


def format_rate(value: float | None) -> str:
    """Monthly churn rates are small: two decimals tell 1.46% from 1.54%."""
    return "" if value is None else f"{value * 100:.2f}%"


def format_quick_ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def revenue_rows(rows: list[dict]) -> list[list[str]]:
    return [
        [
            month_label(row),
            format_money(row["mrr"]),
            format_money(row["arr"]),
            format_count(row["customers"]),
            format_money(row["arpa"]),
            format_money(row["ltv"]),
        ]
        for row in rows
    ]


def churn_rows(rows: list[dict]) -> list[list[str]]:
    return [
        [
            month_label(row),
            format_count(row["new_customers"]),
            format_count(row["reactivated_customers"]),
            format_count(row["churned_customers"]),
            format_rate(row["logo_churn_rate"]),
            format_rate(row["gross_mrr_churn_rate"]),
            format_rate(row["net_mrr_churn_rate"]),
            format_quick_ratio(row["quick_ratio"]),
        ]
        for row in rows
    ]


def title(data: ReportData) -> str:
    return (
        f"SaaS metrics in {data.currency.upper()} · {describe_accounts(data.accounts)} · "
        f"data as of {format_instant(data.as_of)}"
    )


def footnotes(data: ReportData, rows: list[dict]) -> list[str]:
    notes = []
    if any(not row["month_complete"] for row in rows):
        notes.append(
            "* month in progress: valued at the data's as-of time "
            f"({format_instant(data.as_of)}); its rates cover the month so far."
        )
    notes += currency_notes(data)
    notes.append(
        "Rates are monthly, over the customers / MRR at the month's start. "
        "LTV = ARPA / mean logo churn of the 3 latest complete months; "
        "blank while fewer exist or none churned."
    )
    return notes


def render_table(data: ReportData, rows: list[dict]) -> str:
    parts = [
        title(data),
        "",
        text_table(list(REVENUE_HEADERS), revenue_rows(rows)),
        "",
        text_table(list(CHURN_HEADERS), churn_rows(rows)),
        "",
    ]
    return "\n".join(parts + wrap_notes(footnotes(data, rows)))


def wrap_notes(notes: list[str], width: int = 100) -> list[str]:
    return [line for note in notes for line in textwrap.wrap(note, width, subsequent_indent="  ")]


def render_markdown(data: ReportData, rows: list[dict]) -> str:
    headers = list(REVENUE_HEADERS[:5]) + list(CHURN_HEADERS[1:]) + ["LTV"]
    body = [
        revenue[:5] + churn[1:] + revenue[5:]
        for revenue, churn in zip(revenue_rows(rows), churn_rows(rows), strict=True)
    ]
    notes = [
        f"_{note}_" if not note.startswith("*") else f"\\{note}" for note in footnotes(data, rows)
    ]
    return "\n".join([f"## {title(data)}", "", markdown_table(headers, body), "", *notes]) + "\n"


def records(rows: list[dict]) -> list[dict]:
    """Machine-readable rows: money as exact decimal strings, counts as integers, ratios as
    numbers rounded to 6 decimal places."""
    out = []
    for row in rows:
        record = {"month": row["month"].isoformat(), "month_complete": bool(row["month_complete"])}
        for column in COLUMNS[2:]:
            value = row[column]
            if column in MONEY:
                record[column] = None if value is None else str(value)
            elif column in COUNTS:
                record[column] = None if value is None else int(value)
            else:
                record[column] = ratio(value)
        out.append(record)
    return out


def render_json(data: ReportData, rows: list[dict]) -> str:
    document = {
        "database": data.database,
        "currency": data.currency,
        "accounts": data.accounts,
        "as_of": None if data.as_of is None else data.as_of.astimezone(UTC).isoformat(),
        "since": data.since,
        "months": records(rows),
    }
    return json.dumps(document, indent=2) + "\n"


def render_csv(data: ReportData, rows: list[dict]) -> str:
    return csv_text(list(COLUMNS), records(rows))


RENDERERS = {
    "table": render_table,
    "markdown": render_markdown,
    "json": render_json,
    "csv": render_csv,
}
