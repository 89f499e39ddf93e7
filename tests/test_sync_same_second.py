"""Many objects created in the same second, as when many subscriptions share a billing
date: a backfill lists them through the cursor, since a time slice of one second cannot be
split, and lands exactly the sandbox's objects (docs/operations.md, "How the sync pulls")."""

from __future__ import annotations

from sync_helpers import cli, landed_ids, world_ids, write_config

from nrr_sync.sandbox.generator import SandboxOptions, Scenario, generate

CUSTOMERS = 260  # each month's renewals: 260 invoices created in one second, 3 pages


def one_billing_date_world():
    scenarios = []
    for number in range(CUSTOMERS):
        customer = Scenario("2024-01-01T00:00:00Z", name=f"Same day {number}")
        customer.subscribe(customer.created, [("pro_month_usd", 1)])
        scenarios.append(customer)
    return generate(
        SandboxOptions(
            customers=0,
            start="2024-01",
            now="2024-05-15T00:00:00Z",
            archetypes=False,
            scenarios=tuple(scenarios),
        )
    )


def test_invoices_created_in_one_second_are_all_landed(tmp_path, sandbox_factory):
    world = one_billing_date_world()
    account = world.account_ids[0]
    created = [invoice["created"] for invoice in world.objects(account, "invoices")]
    # the case itself: whole pages of invoices share their second
    assert max(created.count(second) for second in set(created)) >= CUSTOMERS
    sandbox = sandbox_factory(world=world, latency_ms=250)  # enough in flight to split
    config = write_config(
        tmp_path,
        stripe={"max_requests_per_second": 95, "max_requests_per_second_per_endpoint": 24},
    )

    result = cli(config, ["backfill", "--since", "2024-01"], sandbox)

    assert result.exit_code == 0, result.output
    db = tmp_path / "nrr.duckdb"
    for kind in ("customers", "subscriptions", "invoices", "invoice_lines"):
        expected = (
            world_ids(world, kind)
            if kind != "invoice_lines"
            else {
                (account, line["id"])
                for invoice in world.objects(account, "invoices")
                for line in invoice["lines"]["data"]
            }
        )
        assert landed_ids(db, kind) == expected, kind
    requests = sandbox.stats()["by_endpoint"]["/v1/invoices"]
    assert requests <= len(created) // 100 + 40  # pages, not a request per invoice


def test_a_burst_page_splits_the_rest_of_its_second_off_the_older_objects(sandbox_factory):
    from nrr_sync import kinds
    from nrr_sync.config import Config, StripeSettings
    from nrr_sync.jobs.backfill import Slice, _fetch_page
    from nrr_sync.jobs.planner import SlicePlanner
    from nrr_sync.stripe_api import StripeApi

    world = one_billing_date_world()
    account = world.account_ids[0]
    invoices = list(world.objects(account, "invoices"))
    april, may = sorted({invoice["created"] for invoice in invoices})[-2:]
    sandbox = sandbox_factory(world=world)
    settings = StripeSettings(
        api_base=sandbox.url,
        max_requests_per_second=1000,
        max_requests_per_second_per_endpoint=1000,
    )
    api = StripeApi(Config(stripe=settings), api_key=sandbox.api_key, checks=kinds.ANSWER_CHECKS)
    # April's and May's renewals, each month's created in one second
    piece = Slice("s", account, None, "invoices", april - 86400, may + 1)
    planner = SlicePlanner(api, [piece])
    for _ in range(3):  # invoices so far came a page a day: a page of one second is a burst
        planner.pages_left_after("invoices", 0, 86400)

    objects, rest, split_off = _fetch_page(api, piece, planner)

    assert {invoice["created"] for invoice in objects} == {may}
    # the rest of May's second is read through the cursor, beside the older objects
    (second,) = [other for other in split_off if other.after is not None]
    assert (second.gte, second.lt, second.after) == (may, may + 1, objects[-1]["id"])
    assert rest.lt == may and rest.after is None and rest.key == piece.key
    assert planner.unsplittable == {second.key}
    assert planner.live["invoices"] == 1 + len(split_off)  # the burst's second counts as live
    # every invoice of the slice is listed once, following each slice to its end
    listed, todo = [invoice["id"] for invoice in objects], [rest, *split_off]
    while todo:
        objects, follow, more = _fetch_page(api, todo.pop(), planner)
        listed += [invoice["id"] for invoice in objects]
        todo += [*([follow] if follow else []), *more]
    expected = [i["id"] for i in invoices if piece.gte <= i["created"] < piece.lt]
    assert sorted(listed) == sorted(expected) and len(expected) == 2 * CUSTOMERS
