"""Cash events in the sandbox and through the sync: customer balances, credit notes and
refunds have Stripe's amounts and events, land as the sync fetches them, and never move
MRR (docs/metrics.md, "Cash events")."""

from __future__ import annotations

import pytest
from sync_helpers import cli, query, snapshot, write_config
from test_metrics_truth import expected_monthly, land_world, reported_monthly, truth_by_customer

from nrr_sync import build
from nrr_sync.config import Config, ReportingSettings
from nrr_sync.sandbox.generator import SandboxOptions, Scenario, generate

DAY = 86400
NOW = "2024-08-15T00:00:00Z"


def options(*scenarios, now=NOW, **kw) -> SandboxOptions:
    return SandboxOptions(customers=0, start="2024-01", now=now, archetypes=False,
                          scenarios=scenarios, **kw)  # fmt: skip


def cash_scenarios(with_cash: bool = True) -> list[Scenario]:
    """Four customers; ``with_cash=False`` is the same lives without any cash event."""
    refunded = Scenario("2024-01-01", name="Refunded")
    sub = refunded.subscribe("2024-01-01", [("example_basic_month_usd", 1)])
    balance = Scenario("2024-01-01", name="Balance")
    balance.subscribe("2024-01-01", [("example_basic_month_usd", 1)])
    goodwill = Scenario("2024-01-01", name="Goodwill")
    goodwill_sub = goodwill.subscribe("2024-01-01", [("example_pro_month_usd", 1)])
    goodwill.fail_payment("2024-03-01", goodwill_sub, "recover", days=5)
    annual = Scenario("2024-01-01", name="Annual")
    annual_sub = annual.subscribe("2024-01-01", [("example_annual_year_usd", 1)])
    if with_cash:
        refunded.credit_note("2024-02-10", sub, None, "refund", "product_unsatisfactory")
        refunded.credit_note("2024-04-03", sub, 3000, "customer_balance")
        balance.credit_balance("2024-02-20", -15000)  # pays March in full, April in part
        goodwill.credit_note("2024-03-03", goodwill_sub, 5000)  # on the open invoice
        annual.credit_note("2024-01-20", annual_sub, 40000, "out_of_band")
    return [refunded, balance, goodwill, annual]


@pytest.fixture(scope="module")
def world():
    return generate(options(*cash_scenarios()))


def by_name(world):
    acct = world.accounts[world.account_ids[0]]
    return {c.name: c for c in acct.customers}


def invoices_of(world, customer) -> list[dict]:
    account = world.account_ids[0]
    found = [i for i in world.objects(account, "invoices") if i["customer"] == customer.id]
    return sorted(found, key=lambda i: i["created"])


def notes_of(world, customer) -> list[dict]:
    account = world.account_ids[0]
    found = [n for n in world.objects(account, "credit_notes") if n["customer"] == customer.id]
    return sorted(found, key=lambda n: n["created"])


def test_a_full_refund_and_a_credit_to_the_balance_after_payment(world):
    customer = by_name(world)["Refunded"]
    invoices = invoices_of(world, customer)
    february, april = invoices[1], invoices[3]
    full, partial = notes_of(world, customer)
    assert (full["invoice"], full["type"], full["amount"], full["pre_payment_amount"],
            full["post_payment_amount"]) == (february["id"], "post_payment", 10000, 0,
                                             10000)  # fmt: skip
    assert full["refunds"][0]["amount_refunded"] == 10000
    assert full["refunds"][0]["refund"].startswith("re_")
    assert full["customer_balance_transaction"] is None
    assert [line["type"] for line in full["lines"]["data"]] == ["invoice_line_item"]
    assert full["lines"]["data"][0]["invoice_line_item"] == february["lines"]["data"][0]["id"]
    assert full["number"] == f"{february['number']}-CN-01"
    # the invoice stays paid, its lines untouched; only the credit-note amount says it
    assert february["status"] == "paid" and february["amount_paid"] == 10000
    assert february["post_payment_credit_notes_amount"] == 10000
    assert partial["invoice"] == april["id"] and partial["refunds"] == []
    assert partial["customer_balance_transaction"].startswith("cbtxn_")
    assert [line["type"] for line in partial["lines"]["data"]] == ["custom_line_item"]
    # the 30.00 credit pays part of May
    may = invoices[4]
    assert (may["starting_balance"], may["amount_due"], may["amount_paid"], may["total"],
            may["ending_balance"]) == (-3000, 7000, 7000, 10000, 0)  # fmt: skip


def test_a_balance_pays_invoices_wholly_then_partly(world):
    customer = by_name(world)["Balance"]
    march, april, may = invoices_of(world, customer)[2:5]
    assert (march["starting_balance"], march["amount_due"], march["amount_paid"],
            march["ending_balance"], march["status"]) == (-15000, 0, 0, -5000, "paid")  # fmt: skip
    assert march["attempt_count"] == 0  # nothing to charge
    assert (april["starting_balance"], april["amount_due"], april["amount_paid"],
            april["ending_balance"]) == (-5000, 5000, 5000, 0)  # fmt: skip
    assert may["starting_balance"] == 0 and may["amount_paid"] == 10000
    account = world.account_ids[0]
    customer_json = next(c for c in world.objects(account, "customers") if c["id"] == customer.id)
    assert customer_json["balance"] == 0


def test_a_credit_note_on_an_open_invoice_lowers_what_is_due(world):
    customer = by_name(world)["Goodwill"]
    march = invoices_of(world, customer)[2]
    (note,) = notes_of(world, customer)
    assert (note["type"], note["pre_payment_amount"], note["post_payment_amount"],
            note["refunds"]) == ("pre_payment", 5000, 0, [])  # fmt: skip
    assert march["status"] == "paid"  # recovered after the credit
    assert (march["total"], march["pre_payment_credit_notes_amount"], march["amount_due"],
            march["amount_paid"]) == (20000, 5000, 15000, 15000)  # fmt: skip


def test_a_credit_settled_out_of_band(world):
    customer = by_name(world)["Annual"]
    (note,) = notes_of(world, customer)
    assert (note["out_of_band_amount"], note["refunds"], note["type"]) == (
        40000, [], "post_payment")  # fmt: skip


def test_cash_events_leave_the_truth_unchanged():
    with_cash = generate(options(*cash_scenarios(True))).truth()
    without = generate(options(*cash_scenarios(False))).truth()
    assert with_cash == without
    assert len(with_cash) == 4 * 8


def test_report_equals_truth_and_flags_invoices_credited_by_more_than_half(tmp_path, world):
    con = land_world(tmp_path / "nrr.duckdb", world)
    build.build(con, Config(reporting=ReportingSettings(fx_rates=dict(world.options.fx))))
    assert reported_monthly(con) == expected_monthly(truth_by_customer(world), since="2024-01")
    findings = con.execute(
        "SELECT invoice_id, severity, detail FROM report.data_quality "
        "WHERE \"check\" = 'invoice_mostly_credited'"
    ).fetchall()
    refunded = by_name(world)["Refunded"]
    february = invoices_of(world, refunded)[1]
    # the annual invoice is credited 400 of 1,200 and the goodwill renewal 50 of 200: not flagged
    assert [(f[0], f[1]) for f in findings] == [(february["id"], "info")]
    assert "10000 of the invoice total 10000" in findings[0][2]
    landed = con.execute(
        "SELECT type, amount, pre_payment_amount, post_payment_amount, refund_amount, "
        "out_of_band_amount, customer_balance_transaction_id IS NOT NULL "
        "FROM stripe.credit_notes ORDER BY created"
    ).fetchall()
    assert landed == [
        ("post_payment", 40000, 0, 40000, 0, 40000, False),
        ("post_payment", 10000, 0, 10000, 10000, None, False),
        ("pre_payment", 5000, 5000, 0, 0, None, False),
        ("post_payment", 3000, 0, 3000, 0, None, True),
    ]


def test_random_customers_get_cash_events_and_the_report_still_equals_the_truth(tmp_path):
    world = generate(SandboxOptions(seed=13, customers=300, archetypes=False, start="2023-01",
                                    now="2025-03-18T09:30:00Z"))  # fmt: skip
    account = world.account_ids[0]
    notes = list(world.objects(account, "credit_notes"))
    kinds = {n["type"] for n in notes}
    assert kinds == {"pre_payment", "post_payment"}
    invoices = list(world.objects(account, "invoices"))
    assert any(i["starting_balance"] < 0 and i["amount_due"] == 0 for i in invoices)
    assert any(0 < i["amount_paid"] < i["total"] for i in invoices)
    con = land_world(tmp_path / "nrr.duckdb", world)
    build.build(con, Config(reporting=ReportingSettings(fx_rates=dict(world.options.fx))))
    expected = expected_monthly(truth_by_customer(world))
    reported = reported_monthly(con)
    assert sorted(reported - expected)[:10] == sorted(expected - reported)[:10] == []


def test_the_server_lists_and_retrieves_credit_notes(sandbox_factory, world):
    import stripe

    sandbox = sandbox_factory(world=world)
    client = stripe.StripeClient(sandbox.api_key, base_addresses={"api": sandbox.url})
    notes = client.v1.credit_notes.list({"limit": 2})
    assert len(notes.data) == 2 and notes.has_more
    assert notes.data[0].created >= notes.data[1].created
    everything = list(client.v1.credit_notes.list({"limit": 100}).data)
    assert len(everything) == 4
    refunded = by_name(world)["Refunded"]
    mine = client.v1.credit_notes.list({"customer": refunded.id})
    assert {n.customer for n in mine.data} == {refunded.id} and len(mine.data) == 2
    first = everything[-1]
    by_invoice = client.v1.credit_notes.list({"invoice": first.invoice})
    assert [n.id for n in by_invoice.data] == [first.id]
    window = client.v1.credit_notes.list({"created": {"lt": first.created + 1}})
    assert [n.id for n in window.data] == [first.id]
    again = client.v1.credit_notes.retrieve(first.id)
    assert isinstance(again, stripe.CreditNote) and again.amount == first.amount
    with pytest.raises(stripe.InvalidRequestError, match="No such credit_note"):
        client.v1.credit_notes.retrieve("cn_missing")


def test_a_credit_note_issued_after_the_backfill_lands_through_events(tmp_path,
                                                                      sandbox_factory):  # fmt: skip
    scenario = Scenario("2024-01-01", name="Later credit")
    sub = scenario.subscribe("2024-01-01", [("example_basic_month_usd", 1)])
    scenario.credit_note("2024-08-16T12:00:00Z", sub, None, "customer_balance")
    sandbox = sandbox_factory(world=generate(options(scenario)))
    config = write_config(tmp_path, reporting={"fx_rates": {"eur": 1.1, "gbp": 1.3,
                                                            "jpy": 0.0067}})  # fmt: skip
    db = tmp_path / "nrr.duckdb"
    assert cli(config, ["backfill", "--since", "2024-01"], sandbox).exit_code == 0
    assert query(db, "SELECT count(*) FROM stripe.credit_notes") == [(0,)]
    mrr_before = query(db, "SELECT month, mrr FROM report.customer_mrr_monthly ORDER BY month")

    sandbox.advance(2 * DAY)
    result = cli(config, ["sync"], sandbox)

    assert result.exit_code == 0, result.output
    assert query(db, "SELECT type, amount FROM stripe.credit_notes") == [("post_payment", 10000)]
    assert query(db, "SELECT balance FROM stripe.customers") == [(-10000,)]
    assert query(db, "SELECT post_payment_credit_notes_amount FROM stripe.invoices "
                     "WHERE post_payment_credit_notes_amount > 0") == [(10000,)]  # fmt: skip
    mrr_after = query(db, "SELECT month, mrr FROM report.customer_mrr_monthly ORDER BY month")
    assert mrr_after[: len(mrr_before)] == mrr_before  # cash, not MRR
    synced = snapshot(db)
    (tmp_path / "fresh").mkdir()
    fresh_config = write_config(tmp_path / "fresh")
    assert cli(fresh_config, ["backfill", "--since", "2024-01"], sandbox).exit_code == 0
    assert synced == snapshot(tmp_path / "fresh" / "nrr.duckdb")
