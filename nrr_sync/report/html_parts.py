"""The HTML report's cards, tables and sections, as HTML strings."""

from __future__ import annotations

import html

from .data import ReportData
from .html_charts import SEGMENT_PANELS, cohort_matrix, money_text, percent_text, segment_figure
from .html_data import HtmlData
from .text import ROLL_FORWARD_HEADERS, format_count, format_instant


def card(label: str, value: str, note: str) -> str:
    return (
        f'<div class="card"><div class="label">{html.escape(label)}</div>'
        f'<div class="value">{html.escape(value)}</div>'
        f'<div class="note">{html.escape(note)}</div></div>'
    )


def headline_cards(data: HtmlData) -> str:
    report = data.report
    latest = report.months[-1]
    currency = report.currency
    complete = report.complete_months
    previous = complete[-1] if not latest["month_complete"] and complete else None
    if previous is None and len(report.months) > 1:
        previous = report.months[-2]
    change = ""
    if previous and previous["mrr_end"]:
        delta = float(latest["mrr_end"] / previous["mrr_end"] - 1) * 100
        change = f"{delta:+.1f}% vs {previous['month']:%b %Y}"
    mrr_note = (
        f"as of {format_instant(report.as_of)}"
        if not latest["month_complete"]
        else f"end of {latest['month']:%b %Y}"
    )
    cards = [
        card(
            "MRR",
            money_text(latest["mrr_end"], currency),
            f"{mrr_note} · {change}" if change else mrr_note,
        ),
        *revenue_cards(data, mrr_note),
        card("Paying customers", format_count(latest["customers_end"]), mrr_note),
        quick_ratio_card(data),
    ]
    twelve = [row for row in data.retention.get(12, []) if row["nrr"] is not None]
    complete_months = {row["month"] for row in complete}
    finished = [row for row in twelve if row["month"] in complete_months] or twelve
    if finished:
        row = finished[-1]
        period = f"12 months to {row['month']:%b %Y}"
        cards += [
            card("Net revenue retention", percent_text(row["nrr"]), period),
            card("Gross revenue retention", percent_text(row["grr"]), period),
            card("Logo retention", percent_text(row["logo_retention"]), period),
        ]
    else:
        note = "needs 12 months of history"
        cards += [
            card("Net revenue retention", "–", note),
            card("Gross revenue retention", "–", note),
            card("Logo retention", "–", note),
        ]
    cards += churn_cards(data)
    return '<div class="cards">' + "".join(cards) + "</div>"


def latest_metrics(data: HtmlData) -> tuple[dict | None, dict | None]:
    """The report.saas_metrics rows of the last month shown and of the last complete one."""
    rows = data.metrics
    complete = [row for row in rows if row["month_complete"]]
    return (rows[-1] if rows else None), (complete[-1] if complete else None)


def revenue_cards(data: HtmlData, note: str) -> list[str]:
    latest, _ = latest_metrics(data)
    currency = data.report.currency
    if latest is None:
        return [card("ARR", "–", "run nrr-sync build"), card("ARPA", "–", "run nrr-sync build")]
    ltv = latest["ltv"]
    return [
        card("ARR", money_text(latest["arr"], currency), f"MRR × 12 · {note}"),
        card(
            "ARPA",
            money_text(latest["arpa"], currency, 2),
            "MRR per paying customer · "
            + (f"LTV {money_text(ltv, currency)}" if ltv is not None else "no LTV yet"),
        ),
    ]


def quick_ratio_card(data: HtmlData) -> str:
    """Monthly figures use the last complete month: a month in progress is not over yet."""
    _, month = latest_metrics(data)
    if month is None:
        return card("Quick ratio", "–", "needs a complete month")
    quick = month["quick_ratio"]
    if quick is None:
        return card("Quick ratio", "–", f"in {month['month']:%b %Y} · no MRR lost")
    return card("Quick ratio", f"{quick:.2f}", f"in {month['month']:%b %Y} · MRR won per 1 lost")


def churn_cards(data: HtmlData) -> list[str]:
    _, month = latest_metrics(data)
    if month is None:
        note = "needs a complete month"
        return [card("Logo churn", "–", note), card("Gross MRR churn", "–", note)]
    period = f"in {month['month']:%b %Y}"
    churned = int(month["churned_customers"])
    return [
        card(
            "Logo churn",
            rate_text(month["logo_churn_rate"]),
            f"{period} · {churned:,} customer{'s' if churned != 1 else ''} left",
        ),
        card(
            "Gross MRR churn",
            rate_text(month["gross_mrr_churn_rate"]),
            f"{period} · net {rate_text(month['net_mrr_churn_rate'])}",
        ),
    ]


def rate_text(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.2f}%"


def html_table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def roll_forward_rows(report: ReportData) -> tuple[list[str], list[list[str]]]:
    currency = report.currency
    headers = list(ROLL_FORWARD_HEADERS)
    rows = [
        [
            f"{row['month']:%b %Y}" + ("" if row["month_complete"] else " *"),
            money_text(row["mrr_start"], currency, 2),
            money_text(row["new_mrr"], currency, 2),
            money_text(row["expansion_mrr"], currency, 2),
            money_text(row["reactivation_mrr"], currency, 2),
            money_text(-row["contraction_mrr"], currency, 2),
            money_text(-row["churned_mrr"], currency, 2),
            money_text(row["mrr_end"], currency, 2),
            format_count(row["customers_end"]),
        ]
        for row in reversed(report.months)
    ]
    return headers, rows


def retention_rows(data: HtmlData) -> tuple[list[str], list[list[str]]]:
    by_window = {k: {row["month"]: row for row in rows} for k, rows in data.retention.items()}
    headers = ["Month"]
    for k in (1, 3, 12):
        headers += [f"NRR {k}m", f"GRR {k}m", f"Logos {k}m"]
    rows = []
    for month_row in reversed(data.report.months):
        month = month_row["month"]
        line = [f"{month:%b %Y}" + ("" if month_row["month_complete"] else " *")]
        for k in (1, 3, 12):
            found = by_window.get(k, {}).get(month)
            for metric in ("nrr", "grr", "logo_retention"):
                line.append(percent_text(found[metric]) if found else "–")
        rows.append(line)
    return headers, rows


def cohort_rows(cohorts: list[dict], currency: str) -> tuple[list[str], list[list[str]]]:
    labels, ages, matrix = cohort_matrix(cohorts)
    starts = {}
    for row in cohorts:
        if row["age"] == 0:
            starts[f"{row['cohort']:%b %Y}"] = row
    headers = ["Cohort", "Customers", "Starting MRR"] + [f"M{age}" for age in ages]
    rows = []
    for label, line in zip(labels, matrix, strict=True):
        start = starts.get(label)
        rows.append(
            [
                label,
                format_count(start["customers"]) if start else "",
                money_text(start["mrr"], currency, 2) if start else "",
                *("" if value is None else f"{value:.0f}%" for value in line),
            ]
        )
    return headers, rows


def metrics_rows(data: HtmlData) -> tuple[list[str], list[list[str]]]:
    currency = data.report.currency
    headers = ["Month", "MRR", "ARR", "Customers", "ARPA", "New", "Reactivated", "Churned",
               "Logo churn", "Gross MRR churn", "Net MRR churn", "Quick ratio", "LTV"]  # fmt: skip
    rows = [
        [
            f"{row['month']:%b %Y}" + ("" if row["month_complete"] else " *"),
            money_text(row["mrr"], currency, 2),
            money_text(row["arr"], currency, 2),
            format_count(row["customers"]),
            money_text(row["arpa"], currency, 2),
            format_count(row["new_customers"]),
            format_count(row["reactivated_customers"]),
            format_count(row["churned_customers"]),
            rate_text(row["logo_churn_rate"]),
            rate_text(row["gross_mrr_churn_rate"]),
            rate_text(row["net_mrr_churn_rate"]),
            "–" if row["quick_ratio"] is None else f"{row['quick_ratio']:.2f}",
            money_text(row["ltv"], currency),
        ]
        for row in reversed(data.metrics)
    ]
    return headers, rows


SEGMENT_TITLES = {"currency": "Billing currency", "country": "Country", "product": "Product",
                  "cohort": "Cohort (first paying month)"}  # fmt: skip


def segment_title(segment_type: str) -> str:
    if segment_type.startswith("metadata:"):
        return f"Customer metadata “{segment_type[len('metadata:') :]}”"
    return SEGMENT_TITLES.get(segment_type, segment_type)


def segment_latest_rows(rows: list[dict], currency: str) -> tuple[list[str], list[list[str]]]:
    """Every segment of a type at the last month it has a value for."""
    latest: dict[str, dict] = {}
    for row in rows:
        if row["nrr"] is not None:
            latest[row["segment"]] = row  # rows come in month order
    ordered = sorted(latest.values(), key=lambda row: (-row["mrr_start"], str(row["segment"])))
    headers = ["Segment", "Month", "Customers at start", "MRR at start", "NRR", "GRR"]
    table = [
        [
            str(row["segment"]),
            f"{row['month']:%b %Y}",
            format_count(row["customers_start"]),
            money_text(row["mrr_start"], currency, 2),
            percent_text(row["nrr"]),
            percent_text(row["grr"]),
        ]
        for row in ordered
    ]
    return headers, table


def segment_section(data: HtmlData, chart) -> str:
    if not data.segments:
        return ""
    window = data.segment_window
    parts = []
    for number, (segment_type, rows) in enumerate(data.segments.items()):
        headers, table = segment_latest_rows(rows, data.report.currency)
        values = len({row["segment"] for row in rows})
        more = (
            f" The {SEGMENT_PANELS} largest of {values} are drawn; the table lists all."
            if values > SEGMENT_PANELS
            else ""
        )
        parts.append(
            f'<h3>{html.escape(segment_title(segment_type))}</h3><p class="lead">'
            f"By starting MRR, largest first.{more}</p>"
            + chart(segment_figure(rows, window), f"segment-chart-{number}")
            + f"<details><summary>{html.escape(segment_title(segment_type))}: latest "
            f'{window}-month NRR and GRR</summary><div class="scroll">'
            + html_table(headers, table)
            + "</div></details>"
        )
    return f"""
<section id="segments">
  <h2>Retention by segment</h2>
  <p class="lead">{window}-month NRR and GRR of each segment (from <code>report.retention</code>):
  the customers of the segment paying {window} months earlier, placed by what they were then,
  and what they pay now. Same scale in every panel; dashed line: 100%.</p>
  {"".join(parts)}
</section>"""


MOVER_KINDS = (("expansion", "Expansion"), ("contraction", "Contraction"), ("churn", "Churn"))


def movers_section(data: HtmlData) -> str:
    if not data.movers:
        return ""
    first = data.movers[0]
    period = f"{first['window_start']:%b %Y} – {first['window_end']:%b %Y}"
    columns = []
    for kind, label in MOVER_KINDS:
        rows = [row for row in data.movers if row["movement"] == kind]
        columns.append(
            f"<div><h3>{label}</h3>{movers_table(rows, data.report.currency)}</div>"
            if rows
            else f'<div><h3>{label}</h3><p class="lead">None in these months.</p></div>'
        )
    return f"""
<section id="movers">
  <h2>The customers behind the movements</h2>
  <p class="lead">The largest single movements of the last 12 complete months
  ({html.escape(period)}): one customer in one month, MRR before → after
  (<code>report.top_movements</code>; every movement is in <code>report.mrr_movements</code>).</p>
  <div class="movers">{"".join(columns)}</div>
</section>"""


def movers_table(rows: list[dict], currency: str) -> str:
    body = []
    for row in rows:
        name = row["customer_name"]
        who = (
            f'{html.escape(name)}<span class="id">{html.escape(row["customer_id"])}</span>'
            if name
            else f'<span class="id only">{html.escape(row["customer_id"])}</span>'
        )
        change = (
            f"{money_text(row['mrr_before'], currency, 2)} → "
            f"{money_text(row['mrr_after'], currency, 2)}"
        )
        body.append(
            f"<tr><td>{who}</td><td>{row['month']:%b %Y}</td><td>{html.escape(change)}</td></tr>"
        )
    head = "<tr><th>Customer</th><th>Month</th><th>MRR before → after</th></tr>"
    return (
        f'<table class="movers-table"><thead>{head}</thead><tbody>{"".join(body)}</tbody></table>'
    )
