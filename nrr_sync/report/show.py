"""``nrr-sync report``: read the published file, print one format, write the HTML."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import typer

from .. import dbfile
from ..config import Config
from ..errors import ConfigError
from ..terminal import printable
from .data import ReportData, open_published, read_report, require_data
from .text import RENDERERS, TABLE_WIDTH, render_table


def show(
    config: Config,
    *,
    window: int = 12,
    segment: str = "all",
    from_month: str | None = None,
    to_month: str | None = None,
    output_format: str = "table",
    html_path: str | Path | None = None,
    metrics: bool = False,
) -> int:
    """Print the report (with ``metrics``: report.saas_metrics instead of the roll-forward);
    with ``html_path`` also write the HTML report there."""
    if output_format not in RENDERERS:
        raise ConfigError(f"--format must be one of {', '.join(RENDERERS)}, not {output_format!r}.")
    if window not in (1, 3, 12):
        raise ConfigError(f"--window must be 1, 3 or 12, not {window}.")
    if html_path is not None:
        from . import html as html_report
        from . import html_data as html_data_module

        html_data_module.require_plotly()
    path = dbfile.real_path(config.database.path)
    if html_path is not None:
        html_path = dbfile.check_output_path(Path(html_path), path)
    with open_published(path) as con:
        require_data(con, path)
        data = read_report(
            con,
            database=str(path),
            currency=config.reporting.currency,
            window=window,
            segment=segment,
            from_month=from_month,
            to_month=to_month,
        )
        if metrics:
            text = render_metrics(con, data, from_month, to_month, output_format)
        elif output_format == "table":
            text = render_table(data, table_width())
        else:
            text = RENDERERS[output_format](data)
        html_data = None
        if html_path is not None:
            html_data = html_data_module.read_html_data(con, data, from_month, to_month)
    if output_format in ("table", "markdown"):  # for people: no terminal escapes from data
        text = printable(text)
    # color=True: click would strip colour codes from csv piped to a file; data stays exact
    typer.echo(text, nl=output_format in ("table",), color=output_format == "csv" or None)
    if html_data is not None:
        written = html_report.write(html_data, Path(html_path))
        typer.echo(f"HTML report written to {written}", err=True)
    return 0


def table_width() -> int:
    """The terminal's width on a terminal (at least TABLE_WIDTH); TABLE_WIDTH elsewhere, so
    piped or logged output does not depend on the window it was run from."""
    if not sys.stdout.isatty():
        return TABLE_WIDTH
    return max(TABLE_WIDTH, shutil.get_terminal_size((TABLE_WIDTH, 24)).columns)


def render_metrics(con, data: ReportData, from_month, to_month, output_format: str) -> str:
    from . import metrics as metrics_report

    rows = metrics_report.read_metrics(con, data.database, from_month, to_month)
    return metrics_report.RENDERERS[output_format](data, rows)
