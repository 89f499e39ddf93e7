"""``nrr-sync report --html``: one offline file that renders its charts in a real browser."""

import os
import re
import shutil
import struct
import subprocess
import sys
from html import escape as html_escape
from pathlib import Path

import duckdb
import pytest
from report_fixtures import make_report_db
from typer.testing import CliRunner

from nrr_sync.cli import app

CHARTS = (
    "movements-chart",
    "customers-chart",
    "retention-chart",
    "segment-chart-0",
    "segment-chart-1",
    "cohort-chart",
)


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


needs_chromium = pytest.mark.skipif(
    find_chromium() is None,
    reason="no Chromium installed (Debian: apt-get install chromium); .ci/run installs it",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    monkeypatch.delenv("NRR_SYNC_DATABASE", raising=False)
    monkeypatch.delenv("NRR_SYNC_CONFIG", raising=False)


@pytest.fixture(scope="module")
def html_file(tmp_path_factory):
    """A report over three years of history, the size a real account shows."""
    from datetime import date

    folder = tmp_path_factory.mktemp("html")
    database = make_report_db(
        folder / "nrr.duckdb",
        customers=200,
        first=date(2023, 1, 1),
        months=36,
        as_of="2025-12-15T00:00:00Z",
    )
    config = folder / "config.yaml"
    config.write_text(f"database:\n  path: {database}\n")
    path = folder / "report.html"
    result = CliRunner().invoke(app, ["--config", str(config), "report", "--html", str(path)])
    assert result.exit_code == 0, result.output
    assert f"HTML report written to {path}" in result.stderr
    return path


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    command = [
        find_chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        # offline: any attempt to reach the network fails to resolve
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=8000",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_html_is_one_self_contained_file(html_file):
    text = html_file.read_text()
    assert text.startswith("<!DOCTYPE html>")
    assert not re.search(r"<script[^>]+src=", text), "scripts must be inlined"
    assert not re.search(r"<link[^>]+href=", text), "no external stylesheets"
    assert len(text) > 1_000_000  # plotly.js itself is inlined
    for chart in CHARTS:
        assert f'id="{chart}"' in text


def test_html_inlines_the_smaller_plotly_bundle_when_its_version_matches(html_file):
    import plotly.offline

    from nrr_sync.report import html as html_report

    vendored = html_report.read_bundle()
    if html_report.bundle_version(vendored) != plotly.offline.get_plotlyjs_version():
        pytest.skip("the installed plotly writes figures for another plotly.js version")
    text = html_file.read_text()
    assert "plotly.js (cartesian - minified) v" in text
    # 4.9 MB with plotly's full bundle; the page around the library is small
    assert len(text.encode()) < 2_000_000, len(text.encode())


def test_html_falls_back_to_plotlys_full_bundle_for_another_version(tmp_path, monkeypatch):
    import gzip

    import plotly.offline

    from nrr_sync.report import html as html_report

    other = tmp_path / "plotly-cartesian.min.js.gz"
    other.write_bytes(
        gzip.compress(b"/**\n* plotly.js (cartesian - minified) v0.0.1\n*/\nvar P;\n")
    )
    monkeypatch.setattr(html_report, "PLOTLY_BUNDLE", other)
    assert html_report.plotly_js() == plotly.offline.get_plotlyjs()
    monkeypatch.setattr(html_report, "PLOTLY_BUNDLE", tmp_path / "missing.js")
    assert html_report.plotly_js() == plotly.offline.get_plotlyjs()


def test_html_shows_account_currency_as_of_and_headline_figures(html_file):
    text = html_file.read_text()
    assert "acct_fixture" in text and "Reporting currency <b>USD</b>" in text
    assert "2025-12-15 00:00 UTC" in text
    for label in ("MRR", "Net revenue retention", "Gross revenue retention", "Logo retention",
                  "ARR", "ARPA", "Paying customers", "Quick ratio", "Logo churn",
                  "Gross MRR churn"):  # fmt: skip
        assert f'<div class="label">{label}</div>' in text
    assert "12 months to Nov 2025" in text  # retention headline: the last complete month
    assert "MRR roll-forward (USD)" in text and "Retention by window" in text
    assert "Dec 2025 *" in text  # the month in progress is marked in the tables


def saas_metrics(html_file) -> list[dict]:
    with duckdb.connect(str(html_file.parent / "nrr.duckdb"), read_only=True) as con:
        cursor = con.execute("SELECT * FROM report.saas_metrics ORDER BY month")
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def card_value(text: str, label: str) -> tuple[str, str]:
    found = re.search(
        rf'<div class="label">{label}</div><div class="value">([^<]*)</div>'
        r'<div class="note">([^<]*)</div>',
        text,
    )
    assert found, label
    return found.group(1), found.group(2)


def test_html_cards_show_the_saas_metrics_of_the_table(html_file):
    text = html_file.read_text()
    rows = saas_metrics(html_file)
    latest, complete = rows[-1], [row for row in rows if row["month_complete"]][-1]
    assert card_value(text, "ARR")[0] == f"${latest['arr']:,.0f}"
    value, note = card_value(text, "ARPA")
    assert value == f"${latest['arpa']:,.2f}" and f"LTV ${latest['ltv']:,.0f}" in note
    # monthly rates come from the last complete month, not the month in progress
    value, note = card_value(text, "Logo churn")
    assert value == f"{complete['logo_churn_rate'] * 100:.2f}%" and "in Nov 2025" in note
    value, note = card_value(text, "Quick ratio")
    assert value == f"{complete['quick_ratio']:.2f}" and "in Nov 2025" in note
    assert "SaaS metrics (USD)" in text


def test_html_shows_retention_by_segment_and_the_customers_behind_movements(html_file):
    text = html_file.read_text()
    segments = text[text.index('id="segments"') : text.index('id="movers"')]
    assert "Retention by segment" in segments and "12-month NRR and GRR" in segments
    assert "Billing currency" in segments and "Cohort (first paying month)" in segments
    for currency in ("usd", "eur", "gbp"):
        assert f"<td>{currency}</td>" in segments  # the table of every segment
    movers = text[text.index('id="movers"') :]
    assert "Dec 2024 – Nov 2025" in movers  # the 12 complete months before the as-of month
    with duckdb.connect(str(html_file.parent / "nrr.duckdb"), read_only=True) as con:
        top = con.execute(
            "SELECT movement, customer_id, customer_name, mrr_before, mrr_after "
            "FROM report.top_movements WHERE rank = 1 ORDER BY movement"
        ).fetchall()
        unnamed = con.execute(
            "SELECT customer_id FROM report.top_movements WHERE customer_name IS NULL "
            "AND movement IN ('expansion', 'contraction', 'churn') LIMIT 1"
        ).fetchone()
    assert {row[0] for row in top} >= {"expansion", "contraction", "churn"}
    for movement, customer_id, name, before, after in top:
        if movement in ("new", "reactivation"):
            continue  # in the table, not on the page
        assert customer_id in movers
        if name:  # names are escaped: the fixture's end in "<Ltd>"
            assert name.replace("<", "&lt;").replace(">", "&gt;") in movers
        assert f"${before:,.2f} → ${after:,.2f}" in movers
    assert "<Ltd>" not in text
    if unnamed:  # a customer without a name shows by id
        assert f'<span class="id only">{unnamed[0]}</span>' in movers


def test_html_without_plotly_says_how_to_install_it(tmp_path, monkeypatch):
    database = make_report_db(tmp_path / "nrr.duckdb")
    config = tmp_path / "config.yaml"
    config.write_text(f"database:\n  path: {database}\n")
    monkeypatch.setitem(sys.modules, "plotly", None)  # as if not installed
    result = CliRunner().invoke(
        app, ["--config", str(config), "report", "--html", str(tmp_path / "r.html")]
    )
    assert result.exit_code == 2
    assert "-m pip install 'plotly>=5.20'" in result.stderr
    assert "pip install -e '.[html]'" in result.stderr and "nrr-sync[html]" not in result.stderr
    assert not (tmp_path / "r.html").exists()


def test_html_into_a_missing_folder_is_a_usage_error(tmp_path):
    database = make_report_db(tmp_path / "nrr.duckdb")
    config = tmp_path / "config.yaml"
    config.write_text(f"database:\n  path: {database}\n")
    target = tmp_path / "nowhere" / "r.html"
    result = CliRunner().invoke(app, ["--config", str(config), "report", "--html", str(target)])
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


@needs_chromium
def test_html_renders_every_chart_in_chromium_without_script_errors(html_file, tmp_path):
    result = chromium("--dump-dom", html_file.as_uri(), profile=tmp_path / "profile")
    assert result.returncode == 0, result.stderr[-2000:]
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    errors = [line for line in console if "Uncaught" in line or "Error" in line]
    assert not errors, errors
    dom = result.stdout
    for chart in CHARTS:
        start = dom.index(f'id="{chart}"')
        following = dom[start : start + 200_000]
        assert 'class="main-svg"' in following, f"{chart} was not drawn"
    assert dom.count('class="main-svg"') >= 2 * len(CHARTS)
    # bars, lines and the heatmap were drawn, not only empty axes
    assert 'class="bars"' in dom or "class='bars'" in dom or 'class="point"' in dom
    assert 'class="scatterlayer' in dom and "heatmaplayer" in dom


@needs_chromium
def test_html_screenshot_looks_like_a_full_report(html_file, tmp_path):
    """Keeps a screenshot for people to look at (NRR_SYNC_SCREENSHOT_DIR to keep it)."""
    png = tmp_path / "report.png"
    result = chromium(
        f"--screenshot={png}",
        "--window-size=1400,2400",
        "--hide-scrollbars",
        html_file.as_uri(),
        profile=tmp_path / "profile",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1400, 2400)
    # a page with charts compresses far worse than a blank or text-only page
    assert len(data) > 150_000, len(data)
    keep = os.environ.get("NRR_SYNC_SCREENSHOT_DIR")
    if keep:
        shutil.copyfile(png, Path(keep) / "nrr-report.png")


def test_html_with_less_than_a_year_of_history_says_so(tmp_path):
    database = make_report_db(tmp_path / "nrr.duckdb", months=5, as_of="2024-05-10T00:00:00Z")
    config = tmp_path / "config.yaml"
    config.write_text(f"database:\n  path: {database}\n")
    path = tmp_path / "short.html"
    result = CliRunner().invoke(app, ["--config", str(config), "report", "--html", str(path)])
    assert result.exit_code == 0, result.output
    text = path.read_text()
    assert text.count("needs 12 months of history") == 3
    assert "January 2024 – May 2024" in text


def test_html_draws_a_panel_set_for_every_segment_type_of_a_real_build(tmp_path):
    """A sandbox account built with every kind of segment, metadata included."""
    from test_metrics_truth import land_world

    from nrr_sync import build
    from nrr_sync.config import Config, ReportingSettings
    from nrr_sync.sandbox.generator import SandboxOptions, generate

    options = SandboxOptions(seed=5, customers=40, start="2023-06", now="2025-02-03T18:00:00Z")
    database = tmp_path / "nrr.duckdb"
    con = land_world(database, generate(options))
    segments = ("currency", "country", "cohort", "product", "metadata:segment")
    settings = ReportingSettings(fx_rates=dict(options.fx), segments=segments)
    build.build(con, Config(reporting=settings))
    con.close()
    config = tmp_path / "config.yaml"
    config.write_text(f"database:\n  path: {database}\n")
    path = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["--config", str(config), "report", "--html", str(path)])
    assert result.exit_code == 0, result.output
    text = path.read_text()
    section = text[text.index('id="segments"') : text.index('id="movers"')]
    titles = ["Billing currency", "Country", "Product", "Cohort (first paying month)",
              "Customer metadata “segment”"]  # fmt: skip
    positions = [section.index(f"<h3>{html_escape(title)}</h3>") for title in titles]
    assert positions == sorted(positions)  # a fixed order, metadata last
    for number in range(len(titles)):
        assert f'id="segment-chart-{number}"' in section
    assert 'id="segment-chart-5"' not in section
    assert "12-month NRR and GRR" in section


def test_the_page_names_the_database_file_not_its_absolute_path(html_file):
    text = html_file.read_text()
    assert "Source: nrr.duckdb." in text
    assert str(html_file.parent) not in text  # no folder of this machine in a mailed file


def test_the_heatmap_says_what_its_cells_are_and_labels_only_cells_wide_enough():
    from datetime import date

    from nrr_sync.report.html import CELL_LABEL_MAX_COLUMNS, cohort_figure

    def cohorts(months: int) -> list[dict]:
        return [
            {"cohort": date(2023, 1, 1), "age": age, "mrr_retention": 1.0, "cohort_customers": 3}
            for age in range(months)
        ]

    narrow = cohort_figure(cohorts(CELL_LABEL_MAX_COLUMNS)).data[0]
    wide = cohort_figure(cohorts(CELL_LABEL_MAX_COLUMNS + 12)).data[0]
    assert "first month" in narrow.colorbar.title.text and "NRR" not in narrow.colorbar.title.text
    assert narrow.texttemplate == "%{z:.0f}"
    assert wide.texttemplate == ""  # 36 columns at 800 px would overlap: hover only
