"""Billing Meters: metered prices on a meter, usage billed in arrears beside licensed items;
left out of MRR by default (listed in data quality), valued over the period it measured
with include_metered (docs/metrics.md, "Metered usage")."""

from __future__ import annotations

import pytest
from test_metrics_truth import expected_monthly, land_world, reported_monthly, truth_by_customer

from nrr_sync import build
from nrr_sync.config import Config, ReportingSettings
from nrr_sync.sandbox.generator import SandboxOptions, Scenario, generate, parse_time
from nrr_sync.sandbox.truth import TruthOptions

FX = {"eur": 1.1, "gbp": 1.3, "jpy": 0.0067}


@pytest.fixture(scope="module")
def world():
    s = Scenario("2024-01-01", name="Metered")
    sub = s.subscribe("2024-01-01", [("example_basic_month_usd", 1), ("api_usage_month_usd", 1),
                                     ("events_month_usd", 1)])  # fmt: skip
    s.cancel("2024-05-10", sub, "period_end")
    return generate(SandboxOptions(customers=0, start="2024-01", now="2024-07-15T00:00:00Z",
                                   archetypes=False, scenarios=(s,)))  # fmt: skip


def test_metered_prices_name_their_meter_and_a_fractional_unit_amount(world, stripe_fixtures):
    account = world.account_ids[0]
    prices = {p["lookup_key"]: p for p in world.objects(account, "prices")}
    events, calls = prices["events_month_usd"], prices["api_usage_month_usd"]
    assert (events["unit_amount"], events["unit_amount_decimal"]) == (None, "0.05")
    assert (calls["unit_amount"], calls["unit_amount_decimal"]) == (2, "2")
    meters = {m["id"]: m for m in world.objects(account, "billing_meters")}
    for price in (events, calls):
        assert price["recurring"]["usage_type"] == "metered"
        meter = meters[price["recurring"]["meter"]]
        assert set(meter) == set(stripe_fixtures["billing.meter"])
        assert meter["object"] == "billing.meter" and meter["status"] == "active"


def test_usage_is_billed_in_arrears_and_on_the_final_invoice(world):
    account = world.account_ids[0]
    invoices = sorted(world.objects(account, "invoices"), key=lambda i: i["created"])
    metered = [(inv["created"], line) for inv in invoices for line in inv["lines"]["data"]
               if line["pricing"]["price_details"]["price"].startswith("price_")
               and "Events" in line["description"]]  # fmt: skip
    created, first = metered[0]
    assert (first["amount"], first["quantity"]) == (0, 0)  # the creation invoice
    feb = next(line for t, line in metered if t == parse_time("2024-02-01"))
    assert feb["period"] == {"start": parse_time("2024-01-01"), "end": parse_time("2024-02-01")}
    assert feb["amount"] == (feb["quantity"] * 5 + 50) // 100  # 0.05 cents each, half up
    assert feb["pricing"]["unit_amount_decimal"] == "0.05"
    final = invoices[-1]  # the period-end cancellation bills June's usage
    assert final["created"] == parse_time("2024-06-01")
    assert {line["period"]["start"] for line in final["lines"]["data"]} == {
        parse_time("2024-05-01")
    }
    assert len(final["lines"]["data"]) == 2


@pytest.mark.parametrize("include_metered", [False, True])
def test_report_equals_truth_with_and_without_metered(tmp_path, world, include_metered):
    random_world = generate(SandboxOptions(seed=23, customers=120, start="2023-06",
                                           now="2025-02-03T18:00:00Z"))  # fmt: skip
    for n, w in enumerate((world, random_world)):
        con = land_world(tmp_path / f"nrr{n}.duckdb", w)
        settings = ReportingSettings(fx_rates=FX, include_metered=include_metered)
        build.build(con, Config(reporting=settings))
        truth = truth_by_customer(w, TruthOptions(fx=tuple(sorted(FX.items())),
                                                  include_metered=include_metered))  # fmt: skip
        expected, reported = expected_monthly(truth), reported_monthly(con)
        assert sorted(reported - expected)[:10] == sorted(expected - reported)[:10] == []
        sql = 'SELECT count(*) FROM report.data_quality WHERE "check" = ?'
        flagged = con.execute(sql, ["metered_usage_excluded"]).fetchone()[0]
        assert (flagged > 0) is (not include_metered)
    (account, customer_id), months = next(iter(truth_by_customer(world).items()))
    assert months["2024-03-01"] == 100
    with_usage = truth_by_customer(world, TruthOptions(include_metered=True))
    assert with_usage[(account, customer_id)]["2024-03-01"] > 100
