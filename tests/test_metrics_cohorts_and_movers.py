"""report.cohort_mrr and report.top_movements, recomputed in Python from the tables they
read (report.customer_mrr_monthly, report.mrr_movements, stripe.customers) for a built
sandbox account with two Stripe accounts."""

from collections import defaultdict
from datetime import date

import pytest
from test_metrics_truth import land_world

from nrr_sync import build
from nrr_sync.config import Config, ReportingSettings
from nrr_sync.sandbox.generator import SandboxOptions, generate


@pytest.fixture(scope="module")
def con(tmp_path_factory):
    options = SandboxOptions(seed=11, customers=80, start="2023-01", now="2025-03-18T09:30:00Z",
                             accounts=2)  # fmt: skip
    path = tmp_path_factory.mktemp("models") / "nrr.duckdb"
    connection = land_world(path, generate(options))
    build.build(connection, Config(reporting=ReportingSettings(fx_rates=dict(options.fx))))
    yield connection
    connection.close()


def months_between(first: date, later: date) -> int:
    return (later.year - first.year) * 12 + later.month - first.month


def test_cohort_mrr_follows_each_first_paying_month(con):
    history = con.execute(
        "SELECT account_id, customer_id, month, mrr FROM report.customer_mrr_monthly"
    ).fetchall()
    cohort_of = {}
    for account, customer, month, mrr in history:
        if mrr > 0:
            key = (account, customer)
            cohort_of[key] = min(cohort_of.get(key, month), month)
    expected = defaultdict(lambda: [0, 0])  # (cohort, month) -> [customers, mrr]
    for account, customer, month, mrr in history:
        cohort = cohort_of.get((account, customer))
        if cohort is not None and month >= cohort:
            expected[(cohort, month)][0] += mrr > 0
            expected[(cohort, month)][1] += mrr
    rows = con.execute(
        "SELECT cohort, month, age, cohort_customers, cohort_mrr, customers, mrr, "
        "mrr_retention, logo_retention FROM report.cohort_mrr"
    ).fetchall()
    assert len(rows) == len(expected) > 100
    churned_and_back = 0
    for cohort, month, age, cohort_customers, cohort_mrr, customers, mrr, nrr, logos in rows:
        assert [customers, mrr] == expected[(cohort, month)], (cohort, month)
        assert age == months_between(cohort, month)
        assert [cohort_customers, cohort_mrr] == expected[(cohort, cohort)]
        assert nrr == pytest.approx(float(mrr / cohort_mrr))
        assert logos == pytest.approx(customers / cohort_customers)
        churned_and_back += customers < cohort_customers
    assert churned_and_back > 0  # cohorts do lose customers: the ratios are not all 1


def test_top_movements_are_the_largest_of_the_last_twelve_complete_months(con):
    last_complete = con.execute(
        "SELECT max(month) FROM report.mrr_summary WHERE month_complete"
    ).fetchone()[0]
    first = date(last_complete.year - 1, last_complete.month, 1)
    first = date(first.year + (first.month == 12), first.month % 12 + 1, 1)  # 11 months back
    names = {
        (account, customer): name or email
        for account, customer, name, email in con.execute(
            "SELECT account_id, id, nullif(name, ''), nullif(email, '') FROM stripe.customers"
        ).fetchall()
    }
    movements = con.execute(
        "SELECT movement, account_id, customer_id, month, mrr_before, mrr_after, amount "
        "FROM report.mrr_movements WHERE month BETWEEN ? AND ?",
        [first, last_complete],
    ).fetchall()
    expected = []
    for kind in ("churn", "contraction", "expansion", "new", "reactivation"):
        chosen = sorted(
            (m for m in movements if m[0] == kind),
            key=lambda m: (-abs(m[6]), -m[3].toordinal(), m[1], m[2]),
        )[:10]
        for rank, (_, account, customer, month, before, after, amount) in enumerate(chosen, 1):
            expected.append(
                (kind, rank, account, customer, names.get((account, customer)), month, before,
                 after, amount, first, last_complete)
            )  # fmt: skip
    actual = con.execute("SELECT * FROM report.top_movements ORDER BY movement, rank").fetchall()
    assert actual == expected
    kinds = {row[0] for row in actual}
    assert {"churn", "contraction", "expansion"} <= kinds
    assert len({row[2] for row in actual}) == 2  # both Stripe accounts take part
