"""The ``nrr-sync`` command line. It only wires options to the modules that do the work."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from . import __version__
from .config import load_config, parse_month
from .errors import ConfigError
from .runner import run

# Global options, accepted after the command too (`nrr-sync status --config x`): cron lines
# and muscle memory put them there. Those that take a value are the first group.
GLOBAL_OPTIONS_WITH_VALUE = ("--config",)
GLOBAL_FLAGS = ("--verbose", "-v", "--quiet", "-q")


def hoist_global_options(args: list[str]) -> list[str]:
    """``[cmd, ..., --config, x, -q]`` -> ``[--config, x, -q, cmd, ...]`` (up to a ``--``)."""
    command_at = None
    index = 0
    while index < len(args) and command_at is None:
        if args[index] in GLOBAL_OPTIONS_WITH_VALUE:
            index += 2
        elif args[index].startswith("-"):
            index += 1
        else:
            command_at = index
    if command_at is None:
        return args
    front, moved, rest = list(args[:command_at]), [], []
    index = command_at
    while index < len(args):
        token = args[index]
        if token == "--":
            rest.extend(args[index:])
            break
        if token in GLOBAL_OPTIONS_WITH_VALUE and index + 1 < len(args):
            moved.extend(args[index : index + 2])
            index += 2
            continue
        if token.split("=", 1)[0] in GLOBAL_OPTIONS_WITH_VALUE or token in GLOBAL_FLAGS:
            moved.append(token)
        else:
            rest.append(token)
        index += 1
    return front + moved + rest


def without_flag_types(command) -> None:
    """Help shows ``--restart`` without a ``<bool>`` after it: a flag takes no value."""
    for param in command.params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""


class CommandLine(TyperGroup):
    """nrr-sync's command group: global options anywhere, flags shown as flags."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist_global_options(args))

    def get_command(self, ctx, cmd_name: str):
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            without_flag_types(command)
            help_option = command.get_help_option(ctx)
            if help_option is not None:
                help_option.metavar = ""
        return command

    def format_help(self, ctx, formatter) -> None:
        without_flag_types(self)
        help_option = self.get_help_option(ctx)
        if help_option is not None:
            help_option.metavar = ""
        super().format_help(ctx, formatter)


app = typer.Typer(
    cls=CommandLine,
    help="Pull Stripe billing data into DuckDB and compute exact MRR, movements, NRR and GRR.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
log = logging.getLogger("nrr_sync")


class Context:
    def __init__(self, config_path: Path | None, verbose: bool, quiet: bool):
        self.config_path = config_path
        self.verbose = verbose
        self.quiet = quiet

    def config(self):
        return load_config(self.config_path)


def _version(value: bool) -> None:
    if value:
        from . import STRIPE_API_VERSION

        typer.echo(f"nrr-sync {__version__} (Stripe API {STRIPE_API_VERSION})")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="Config file. Default: $NRR_SYNC_CONFIG, else ./config.yaml.",
            show_default=False,
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log details.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    for handler in logging.getLogger().handlers:
        if not isinstance(handler.formatter, _RedactingFormatter):
            handler.setFormatter(_RedactingFormatter(handler.formatter))
    # Third-party loggers stay quiet even under --verbose: the stripe SDK logs every
    # response body (customers' names and emails) and its own unredacted error text.
    # nrr-sync logs one line per request instead (method, path, status, request id, time).
    for noisy in ("stripe", "urllib3", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # --quiet keeps the run's one summary line: cron's log still says what each night did.
    logging.getLogger("nrr_sync.summary").setLevel(logging.DEBUG if verbose else logging.INFO)
    ctx.obj = Context(config, verbose, quiet)


class _RedactingFormatter(logging.Formatter):
    """Formats as before, then removes anything that looks like a Stripe key (tracebacks
    included)."""

    def __init__(self, inner: logging.Formatter | None):
        super().__init__()
        self._inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        from .failures import redact

        return redact(self._inner.format(record))


@app.command()
def backfill(
    ctx: typer.Context,
    since: Annotated[str, typer.Option(help="First month to report, YYYY-MM.")],
    restart: Annotated[
        bool,
        typer.Option("--restart", help="Start over instead of resuming an interrupted backfill."),
    ] = False,
) -> None:
    """Pull everything needed for reports from month SINCE on, then build the reports."""

    def work():
        parse_month(since, "--since")
        config = ctx.obj.config()
        from .jobs import run as sync

        return sync.run_backfill(config, since=since, restart=restart)

    run(ctx, work)


@app.command("sync")
def sync_command(ctx: typer.Context) -> None:
    """The nightly job: pull what changed since the last run, then build the reports."""

    def work():
        config = ctx.obj.config()
        from .jobs import run as sync

        return sync.run_sync(config)

    run(ctx, work)


@app.command()
def build(ctx: typer.Context) -> None:
    """Run the sql/ files only: migrations once, report models every time."""

    def work():
        config = ctx.obj.config()
        from .jobs import run as sync

        return sync.run_build(config)

    run(ctx, work)


@app.command()
def report(
    ctx: typer.Context,
    window: Annotated[int, typer.Option(help="Retention window in months: 1, 3 or 12.")] = 12,
    segment: Annotated[
        str,
        typer.Option(
            help="Retention by segment type: all, currency, country, cohort, product or "
            "metadata:<key> (one block per segment; the roll-forward is the whole account)."
        ),
    ] = "all",
    from_month: Annotated[
        str | None, typer.Option("--from", help="First month shown, YYYY-MM.")
    ] = None,
    to_month: Annotated[str | None, typer.Option("--to", help="Last month shown, YYYY-MM.")] = None,
    output_format: Annotated[
        str,
        typer.Option(
            "--format",
            help="table, csv, json or markdown. csv/json carry money as exact decimal strings.",
        ),
    ] = "table",
    html: Annotated[
        Path | None,
        typer.Option(
            help="Also write one self-contained HTML file with charts, viewable offline "
            "(needs plotly, the \\[html] extra: pip install -e '.\\[html]' in a checkout)."
        ),
    ] = None,
    metrics: Annotated[
        bool,
        typer.Option(
            "--metrics",
            help="SaaS metrics by month instead of the roll-forward: ARR, ARPA, customers, "
            "churn rates, quick ratio, LTV (report.saas_metrics).",
        ),
    ] = False,
) -> None:
    """MRR roll-forward and NRR / GRR / logo retention by month.

    Reads the database read-only: never waits for or blocks the job or an analyst's session.
    """

    def work():
        from .report.show import show

        if window not in (1, 3, 12):
            raise ConfigError(f"--window must be 1, 3 or 12, not {window}.")
        if output_format not in ("table", "csv", "json", "markdown"):
            raise ConfigError(
                f"--format must be table, csv, json or markdown, not {output_format!r}."
            )
        for value, name in ((from_month, "--from"), (to_month, "--to")):
            if value is not None:
                parse_month(value, name)
        if metrics and segment != "all":
            raise ConfigError(
                "--metrics shows the whole account; retention by segment is --segment alone."
            )
        return show(
            ctx.obj.config(),
            window=window,
            segment=segment,
            from_month=from_month,
            to_month=to_month,
            output_format=output_format,
            html_path=html,
            metrics=metrics,
        )

    run(ctx, work)


@app.command()
def status(
    ctx: typer.Context,
    output_format: Annotated[
        str,
        typer.Option("--format", help="text, or json: one JSON object for monitoring."),
    ] = "text",
) -> None:
    """Last runs, cursors, row counts, SQL versions, data-quality findings, freshness.

    Exits 1 when the last success is over 36 h old, the last run failed, a backfill is
    unfinished or the report is empty (for monitoring; the same with --format json).
    """

    def work():
        from .status import status as show_status

        return show_status(ctx.obj.config(), output_format)

    run(ctx, work)


@app.command()
def demo(
    ctx: typer.Context,
    db: Annotated[Path, typer.Option(help="Where to write the demo database.")] = Path(
        "nrr-demo.duckdb"
    ),
) -> None:
    """Run the whole job against the built-in Stripe sandbox: no account, no network.

    Backfills a generated account into --db, prints the report, writes the HTML next to it.
    """

    def work():
        from . import demo as demo_module

        return demo_module.run(db, quiet=ctx.obj.quiet)

    run(ctx, work)


def _mount_sandbox() -> None:
    from .sandbox.cli import app as sandbox_app

    app.add_typer(
        sandbox_app, name="sandbox", help="The built-in Stripe sandbox server.", cls=CommandLine
    )


_mount_sandbox()
