"""A DuckDB file built like a real one: hand-made Stripe objects landed through the real
loader, then the real migrations and report models, filled with a small, deterministic
customer history, so the report, status and HTML can be tested without a sync."""

from __future__ import annotations

import atexit
import json
import random
import shutil
import tempfile
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import stripe_objects as objects

ACCOUNT = "acct_fixture"
PRICES = [Decimal(p) for p in ("29.00", "49.00", "99.00", "199.00", "499.00", "1250.50")]
PRODUCT = "prod_fixture"


def add_months(month: date, count: int) -> date:
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


def customer_history(seed: int, customers: int, first: date, months: int) -> dict:
    """{customer_id: (currency, [mrr per month index])}: churn, expansion, contraction and
    customers who leave and come back."""
    rng = random.Random(seed)
    history = {}
    for number in range(customers):
        start = 0 if number < customers // 3 else rng.randrange(months)
        mrr = rng.choice(PRICES)
        values = []
        for index in range(months):
            if index < start:
                values.append(Decimal("0.00"))
                continue
            if index > start:
                roll = rng.random()
                if mrr > 0 and roll < 0.04:
                    mrr = Decimal("0.00")
                elif mrr == 0 and roll < 0.15:
                    mrr = rng.choice(PRICES)
                elif mrr > 0 and roll < 0.10:
                    mrr = (mrr * Decimal("1.5")).quantize(Decimal("0.01"))
                elif mrr > 0 and roll < 0.13:
                    mrr = (mrr * Decimal("0.8")).quantize(Decimal("0.01"))
            values.append(mrr)
        history[f"cus_{number:04d}"] = (rng.choice(["usd", "usd", "eur", "gbp"]), values)
    return history


def make_report_db(
    path: Path,
    *,
    customers: int = 40,
    first: date = date(2024, 1, 1),
    months: int = 18,
    seed: int = 3,
    as_of: str = "2025-06-15T00:00:00+00:00",
    runs: list[tuple[str, float, float, str]] | None = None,
    with_report: bool = True,
) -> Path:
    """Write ``path``; ``runs`` are (command, started epoch, finished epoch, outcome).

    ``with_report=False`` leaves the file as a run leaves it before its first build: the
    migrations applied, nothing landed, no report tables. Built once per set of
    arguments and copied, to keep the tests fast."""
    key = repr((customers, first, months, seed, as_of, runs, with_report))
    if key not in _TEMPLATES:
        template = Path(tempfile.mkdtemp(prefix="nrr-report-fixture-")) / "template.duckdb"
        _write(template, customers, first, months, seed, as_of, runs, with_report)
        _TEMPLATES[key] = template
    shutil.copyfile(_TEMPLATES[key], path)
    return path


_TEMPLATES: dict[str, Path] = {}


@atexit.register
def _remove_templates() -> None:
    # One folder per template and test process: without this, every test run left them.
    for template in _TEMPLATES.values():
        shutil.rmtree(template.parent, ignore_errors=True)


def _write(path, customers, first, months, seed, as_of, runs, with_report) -> None:
    from nrr_sync import build

    now = time.time()
    if with_report:
        history = customer_history(seed, customers, first, months)
        con = objects.build_report(
            path,
            accounts={ACCOUNT: stripe_objects_of(history, first, months)},
            since=f"{first:%Y-%m}",
            as_of=as_of,
            fx_rates={"eur": 1.0, "gbp": 1.0},
            segments=("currency", "country", "cohort", "product"),
        )
    else:
        con = duckdb.connect(str(path))
        build.migrate(con)
    if runs is None:
        runs = [("backfill", now - 3600, now - 3500, "ok")]
    for number, (command, started, finished, outcome) in enumerate(runs):
        exit_code = int(outcome.split(":")[1]) if outcome.startswith("failed:") else 0
        con.execute(
            "INSERT INTO meta.sync_runs (run_id, command, started_at, finished_at, outcome, "
            "exit_code, objects, requests, retries, rate_limited) VALUES (?, ?, "
            "to_timestamp(?), to_timestamp(?), ?, ?, "
            '\'{"customers": 40, "invoices": 900}\', 120, 2, 0)',
            [f"run{number}", command, started, finished, outcome, exit_code],
        )
    if with_report:
        cursor = {"created": int(now - 7200), "id": "evt_fixture"}
        checkpoint = {"id": "s1", "account": ACCOUNT, "kind": "invoices", "gte": 0, "lt": 1}
        con.execute(
            "INSERT OR REPLACE INTO meta.sync_state VALUES "
            "('backfill:status', 'done', now()), ('backfill:since', ?, now()), "
            "(?, ?, now()), (?, ?, now())",
            [
                f"{first:%Y-%m}",
                f"events:cursor:{ACCOUNT}",
                json.dumps(cursor),
                f"backfill:slice:{ACCOUNT}:invoices:s1",
                json.dumps(checkpoint),
            ],
        )
    con.close()


def stripe_objects_of(history: dict, first: date, months: int) -> dict[str, list[dict]]:
    """One monthly subscription per customer whose paid invoice each month is that month's
    MRR, in the customer's currency; plus one invoice missing a page of its lines (an
    error finding) and one line of a price that was never landed (a warning)."""
    prices: dict[tuple[str, Decimal], dict] = {}
    customers, subscriptions, invoices = [], [], []
    for customer_id, (currency, values) in history.items():
        customer = objects.customer(customer_id, currency=currency)
        customer["name"] = customer_name(customer_id)
        customers.append(customer)
        subscription_id = f"sub_{customer_id}"
        item_id = f"si_{customer_id}"
        for index, mrr in enumerate(values):
            if mrr <= 0:
                continue
            key = (currency, mrr)
            if key not in prices:
                price_id = f"price_{currency}_{int(mrr * 100)}"
                prices[key] = objects.price(
                    price_id, int(mrr * 100), product=PRODUCT, currency=currency
                )
            start = add_months(first, index)
            period = (start.isoformat(), add_months(start, 1).isoformat())
            line = objects.line(
                int(mrr * 100),
                prices[key],
                period,
                subscription=subscription_id,
                subscription_item=item_id,
            )
            invoices.append(objects.invoice(customer_id, [line], created=period[0]))
        price = next(iter(prices.values()))
        status = "active" if values[-1] > 0 else "canceled"
        subscriptions.append(
            objects.subscription(subscription_id, customer_id, [(item_id, price, 1)], status=status)
        )
    # Findings a real account has: an invoice whose later line pages are missing, and a
    # line of a price nrr-sync never saw. Both are zero-amount, so MRR is unchanged.
    first_customer = customers[0]["id"]
    period = (first.isoformat(), add_months(first, 1).isoformat())
    some_price = next(iter(prices.values()))
    incomplete = objects.invoice(
        first_customer,
        [objects.line(0, some_price, period, subscription=f"sub_{first_customer}")],
        id="in_lines_missing",
        has_more=True,
    )
    unknown = objects.invoice(
        first_customer,
        [objects.line(0, "price_never_landed", period, subscription=f"sub_{first_customer}")],
        id="in_unknown_price",
    )
    return {
        "customers": customers,
        "products": [objects.product(PRODUCT, "Fixture plan")],
        "prices": list(prices.values()),
        "subscriptions": subscriptions,
        "invoices": [*invoices, incomplete, unknown],
    }


def customer_name(customer_id: str) -> str | None:
    """Every seventh customer has no name, as Stripe allows."""
    number = int(customer_id.rsplit("_", 1)[1])
    return None if number % 7 == 3 else f"Customer {number:04d} <Ltd>"


def utc(year: int, month: int, day: int) -> float:
    return datetime(year, month, day, tzinfo=UTC).timestamp()
