"""Subscription schedules, cancel_at a date that is not a period end, and paused collection:
the sandbox makes them in Stripe's shapes, its truth follows docs/metrics.md, and the report
equals it to the cent, under both churn_recognition options, and through incremental sync."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sync_helpers import cli, query, snapshot, write_config
from test_metrics_truth import expected_monthly, land_world, reported_monthly, truth_by_customer
from test_sync_incremental import without_deleted

from nrr_sync import build
from nrr_sync.config import Config, ReportingSettings
from nrr_sync.sandbox.generator import SandboxOptions, Scenario, generate, parse_time
from nrr_sync.sandbox.truth import TruthOptions

DAY = 86400
FX = {"eur": 1.1, "gbp": 1.3, "jpy": 0.0067}
BASIC, PRO, SEAT = "example_basic_month_usd", "example_pro_month_usd", "example_seat_month_usd"


def options(*scenarios, now="2024-12-15T00:00:00Z", **kw) -> SandboxOptions:
    return SandboxOptions(customers=0, start="2024-01", now=now, archetypes=False,
                          scenarios=scenarios, **kw)  # fmt: skip


def contracts() -> list[Scenario]:
    ramp = Scenario("2024-01-01", name="Ramp")  # $100 + 2 seats x $50, 4 seats from March
    sub = ramp.subscribe("2024-01-01", [(BASIC, 1), (SEAT, 2)])
    ramp.schedule("2024-01-10", sub, [(2, [(BASIC, 1), (SEAT, 4)], "none")], end=4)
    term = Scenario("2024-01-01", name="Term")  # up mid-February with prorations, down
    sub = term.subscribe("2024-01-01", [(BASIC, 1)])  # mid-April without; ends July 1
    term.schedule("2024-01-05", sub, [("2024-02-16", [(PRO, 1)], "create_prorations"),
                                      ("2024-04-16", [(BASIC, 1)], "none")],
                  end=6, end_behavior="cancel")  # fmt: skip
    later = Scenario("2024-01-01", name="Later period")  # cancel_at in the next period
    sub = later.subscribe("2024-01-01", [(BASIC, 1)])
    later.cancel_at("2024-02-05", sub, "2024-03-20")
    credited = Scenario("2024-01-01", name="Credited")  # inside the period, with the credit
    sub = credited.subscribe("2024-01-01", [(BASIC, 1)])
    credited.cancel_at("2024-01-10", sub, "2024-01-20")
    uncredited = Scenario("2024-01-01", name="Uncredited")  # inside the period, none
    sub = uncredited.subscribe("2024-01-01", [(BASIC, 1)])
    uncredited.cancel_at("2024-01-10", sub, "2024-01-20", proration="none")
    paused = []
    for behavior in ("void", "mark_uncollectible", "keep_as_draft"):
        s = Scenario("2024-01-01", name=f"Paused {behavior}")
        sub = s.subscribe("2024-01-01", [(BASIC, 1)])
        s.pause("2024-03-10", sub, behavior, resumes_at="2024-05-10")
        paused.append(s)
    return [ramp, term, later, credited, uncredited, *paused]


@pytest.fixture(scope="module")
def world():
    return generate(options(*contracts()))


def customer(world, name):
    acct = world.accounts[world.account_ids[0]]
    return next(c for c in acct.customers if c.name == name)


def objects_of(world, kind, customer_id):
    found = [o for o in world.objects(world.account_ids[0], kind) if o["customer"] == customer_id]
    return sorted(found, key=lambda o: o["created"])


def months(world, name, **option):
    truth = truth_by_customer(world, TruthOptions(fx=tuple(sorted(FX.items())), **option))
    rows = truth.get((world.account_ids[0], customer(world, name).id), {})
    return {month[:7]: float(mrr) for month, mrr in rows.items() if month <= "2024-08-01"}


def test_a_ramp_at_a_renewal_bills_the_new_quantity_and_releases(world):
    ramp = customer(world, "Ramp")
    (schedule,) = objects_of(world, "subscription_schedules", ramp.id)
    (sub,) = objects_of(world, "subscriptions", ramp.id)
    assert (schedule["status"], schedule["end_behavior"], schedule["subscription"],
            schedule["released_subscription"], schedule["current_phase"]) == (
        "released", "release", None, sub["id"], None)  # fmt: skip
    assert schedule["released_at"] == parse_time("2024-05-01")
    assert [(p["start_date"], p["end_date"]) for p in schedule["phases"]] == [
        (parse_time("2024-01-01"), parse_time("2024-03-01")),
        (parse_time("2024-03-01"), parse_time("2024-05-01"))]  # fmt: skip
    assert [i["quantity"] for i in schedule["phases"][1]["items"]] == [1, 4]
    assert sub["schedule"] is None and sub["status"] == "active"
    march = next(i for i in objects_of(world, "invoices", ramp.id)
                 if i["created"] == parse_time("2024-03-01"))  # fmt: skip
    assert [(line["quantity"], line["amount"]) for line in march["lines"]["data"]] == [
        (1, 10000), (4, 20000)]  # fmt: skip
    lines = [line for i in objects_of(world, "invoices", ramp.id) for line in i["lines"]["data"]]
    assert not any(line["parent"][line["parent"]["type"]]["proration"] for line in lines)
    mrr = months(world, "Ramp")
    assert (mrr["2024-01"], mrr["2024-02"], mrr["2024-03"], mrr["2024-08"]) == (200, 200, 300, 300)


def test_a_schedule_with_a_change_inside_a_period_then_cancel_at_its_end(world):
    term = customer(world, "Term")
    (schedule,) = objects_of(world, "subscription_schedules", term.id)
    (sub,) = objects_of(world, "subscriptions", term.id)
    july = parse_time("2024-07-01")
    assert (schedule["status"], schedule["completed_at"], schedule["end_behavior"]) == (
        "completed", july, "cancel")  # fmt: skip
    assert [p["proration_behavior"] for p in schedule["phases"]] == [
        "create_prorations", "create_prorations", "none"]  # fmt: skip
    assert (sub["status"], sub["cancel_at"], sub["ended_at"], sub["schedule"]) == (
        "canceled", july, july, None)  # fmt: skip
    prorations = [line["amount"] for i in objects_of(world, "invoices", term.id)
                  for line in i["lines"]["data"]
                  if line["parent"][line["parent"]["type"]]["proration"]]  # fmt: skip
    assert len(prorations) == 2 and prorations[0] < 0 < prorations[1]  # February only
    for option in ({}, {"churn_recognition": "canceled_at"}):
        mrr = months(world, "Term", **option)
        assert [
            mrr[m]
            for m in ("2024-01", "2024-02", "2024-03", "2024-04", "2024-05", "2024-06", "2024-07")
        ] == [100, 200, 200, 200, 100, 100, 0]


def test_the_subscription_names_its_schedule_while_attached():
    scenario = contracts()[1]
    world = generate(options(scenario, now="2024-03-10T00:00:00Z"))
    term = customer(world, "Term")
    (sub,) = objects_of(world, "subscriptions", term.id)
    (schedule,) = objects_of(world, "subscription_schedules", term.id)
    assert sub["schedule"] == schedule["id"] and schedule["id"].startswith("sub_sched_")
    assert (schedule["status"], schedule["subscription"]) == ("active", sub["id"])
    assert schedule["current_phase"] == {"start_date": parse_time("2024-02-16"),
                                         "end_date": parse_time("2024-04-16")}  # fmt: skip
    # Stripe shows the schedule's end on the subscription while end_behavior is cancel
    assert (sub["cancel_at"], sub["cancel_at_period_end"]) == (parse_time("2024-07-01"), False)
    events = [e for e in world.objects(world.account_ids[0], "events")
              if e["data"]["object"].get("customer") == term.id]  # fmt: skip
    phase = [e for e in events if e["type"] == "subscription_schedule.updated"]
    assert phase and phase[0]["data"]["previous_attributes"]["current_phase"]["start_date"] == (
        parse_time("2024-01-01"))  # fmt: skip
    update = [e for e in events if e["type"] == "customer.subscription.updated"
              and e["created"] == parse_time("2024-02-16")]  # fmt: skip
    assert update and "items" in update[0]["data"]["previous_attributes"]


def test_cancel_at_a_date_that_is_not_a_period_end(world):
    later = customer(world, "Later period")
    (sub,) = objects_of(world, "subscriptions", later.id)
    end = parse_time("2024-03-20")
    assert (sub["status"], sub["cancel_at"], sub["cancel_at_period_end"], sub["canceled_at"],
            sub["ended_at"]) == ("canceled", end, False, parse_time("2024-02-05"), end)  # fmt: skip
    final = objects_of(world, "invoices", later.id)[-1]
    (credit,) = final["lines"]["data"]
    assert (credit["amount"], credit["period"]) == (
        -3871,
        {"start": end, "end": parse_time("2024-04-01")},
    )
    assert final["total"] == -3871 and final["ending_balance"] == -3871  # to the balance
    assert months(world, "Later period") == {"2024-01": 100, "2024-02": 100, "2024-03": 0,
                                             "2024-04": 0, "2024-05": 0, "2024-06": 0,
                                             "2024-07": 0, "2024-08": 0}  # fmt: skip
    assert months(world, "Later period", churn_recognition="canceled_at")["2024-02"] == 0
    assert months(world, "Credited") == {}  # the credit ends it on Jan 20: never paying
    assert months(world, "Uncredited")["2024-01"] == 100  # the paid period runs to its end
    assert months(world, "Uncredited", churn_recognition="canceled_at") == {}


def test_paused_collection_in_each_behavior_is_mrr_zero_then_resumes(world):
    """Paused March 10 to May 10: the April and May renewals are made while paused."""
    for behavior, status in (("void", "void"), ("mark_uncollectible", "uncollectible"),
                             ("keep_as_draft", "draft")):  # fmt: skip
        paused = customer(world, f"Paused {behavior}")
        by_month = {i["created"]: i for i in objects_of(world, "invoices", paused.id)}
        for month in ("2024-04-01", "2024-05-01"):
            assert by_month[parse_time(month)]["status"] == status
            assert by_month[parse_time(month)]["auto_advance"] is False
        assert by_month[parse_time("2024-06-01")]["status"] == "paid"
        (sub,) = objects_of(world, "subscriptions", paused.id)
        assert sub["status"] == "active" and sub["pause_collection"] is None
        mrr = months(world, f"Paused {behavior}")
        assert (mrr["2024-03"], mrr["2024-04"], mrr["2024-05"], mrr["2024-06"]) == (
            100, 0, 0, 100)  # fmt: skip


@pytest.mark.parametrize("churn", ["period_end", "canceled_at"])
def test_report_equals_truth_for_scripted_and_random_contracts(tmp_path, world, churn):
    random_world = generate(
        SandboxOptions(
            seed=19, customers=260, archetypes=False, start="2023-01", now="2025-03-18T09:30:00Z"
        )
    )
    account = random_world.account_ids[0]
    subs = list(random_world.objects(account, "subscriptions"))
    assert any(s["schedule"] for s in subs)
    assert any(s["cancel_at"] and not s["cancel_at_period_end"] for s in subs)
    statuses = {s["status"] for s in random_world.objects(account, "subscription_schedules")}
    assert {"active", "released"} <= statuses
    for n, w in enumerate((world, random_world)):
        con = land_world(tmp_path / f"nrr{n}.duckdb", w)
        settings = ReportingSettings(fx_rates=FX, churn_recognition=churn)
        build.build(con, Config(reporting=settings))
        truth = truth_by_customer(w, TruthOptions(fx=tuple(sorted(FX.items())),
                                                  churn_recognition=churn))  # fmt: skip
        expected, reported = expected_monthly(truth), reported_monthly(con)
        assert sorted(reported - expected)[:10] == sorted(expected - reported)[:10] == []
        assert any(row[3] > Decimal(0) for row in reported)


def test_a_phase_and_a_cancel_at_after_the_backfill_land_through_events(tmp_path, sandbox_factory):
    ramp = Scenario("2024-01-01", name="Ramp")
    sub = ramp.subscribe("2024-01-01", [(BASIC, 1), (SEAT, 2)])
    ramp.schedule("2024-07-20", sub, [(1, [(BASIC, 1), (SEAT, 5)], "none")], end=3,
                  end_behavior="cancel")  # fmt: skip
    mid = Scenario("2024-01-01", name="Mid")
    sub = mid.subscribe("2024-01-01", [(PRO, 1)])
    mid.schedule("2024-07-20", sub, [("2024-08-10", [(BASIC, 1)], "create_prorations")], end=2)
    leaving = Scenario("2024-01-01", name="Leaving")
    sub = leaving.subscribe("2024-01-01", [(BASIC, 1)])
    leaving.cancel_at("2024-07-25", sub, "2024-08-06")
    sandbox = sandbox_factory(
        world=generate(options(ramp, mid, leaving, now="2024-07-30T00:00:00Z"))
    )
    config = write_config(tmp_path)
    db = tmp_path / "nrr.duckdb"
    assert cli(config, ["backfill", "--since", "2024-01"], sandbox).exit_code == 0
    sandbox.advance(12 * DAY)  # Aug 1 renewal (the ramp's phase), Aug 6 end, Aug 10 change
    result = cli(config, ["sync"], sandbox)
    assert result.exit_code == 0, result.output
    synced = snapshot(db)
    (tmp_path / "fresh").mkdir()
    fresh = write_config(tmp_path / "fresh")
    assert cli(fresh, ["backfill", "--since", "2024-01"], sandbox).exit_code == 0
    assert without_deleted(synced) == without_deleted(snapshot(tmp_path / "fresh" / "nrr.duckdb"))
    # positive control: the phases and the cancellation did change what landed
    assert query(db, "SELECT quantity FROM stripe.subscription_items WHERE quantity = 5") == [
        (5,)]  # fmt: skip
    assert query(db, "SELECT count(*) FROM stripe.subscriptions WHERE status = 'canceled'") == [
        (1,)]  # fmt: skip
