"""The fast layer: Stripe objects → landing → build, in memory, without HTTP.

The sandbox's world renders every object as Stripe's API shows it (the shapes the HTTP
tests fetch, with every line of every invoice), the real loader lands them into an
in-memory DuckDB database, and the real SQL models build the report, which must equal the
world's ground truth to the cent for every customer-month. No server, no file, about a
second a world: so exactness is checked over many seeds and every reporting option here,
and the HTTP tests check that the sync fetches these same objects.
"""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import pytest
from test_metrics_truth import expected_monthly, truth_by_customer

from nrr_sync import build, load
from nrr_sync.config import Config, ReportingSettings
from nrr_sync.kinds import KINDS
from nrr_sync.sandbox.generator import SandboxOptions, generate
from nrr_sync.sandbox.truth import TruthOptions

SINCE = "2024-01"
FX = {"eur": 1.1, "gbp": 1.3, "jpy": 0.0067}


def world_of(seed: int, customers: int = 100):
    options = SandboxOptions(customers=customers, seed=seed, start="2023-10",
                             now="2025-06-01T00:00:00Z")  # fmt: skip
    return generate(options)


def land_in_memory(world) -> duckdb.DuckDBPyConnection:
    """Every object of every kind the sync pulls, landed as a finished backfill leaves it."""
    con = duckdb.connect(":memory:")
    build.migrate(con)
    for account in world.account_ids:
        for kind in KINDS:
            load.load_objects(con, account, kind, list(world.objects(account, kind.table)))
    as_of = datetime.fromtimestamp(world.now, UTC).isoformat()
    con.execute(
        "INSERT OR REPLACE INTO meta.sync_state VALUES ('backfill:status', 'done', now()), "
        "('report:since', ?, now()), ('report:as_of', ?, now())",
        [SINCE, as_of],
    )
    return con


def reported(con) -> set[tuple]:
    return set(con.execute(
        "SELECT account_id, customer_id, strftime(month, '%Y-%m-%d'), mrr "
        "FROM report.customer_mrr_monthly"
    ).fetchall())  # fmt: skip


def assert_exact(con, world, reporting: dict, truth_options: TruthOptions) -> None:
    build.build(con, Config(reporting=ReportingSettings(**reporting)))
    expected = expected_monthly(truth_by_customer(world, truth_options), since=SINCE)
    got = reported(con)
    assert len(expected) > 500  # a world with history, not an empty comparison
    assert sorted(got - expected)[:5] == sorted(expected - got)[:5] == []


@pytest.mark.parametrize("seed", [101, 202, 303, 404, 505, 606])
def test_every_customer_month_is_exact_across_seeds_in_memory(seed):
    world = world_of(seed)
    con = land_in_memory(world)
    assert_exact(con, world, {"fx_rates": FX}, TruthOptions(fx=tuple(sorted(FX.items()))))
    # the same world later: renewals, changes and payments since, landed afresh
    world.advance(45 * 86400)
    assert_exact(land_in_memory(world), world, {"fx_rates": FX},
                 TruthOptions(fx=tuple(sorted(FX.items()))))  # fmt: skip


OPTIONS = [
    {"include_open_invoices": False},
    {"include_metered": True},
    {"subtract_discounts": False},
    {"churn_recognition": "canceled_at"},
    {"timezone": "America/Los_Angeles"},
    {"currency": "eur", "fx": {"usd": 0.9, "gbp": 1.2, "jpy": 0.0061}},
]


@pytest.mark.parametrize("option", OPTIONS, ids=lambda option: next(iter(option)))
def test_every_reporting_option_is_exact_in_memory(option):
    fx = option.get("fx", FX)
    rest = {key: value for key, value in option.items() if key != "fx"}
    world = world_of(4, customers=150)  # has taxed, discounted classic prorations
    con = land_in_memory(world)
    truth = TruthOptions(fx=tuple(sorted(fx.items())), **rest)
    assert_exact(con, world, {"fx_rates": fx, **rest}, truth)


def test_a_wrong_row_is_caught_in_memory():
    """Positive control: the comparison sees a single line's cent."""
    world = world_of(101)
    con = land_in_memory(world)
    build.build(con, Config(reporting=ReportingSettings(fx_rates=FX)))
    (line_id,) = con.execute(
        "SELECT line_id FROM report.mrr_lines WHERE valuation = 'interval' AND currency = 'usd' "
        "AND recurring_interval = 'month' AND period_start >= '2024-06-01' ORDER BY line_id LIMIT 1"
    ).fetchone()
    con.execute("UPDATE stripe.invoice_lines SET amount = amount + 1 WHERE id = ?", [line_id])
    with pytest.raises(AssertionError):
        assert_exact(con, world, {"fx_rates": FX}, TruthOptions(fx=tuple(sorted(FX.items()))))
