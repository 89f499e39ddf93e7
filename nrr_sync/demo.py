"""``nrr-sync demo``: the whole job against the built-in Stripe sandbox, no account needed.

Starts the sandbox on a free loopback port, backfills from it into a demo DuckDB file
exactly as a real backfill would, prints the report and writes the HTML report next to
the file.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import typer

from .config import Config, DatabaseSettings, ReportingSettings, StripeSettings, SyncSettings
from .errors import ConfigError

DEMO_CUSTOMERS = 300
DEMO_SINCE = "2023-01"
DEMO_KEY_ENV = "NRR_SYNC_DEMO_STRIPE_KEY"
MONTHS_SHOWN = 13


def demo_config(url: str, db_path: Path, fx_rates: dict[str, float]) -> Config:
    """A config for the sandbox: its URL, and no client-side rate limit (it has none)."""
    return Config(
        stripe=StripeSettings(
            api_key_env=DEMO_KEY_ENV,
            api_base=url,
            max_requests_per_second=1000,
            max_requests_per_second_per_endpoint=1000,
        ),
        database=DatabaseSettings(path=str(db_path), lock_timeout_seconds=5),
        sync=SyncSettings(backfill_since=DEMO_SINCE),
        reporting=ReportingSettings(
            currency="usd", fx_rates={k: v for k, v in fx_rates.items() if k != "usd"}
        ),
        source="the demo",
    )


def refuse_foreign_database(db_path: Path, sandbox_accounts: list[str]) -> None:
    """The demo replaces its file: never let it replace a database holding real data."""
    if not db_path.exists():
        return
    from .report.data import has_table, open_published

    with open_published(db_path) as con:
        if not has_table(con, "stripe", "customers"):
            found = []
        else:
            rows = con.execute("SELECT DISTINCT account_id FROM stripe.customers").fetchall()
            found = [row[0] for row in rows]
    foreign = sorted(set(found) - set(sandbox_accounts))
    if foreign:
        raise ConfigError(
            f"{db_path} holds data of Stripe account {', '.join(foreign)}, not demo data; "
            "the demo would replace it. Pass another file with --db."
        )


def check_demo_path(db_path: Path) -> None:
    """Before the sandbox starts: the demo can write there, and replaces only a DuckDB file
    (messages name --db: the demo has no config file)."""
    from .dbfile import file_problem
    from .writable import require_writable_dir

    problem = file_problem(db_path) if db_path.exists() else None
    if problem:
        raise ConfigError(
            f"--db {db_path} {problem}, and the demo replaces only a DuckDB file it wrote: "
            "pass a new file name with --db, like nrr-demo.duckdb."
        )
    require_writable_dir(
        db_path.parent,
        f"the demo database {db_path.name} and its side files",
        "pass --db a path in a folder you can write",
    )


def run(db_path: str | Path = "nrr-demo.duckdb", quiet: bool = False) -> int:
    from .jobs import run as sync
    from .report.show import show
    from .sandbox.generator import DEFAULT_FX, SandboxOptions
    from .sandbox.server import start

    db_path = Path(db_path).expanduser().resolve()
    if db_path.is_dir():
        raise ConfigError(f"--db {db_path} is a directory; give a file name like nrr-demo.duckdb.")
    if not db_path.parent.is_dir():
        raise ConfigError(f"--db {db_path}: the directory {db_path.parent} does not exist.")
    check_demo_path(db_path)
    say = (lambda *a, **k: None) if quiet else typer.echo
    began = time.monotonic()
    options = SandboxOptions(customers=DEMO_CUSTOMERS, start=DEMO_SINCE)
    say(
        f"Starting the Stripe sandbox: {DEMO_CUSTOMERS} customers billed since {DEMO_SINCE} …",
        err=True,
    )
    with start(options) as sandbox:
        refuse_foreign_database(db_path, list(sandbox.world.account_ids))
        config = demo_config(sandbox.url, db_path, dict(options.fx or DEFAULT_FX))
        say(f"Sandbox serving Stripe's API at {sandbox.url}; backfilling into {db_path}", err=True)
        sync.run_backfill(config, since=DEMO_SINCE, restart=True, api_key=sandbox.api_key)
        requests = sandbox.stats().get("requests")
    took = time.monotonic() - began
    say(
        f"Backfilled and built in {took:.1f} s"
        + (f" ({requests:,} API requests)" if isinstance(requests, int) else "")
        + ".\n",
        err=True,
    )

    html_path = db_path.with_suffix(".html")
    html_note = write_html(config, html_path)
    if not quiet:
        show(config, from_month=last_months(config), output_format="table")
        typer.echo("")
        typer.echo(next_steps(db_path, html_note))
    else:
        typer.echo(f"Demo database: {db_path}")
    return 0


def last_months(config: Config) -> str | None:
    """The first of the last MONTHS_SHOWN months, so the demo's table fits a screen."""
    from .report.data import open_published

    with open_published(config.database.path) as con:
        latest = con.execute("SELECT max(month) FROM report.mrr_summary").fetchone()[0]
    if latest is None:
        return None
    index = latest.year * 12 + latest.month - 1 - (MONTHS_SHOWN - 1)
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def write_html(config: Config, html_path: Path) -> str:
    from .report import data as report
    from .report import html as html_report
    from .report import html_data as html_data_module

    try:
        html_data_module.require_plotly()
    except ConfigError:
        from .commands import html_install_hint

        return (
            f"No HTML report: plotly is not installed. Get it with\n  {html_install_hint()}\n"
            "then run the report command below with --html report.html."
        )
    with report.open_published(config.database.path) as con:
        data = report.read_report(
            con, database=config.database.path, currency=config.reporting.currency
        )
        html_data = html_data_module.read_html_data(con, data, None, None)
    html_report.write(html_data, html_path)
    return f"HTML report with charts: {html_path}  (open it in a browser; works offline)"


def next_steps(db_path: Path, html_note: str) -> str:
    """What to try next, as commands that work where the demo ran (``.venv/bin/…`` when
    the virtual environment is not activated)."""
    from .commands import program, python

    name = db_path.name
    relative = os.path.relpath(db_path) if db_path.is_relative_to(Path.cwd()) else str(db_path)
    nrr_sync = program("nrr-sync")
    retention = (
        "SELECT month, nrr, grr, logo_retention FROM report.retention "
        "WHERE window_months = 12 AND segment_type = 'all' ORDER BY month"
    )
    python_example = (
        f"{python()} -c \"import duckdb; duckdb.connect('{relative}', read_only=True)"
        ".table('report.mrr_summary').show()\""
    )
    return f"""{html_note}

The demo data is in {relative}. Query it like any DuckDB file, read-only (so it never
gets in the way of the nightly job):

  {python_example}

  NRR_SYNC_DATABASE={relative} {nrr_sync} report --window 3 --segment currency
  NRR_SYNC_DATABASE={relative} {nrr_sync} report --metrics
  NRR_SYNC_DATABASE={relative} {nrr_sync} report --format csv > mrr.csv
  NRR_SYNC_DATABASE={relative} {nrr_sync} status

  duckdb -readonly {relative} "{retention}"

(The DuckDB CLI, `duckdb`, is a separate program from the Python package:
https://duckdb.org/docs/installation, or any SQL tool that reads DuckDB files.)

Tables: report.mrr_summary (roll-forward), report.saas_metrics (ARR, ARPA, churn, LTV),
report.mrr_movements, report.customer_mrr_monthly, report.retention (NRR / GRR / logos),
report.cohort_mrr, report.top_movements, report.data_quality; landing data in stripe.*.

Use your own Stripe account:
  1. In the Stripe Dashboard create a restricted key with Read access to Customers,
     Products, Prices, Subscriptions, Invoices, Coupons, Credit notes, Events and
     Account (docs/operations.md has the table).
  2. Copy config.example.yaml to config.yaml; set reporting.currency and fx_rates.
  3. export STRIPE_API_KEY=rk_live_...
  4. {nrr_sync} backfill --since 2024-01     then nightly:  {nrr_sync} sync
Beside {name} the run left {name}.lock (the job lock: runs never overlap) and
{name}.runs.json (the runs `status` shows). The demo's files are separate from your own
database; delete them whenever you like."""
