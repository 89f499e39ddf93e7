"""The HTML report's charts (plotly figures), one function per chart."""

from __future__ import annotations

import html
import math
from decimal import Decimal

from .data import ReportData
from .html_data import HtmlData

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
    if opens_the_books(data):  # every customer paying at `since` would show as new
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
