"""What real accounts bring, end to end: the sandbox serves it over HTTP, the CLI lands it
with the expansions the rules need, and the report equals the sandbox's truth to the cent,
after a backfill and after `advance` + `sync` (docs/metrics.md, docs/tables.md)."""

from __future__ import annotations

import json

from sync_helpers import cli, query, write_config
from test_metrics_truth import expected_monthly, truth_by_customer

from nrr_sync.sandbox.generator import SandboxOptions, Scenario, generate

DAY = 86400
SINCE = "2024-01"


def reported(db) -> set[tuple]:
    return set(query(db, "SELECT account_id, customer_id, strftime(month, '%Y-%m-%d'), mrr "
                         "FROM report.customer_mrr_monthly"))  # fmt: skip


def assert_report_equals_truth(db, world) -> None:
    expected = expected_monthly(truth_by_customer(world), since=SINCE)
    got = reported(db)
    assert expected
    assert sorted(got - expected)[:10] == sorted(expected - got)[:10] == []


def multi_currency_scenarios() -> tuple[Scenario, ...]:
    eur = Scenario("2024-02-03T10:00:00Z", country="DE", currency="eur", name="EUR on usd prices")
    sub = eur.subscribe(eur.created, [("pro_month_usd", 1), ("seats_month_usd", 3)])
    eur.change("2024-03-19T08:00:00Z", sub, [("pro_month_usd", 1), ("seats_month_usd", 5)])
    eur.change("2024-04-08T15:00:00Z", sub, [("business_month_usd", 1), ("seats_month_usd", 5)],
               "always_invoice")  # fmt: skip
    eur.change("2024-06-12T09:00:00Z", sub, [("business_month_usd", 1), ("seats_month_usd", 9)])
    gbp = Scenario("2024-02-20T12:00:00Z", country="GB", currency="gbp", name="GBP tiered")
    sub = gbp.subscribe(gbp.created, [("platform_month_usd", 8)])
    gbp.change("2024-04-02T11:00:00Z", sub, [("platform_month_usd", 23)], "always_invoice")
    gbp.change("2024-06-14T11:00:00Z", sub, [("platform_month_usd", 61)])
    return eur, gbp


def test_multi_currency_prices_land_and_report_exactly_before_and_after_advance(
    tmp_path, sandbox_factory
):
    options = SandboxOptions(customers=0, start="2024-01", now="2024-06-01T00:00:00Z",
                             archetypes=False, scenarios=multi_currency_scenarios())  # fmt: skip
    sandbox = sandbox_factory(world=generate(options))
    config = write_config(tmp_path)
    db = tmp_path / "nrr.duckdb"
    assert cli(config, ["backfill", "--since", SINCE], sandbox).exit_code == 0

    lines = query(db, "SELECT l.currency, p.currency, l.proration FROM stripe.invoice_lines l "
                      "JOIN stripe.prices p ON p.id = l.price_id")  # fmt: skip
    assert {(line, price) for line, price, _ in lines} == {("eur", "usd"), ("gbp", "usd")}
    assert any(proration for *_, proration in lines)
    (options_json,) = query(db, "SELECT currency_options FROM stripe.prices "
                                "WHERE raw->>'lookup_key' = 'platform_month_usd'")[0]  # fmt: skip
    assert json.loads(options_json)["gbp"]["tiers"][0]["unit_amount"] == 1590
    valuations = {v for (v,) in query(db, "SELECT DISTINCT valuation FROM report.mrr_lines")}
    assert "full_price" in valuations and "period_ratio" not in valuations
    assert_report_equals_truth(db, sandbox.world)

    sandbox.advance(20 * DAY)  # the June changes happen, invoiced at once or pending
    assert cli(config, ["sync"], sandbox).exit_code == 0
    assert_report_equals_truth(db, sandbox.world)
