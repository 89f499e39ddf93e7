"""``nrr-sync report --html PATH``: one self-contained HTML file with charts.

Plotly draws the charts (optional extra ``nrr-sync[html]``); its JavaScript is inlined
once, so the file opens offline and can be mailed around as is.
"""

from __future__ import annotations

import html
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from . import __version__
from .errors import ConfigError
from .report import (
    ROLL_FORWARD_HEADERS,
    ReportData,
    describe_accounts,
    fetch_dicts,
    format_count,
    format_instant,
    has_table,
    money,
    month_start,
)

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
        raise ConfigError(
            "The HTML report needs plotly, an optional extra: pip install 'nrr-sync[html]'"
        ) from None


@dataclass
class HtmlData:
    report: ReportData
    retention: dict[int, list[dict]]  # window -> rows of segment 'all', by month
    cohorts: list[dict]  # cohort, age, customers, mrr, cohort_mrr


def read_html_data(con, data: ReportData, from_month: str | None, to_month: str | None):
    """Everything the charts need beyond the printed report, read on the same connection."""
    first, last = month_start(from_month), month_start(to_month)
    where, params = "WHERE segment_type = 'all'", []
    if first:
        where, params = where + " AND month >= ?", [*params, first]
    if last:
        where, params = where + " AND month <= ?", [*params, last]
    retention: dict[int, list[dict]] = {1: [], 3: [], 12: []}
    if has_table(con, "report", "retention"):
        for row in fetch_dicts(
            con,
            "SELECT month, window_months, customers_start, customers_retained, mrr_start, "
            f"mrr_end, nrr, grr, logo_retention FROM report.retention {where} ORDER BY month",
            params,
        ):
            retention.setdefault(int(row["window_months"]), []).append(row)
    return HtmlData(report=data, retention=retention, cohorts=read_cohorts(con, first, last))


def read_cohorts(con, first: date | None, last: date | None) -> list[dict]:
    """MRR of each starting cohort by months since its first month, from customer MRR."""
    if not has_table(con, "report", "customer_mrr_monthly"):
        return []
    rows = fetch_dicts(
        con,
        """
        WITH customer_mrr AS (
            SELECT account_id, customer_id, month, mrr FROM report.customer_mrr_monthly
        ),
        first_paid AS (
            SELECT account_id, customer_id, min(month) AS cohort
            FROM customer_mrr WHERE mrr > 0 GROUP BY account_id, customer_id
        ),
        by_age AS (
            SELECT first_paid.cohort,
                   datediff('month', first_paid.cohort, customer_mrr.month) AS age,
                   count(*) FILTER (WHERE customer_mrr.mrr > 0) AS customers,
                   sum(customer_mrr.mrr) AS mrr
            FROM customer_mrr JOIN first_paid USING (account_id, customer_id)
            WHERE customer_mrr.month >= first_paid.cohort
              AND customer_mrr.month <= coalesce(?, DATE '9999-12-01')
            GROUP BY ALL
        )
        SELECT by_age.*, start.mrr AS cohort_mrr, start.customers AS cohort_customers
        FROM by_age JOIN by_age AS start ON start.cohort = by_age.cohort AND start.age = 0
        WHERE by_age.cohort >= coalesce(?, DATE '0001-01-01')
        ORDER BY by_age.cohort, by_age.age
        """,
        [last, first],
    )
    for row in rows:
        row["mrr"] = money(row["mrr"])
        row["cohort_mrr"] = money(row["cohort_mrr"])
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


def cohort_matrix(cohorts: list[dict]) -> tuple[list[str], list[int], list[list[float | None]]]:
    labels = sorted({row["cohort"] for row in cohorts})
    ages = list(range(max((row["age"] for row in cohorts), default=-1) + 1))
    values = {(row["cohort"], row["age"]): row for row in cohorts}
    matrix = []
    for cohort in labels:
        line = []
        for age in ages:
            row = values.get((cohort, age))
            ok = row and row["cohort_mrr"]
            line.append(round(float(row["mrr"] / row["cohort_mrr"]) * 100, 1) if ok else None)
        matrix.append(line)
    return [f"{cohort:%b %Y}" for cohort in labels], ages, matrix


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
            colorbar={"title": {"text": "NRR"}, "ticksuffix": "%"},
            texttemplate="%{z:.0f}" if len(ages) <= 40 else "",
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
        change = f"{delta:+.1f}% vs {previous['month']:%b %Y} · "
    mrr_note = (
        f"as of {format_instant(report.as_of)}"
        if not latest["month_complete"]
        else f"end of {latest['month']:%b %Y}"
    )
    cards = [
        card(
            "MRR",
            money_text(latest["mrr_end"], currency),
            f"{mrr_note} · {change}ARR {money_text(latest['mrr_end'] * 12, currency)}",
        ),
        card("Paying customers", format_count(latest["customers_end"]), mrr_note),
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
    return '<div class="cards">' + "".join(cards) + "</div>"


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
    import plotly.offline

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
  also holds every customer already paying when the report starts.</p>
  {chart(cohort_figure(data.cohorts), "cohort-chart")}
  <details><summary>Cohort table</summary><div class="scroll">
  {html_table(cohort_headers, cohort_table)}</div></details>
</section>"""
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>MRR and retention · {html.escape(accounts)} · {first:%b %Y} – {last:%b %Y}</title>
<style>{CSS}</style>
<script>{plotly.offline.get_plotlyjs()}</script>
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
<section>
  <h2>Net and gross revenue retention</h2>
  <p class="lead">For each month: the customers paying 1, 3 or 12 months earlier, and what
  they pay now. NRR counts expansion; GRR caps each customer at their starting MRR.</p>
  {chart(trend_figure(data.retention), "retention-chart")}
</section>
{cohort_section}
<section>
  <h2>MRR roll-forward ({html.escape(report.currency.upper())})</h2>
  <div class="scroll">{html_table(roll_headers, roll)}</div>
</section>
<section>
  <h2>Retention by window</h2>
  <div class="scroll">{html_table(retention_headers, retention)}</div>
</section>
<footer>
  {in_progress}
  <p>MRR from invoice line service periods in the reporting currency at fixed rates; tax is
  never MRR. Definitions: the metric definitions in the nrr-sync documentation
  (docs/report.md). Source: {html.escape(report.database)}.</p>
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
    handle, temporary = tempfile.mkstemp(prefix=".nrr-report-", suffix=".html", dir=path.parent)
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(text)
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)
    return path
