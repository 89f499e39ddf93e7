"""Bad data from Stripe: malformed JSON, a missing field, an unknown enum value, a new
field, an unknown currency. Each run either handles it correctly or fails clearly without
touching the published database — never a silent wrong number (docs/benchmarks.md).

A database is first published from a clean sandbox; then the same account is served
with one thing broken and backfilled again (``--restart``). If that run succeeds, every
customer whose MRR differs from the clean run's must be named by a warning or error in
report.data_quality.
"""

from __future__ import annotations

import copy
import re
import shutil

import pytest
from hostile_proxy import Answer, HostileProxy, Request
from resilience_helpers import report_snapshot
from sync_helpers import cli, query, write_config

from nrr_sync.sandbox.generator import SandboxOptions, generate

SINCE = "2023-01"
OPTIONS = {"customers": 12, "seed": 41}


class Corrupted:
    """A sandbox world whose objects pass through ``corrupt(kind, obj) -> obj`` first."""

    def __init__(self, world, corrupt):
        self._world = world
        self._corrupt = corrupt

    def __getattr__(self, name):
        return getattr(self._world, name)

    def objects(self, account_id, kind):
        for obj in self._world.objects(account_id, kind):
            yield self._corrupt(kind, copy.deepcopy(obj))

    def render(self, account_id, kind, record):
        # The server holds large collections lazily and renders them when served.
        return self._corrupt(kind, copy.deepcopy(self._world.render(account_id, kind, record)))


def target_invoice(world) -> dict:
    """A paid monthly renewal of about half a year ago: it carries a customer's MRR in a
    past month, where no check of the current state can notice it is missing."""
    account = world.account_ids[0]
    renewals = [
        invoice
        for invoice in world.objects(account, "invoices")
        if invoice["status"] == "paid"
        and invoice["billing_reason"] == "subscription_cycle"
        and len(invoice["lines"]["data"]) == 1
        and world.now - 240 * 86400 < invoice["created"] < world.now - 120 * 86400
        and 25 * 86400 < invoice["period_end"] - invoice["period_start"] < 35 * 86400
    ]
    return max(renewals, key=lambda invoice: (invoice["created"], invoice["id"]))


@pytest.fixture(scope="module")
def clean_db(tmp_path_factory):
    """A database published from the clean sandbox (copied into each test)."""
    from nrr_sync.sandbox.server import start

    directory = tmp_path_factory.mktemp("clean")
    sandbox = start(SandboxOptions(**OPTIONS))
    try:
        result = cli(write_config(directory), ["backfill", "--since", SINCE], sandbox)
    finally:
        sandbox.stop()
    assert result.exit_code == 0, result.output
    return directory / "nrr.duckdb"


def run_broken(tmp_path, clean_db, sandbox):
    """Backfill the broken account over a copy of the clean published database."""
    db = tmp_path / "nrr.duckdb"
    shutil.copyfile(clean_db, db)
    before = db.read_bytes()
    result = cli(write_config(tmp_path), ["backfill", "--since", SINCE, "--restart"], sandbox)
    return db, before, result


def assert_failed_clearly(result, db, before) -> None:
    assert result.exit_code != 0
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ERROR ", result.output), result.output
    assert "Traceback" not in result.output
    assert db.read_bytes() == before, "the published database is untouched"
    # and the failure shows: `status` says the last run failed
    status = cli(db.parent / "config.yaml", ["status"], key="unused", api_base="http://127.0.0.1:9")
    assert status.exit_code != 0, status.output


def assert_not_silent(result, db, before, clean_db, broken_ids: set[str]) -> None:
    """A clear failure, or every changed customer MRR is explained by a data-quality finding."""
    if result.exit_code != 0:
        assert_failed_clearly(result, db, before)
        return
    mrr = set(query(db, "SELECT customer_id, month, mrr FROM report.customer_mrr_monthly"))
    clean = set(query(clean_db, "SELECT customer_id, month, mrr FROM report.customer_mrr_monthly"))
    changed = {row[0] for row in mrr ^ clean}
    # Positive control: a corruption that changes no customer's MRR proves nothing here.
    assert changed, "the corrupted run published the clean numbers: this case tests nothing"
    findings = query(
        db,
        "SELECT customer_id, subscription_id, invoice_id, object_id, detail "
        "FROM report.data_quality WHERE severity IN ('warning', 'error')",
    )
    named = set()
    for customer, *objects, detail in findings:
        if customer in changed or broken_ids & set(objects) or any(i in detail for i in broken_ids):
            named.add(customer)
    silent = changed - named - {None}
    assert not silent, f"MRR changed without a data-quality finding for {sorted(silent)}"


def serve_broken(sandbox_factory, corrupt):
    return sandbox_factory(world=Corrupted(generate(SandboxOptions(**OPTIONS)), corrupt))


def test_a_new_field_on_every_object_changes_nothing(tmp_path, sandbox_factory, clean_db):
    def add_field(kind, obj):
        obj["zz_new_field"] = {"introduced": "2027-01-01", "nested": [1, 2]}
        for line in (obj.get("lines") or {}).get("data") or []:
            line["zz_new_field"] = "x"
        return obj

    db, _, result = run_broken(tmp_path, clean_db, serve_broken(sandbox_factory, add_field))

    assert result.exit_code == 0, result.output
    assert report_snapshot(db) == report_snapshot(clean_db)
    (raw,) = query(db, "SELECT raw::VARCHAR FROM stripe.customers LIMIT 1")[0]
    assert "zz_new_field" in raw  # kept in raw for whoever needs it


def test_an_unknown_currency_fails_the_build_naming_it(tmp_path, sandbox_factory, clean_db):
    target = target_invoice(generate(SandboxOptions(**OPTIONS)))

    def in_francs(kind, obj):
        if kind == "invoices" and obj["id"] == target["id"]:
            obj["currency"] = "chf"
            for line in obj["lines"]["data"]:
                line["currency"] = "chf"
        return obj

    db, before, result = run_broken(tmp_path, clean_db, serve_broken(sandbox_factory, in_francs))

    assert result.exit_code == 6, result.output
    assert "chf" in result.output
    assert_failed_clearly(result, db, before)


def break_invoice(change):
    def corrupt(kind, obj):
        if kind == "invoices" and obj["id"] == TARGET["id"]:
            change(obj)
        return obj

    return corrupt


def break_price(change):
    def corrupt(kind, obj):
        if kind == "prices" and obj["id"] == TARGET_PRICE:
            change(obj)
        return obj

    return corrupt


def each_line(change):
    def on_invoice(invoice):
        for line in invoice["lines"]["data"]:
            change(line)

    return on_invoice


def without_currency(invoice):
    invoice["currency"] = None
    for line in invoice["lines"]["data"]:
        line.pop("currency")


TARGET = target_invoice(generate(SandboxOptions(**OPTIONS)))
TARGET_PRICE = TARGET["lines"]["data"][0]["pricing"]["price_details"]["price"]

BROKEN = {
    "unknown invoice status": break_invoice(lambda i: i.update(status="in_review")),
    "missing invoice status": break_invoice(lambda i: i.pop("status")),
    "unknown line parent type": break_invoice(
        each_line(lambda line: line["parent"].update(type="license_item_details"))
    ),
    "missing line amount": break_invoice(each_line(lambda line: line.pop("amount"))),
    "missing line period": break_invoice(each_line(lambda line: line.pop("period"))),
    "missing currency": break_invoice(without_currency),
    # legitimate: Stripe bills a customer_account (Accounts v2) with customer null
    "no invoice customer": break_invoice(lambda i: i.update(customer=None)),
    "unknown price interval": break_price(lambda p: p["recurring"].update(interval="fortnight")),
    "missing price recurring": break_price(lambda p: p.pop("recurring")),
    "unknown price type": break_price(lambda p: p.update(type="hybrid")),
    "unknown usage type": break_price(lambda p: p["recurring"].update(usage_type="prepaid")),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_field_is_handled_or_fails_clearly_never_silently(
    case, tmp_path, sandbox_factory, clean_db
):
    db, before, result = run_broken(tmp_path, clean_db, serve_broken(sandbox_factory, BROKEN[case]))

    assert_not_silent(result, db, before, clean_db, {TARGET["id"], TARGET_PRICE})


def half_of_the_answer(request: Request) -> Answer:
    answer = request.forward()
    answer.body = answer.body[: len(answer.body) // 2]
    return answer


def test_malformed_json_fails_after_retries_and_leaves_the_database(
    tmp_path, sandbox_factory, clean_db
):
    sandbox = sandbox_factory(**OPTIONS)
    proxy = HostileProxy(sandbox.url)
    proxy.on("/v1/invoices", half_of_the_answer)
    try:
        db = tmp_path / "nrr.duckdb"
        shutil.copyfile(clean_db, db)
        before = db.read_bytes()
        config = write_config(
            tmp_path, stripe={"retry": {"max_attempts": 3, "max_wait_seconds": 0}}
        )
        result = cli(
            config, ["backfill", "--since", SINCE, "--restart"], sandbox, api_base=proxy.url
        )
    finally:
        proxy.close()

    assert result.exit_code == 4, result.output
    assert "not valid JSON" in result.output and "/v1/invoices" in result.output
    assert_failed_clearly(result, db, before)
