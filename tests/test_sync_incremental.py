"""Incremental sync against the sandbox: after the clock moves, sync lands exactly the
changes (the same data a fresh backfill would land), at a cost that follows the changes."""

from __future__ import annotations

import json
from pathlib import Path

from sync_helpers import cli, query, snapshot, write_config

from nrr_sync import landing
from nrr_sync.jobs import state as checkpoints

SINCE = "2023-01"
DAY = 86400


def without_deleted(data: dict) -> dict:
    """Stripe lists no deleted customers/products/prices; sync keeps them, flagged.

    A customer's ``next_invoice_sequence`` moves with every new invoice, and Stripe
    sends no customer event for that: a sync cannot know it, and no report uses it.
    """
    cleaned = {}
    for kind, rows in data.items():
        cleaned[kind] = rows
        if kind in ("customers", "products", "prices"):
            columns = [c for c in landing.COLUMNS[kind] if c != "synced_at"]
            deleted, raw = columns.index("deleted"), columns.index("raw")
            cleaned[kind] = set()
            for row in rows:
                if row[deleted] == "true":
                    continue
                obj = json.loads(row[raw])
                obj.pop("next_invoice_sequence", None)
                cleaned[kind].add((*row[:raw], json.dumps(obj, sort_keys=True), *row[raw + 1 :]))
    return cleaned


def fresh_backfill(tmp_path: Path, sandbox, name: str = "fresh", accounts=()) -> dict:
    (tmp_path / name).mkdir()
    config = write_config(tmp_path / name, accounts=accounts)
    result = cli(config, ["backfill", "--since", SINCE], sandbox)
    assert result.exit_code == 0, result.output
    return snapshot(tmp_path / name / "nrr.duckdb")


def test_sync_after_a_few_days_lands_exactly_the_changes_of_every_account(
    tmp_path, sandbox_factory
):
    sandbox = sandbox_factory(customers=50, accounts=2, seed=3, latency_ms=1)
    accounts = sandbox.world.account_ids
    config = write_config(tmp_path, accounts=accounts)
    db = tmp_path / "nrr.duckdb"
    assert cli(config, ["backfill", "--since", SINCE], sandbox).exit_code == 0
    before = snapshot(db)

    changes = sandbox.advance(3 * DAY)
    result = cli(config, ["sync"], sandbox)

    assert result.exit_code == 0, result.output
    assert changes["changes"], "the sandbox changed something"
    after = snapshot(db)
    assert after != before
    fresh = fresh_backfill(tmp_path, sandbox, accounts=accounts)
    assert without_deleted(after) == without_deleted(fresh)
    changed_accounts = {row[0] for kind in after for row in after[kind] - before[kind]}
    assert changed_accounts == set(accounts)
    (as_of,) = query(db, "SELECT value FROM meta.sync_state WHERE key = 'report:as_of'")[0]
    assert as_of == "2026-01-18T00:00:00Z"


def sync_requests_after(tmp_path: Path, sandbox, days: int) -> tuple[int, int, int]:
    """(backfill requests, sync requests, objects the sync re-fetched)."""
    config = write_config(tmp_path)
    assert cli(config, ["backfill", "--since", SINCE], sandbox).exit_code == 0
    backfill_requests = sandbox.stats()["requests"]
    sandbox.advance(days * DAY)
    sandbox.reset_stats()
    assert cli(config, ["sync"], sandbox).exit_code == 0
    sync_requests = sandbox.stats()["requests"]
    objects = query(
        tmp_path / "nrr.duckdb",
        "SELECT objects::VARCHAR FROM meta.sync_runs WHERE command = 'sync'",
    )[0][0]
    return backfill_requests, sync_requests, objects


def test_sync_cost_follows_the_changes_not_the_account_size(tmp_path, sandbox_factory):
    small = sandbox_factory(customers=30, seed=4, latency_ms=1)
    large = sandbox_factory(customers=120, seed=4, latency_ms=1)
    (tmp_path / "small").mkdir()
    (tmp_path / "large").mkdir()

    _, small_sync, _ = sync_requests_after(tmp_path / "small", small, 1)
    large_backfill, large_sync, _ = sync_requests_after(tmp_path / "large", large, 1)

    # a day's changes cost a small fraction of what the account holds
    landed = query(tmp_path / "large" / "nrr.duckdb", "SELECT count(*) FROM stripe.invoices")[0][0]
    assert large_sync < landed / 20
    assert large_sync < large_backfill
    # and requests track the changed objects: account + event pages + one per object
    for sandbox, requests in ((small, small_sync), (large, large_sync)):
        by_endpoint = sandbox.stats()["by_endpoint"]
        retrieves = sum(n for endpoint, n in by_endpoint.items() if endpoint.endswith("{id}"))
        assert requests - retrieves <= 2 + by_endpoint.get("/v1/events", 0) + by_endpoint.get(
            "/v1/invoices/{id}/lines", 0
        ) + by_endpoint.get("/v1/subscription_items", 0)
        assert "/v1/customers" not in by_endpoint and "/v1/invoices" not in by_endpoint


def test_a_cursor_older_than_stripes_event_retention_refreshes_everything(
    tmp_path, sandbox_factory, caplog
):
    sandbox = sandbox_factory(customers=30, seed=6, latency_ms=1)
    config = write_config(tmp_path)
    assert cli(config, ["backfill", "--since", SINCE], sandbox).exit_code == 0

    sandbox.advance(31 * DAY)
    result = cli(config, ["sync"], sandbox)

    assert result.exit_code == 0, result.output
    assert "Stripe keeps events for 30 days only" in caplog.text
    assert snapshot(tmp_path / "nrr.duckdb") == fresh_backfill(tmp_path, sandbox)


def test_first_sync_backfills_from_the_configured_month(tmp_path, sandbox_factory):
    sandbox = sandbox_factory(customers=20, seed=8, latency_ms=1)
    config = write_config(tmp_path, sync={"backfill_since": "2024-01"})

    result = cli(config, ["sync"], sandbox)

    assert result.exit_code == 0, result.output
    db = tmp_path / "nrr.duckdb"
    state = dict(query(db, "SELECT key, value FROM meta.sync_state"))
    assert state["report:since"] == "2024-01"
    assert query(db, "SELECT count(*) FROM stripe.customers")[0][0] > 0


def test_first_sync_without_a_backfill_month_says_what_to_run(tmp_path, sandbox_factory):
    sandbox = sandbox_factory(customers=5, latency_ms=1)
    config = write_config(tmp_path)

    result = cli(config, ["sync"], sandbox)

    assert result.exit_code == 2
    assert "nrr-sync backfill --since YYYY-MM" in result.output
    assert "sync.backfill_since" in result.output
    assert sandbox.stats()["requests"] == 0


class DeletingWorld:
    """A generated world whose next ``advance`` also deletes one customer and one invoice,
    with the events Stripe sends for that."""

    def __init__(self, world):
        self.world = world
        self.deleted: dict[str, str] = {}

    def __getattr__(self, name):
        return getattr(self.world, name)

    def advance(self, seconds: int):
        changes = list(self.world.advance(seconds))
        account = self.world.account_ids[0]
        invoice = next(iter(self.world.objects(account, "invoices")))
        customer = next(iter(self.world.objects(account, "customers")))
        for n, (kind, obj) in enumerate((("invoices", invoice), ("customers", customer))):
            event = {
                "id": f"evt_test_deleted_{n}",
                "object": "event",
                "type": f"{obj['object']}.deleted",
                "created": self.world.now - 10,
                "data": {"object": obj},
            }
            changes += [(account, kind, None, obj["id"]), (account, "events", event, event["id"])]
            self.deleted[kind] = obj["id"]
        return changes


def test_sync_removes_deleted_invoices_and_flags_deleted_customers(tmp_path, sandbox_factory):
    from nrr_sync.sandbox.generator import SandboxOptions, generate

    world = DeletingWorld(generate(SandboxOptions(customers=20, seed=9)))
    sandbox = sandbox_factory(world=world, latency_ms=1)
    config = write_config(tmp_path)
    db = tmp_path / "nrr.duckdb"
    assert cli(config, ["backfill", "--since", SINCE], sandbox).exit_code == 0
    invoice_id = next(iter(world.objects(world.account_ids[0], "invoices")))["id"]
    count_lines = "SELECT count(*) FROM stripe.invoice_lines WHERE invoice_id = ?"
    assert query(db, count_lines, [invoice_id])[0][0] > 0

    sandbox.advance(DAY)
    result = cli(config, ["sync"], sandbox)

    assert result.exit_code == 0, result.output
    assert world.deleted["invoices"] == invoice_id
    assert query(db, "SELECT count(*) FROM stripe.invoices WHERE id = ?", [invoice_id]) == [(0,)]
    lines = query(
        db, "SELECT count(*) FROM stripe.invoice_lines WHERE invoice_id = ?", [invoice_id]
    )
    assert lines == [(0,)]
    flagged = query(
        db, "SELECT deleted FROM stripe.customers WHERE id = ?", [world.deleted["customers"]]
    )
    assert flagged == [(True,)]
    assert without_deleted(snapshot(db)) == without_deleted(fresh_backfill(tmp_path, sandbox))


def test_a_sync_starts_from_the_typed_cursor_the_backfill_wrote(tmp_path, sandbox_factory):
    """The cursor in meta.sync_state is an EventCursor: what the backfill wrote reads back as
    the newest event it saw, and a sync moves it on to the newest event after `advance`."""
    sandbox = sandbox_factory(customers=40, seed=12)
    config = write_config(tmp_path)
    db = tmp_path / "nrr.duckdb"
    assert cli(config, ["backfill", "--since", SINCE], sandbox).exit_code == 0
    account = sandbox.world.account_ids[0]
    key = checkpoints.event_cursor_key(account)
    ((before,),) = query(db, "SELECT value FROM meta.sync_state WHERE key = ?", [key])
    cursor = checkpoints.EventCursor.load(before)
    assert cursor.dump() == before and cursor.id and cursor.id.startswith("evt_")

    sandbox.advance(3 * DAY)
    assert cli(config, ["sync"], sandbox).exit_code == 0
    ((after,),) = query(db, "SELECT value FROM meta.sync_state WHERE key = ?", [key])
    moved = checkpoints.EventCursor.load(after)
    assert moved.created > cursor.created and moved.id != cursor.id  # positive control
    note = checkpoints.LandedNote(moved.dump(), {("invoices", "in_1"): {"evt_2", "evt_1"}})
    assert checkpoints.LandedNote.load(note.dump()) == note


def test_a_dunning_that_ends_is_told_by_an_event_and_lands_as_a_backfill_would(
    tmp_path, sandbox_factory
):
    """When the last retry fails, Stripe sends invoice.payment_failed (attempt_count up, no
    next attempt): the sync lands the invoice as a fresh backfill does."""
    sandbox = sandbox_factory(customers=400, seed=11, latency_ms=0)
    config = write_config(tmp_path)
    db = tmp_path / "nrr.duckdb"
    assert cli(config, ["backfill", "--since", SINCE], sandbox).exit_code == 0
    sandbox.advance(28 * DAY)
    assert cli(config, ["sync"], sandbox).exit_code == 0
    exhausted = query(
        db,
        "SELECT count(*) FROM stripe.invoices WHERE raw->>'$.next_payment_attempt' IS NULL "
        "AND (raw->>'$.attempt_count')::INT >= 4 AND status IN ('open', 'void', 'uncollectible')",
    )[0][0]
    assert exhausted > 0, "positive control: some dunning ended in the synced days"
    fresh = fresh_backfill(tmp_path, sandbox)
    assert without_deleted(snapshot(db))["invoices"] == without_deleted(fresh)["invoices"]
