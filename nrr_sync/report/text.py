"""The report as text: the terminal table, markdown, csv and json."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime
from decimal import Decimal

from ..terminal import one_line
from .data import (
    MONEY_COLUMNS,
    RATIO_COLUMNS,
    RETENTION_COLUMNS,
    RETENTION_MONEY,
    SUMMARY_COLUMNS,
    ReportData,
)


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


TABLE_WIDTH = 100  # columns the terminal table fits in when it is not on a terminal


def retention_headers(data: ReportData) -> list[str]:
    k = data.window
    return [f"NRR {k}m", f"GRR {k}m", f"Logos {k}m"]


def retention_cells(row: dict) -> list[str]:
    return [
        format_percent(row["nrr"]),
        format_percent(row["grr"]),
        format_percent(row["logo_retention"]),
    ]


def roll_forward_table(data: ReportData) -> tuple[list[str], list[list[str]]]:
    """Rows as shown to people: contraction and churn carry their minus sign, so each row
    reads as a sum (start + new + expansion + reactivation - contraction - churn = end)."""
    headers = [*ROLL_FORWARD_HEADERS, *retention_headers(data)]
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
            *retention_cells(row),
        ]
        for row in data.months
    ]
    return headers, rows


def fitted_tables(data: ReportData, width: int) -> list[str]:
    """The roll-forward with retention beside it when that fits ``width`` columns, else
    two blocks: the roll-forward, then retention by month."""
    headers, rows = roll_forward_table(data)
    together = text_table(headers, rows)
    if max(len(line) for line in together.splitlines()) <= width:
        return [together]
    money = len(ROLL_FORWARD_HEADERS)
    months = f"{data.window} month{'s' if data.window > 1 else ''}"
    return [
        text_table(headers[:money], [row[:money] for row in rows]),
        f"Retention of the customers paying {months} earlier",
        text_table(["Month", *headers[money:]], [[row[0], *row[money:]] for row in rows]),
    ]


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
    notes += currency_notes(data)
    notes += retention_notes(data.window)
    return notes


def currency_notes(data: ReportData) -> list[str]:
    """A note when the report was built in another currency than the config now names."""
    if data.configured_currency and data.configured_currency != data.currency:
        return [
            f"Built in {data.currency.upper()}; the config now says "
            f"{data.configured_currency.upper()}: run `nrr-sync build` to recompute."
        ]
    return []


def retention_notes(window: int) -> list[str]:
    """One line per acronym, as the HTML report names them (each fits TABLE_WIDTH)."""
    months = f"{window} month{'s' if window > 1 else ''}"
    return [
        f"NRR {window}m: net revenue retention, MRR now ÷ MRR then of the customers paying "
        f"{months} earlier.",
        f"GRR {window}m: gross revenue retention, the same with each customer capped at their "
        "MRR then.",
        f"Logos {window}m: logo retention, the share of those customers still paying.",
        f"All three stay blank until the data reaches back {months}.",
    ]


def render_table(data: ReportData, width: int = TABLE_WIDTH) -> str:
    parts = [title(data), ""]
    for table in fitted_tables(data, width):
        parts += [table, ""]
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
    return csv_text(list(records[0]) if records else list(RETENTION_COLUMNS), records)


def csv_text(columns: list[str], records: list[dict]) -> str:
    """CSV with a header: money stays exact text, NULL is empty, booleans true / false."""
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
