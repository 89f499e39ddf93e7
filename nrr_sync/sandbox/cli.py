"""``nrr-sync sandbox ...``: serve the Stripe sandbox, or export its ground truth."""

from __future__ import annotations

import csv
import json
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from ..errors import ConfigError

app = typer.Typer(no_args_is_help=True)

# Generation options, shared by `serve` and `truth`.
Seed = Annotated[int, typer.Option(help="Random seed: the same options give the same history.")]
Customers = Annotated[int, typer.Option(help="Customers per account.")]
Start = Annotated[str, typer.Option(help="First month of the history, YYYY-MM.")]
Now = Annotated[str, typer.Option(help="The sandbox clock, ISO-8601 UTC (2026-01-15T00:00:00Z).")]
Accounts = Annotated[int, typer.Option(help="Accounts: the key's own plus connected ones.")]
Currency = Annotated[str, typer.Option(help="Reporting currency of the ground truth.")]
Fx = Annotated[
    str | None,
    typer.Option(
        help="FX rates to the reporting currency, e.g. eur=1.1,gbp=1.3 (default: built in)."
    ),
]


def parse_fx(value: str | None) -> dict[str, float] | None:
    if value is None:
        return None
    rates = {}
    for part in value.split(","):
        match = re.fullmatch(r"\s*([A-Za-z]{3})\s*=\s*([0-9]*\.?[0-9]+)\s*", part)
        if not match or float(match.group(2)) <= 0:
            raise ConfigError(f"--fx: {part!r} is not a rate; use e.g. eur=1.1,gbp=1.3.")
        rates[match.group(1).lower()] = float(match.group(2))
    return rates


def generation_options(
    seed: int, customers: int, start: str, now: str, accounts: int, currency: str, fx: str | None
):
    """Check the generation options and build SandboxOptions (ConfigError when bad)."""
    from ..config import parse_month

    start_year, start_month = parse_month(start, "--start")
    try:
        moment = datetime.fromisoformat(now.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"--now: {now!r} is not a timestamp; use ISO-8601 UTC, e.g. 2026-01-15T00:00:00Z."
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if (moment.year, moment.month) < (start_year, start_month):
        raise ConfigError(f"--now ({now}) is before --start ({start}).")
    if customers < 1:
        raise ConfigError(f"--customers must be at least 1, not {customers}.")
    if accounts < 1:
        raise ConfigError(f"--accounts must be at least 1, not {accounts}.")
    if not re.fullmatch(r"[A-Za-z]{3}", currency):
        raise ConfigError(f"--currency: {currency!r} is not a currency code like usd.")
    rates = parse_fx(fx)
    from .generator import DEFAULT_FX, SandboxOptions

    return SandboxOptions(
        seed=seed,
        customers=customers,
        start=f"{start_year:04d}-{start_month:02d}",
        now=moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        accounts=accounts,
        currency=currency.lower(),
        fx=DEFAULT_FX if rates is None else rates,
    )


def fx_rates_line(options) -> str:
    """The sandbox's rates as a YAML flow mapping, ready to paste into reporting.fx_rates."""
    rates = {code: rate for code, rate in (options.fx or {}).items() if code != options.currency}
    return "{" + ", ".join(f"{code}: {rate:g}" for code, rate in sorted(rates.items())) + "}"


def _run(ctx: typer.Context, work) -> None:
    from ..runner import run

    run(ctx, work)


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0 = any free port).")] = 12111,
    seed: Seed = 7,
    customers: Customers = 500,
    start: Start = "2023-01",
    now: Now = "2026-01-15T00:00:00Z",
    accounts: Accounts = 1,
    latency_ms: Annotated[float, typer.Option(help="Added latency per request, ms.")] = 0,
    rate_limit: Annotated[int, typer.Option(help="Requests/s over all endpoints (0 = off).")] = 0,
    endpoint_rate_limit: Annotated[
        int, typer.Option(help="Requests/s per endpoint (0 = off).")
    ] = 0,
    fault_rate: Annotated[float, typer.Option(help="Fraction of requests answered 500/503.")] = 0,
    drop_rate: Annotated[float, typer.Option(help="Fraction of connections dropped.")] = 0,
    currency: Currency = "usd",
    fx: Fx = None,
) -> None:
    """Run the Stripe sandbox server in the foreground (Ctrl-C or SIGTERM stops it)."""

    def work() -> int:
        for name, value in (("--fault-rate", fault_rate), ("--drop-rate", drop_rate)):
            if not 0 <= value <= 1:
                raise ConfigError(f"{name} must be between 0 and 1, not {value}.")
        for name, value in (
            ("--latency-ms", latency_ms),
            ("--rate-limit", rate_limit),
            ("--endpoint-rate-limit", endpoint_rate_limit),
        ):
            if value < 0:
                raise ConfigError(f"{name} must be 0 (off) or more, not {value}.")
        if not 0 <= port <= 65535:
            raise ConfigError(f"--port must be between 0 and 65535, not {port}.")
        options = generation_options(seed, customers, start, now, accounts, currency, fx)
        from .server import start as start_server

        typer.echo(f"Generating the sandbox ({customers} customers per account)...", err=True)
        try:
            sandbox = start_server(
                options,
                host=host,
                port=port,
                latency_ms=latency_ms,
                rate_limit=rate_limit,
                endpoint_rate_limit=endpoint_rate_limit,
                fault_rate=fault_rate,
                drop_rate=drop_rate,
            )
        except OSError as error:
            raise ConfigError(
                f"Cannot listen on {host}:{port}: {error.strerror or error}. "
                "Pick another --port (0 = any free port)."
            ) from None

        def ready() -> None:
            world = sandbox.world
            typer.echo(f"Stripe sandbox listening on {sandbox.url}")
            typer.echo(
                f"Accounts: {', '.join(world.account_ids)}; clock: {options.now}; "
                f"{customers} customers per account."
            )
            typer.echo(f"API key: {sandbox.api_key}")
            typer.echo(
                f"  export NRR_SYNC_STRIPE_API_BASE={sandbox.url} STRIPE_API_KEY={sandbox.api_key}"
            )
            typer.echo(
                "Its invoices are in several currencies; under reporting: in config.yaml put\n"
                f"  currency: {options.currency}\n  fx_rates: {fx_rates_line(options)}"
            )
            typer.echo("Admin: POST /_sandbox/advance?days=N, GET /_sandbox/stats. Ctrl-C stops.")
            sys.stdout.flush()

        sandbox.serve_until_stopped(ready)
        typer.echo("Sandbox stopped.")
        return 0

    _run(ctx, work)


@app.command()
def truth(
    ctx: typer.Context,
    seed: Seed = 7,
    customers: Customers = 500,
    start: Start = "2023-01",
    now: Now = "2026-01-15T00:00:00Z",
    accounts: Accounts = 1,
    currency: Currency = "usd",
    fx: Fx = None,
    output_format: Annotated[str, typer.Option("--format", help="csv or json.")] = "csv",
    output: Annotated[
        Path | None, typer.Option(help="Write to this file instead of standard output.")
    ] = None,
) -> None:
    """Write the sandbox's true MRR per customer and month (account_id,customer_id,month,mrr)."""

    def work() -> int:
        if output_format not in ("csv", "json"):
            raise ConfigError(f"--format must be csv or json, not {output_format!r}.")
        options = generation_options(seed, customers, start, now, accounts, currency, fx)
        from .generator import generate

        rows = generate(options).truth()
        if output is None:
            write_truth(rows, output_format, sys.stdout)
        else:
            with open(output, "w", newline="", encoding="utf-8") as stream:
                write_truth(rows, output_format, stream)
        return 0

    _run(ctx, work)


def write_truth(rows, output_format: str, stream) -> None:
    if output_format == "json":
        records = [
            {"account_id": a, "customer_id": c, "month": m, "mrr": float(f"{mrr:.2f}")}
            for a, c, m, mrr in rows
        ]
        json.dump(records, stream, indent=1)
        stream.write("\n")
        return
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(["account_id", "customer_id", "month", "mrr"])
    for account_id, customer_id, month, mrr in rows:
        writer.writerow([account_id, customer_id, month, f"{mrr:.2f}"])
