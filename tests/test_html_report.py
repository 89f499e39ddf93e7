"""``nrr-sync report --html``: one offline file that renders its charts in a real browser."""

import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from report_fixtures import make_report_db
from typer.testing import CliRunner

from nrr_sync.cli import app

CHARTS = ("movements-chart", "retention-chart", "cohort-chart")


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


def test_html_shows_account_currency_as_of_and_headline_figures(html_file):
    text = html_file.read_text()
    assert "acct_fixture" in text and "Reporting currency <b>USD</b>" in text
    assert "2025-12-15 00:00 UTC" in text
    for label in ("MRR", "Net revenue retention", "Gross revenue retention", "Logo retention"):
        assert f'<div class="label">{label}</div>' in text
    assert "12 months to Nov 2025" in text  # retention headline: the last complete month
    assert "MRR roll-forward (USD)" in text and "Retention by window" in text
    assert "Dec 2025 *" in text  # the month in progress is marked in the tables


def test_html_without_plotly_says_how_to_install_it(tmp_path, monkeypatch):
    database = make_report_db(tmp_path / "nrr.duckdb")
    config = tmp_path / "config.yaml"
    config.write_text(f"database:\n  path: {database}\n")
    monkeypatch.setitem(sys.modules, "plotly", None)  # as if not installed
    result = CliRunner().invoke(
        app, ["--config", str(config), "report", "--html", str(tmp_path / "r.html")]
    )
    assert result.exit_code == 2
    assert "pip install 'nrr-sync[html]'" in result.stderr
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
