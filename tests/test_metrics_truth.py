"""Against the sandbox's ground truth: every customer-month of report.customer_mrr_monthly
equals the generator's own record of the MRR defined in docs/metrics.md to the cent, and
NRR / GRR recomputed
from that truth in Python equal report.retention. A disagreement is a bug in one of the
two; never loosen the comparison."""

from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal

import duckdb
import pytest

from nrr_sync import build, load
from nrr_sync.config import Config, ReportingSettings
from nrr_sync.kinds import KINDS
from nrr_sync.sandbox.generator import SandboxOptions, generate
from nrr_sync.sandbox.truth import TruthOptions

SINCE = "2024-01"


def land_world(path, world, since=SINCE):
    con = duckdb.connect(str(path))
    build.migrate(con)
    for account_id in world.account_ids:
        for kind in KINDS:  # every kind the sync fetches
            load.load_objects(con, account_id, kind, world.objects(account_id, kind.table))
    as_of = datetime.fromtimestamp(world.now, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    # As a finished backfill leaves it: a report reads only a finished backfill's data.
    for key, value in (
        ("backfill:status", "done"),
        ("report:since", since),
        ("report:as_of", as_of),
    ):
        con.execute("INSERT OR REPLACE INTO meta.sync_state VALUES (?, ?, now())", [key, value])
    return con


def truth_by_customer(world, options=None):
    """{(account, customer): {'YYYY-MM-01': mrr}} with every month from the first > 0."""
    truth = defaultdict(dict)
    for account_id, customer_id, month, mrr in world.truth(options):
        truth[(account_id, customer_id)][month] = mrr
    return truth


def expected_monthly(truth, since=SINCE):
    """The truth restricted to the report's months: from max(first MRR > 0, since)."""
    rows = set()
    for (account_id, customer_id), months in truth.items():
        positive = [m for m, mrr in months.items() if mrr > 0]
        if not positive:
            continue
        for month, mrr in months.items():
            if month >= min(positive) and month >= f"{since}-01":
                rows.add((account_id, customer_id, month, mrr))
    return rows


def reported_monthly(con):
    return set(
        con.execute(
            "SELECT account_id, customer_id, strftime(month, '%Y-%m-%d'), mrr "
            "FROM report.customer_mrr_monthly"
        ).fetchall()
    )


@pytest.mark.parametrize("seed", [3, 11, 29])
def test_customer_mrr_equals_the_sandbox_truth(tmp_path, seed):
    options = SandboxOptions(seed=seed, customers=60, start="2023-01", now="2025-03-18T09:30:00Z",
                             accounts=2 if seed == 11 else 1)  # fmt: skip
    world = generate(options)
    con = land_world(tmp_path / "nrr.duckdb", world)
    build.build(con, Config(reporting=ReportingSettings(fx_rates=dict(options.fx))))
    expected = expected_monthly(truth_by_customer(world))
    reported = reported_monthly(con)
    assert len(expected) > 500
    assert sorted(reported - expected)[:10] == sorted(expected - reported)[:10] == []


@pytest.mark.parametrize(
    "option",
    [
        {"include_open_invoices": False},
        {"include_metered": True},
        {"subtract_discounts": False},
        {"churn_recognition": "canceled_at"},
        {"timezone": "America/New_York"},
    ],
)
def test_customer_mrr_equals_the_truth_under_each_option(tmp_path, option):
    options = SandboxOptions(seed=5, customers=40, start="2023-06", now="2025-02-03T18:00:00Z")
    world = generate(options)
    con = land_world(tmp_path / "nrr.duckdb", world)
    fx = dict(options.fx)
    build.build(con, Config(reporting=ReportingSettings(fx_rates=fx, **option)))
    truth = truth_by_customer(world, TruthOptions(fx=tuple(sorted(fx.items())), **option))
    expected, reported = expected_monthly(truth), reported_monthly(con)
    assert sorted(reported - expected)[:10] == sorted(expected - reported)[:10] == []


def test_retention_equals_nrr_and_grr_recomputed_from_the_truth(tmp_path):
    options = SandboxOptions(seed=17, customers=80, start="2023-01", now="2025-06-10T00:00:00Z")
    world = generate(options)
    con = land_world(tmp_path / "nrr.duckdb", world)
    build.build(con, Config(reporting=ReportingSettings(fx_rates=dict(options.fx))))
    truth = truth_by_customer(world)
    months = sorted({m for per_customer in truth.values() for m in per_customer})

    def shift(month, k):
        index = int(month[:4]) * 12 + int(month[5:7]) - 1 - k
        return f"{index // 12:04d}-{index % 12 + 1:02d}-01"

    compared = 0
    for month in (m for m in months if m >= f"{SINCE}-01"):
        for k in (1, 3, 12):
            start_month = shift(month, k)
            if start_month < f"{SINCE}-01":
                continue
            cohort = [c for c in truth.values() if c.get(start_month, 0) > 0]
            mrr_start = sum(c[start_month] for c in cohort)
            mrr_end = sum(c.get(month, Decimal(0)) for c in cohort)
            capped = sum(min(c[start_month], c.get(month, Decimal(0))) for c in cohort)
            retained = sum(1 for c in cohort if c.get(month, 0) > 0)
            row = con.execute(
                "SELECT customers_start, customers_retained, mrr_start, mrr_end, "
                "mrr_retained_capped, nrr, grr FROM report.retention WHERE month = ?::DATE "
                "AND window_months = ? AND segment_type = 'all'",
                [month, k],
            ).fetchone()
            assert row[:5] == (len(cohort), retained, mrr_start, mrr_end, capped), (month, k)
            assert row[5] == pytest.approx(float(mrr_end / mrr_start))
            assert row[6] == pytest.approx(float(capped / mrr_start))
            compared += 1
    assert compared > 30

    # Each customer falls in exactly one segment of each type, so each type's segments add
    # up to the 'all' row, the one checked against the truth above.
    totals = "customers_start, customers_retained, mrr_start, mrr_end, mrr_retained_capped"
    by_type = con.execute(
        f"""
        WITH type_totals AS (
            SELECT month, window_months, segment_type,
                {", ".join(f"sum({column}) AS {column}" for column in totals.split(", "))}
            FROM report.retention
            GROUP BY ALL
        )
        SELECT
            segment_type,
            count(*) FILTER (WHERE ({totals}) IS DISTINCT FROM
                (SELECT ({totals}) FROM type_totals AS everyone
                 WHERE everyone.segment_type = 'all' AND everyone.month = type_totals.month
                     AND everyone.window_months = type_totals.window_months)),
            count(*) FILTER (WHERE customers_retained < customers_start)
        FROM type_totals
        GROUP BY segment_type
        ORDER BY segment_type
        """
    ).fetchall()
    # (type, rows that do not add up, rows where some customers churned: the counts differ)
    assert [row[:2] for row in by_type] == [
        ("all", 0), ("cohort", 0), ("country", 0), ("currency", 0), ("product", 0),
    ]  # fmt: skip
    assert all(churned > 10 for _, _, churned in by_type)
