"""``nrr-sync report --html PATH``: one self-contained HTML file with charts.

Plotly draws the charts (optional extra ``nrr-sync[html]``); its JavaScript is inlined
once, so the file opens offline and can be mailed around as is. Every number on the page
is read from a report table; this module only picks rows and lays them out.
"""

from __future__ import annotations

import contextlib
import gzip
import html
import os
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from .. import __version__
from ..errors import ConfigError
from .html_charts import (
    CELL_LABEL_MAX_COLUMNS,
    FONT,
    cohort_figure,
    customers_figure,
    movements_figure,
    trend_figure,
)
from .html_data import HtmlData, require_plotly
from .html_parts import (
    cohort_rows,
    headline_cards,
    html_table,
    metrics_rows,
    movers_section,
    retention_rows,
    roll_forward_rows,
    segment_section,
)
from .text import describe_accounts, format_instant

PLOTLY_BUNDLE = Path(__file__).parent.parent / "vendor" / "plotly-cartesian.min.js.gz"


def read_bundle(path: Path | None = None) -> str | None:
    """The vendored plotly.js (kept gzipped: a third of the size in the package)."""
    path = path or PLOTLY_BUNDLE
    if not path.exists():
        return None
    with gzip.open(path, "rt", encoding="utf-8") as bundle:
        return bundle.read()


def bundle_version(text: str) -> str | None:
    found = re.search(r"plotly\.js \(cartesian - minified\) v(\d+\.\d+\.\d+)", text[:500])
    return found.group(1) if found else None


def plotly_js() -> str:
    """plotly.js for the page. The cartesian bundle has every trace type drawn here (bar,
    scatter, heatmap) in a third of the full bundle's size; it serves only when it is the
    plotly.js version the installed plotly writes figures for, else the full bundle does."""
    import plotly.offline

    text = read_bundle()
    if text is not None and bundle_version(text) == plotly.offline.get_plotlyjs_version():
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
