"""``nrr-sync report --html PATH``: one self-contained HTML file with charts.

Plotly draws the charts (optional extra ``nrr-sync[html]``); its JavaScript is inlined
once, so the file opens offline and can be mailed around as is. Every number on the page
is read from a report table; this module only picks rows and lays them out.
"""

from __future__ import annotations

import contextlib
import html
import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from .. import __version__
from ..errors import ConfigError
from .data import ReportData, fetch_dicts, has_table, money, month_start
from .text import ROLL_FORWARD_HEADERS, describe_accounts, format_count, format_instant

COLORS = {
    "new": "#2f9e6b",
    "expansion": "#8cc9a6",
    "reactivation": "#4c8fc6",
    "contraction": "#f0a35e",
    "churn": "#d9534f",
    "mrr": "#1f3b5c",
    "nrr": "#1f3b5c",
    "grr": "#c9822b",
}
SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥", "cad": "CA$", "aud": "A$", "chf": "CHF "}
FONT = "-apple-system, BlinkMacSystemFont, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"


def require_plotly() -> None:
    try:
        import plotly  # noqa: F401
    except ImportError:
        from ..commands import html_install_hint

        raise ConfigError(
            f"The HTML report needs plotly, an optional extra: {html_install_hint()}"
        ) from None


@dataclass
class HtmlData:
    report: ReportData
    retention: dict[int, list[dict]]  # window -> rows of segment 'all', by month
    cohorts: list[dict]  # report.cohort_mrr rows
    metrics: list[dict] = field(default_factory=list)  # report.saas_metrics rows, by month
    segments: dict[str, list[dict]] = field(default_factory=dict)  # type -> retention rows
    segment_window: int = 12
    movers: list[dict] = field(default_factory=list)  # report.top_movements rows


def month_filter(first: date | None, last: date | None) -> tuple[str, list]:
    """A WHERE clause (and its parameters) keeping the months between --from and --to."""
    where, params = "WHERE true", []
    if first:
        where, params = where + " AND month >= ?", [*params, first]
    if last:
        where, params = where + " AND month <= ?", [*params, last]
    return where, params


def read_html_data(con, data: ReportData, from_month: str | None, to_month: str | None):
    """Everything the charts need beyond the printed report, read on the same connection."""
    first, last = month_start(from_month), month_start(to_month)
    where, params = month_filter(first, last)
    retention: dict[int, list[dict]] = {1: [], 3: [], 12: []}
    if has_table(con, "report", "retention"):
        for row in fetch_dicts(
            con,
            "SELECT month, window_months, customers_start, customers_retained, mrr_start, "
            f"mrr_end, nrr, grr, logo_retention FROM report.retention {where} "
            "AND segment_type = 'all' ORDER BY month",
            params,
        ):
            retention.setdefault(int(row["window_months"]), []).append(row)
    window, segments = read_segments(con, where, params)
    return HtmlData(
        report=data,
        retention=retention,
        cohorts=read_cohorts(con, first, last),
        metrics=read_metrics(con, where, params),
        segments=segments,
        segment_window=window,
        movers=read_movers(con),
    )


def read_cohorts(con, first: date | None, last: date | None) -> list[dict]:
    """Each starting cohort's MRR by months since its first month (report.cohort_mrr)."""
    if not has_table(con, "report", "cohort_mrr"):
        return []
    where, params = month_filter(None, last)
    if first:  # --from keeps the cohorts that start in the range, followed to --to
        where, params = where + " AND cohort >= ?", [*params, first]
    rows = fetch_dicts(
        con,
        "SELECT cohort, age, customers, mrr, cohort_customers, cohort_mrr, mrr_retention "
        f"FROM report.cohort_mrr {where} ORDER BY cohort, age",
        params,
    )
    for row in rows:
        row["mrr"] = money(row["mrr"])
        row["cohort_mrr"] = money(row["cohort_mrr"])
    return rows


def read_metrics(con, where: str, params: list) -> list[dict]:
    if not has_table(con, "report", "saas_metrics"):
        return []
    return fetch_dicts(con, f"SELECT * FROM report.saas_metrics {where} ORDER BY month", params)


def read_segments(con, where: str, params: list) -> tuple[int, dict[str, list[dict]]]:
    """Retention rows of every segment type but 'all', for the longest window with a value
    (12 months once the report reaches back that far)."""
    if not has_table(con, "report", "retention"):
        return 12, {}
    rows = fetch_dicts(
        con,
        "SELECT month, window_months, segment_type, segment, customers_start, mrr_start, "
        f"nrr, grr FROM report.retention {where} AND segment_type <> 'all' "
        "ORDER BY segment_type, segment, month",
        params,
    )
    windows = {row["window_months"] for row in rows if row["nrr"] is not None}
    window = max(windows, default=12)
    segments: dict[str, list[dict]] = {}
    for row in rows:
        if row["window_months"] == window:
            segments.setdefault(row["segment_type"], []).append(row)
    return window, dict(sorted(segments.items(), key=lambda item: segment_order(item[0])))


def segment_order(segment_type: str) -> tuple[int, str]:
    known = ["currency", "country", "product", "cohort"]
    return (known.index(segment_type), "") if segment_type in known else (len(known), segment_type)


def read_movers(con) -> list[dict]:
    if not has_table(con, "report", "top_movements"):
        return []
    rows = fetch_dicts(
        con,
        "SELECT movement, rank, account_id, customer_id, customer_name, month, mrr_before, "
        "mrr_after, amount, window_start, window_end FROM report.top_movements "
        "WHERE movement IN ('expansion', 'contraction', 'churn') ORDER BY movement, rank",
    )
    for row in rows:
        for column in ("mrr_before", "mrr_after", "amount"):
            row[column] = money(row[column])
    return rows


# --------------------------------------------------------------------------- charts


def money_text(value: Decimal | float | None, currency: str, decimals: int = 0) -> str:
    if value is None:
        return "–"
    symbol = SYMBOLS.get(currency, currency.upper() + " ")
    sign = "−" if value < 0 else ""
    return f"{sign}{symbol}{abs(float(value)):,.{decimals}f}"


def percent_text(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def base_layout(height: int) -> dict:
    return {
        "template": "plotly_white",
        "height": height,
        "margin": {"l": 70, "r": 30, "t": 64, "b": 40},
        "font": {"family": FONT, "size": 12, "color": "#2b3442"},
        "legend": {"orientation": "h", "yref": "container", "yanchor": "top", "y": 0.995, "x": 0},
        "hovermode": "x unified",
        "separators": ".,",
    }


def movements_figure(data: ReportData):
    from plotly.subplots import make_subplots

    months = [row["month"] for row in data.months]
    opacity = [1.0 if row["month_complete"] else 0.45 for row in data.months]
    moved = data.months
    if moved and moved[0]["mrr_start"] == 0 and str(data.since) == f"{moved[0]['month']:%Y-%m}":
        # The report's first month opens the books: every paying customer shows as new.
        moved, opacity = moved[1:], opacity[1:]
    moved_months = [row["month"] for row in moved]
    figure = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        row_heights=[0.45, 0.55],
        subplot_titles=("MRR at month end", "MRR movements"),
    )
    figure.add_scatter(
        x=months,
        y=[float(row["mrr_end"]) for row in data.months],
        name="MRR",
        mode="lines+markers",
        line={"color": COLORS["mrr"], "width": 2.5},
        fill="tozeroy",
        fillcolor="rgba(31,59,92,0.08)",
        row=1,
        col=1,
    )
    series = [
        ("New", "new_mrr", 1, "new"),
        ("Expansion", "expansion_mrr", 1, "expansion"),
        ("Reactivation", "reactivation_mrr", 1, "reactivation"),
        ("Contraction", "contraction_mrr", -1, "contraction"),
        ("Churn", "churned_mrr", -1, "churn"),
    ]
    for name, column, sign, color in series:
        figure.add_bar(
            x=moved_months,
            y=[sign * float(row[column]) for row in moved],
            name=name,
            marker={"color": COLORS[color], "opacity": opacity},
            row=2,
            col=1,
        )
    net = [
        float(
            row["new_mrr"]
            + row["expansion_mrr"]
            + row["reactivation_mrr"]
            - row["contraction_mrr"]
            - row["churned_mrr"]
        )
        for row in moved
    ]
    figure.add_scatter(
        x=moved_months,
        y=net,
        name="Net new MRR",
        mode="lines+markers",
        line={"color": "#2b3442", "width": 1.5, "dash": "dot"},
        row=2,
        col=1,
    )
    code = data.currency.upper()
    figure.update_layout(**base_layout(620), barmode="relative")
    figure.update_yaxes(tickformat=",.0f", title_text=code, rangemode="tozero", row=1, col=1)
    figure.update_yaxes(tickformat=",.0f", title_text=code, zeroline=True, row=2, col=1)
    figure.update_xaxes(tickformat="%b %Y", dtick="M3" if len(months) > 18 else "M1")
    figure.update_traces(hovertemplate="%{y:,.2f}", selector={"type": "bar"})
    figure.update_traces(hovertemplate="%{y:,.2f}", selector={"type": "scatter"})
    return figure


def trend_figure(retention: dict[int, list[dict]]):
    from plotly.subplots import make_subplots

    windows = (1, 3, 12)
    figure = make_subplots(
        rows=1,
        cols=3,
        horizontal_spacing=0.06,
        subplot_titles=[f"{k}-month window" for k in windows],
    )
    for column, window in enumerate(windows, start=1):
        rows = retention.get(window, [])
        for metric, name in (("nrr", "NRR"), ("grr", "GRR")):
            figure.add_scatter(
                x=[row["month"] for row in rows],
                y=[None if row[metric] is None else row[metric] * 100 for row in rows],
                name=name,
                legendgroup=name,
                showlegend=column == 1,
                mode="lines+markers",
                marker={"size": 4},
                line={"color": COLORS[metric], "width": 2},
                hovertemplate=f"{name} {window}m: %{{y:.1f}}%<extra></extra>",
                row=1,
                col=column,
            )
        figure.add_hline(y=100, line={"color": "#9aa5b1", "width": 1, "dash": "dash"}, col=column)
    figure.update_layout(**base_layout(360))
    figure.update_yaxes(ticksuffix="%", tickformat=".0f")
    figure.update_xaxes(tickformat="%b %y", nticks=6)
    return figure


def opens_the_books(report: ReportData) -> bool:
    """The report's first month shows every customer paying at `since` as new: charts of
    movements leave it out."""
    first = report.months[0] if report.months else None
    return (
        bool(first) and first["mrr_start"] == 0 and str(report.since) == f"{first['month']:%Y-%m}"
    )


def customers_figure(data: HtmlData):
    from plotly.subplots import make_subplots

    rows = data.metrics
    first_month = data.report.months[0]["month"] if data.report.months else None
    skip_first = bool(rows) and opens_the_books(data.report) and rows[0]["month"] == first_month
    moved = rows[1:] if skip_first else rows
    opacity = [1.0 if row["month_complete"] else 0.45 for row in moved]
    figure = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.1,
        row_heights=[0.45, 0.55],
        subplot_titles=("Paying customers at month end", "Customers won and lost"),
    )
    figure.add_scatter(
        x=[row["month"] for row in rows],
        y=[row["customers"] for row in rows],
        name="Customers",
        mode="lines+markers",
        line={"color": COLORS["mrr"], "width": 2.5},
        row=1,
        col=1,
    )
    series = [
        ("New", "new_customers", 1, "new"),
        ("Reactivated", "reactivated_customers", 1, "reactivation"),
        ("Churned", "churned_customers", -1, "churn"),
    ]
    for name, column, sign, color in series:
        figure.add_bar(
            x=[row["month"] for row in moved],
            y=[sign * row[column] for row in moved],
            name=name,
            marker={"color": COLORS[color], "opacity": opacity},
            row=2,
            col=1,
        )
    figure.update_layout(**base_layout(480), barmode="relative")
    figure.update_yaxes(tickformat=",.0f", rangemode="tozero", row=1, col=1)
    figure.update_yaxes(tickformat=",.0f", zeroline=True, row=2, col=1)
    figure.update_xaxes(tickformat="%b %Y", dtick="M3" if len(rows) > 18 else "M1")
    figure.update_traces(hovertemplate="%{y:,}")
    return figure


SEGMENT_PANELS = 8  # the largest segments of a type get a panel; the table lists them all
SEGMENT_COLUMNS = 4


def largest_segments(rows: list[dict], count: int = SEGMENT_PANELS) -> list[str]:
    """Segments by their starting MRR in the latest month they have, largest first."""
    latest: dict[str, dict] = {}
    for row in rows:
        if row["segment"] not in latest or row["month"] >= latest[row["segment"]]["month"]:
            latest[row["segment"]] = row
    ranked = sorted(latest.values(), key=lambda row: (-row["mrr_start"], str(row["segment"])))
    return [row["segment"] for row in ranked[:count]]


def segment_figure(rows: list[dict], window: int):
    """Small multiples: NRR and GRR over time, one panel per segment, on one scale."""
    from plotly.subplots import make_subplots

    shown = largest_segments(rows)
    lines = math.ceil(len(shown) / SEGMENT_COLUMNS)
    figure = make_subplots(
        rows=lines,
        cols=SEGMENT_COLUMNS,
        shared_yaxes="all",
        shared_xaxes="all",
        horizontal_spacing=0.03,
        vertical_spacing=0.14 if lines > 1 else 0.1,
        subplot_titles=[str(segment) for segment in shown],
    )
    for index, segment in enumerate(shown):
        line, column = divmod(index, SEGMENT_COLUMNS)
        own = [row for row in rows if row["segment"] == segment]
        for metric, name in (("nrr", "NRR"), ("grr", "GRR")):
            figure.add_scatter(
                x=[row["month"] for row in own],
                y=[None if row[metric] is None else row[metric] * 100 for row in own],
                name=name,
                legendgroup=name,
                showlegend=index == 0,
                mode="lines",
                line={"color": COLORS[metric], "width": 1.8},
                hovertemplate=f"{html.escape(str(segment))} {name} {window}m: "
                "%{y:.1f}%<extra></extra>",
                row=line + 1,
                col=column + 1,
            )
        figure.add_hline(
            y=100, line={"color": "#9aa5b1", "width": 1, "dash": "dash"}, row=line + 1,
            col=column + 1,
        )  # fmt: skip
    figure.update_layout(**base_layout(90 + 190 * lines))
    figure.update_layout(hovermode="closest", margin={"l": 50, "r": 20, "t": 64, "b": 30})
    figure.update_annotations(font={"size": 12})
    # one small segment can reach several times its start; past 200% the scale would
    # flatten every other panel, so higher points run off the top (hover still shows them)
    values = [row[m] * 100 for row in rows for m in ("nrr", "grr") if row[m] is not None]
    top = min(200, max(120, math.ceil(max(values, default=100) / 20) * 20))
    figure.update_yaxes(ticksuffix="%", tickformat=".0f", range=[0, top + 5])
    figure.update_xaxes(tickformat="%b %y", nticks=4)
    return figure


def cohort_matrix(cohorts: list[dict]) -> tuple[list[str], list[int], list[list[float | None]]]:
    labels = sorted({row["cohort"] for row in cohorts})
    ages = list(range(max((row["age"] for row in cohorts), default=-1) + 1))
    values = {(row["cohort"], row["age"]): row for row in cohorts}
    matrix = []
    for cohort in labels:
        line = []
        for age in ages:
            row = values.get((cohort, age))
            ok = row and row["mrr_retention"] is not None
            line.append(round(row["mrr_retention"] * 100, 1) if ok else None)
        matrix.append(line)
    return [f"{cohort:%b %Y}" for cohort in labels], ages, matrix


# Past this many months a cell is under ~25 px wide on an 800 px page, too narrow for
# "100": the values are then shown on hover only.
CELL_LABEL_MAX_COLUMNS = 24


def cohort_figure(cohorts: list[dict]):
    import plotly.graph_objects as go

    labels, ages, matrix = cohort_matrix(cohorts)
    sizes = {f"{row['cohort']:%b %Y}": row["cohort_customers"] for row in cohorts}
    customdata = [[sizes.get(label, 0)] * len(ages) for label in labels]
    figure = go.Figure(
        go.Heatmap(
            z=matrix,
            x=ages,
            y=labels,
            customdata=customdata,
            colorscale=[[0, "#c0392b"], [0.5, "#f7f4ea"], [1, "#1e8a5a"]],
            zmid=100,
            zmin=0,
            zmax=200,
            colorbar={"title": {"text": "MRR, % of<br>first month"}, "ticksuffix": "%"},
            texttemplate="%{z:.0f}" if len(ages) <= CELL_LABEL_MAX_COLUMNS else "",
            textfont={"size": 9},
            hovertemplate="Cohort %{y} (%{customdata} customers), month %{x}: "
            "%{z:.1f}% of starting MRR<extra></extra>",
            xgap=1,
            ygap=1,
        )
    )
    height = max(360, 22 * len(labels) + 120)
    figure.update_layout(**base_layout(height))
    figure.update_layout(hovermode="closest", margin={"l": 110, "r": 30, "t": 20, "b": 50})
    figure.update_yaxes(autorange="reversed", title_text="First paying month", type="category")
    figure.update_xaxes(
        title_text="Months since first paying month", dtick=3 if len(ages) > 24 else 1
    )
    return figure


# --------------------------------------------------------------------------- page


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


PLOTLY_BUNDLE = Path(__file__).parent.parent / "vendor" / "plotly-cartesian.min.js"


def bundle_version(text: str) -> str | None:
    found = re.search(r"plotly\.js \(cartesian - minified\) v(\d+\.\d+\.\d+)", text[:500])
    return found.group(1) if found else None


def plotly_js() -> str:
    """plotly.js for the page. The cartesian bundle has every trace type drawn here (bar,
    scatter, heatmap) in a third of the full bundle's size; it serves only when it is the
    plotly.js version the installed plotly writes figures for, else the full bundle does."""
    import plotly.offline

    if PLOTLY_BUNDLE.exists():
        text = PLOTLY_BUNDLE.read_text(encoding="utf-8")
        if bundle_version(text) == plotly.offline.get_plotlyjs_version():
            return text
    return plotly.offline.get_plotlyjs()


CSS = """
:root { --ink: #1d2733; --muted: #5f6b7a; --line: #e3e7ec; --accent: #1f3b5c; }
* { box-sizing: border-box; }
body { margin: 0; background: #f5f7fa; color: var(--ink); font-family: FONT;
       font-size: 14px; line-height: 1.45; }
main { max-width: 1320px; margin: 0 auto; padding: 32px 40px 48px; }
header { display: flex; justify-content: space-between; align-items: flex-end;
         border-bottom: 2px solid var(--accent); padding-bottom: 14px; margin-bottom: 24px; }
h1 { font-size: 26px; margin: 0; letter-spacing: -0.01em; }
header .meta { color: var(--muted); text-align: right; font-size: 13px; }
header .meta b { color: var(--ink); font-weight: 600; }
h2 { font-size: 17px; margin: 0 0 4px; }
p.lead { color: var(--muted); margin: 0 0 12px; font-size: 13px; }
.cards { display: grid; grid-template-columns: repeat(5, 1fr); gap: 14px; margin-bottom: 22px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px;
        padding: 14px 16px; }
.card .label { color: var(--muted); font-size: 12px; text-transform: uppercase;
               letter-spacing: 0.04em; }
.card .value { font-size: 28px; font-weight: 650; margin: 4px 0 2px;
               font-variant-numeric: tabular-nums; }
.card .note { color: var(--muted); font-size: 12px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px;
          padding: 18px 20px 10px; margin-bottom: 22px; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums;
        font-size: 12.5px; }
th, td { padding: 5px 10px; text-align: right; white-space: nowrap;
         border-bottom: 1px solid var(--line); }
th:first-child, td:first-child { text-align: left; }
th { color: var(--muted); font-weight: 600; background: #fafbfc; position: sticky; top: 0; }
tbody tr:hover { background: #f3f6f9; }
.scroll { overflow: auto; max-height: 560px; margin-bottom: 10px; }
details summary { cursor: pointer; color: var(--accent); font-weight: 600; margin: 6px 0 10px; }
h3 { font-size: 14px; margin: 14px 0 2px; }
code { font-size: 12px; background: #f1f3f6; padding: 0 3px; border-radius: 3px; }
.movers { display: grid; grid-template-columns: repeat(3, 1fr); gap: 18px; margin-bottom: 12px; }
.movers table td { white-space: normal; vertical-align: top; }
.movers .id { display: block; color: var(--muted); font-size: 11px; }
.movers .id.only { color: var(--ink); font-size: 12.5px; }
footer { color: var(--muted); font-size: 12px; margin-top: 8px; }
footer p { margin: 4px 0; }
@media print {
  body { background: #fff; }
  main { padding: 0; }
  section, .card { break-inside: avoid; border-color: #ccc; }
  .scroll { max-height: none; overflow: visible; }
  details { display: none; }
}
""".replace("FONT", FONT)


def page(data: HtmlData) -> str:
    report = data.report
    config = {"displaylogo": False, "responsive": True, "displayModeBar": False}

    def chart(figure, div_id: str) -> str:
        return figure.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config=config)

    accounts = describe_accounts(report.accounts)
    first, last = report.months[0]["month"], report.months[-1]["month"]
    roll_headers, roll = roll_forward_rows(report)
    retention_headers, retention = retention_rows(data)
    in_progress = (
        f"<p>* Month in progress: valued at the data's as-of time, "
        f"{html.escape(format_instant(report.as_of))}.</p>"
        if not report.months[-1]["month_complete"]
        else ""
    )
    cohort_section = ""
    if data.cohorts:
        cohort_headers, cohort_table = cohort_rows(data.cohorts, report.currency)
        cohort_section = f"""
<section>
  <h2>Cohort revenue retention</h2>
  <p class="lead">MRR of each cohort of new customers (by first paying month) as a share of
  its MRR in that first month. Above 100% (green): expansion outgrew churn. The first cohort
  also holds every customer already paying when the report starts. Past
  {CELL_LABEL_MAX_COLUMNS} months the cells are too narrow to label: hover for the values.</p>
  {chart(cohort_figure(data.cohorts), "cohort-chart")}
  <details><summary>Cohort table</summary><div class="scroll">
  {html_table(cohort_headers, cohort_table)}</div></details>
</section>"""
    customers_section = metrics_table = ""
    if data.metrics:
        customers_section = f"""
<section>
  <h2>Customers</h2>
  <p class="lead">Paying customers at each month end, and the customers won (new,
  reactivated) and lost (churned) each month. Faded bars: month in progress.</p>
  {chart(customers_figure(data), "customers-chart")}
</section>"""
        metrics_headers, metrics_body = metrics_rows(data)
        metrics_table = f"""
<section>
  <h2>SaaS metrics ({html.escape(report.currency.upper())})</h2>
  <p class="lead">From <code>report.saas_metrics</code>. Rates are monthly; LTV is ARPA over
  the mean logo churn of the three latest complete months.</p>
  <div class="scroll">{html_table(metrics_headers, metrics_body)}</div>
</section>"""
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>MRR and retention · {html.escape(accounts)} · {first:%b %Y} – {last:%b %Y}</title>
<style>{CSS}</style>
<script>{plotly_js()}</script>
</head>
<body>
<main>
<header>
  <div><h1>MRR and revenue retention</h1>
  <div class="meta" style="text-align:left">{first:%B %Y} – {last:%B %Y}</div></div>
  <div class="meta">Account <b>{html.escape(accounts)}</b><br>
  Reporting currency <b>{html.escape(report.currency.upper())}</b> ·
  data as of <b>{html.escape(format_instant(report.as_of))}</b></div>
</header>
{headline_cards(data)}
<section>
  <h2>MRR and its movements</h2>
  <p class="lead">Monthly recurring revenue at each month end, and what moved it: new
  customers, expansion and reactivation add; contraction and churn subtract. Faded bars:
  month in progress.</p>
  {chart(movements_figure(report), "movements-chart")}
</section>
{customers_section}
<section>
  <h2>Net and gross revenue retention</h2>
  <p class="lead">For each month: the customers paying 1, 3 or 12 months earlier, and what
  they pay now. NRR counts expansion; GRR caps each customer at their starting MRR.</p>
  {chart(trend_figure(data.retention), "retention-chart")}
</section>
{segment_section(data, chart)}
{cohort_section}
{movers_section(data)}
<section>
  <h2>MRR roll-forward ({html.escape(report.currency.upper())})</h2>
  <div class="scroll">{html_table(roll_headers, roll)}</div>
</section>
<section>
  <h2>Retention by window</h2>
  <div class="scroll">{html_table(retention_headers, retention)}</div>
</section>
{metrics_table}
<footer>
  {in_progress}
  <p>MRR from invoice line service periods in the reporting currency at fixed rates; tax is
  never MRR. Definitions: the metric definitions in the nrr-sync documentation
  (docs/report.md). Source: {html.escape(Path(report.database).name)}.</p>
  <p>Generated {generated} by nrr-sync {__version__}.</p>
</footer>
</main>
</body>
</html>
"""


def write(data: HtmlData, path: Path) -> Path:
    """Write the page atomically (a half-written report is never left behind)."""
    require_plotly()
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"--html {path} is a directory; give a file name like report.html.")
    if not path.parent.exists():
        raise ConfigError(f"--html {path}: the folder {path.parent} does not exist.")
    text = page(data)
    try:
        handle, temporary = tempfile.mkstemp(prefix=".nrr-report-", suffix=".html", dir=path.parent)
    except OSError as error:
        raise _cannot_write(path, error) from None
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise _cannot_write(path, error) from None
    return path


def _cannot_write(path: Path, error: OSError) -> ConfigError:
    """Names the path asked for, not the temporary file beside it."""
    return ConfigError(
        f"--html {path}: cannot write it ({error.strerror or type(error).__name__}); choose "
        "another place or check the folder's permissions."
    )
