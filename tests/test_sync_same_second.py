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
