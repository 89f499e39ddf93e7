"""A hostile Stripe: answers that must not be trusted (docs/operations.md, "Answers from
Stripe that are not trusted"). A small proxy between the CLI and the sandbox rewrites
one kind of answer; every such run exits 4 naming what was wrong, leaves the published
file byte for byte as it was (and a sync's event cursor where it was), and `status`
exits non-zero afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest
from hostile_proxy import Answer, HostileProxy
from sync_helpers import cli, environment, query, write_config

from nrr_sync import http_client

SINCE = "2023-01"
OPTIONS = {"customers": 12, "seed": 41}
DAY = 86400
GUARD_REQUESTS = 60  # a run that loops gets 500s from here on, so an old build ends


@pytest.fixture(scope="module")
def clean_db(tmp_path_factory):
    """A database published from the clean sandbox (copied into each test)."""
    from nrr_sync.sandbox.generator import SandboxOptions
    from nrr_sync.sandbox.server import start

    directory = tmp_path_factory.mktemp("clean")
    sandbox = start(SandboxOptions(**OPTIONS))
    try:
        config = write_config(directory)
        result = cli(config, ["backfill", "--since", SINCE], sandbox)
        assert result.exit_code == 0, result.output
        # The positive control of every `status` below: a good file says OK.
        assert cli(config, ["status"], sandbox).exit_code == 0
    finally:
        sandbox.stop()
    return directory / "nrr.duckdb"


@pytest.fixture
def hostile(sandbox_factory):
    sandbox = sandbox_factory(**OPTIONS)
    proxy = HostileProxy(sandbox.url)
    yield sandbox, proxy
    proxy.close()


def run(tmp_path, clean_db, sandbox, proxy, args):
    """``args`` through the proxy over a copy of the clean published file."""
    db = tmp_path / "nrr.duckdb"
    shutil.copyfile(clean_db, db)
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    config = write_config(tmp_path, stripe={"retry": {"max_attempts": 2, "max_wait_seconds": 0}})
    result = cli(config, args, sandbox, api_base=proxy.url)
    return config, db, before, result


def assert_refused(config, db, before, result, *phrases) -> None:
    assert result.exit_code == 4, result.output
    assert "Traceback" not in result.output
    for phrase in phrases:
        assert phrase in result.output, (phrase, result.output)
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before, "the published file changed"
    status = cli(config, ["status"], key="sk_test_unused", api_base="http://127.0.0.1:9")
    assert status.exit_code != 0, status.output


def event_cursors(db) -> list[tuple]:
    return query(
        db, "SELECT key, value FROM meta.sync_state WHERE key LIKE 'events:%' ORDER BY key"
    )


def assert_cursor_kept(db) -> None:
    """The working copy the next run resumes from still has the published cursor."""
    work = db.with_name(db.name + ".work")
    published = event_cursors(db)
    assert published, "the published file has an event cursor"
    if work.exists():
        assert event_cursors(work) == published


def sync(tmp_path, clean_db, sandbox, proxy):
    sandbox.advance(10 * DAY)  # events to read
    return run(tmp_path, clean_db, sandbox, proxy, ["sync"])


def backfill(tmp_path, clean_db, sandbox, proxy):
    return run(tmp_path, clean_db, sandbox, proxy, ["backfill", "--since", SINCE, "--restart"])


def guarded(rule):
    """``rule``, until a run that loops has made GUARD_REQUESTS requests: then 500s."""

    def guarded_rule(request):
        if request.number > GUARD_REQUESTS:
            return Answer(500, {}, b'{"error": {"message": "guard"}}')
        return rule(request)

    return guarded_rule


# An empty page that says has_more ------------------------------------------------------


def empty_page_with_more(request):
    answer = request.forward()
    answer.set_json({"object": "list", "data": [], "has_more": True, "url": request.path})
    return answer


def test_backfill_refuses_an_empty_page_that_says_has_more(tmp_path, clean_db, hostile):
    sandbox, proxy = hostile
    proxy.on("/v1/invoices", empty_page_with_more)

    config, db, before, result = backfill(tmp_path, clean_db, sandbox, proxy)

    assert_refused(config, db, before, result, "malformed list page at GET /v1/invoices")
    assert "has_more (true on an empty page)" in result.output
    assert proxy.count("/v1/invoices") == 2  # retried like a 5xx


def test_sync_refuses_an_empty_page_of_events_and_keeps_its_cursor(tmp_path, clean_db, hostile):
    sandbox, proxy = hostile

    def invoice_events_empty(request):
        if request.param("type") == "invoice.*":
            return empty_page_with_more(request)
        return request.forward()

    proxy.on("/v1/events", invoice_events_empty)

    config, db, before, result = sync(tmp_path, clean_db, sandbox, proxy)

    assert_refused(config, db, before, result, "GET /v1/events", "has_more")
    assert_cursor_kept(db)


def first_invoice_with_lines(page: dict) -> dict:
    return next(invoice for invoice in page["data"] if invoice["lines"]["data"])


def test_an_empty_page_of_invoice_lines_is_refused(tmp_path, clean_db, hostile):
    sandbox, proxy = hostile

    def more_lines(request):
        answer = request.forward()
        page = answer.json()
        if page["data"]:
            first_invoice_with_lines(page)["lines"]["has_more"] = True
            answer.set_json(page)
        return answer

    proxy.on("/v1/invoices", more_lines)
    proxy.on(lambda path: path.endswith("/lines"), empty_page_with_more)

    config, db, before, result = backfill(tmp_path, clean_db, sandbox, proxy)

    assert_refused(config, db, before, result, "GET /v1/invoices/{id}/lines", "has_more")


# A cursor that never advances ----------------------------------------------------------


def ignores_the_cursor(request):
    answer = request.forward(drop=("starting_after",))
    page = answer.json()
    page["has_more"] = bool(page["data"])  # (an empty page saying so is refused anyway)
    answer.set_json(page)
    return answer


def test_backfill_refuses_a_cursor_that_never_advances(tmp_path, clean_db, hostile):
    sandbox, proxy = hostile
    proxy.on("/v1/customers", guarded(ignores_the_cursor))

    config, db, before, result = backfill(tmp_path, clean_db, sandbox, proxy)

    assert_refused(config, db, before, result, "GET /v1/customers", "the cursor did not move")
    assert proxy.count("/v1/customers") < 10


def test_sync_refuses_events_whose_cursor_never_advances(tmp_path, clean_db, hostile):
    sandbox, proxy = hostile
    proxy.on("/v1/events", guarded(ignores_the_cursor))

    config, db, before, result = sync(tmp_path, clean_db, sandbox, proxy)

    assert_refused(config, db, before, result, "GET /v1/events", "the cursor did not move")
    assert_cursor_kept(db)
    assert proxy.count("/v1/events") < 10


def test_a_list_that_comes_round_again_is_refused(tmp_path, clean_db, hostile):
    """Two pages served in turn: neither repeats the cursor it was asked for."""
    sandbox, proxy = hostile
    first_ids = []

    def two_pages_in_turn(request):
        answer = request.forward(drop=("starting_after",))
        page = answer.json()
        if not first_ids:
            first_ids.extend(event["id"] for event in page["data"])
        after = request.param("starting_after")
        # After the last event of the first half, the second half; after that, the first.
        half = len(page["data"]) // 2
        shown = (
            page["data"][half:] if after == page["data"][half - 1]["id"] else page["data"][:half]
        )
        answer.set_json({**page, "data": shown, "has_more": True})
        return answer

    def events(request):
        if request.param("type") == "invoice.*":
            return two_pages_in_turn(request)
        return request.forward()

    proxy.on("/v1/events", guarded(events))

    config, db, before, result = sync(tmp_path, clean_db, sandbox, proxy)

    assert_refused(config, db, before, result, "GET /v1/events", "already listed")
    assert_cursor_kept(db)
    assert len(first_ids) >= 2


# Malformed objects ---------------------------------------------------------------------


def break_first(kind_path: str, change):
    """A rule for ``kind_path`` that changes the first object (with lines) of each page."""
    broken: list[str] = []

    def rule(request):
        answer = request.forward()
        page = answer.json()
        if page.get("data"):
            target = first_invoice_with_lines(page) if kind_path == "/v1/invoices" else None
            target = target or page["data"][0]
            broken.append(str(target.get("id")))
            change(page, target)
            answer.set_json(page)
        return answer

    return rule, broken


def first_line(invoice: dict) -> dict:
    return invoice["lines"]["data"][0]


MALFORMED = {
    "invoice without id": (
        "/v1/invoices",
        lambda p, o: o.pop("id"),
        "invoice without an id at GET /v1/invoices: id",
    ),
    "created yesterday": (
        "/v1/invoices",
        lambda p, o: o.update(created="yesterday"),
        "created ('yesterday' is not a time)",
    ),
    "created 10^12": ("/v1/invoices", lambda p, o: o.update(created=10**12), "created"),
    "amount 12.5 USD": (
        "/v1/invoices",
        lambda p, o: first_line(o).update(amount="12.5 USD"),
        "amount ('12.5 USD' is not an integer amount)",
    ),
    "amount 12.5": (
        "/v1/invoices",
        lambda p, o: first_line(o).update(amount=first_line(o)["amount"] + 0.5),
        "is not an integer amount",
    ),
    "total 10^30": ("/v1/invoices", lambda p, o: o.update(total=10**30), "total ("),
    "lines null": ("/v1/invoices", lambda p, o: o.update(lines=None), "lines (missing"),
    "lines missing": ("/v1/invoices", lambda p, o: o.pop("lines"), "lines (missing"),
    "not an object": (
        "/v1/invoices",
        lambda p, o: p["data"].append("in_123"),
        "list page at GET /v1/invoices: data (holds 'in_123', not an object)",
    ),
    "price unit_amount 12.5": (
        "/v1/prices",
        lambda p, o: o.update(unit_amount=1250.5),
        "unit_amount (1250.5 is not an integer amount)",
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_backfill_refuses_a_malformed_object(case, tmp_path, clean_db, hostile):
    sandbox, proxy = hostile
    path, change, detail = MALFORMED[case]
    rule, broken = break_first(path, change)
    proxy.on(path, rule)

    config, db, before, result = backfill(tmp_path, clean_db, sandbox, proxy)

    assert_refused(config, db, before, result, "Stripe sent a malformed", f"GET {path}", detail)
    if "without an id" not in detail and "list page" not in detail:
        assert broken[0] in result.output


def test_backfill_refuses_a_column_of_values_of_different_types(tmp_path, clean_db, hostile):
    """A field the answer checks do not type (a customer's name) holding a number on one
    object and text on the others cannot become one column: refused by name and types,
    never its values (customer data), and nothing is published."""
    sandbox, proxy = hostile
    rule, broken = break_first("/v1/customers", lambda p, o: o.update(name=12345))
    proxy.on("/v1/customers", rule)

    config, db, before, result = backfill(tmp_path, clean_db, sandbox, proxy)

    assert broken, "positive control: a customer's name was made a number"
    assert_refused(
        config, db, before, result, "Stripe sent a malformed answer",
        "stripe.customers.name holds values of different types (int, str)",
    )  # fmt: skip
    assert "12345" not in result.output


def test_sync_refuses_a_malformed_refetched_invoice(tmp_path, clean_db, hostile):
    sandbox, proxy = hostile

    def float_total(request):
        answer = request.forward()
        invoice = answer.json()
        if answer.status == 200 and invoice.get("object") == "invoice":
            invoice["total"] = 10.5
            answer.set_json(invoice)
        return answer

    proxy.on(lambda path: path.startswith("/v1/invoices/in_"), float_total)

    config, db, before, result = sync(tmp_path, clean_db, sandbox, proxy)

    assert_refused(config, db, before, result, "GET /v1/invoices/{id}", "total (10.5")
    assert_cursor_kept(db)


# The server's clock --------------------------------------------------------------------


def with_date(value: str):
    def rule(request):
        answer = request.forward()
        answer.headers = {k: v for k, v in answer.headers.items() if k.lower() != "date"}
        answer.headers["Date"] = value
        return answer

    return rule


def test_an_unreadable_date_header_is_refused(tmp_path, clean_db, hostile):
    sandbox, proxy = hostile
    proxy.on("/v1/account", with_date("garbage"))

    config, db, before, result = backfill(tmp_path, clean_db, sandbox, proxy)

    assert_refused(config, db, before, result, "GET /v1/account", "Date header ('garbage'")
    assert proxy.count("/v1/account") == 2  # retried like a 5xx


def test_a_server_clock_far_in_the_future_is_refused(tmp_path, clean_db, hostile):
    sandbox, proxy = hostile
    proxy.on("/v1/account", with_date("Fri, 01 Jan 2100 00:00:00 GMT"))

    config, db, before, result = sync(tmp_path, clean_db, sandbox, proxy)

    assert_refused(config, db, before, result, "2100-01-01", "ahead of this machine's clock")
    assert_cursor_kept(db)


# Redirects and slow answers ------------------------------------------------------------


def test_a_redirect_is_never_followed(tmp_path, clean_db, hostile):
    sandbox, proxy = hostile
    target = f"{sandbox.url}/v1/invoices?moved=1"

    def redirect(request):
        answer = request.forward()
        return Answer(302, {"Location": target, "Date": answer.headers.get("Date", "")}, b"")

    proxy.on("/v1/invoices", redirect)

    config, db, before, result = backfill(tmp_path, clean_db, sandbox, proxy)

    assert_refused(config, db, before, result, "redirect (HTTP 302)", target)
    assert proxy.count("/v1/invoices") == 1  # not retried


def test_a_slow_loris_answer_hits_the_request_deadline(tmp_path, clean_db, hostile, monkeypatch):
    sandbox, proxy = hostile
    monkeypatch.setattr(http_client, "REQUEST_DEADLINE_SECONDS", 1.0)

    def one_byte_at_a_time(request):
        answer = request.forward()
        answer.pace, answer.pace_for = 0.2, 20.0  # then the rest at once: an old build ends
        return answer

    proxy.on("/v1/customers", one_byte_at_a_time)

    config, db, before, result = backfill(tmp_path, clean_db, sandbox, proxy)

    assert_refused(config, db, before, result, "GET /v1/customers", "no complete answer within 1 s")
    assert proxy.count("/v1/customers") == 2  # retried like a timeout


# --verbose ----------------------------------------------------------------------------


def test_verbose_logs_request_lines_but_no_customer_data(tmp_path, sandbox_factory):
    sandbox = sandbox_factory(**OPTIONS)
    config = write_config(tmp_path)
    env = {**os.environ, **environment(sandbox)}
    env.pop("NRR_SYNC_DATABASE", None)
    process = subprocess.run(
        [sys.executable, "-c", "from nrr_sync.cli import app; app()", "--config", str(config)]
        + ["-v", "backfill", "--since", SINCE],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert process.returncode == 0, process.stderr
    output = process.stdout + process.stderr
    # Positive control: request lines are there, and the customers' data was fetched.
    assert "GET /v1/customers -> 200 in " in output
    assert "GET /v1/invoices -> 200 in " in output
    customers = [
        (email, name)
        for email, name in query(
            tmp_path / "nrr.duckdb", "SELECT email, name FROM stripe.customers"
        )
    ]
    emails = [email for email, _ in customers if email]
    names = [name for _, name in customers if name and len(name) > 6]
    assert emails and names
    for secret in [*emails, *names, sandbox.api_key]:
        assert secret not in output, f"{secret!r} appears in the --verbose output"
    assert "API response body" not in output
    assert json.dumps(emails[0]) not in output
