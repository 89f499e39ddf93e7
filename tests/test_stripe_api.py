"""The Stripe client: rate limiter, retry rules and error messages.

The retry tests talk HTTP through the real SDK to a tiny scripted server, so each
answer (500, 429, Stripe-Should-Retry, malformed JSON, 401, 403) is exactly known.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from nrr_sync import kinds
from nrr_sync.config import Config, Retry, StripeSettings
from nrr_sync.errors import NrrSyncError, StripeAuthError, StripeUnavailableError
from nrr_sync.failures import Failure, endpoint_of, is_retryable, network_cause, redact
from nrr_sync.pacing import RateLimiter, default_rates
from nrr_sync.stripe_api import StripeApi

KEY = "sk_test_scriptedKey1234567890"


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_endpoint_templates_group_paths_by_route():
    assert endpoint_of("/v1/invoices") == "/v1/invoices"
    assert endpoint_of("/v1/invoices/in_123") == "/v1/invoices/{id}"
    assert endpoint_of("/v1/invoices/in_123/lines") == "/v1/invoices/{id}/lines"
    assert endpoint_of("/v1/account") == "/v1/account"


def test_default_budgets_are_80_percent_of_stripe_limits_by_key_mode():
    config = Config()
    assert default_rates("sk_live_x", config) == (80.0, 20.0)
    assert default_rates("rk_live_x", config) == (80.0, 20.0)
    assert default_rates("sk_test_x", config) == (20.0, 20.0)
    configured = replace(
        config,
        stripe=StripeSettings(max_requests_per_second=7, max_requests_per_second_per_endpoint=3),
    )
    assert default_rates("sk_live_x", configured) == (7.0, 3.0)


def test_limiter_paces_requests_at_the_global_budget():
    clock = FakeClock()
    limiter = RateLimiter(10, 100, clock=clock, sleep=clock.sleep)
    for _ in range(21):
        limiter.acquire(f"/v1/e{_ % 3}")
    assert clock.now == pytest.approx(2.0)


def test_limiter_paces_each_endpoint_at_its_own_budget():
    clock = FakeClock()
    limiter = RateLimiter(100, 5, clock=clock, sleep=clock.sleep)
    for _ in range(11):
        limiter.acquire("/v1/invoices")
    assert clock.now == pytest.approx(2.0)
    # another endpoint is not held back by the busy one
    waited = limiter.acquire("/v1/customers")
    assert waited <= 0.011  # only the global pacing of 1/100 s


def test_a_worker_that_wakes_late_keeps_the_schedule_without_a_burst():
    """Lateness up to 0.3 of a slot is made up (no slot lost to an oversleeping nap);
    whatever the lateness, no second ever holds more than the budget plus one."""
    clock = FakeClock()
    limiter = RateLimiter(100, 10, clock=clock, sleep=clock.sleep)
    limiter.acquire("/v1/invoices")  # slot 0; the next at 0.1
    clock.now = 0.125  # woke 25 ms late
    assert limiter.acquire("/v1/invoices") == 0  # taken at once...
    waited = limiter.acquire("/v1/invoices")
    assert clock.now == pytest.approx(0.2) and waited == pytest.approx(0.075)  # ...on schedule
    clock.now = 0.5  # much later: the lost slots are not made up, 0.3 of one is
    limiter.acquire("/v1/invoices")
    limiter.acquire("/v1/invoices")
    assert clock.now == pytest.approx(0.57)

    import random

    rng = random.Random(3)
    clock, sent = FakeClock(), []
    limiter = RateLimiter(100, 24, clock=clock, sleep=clock.sleep)
    for _ in range(2000):
        limiter.acquire("/v1/invoices")
        sent.append(clock.now)
        clock.now += rng.choice([0, 0.002, 0.004, 0.045])  # workers waking a little late
    assert max(sum(1 for t in sent if start <= t < start + 1) for start in sent) <= 25
    assert len(sent) / sent[-1] > 23  # while keeping up with the budget


def test_a_global_slot_taken_by_another_endpoint_costs_the_endpoint_no_slot():
    """Just before each invoices slot another endpoint takes the global one, so every
    invoices request leaves up to a global slot (1/95 s) late: the invoices still go at
    their 24/s and no second holds more than 25 of them, or more than 96 in all."""
    clock = FakeClock()
    limiter = RateLimiter(95, 24, clock=clock, sleep=clock.sleep)
    invoices, everything = [], []
    for _ in range(480):
        limiter.acquire("/v1/invoices")
        invoices.append(clock.now)
        next_slot = limiter._bucket("/v1/invoices").next_free
        clock.now = max(clock.now, next_slot - 0.001)
        limiter.acquire("/v1/customers")
        everything += [invoices[-1], clock.now]

    def busiest_second(times):
        return max(sum(1 for t in times if start <= t < start + 1) for start in times)

    assert len(invoices) / invoices[-1] > 23.9  # 22.0/s when a late slot moved the rest on
    assert busiest_second(invoices) <= 25 and busiest_second(everything) <= 96


def test_a_429_slows_the_endpoint_down_until_it_has_been_quiet():
    clock = FakeClock()
    limiter = RateLimiter(100, 20, clock=clock, sleep=clock.sleep)
    limiter.rate_limited("/v1/invoices")
    limiter.rate_limited("/v1/invoices")  # the same burst: one cut
    assert limiter.endpoint_rate("/v1/invoices") == pytest.approx(20 * 0.7)
    clock.now += 1.5
    limiter.rate_limited("/v1/invoices")
    assert limiter.endpoint_rate("/v1/invoices") == pytest.approx(20 * 0.7 * 0.7)
    assert limiter.endpoint_rate("/v1/customers") == 20
    # everyone pauses briefly after a 429
    assert limiter.acquire("/v1/customers") == pytest.approx(0.1)
    assert limiter.acquire("/v1/invoices") == pytest.approx(0.0, abs=0.011)
    # a step back per quiet second
    clock.now += 1
    limiter.acquire("/v1/invoices")
    assert limiter.endpoint_rate("/v1/invoices") == pytest.approx(20 * 0.49 + 2)
    for _ in range(10):
        clock.now += 1
        limiter.acquire("/v1/invoices")
    assert limiter.endpoint_rate("/v1/invoices") == 20


@pytest.mark.parametrize(
    ("status", "code", "header", "expected"),
    [
        (429, None, None, True),
        (500, None, None, True),
        (503, None, None, True),
        (None, None, None, True),  # timeout / dropped connection
        (409, "lock_timeout", None, True),
        (409, "resource_already_exists", None, False),
        (500, None, "false", False),
        (409, None, "true", True),
        (400, None, "true", False),
        (401, None, None, False),
        (403, None, None, False),
        (404, None, None, False),
    ],
)
def test_retry_rules(status, code, header, expected):
    assert is_retryable(Failure(status, code, header, "x")) is expected


def test_redact_removes_keys():
    text = f"bad key {KEY} and rk_live_abcdef123 and sk_test_****1234"
    cleaned = redact(text, KEY)
    assert KEY not in cleaned
    assert "abcdef123" not in cleaned
    assert "1234" not in cleaned


class Script:
    """Answers for the scripted server: a list of (status, headers, body) per path."""

    def __init__(self, answers: dict[str, list]):
        self.answers = {path: list(items) for path, items in answers.items()}
        self.calls: list[str] = []
        self.lock = threading.Lock()

    def next(self, path: str):
        with self.lock:
            self.calls.append(path)
            items = self.answers[path]
            return items.pop(0) if len(items) > 1 else items[0]


@pytest.fixture
def scripted():
    servers = []

    def serve(answers: dict[str, list]):
        script = Script(answers)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                status, headers, body = script.next(self.path.split("?")[0])
                payload = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}", script

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def api_for(url: str, attempts: int = 4, max_wait: float = 0.02) -> StripeApi:
    config = Config(
        stripe=StripeSettings(
            api_base=url,
            max_requests_per_second=1000,
            max_requests_per_second_per_endpoint=1000,
            retry=Retry(max_attempts=attempts, max_wait_seconds=max_wait),
        )
    )
    return StripeApi(config, api_key=KEY, checks=kinds.ANSWER_CHECKS)


def error(status: int, message: str, code: str | None = None, **headers):
    return (status, headers, {"error": {"type": "api_error", "message": message, "code": code}})


OK = (200, {}, {"object": "list", "data": [{"id": "cus_1"}], "has_more": False})


def test_server_errors_and_429s_are_retried_until_success(scripted):
    url, script = scripted(
        {
            "/v1/customers": [
                error(500, "boom"),
                error(429, "slow down"),
                error(409, "lock", code="lock_timeout"),
                OK,
            ]
        }
    )
    api = api_for(url)
    page = api.get("/v1/customers", {"limit": 100})
    assert page["data"] == [{"id": "cus_1"}]
    assert len(script.calls) == 4
    assert api.stats.totals() == {"requests": 4, "retries": 3, "rate_limited": 1}


def test_stripe_should_retry_false_stops_retrying(scripted):
    url, script = scripted(
        {"/v1/customers": [error(500, "no", **{"Stripe-Should-Retry": "false"})]}
    )
    with pytest.raises(StripeUnavailableError) as raised:
        api_for(url).get("/v1/customers")
    assert len(script.calls) == 1
    assert raised.value.exit_code == 4


def test_malformed_json_is_retried_then_reported(scripted):
    url, script = scripted({"/v1/customers": [(200, {}, b"{not json")]})
    with pytest.raises(StripeUnavailableError) as raised:
        api_for(url, attempts=3).get("/v1/customers")
    assert len(script.calls) == 3
    assert "not valid JSON" in str(raised.value)
    assert "/v1/customers" in str(raised.value)


@pytest.mark.parametrize("kind", [kind for kind in kinds.KINDS])
def test_every_kind_of_the_catalogue_is_checked_before_it_is_trusted(scripted, kind):
    """A page of each kind with a fractional amount where the kind has amounts, else a
    timestamp that is not one: refused after the retries, naming the object and field."""
    # every kind may carry a currency; invoices and their lines must
    broken = {"id": "x_1", "object": kind.object, "created": "yesterday", "currency": "usd"}
    good = {"id": "x_2", "object": kind.object, "created": 1700000000, "currency": "usd"}
    for child in kind.children:  # an embedded list must be present
        if child.field:
            for obj in (good, broken):
                obj[child.field] = {"object": "list", "data": [], "has_more": False}
    page = {"object": "list", "data": [good, broken], "has_more": False}
    url, script = scripted({kind.path: [(200, {}, page)]})
    with pytest.raises(StripeUnavailableError) as raised:
        api_for(url, attempts=2).get(kind.path, {"limit": 100})
    assert len(script.calls) == 2
    assert "x_1" in str(raised.value) and "created" in str(raised.value)
    # Positive control: the good object alone passes.
    url, _ = scripted({kind.path: [(200, {}, {**page, "data": [good]})]})
    assert api_for(url).get(kind.path, {"limit": 100})["data"][0]["id"] == "x_2"


def test_bad_key_fails_at_once_with_a_message_naming_the_env_var(scripted):
    url, script = scripted({"/v1/customers": [error(401, f"Invalid API Key provided: {KEY}")]})
    with pytest.raises(StripeAuthError) as raised:
        api_for(url).get("/v1/customers")
    assert len(script.calls) == 1
    assert raised.value.exit_code == 3
    assert "$STRIPE_API_KEY" in str(raised.value)
    assert KEY not in str(raised.value)


def test_missing_permission_names_the_permission_and_endpoint(scripted):
    message = (
        "The provided key 'rk_test_****1234' does not have the required permissions for this "
        "endpoint. Having the 'rak_invoice_read' permission would allow this request to continue."
    )
    url, _ = scripted({"/v1/invoices/in_1": [error(403, message)]})
    with pytest.raises(StripeAuthError) as raised:
        api_for(url).get("/v1/invoices/in_1")
    assert "rak_invoice_read" in str(raised.value)
    assert "/v1/invoices/{id}" in str(raised.value)


def test_bad_request_fails_at_once_with_stripes_message(scripted):
    url, script = scripted({"/v1/customers": [error(400, "Received unknown parameter: foo")]})
    with pytest.raises(NrrSyncError) as raised:
        api_for(url).get("/v1/customers")
    assert len(script.calls) == 1
    assert raised.value.exit_code == 1
    assert "Received unknown parameter: foo" in str(raised.value)


def test_retrieve_of_a_deleted_object_returns_none(scripted):
    url, _ = scripted({"/v1/invoices/in_gone": [error(404, "No such invoice")]})
    assert api_for(url).retrieve("/v1/invoices/in_gone", account=None) is None


def test_unreachable_api_fails_after_retries_with_exit_4():
    api = api_for("http://127.0.0.1:9", attempts=2)
    with pytest.raises(StripeUnavailableError) as raised:
        api.get("/v1/customers")
    assert "127.0.0.1:9" in str(raised.value)
    assert api.stats.totals()["requests"] == 2


def test_lines_past_the_embedded_page_are_fetched(scripted):
    lines_page = {
        "object": "list",
        "data": [{"id": "il_3", "currency": "usd"}, {"id": "il_4", "currency": "usd"}],
        "has_more": False,
    }
    url, script = scripted({"/v1/invoices/in_1/lines": [(200, {}, lines_page)]})
    invoice = {
        "id": "in_1",
        "currency": "usd",
        "lines": {
            "object": "list",
            "data": [{"id": "il_1", "currency": "usd"}, {"id": "il_2", "currency": "usd"}],
            "has_more": True,
        },
    }
    kinds.complete(api_for(url), kinds.BY_TABLE["invoices"], invoice, account=None)
    assert [line["id"] for line in invoice["lines"]["data"]] == ["il_1", "il_2", "il_3", "il_4"]
    assert invoice["lines"]["has_more"] is False


def test_a_web_page_instead_of_the_api_says_to_check_the_api_base(scripted):
    url, script = scripted({"/v1/customers": [(404, {}, b"<html>" + b"x" * 5000 + b"</html>")]})
    with pytest.raises(NrrSyncError) as raised:
        api_for(url).get("/v1/customers")
    assert len(script.calls) == 1
    assert "API base" in str(raised.value)
    assert len(str(raised.value)) < 600


def test_each_retry_logs_one_info_line_with_endpoint_cause_attempt_and_wait(scripted, caplog):
    url, script = scripted({"/v1/customers": [error(500, "boom"), error(503, "busy"), OK]})
    with caplog.at_level(logging.INFO, logger="nrr_sync.stripe"):
        api_for(url).get("/v1/customers")
    # this thread's lines only: a run of an earlier test may still be retrying in its own
    retries = [
        r.getMessage()
        for r in caplog.records
        if "retrying in" in r.getMessage() and r.thread == threading.get_ident()
    ]
    assert len(retries) == 2 == len(script.calls) - 1
    assert "GET /v1/customers" in retries[0] and "HTTP 500: boom" in retries[0]
    assert "attempt 1/4" in retries[0] and "attempt 2/4" in retries[1]
    assert re.search(r"retrying in \d+\.\d s", retries[1])


def test_a_closed_port_says_connection_refused_without_the_sdks_support_advice(caplog):
    api = api_for("http://127.0.0.1:9", attempts=3)
    with (
        caplog.at_level(logging.INFO, logger="nrr_sync.stripe"),
        pytest.raises(StripeUnavailableError) as raised,
    ):
        api.get("/v1/customers")
    message = str(raised.value)
    assert "connection refused at 127.0.0.1:9" in message
    assert "support@stripe.com" not in message and "Max retries" not in message
    assert "stripe.api_base" in message
    assert sum("attempt" in r.getMessage() for r in caplog.records) == 2


def test_a_host_name_that_does_not_resolve_is_tried_twice_not_max_attempts():
    api = api_for("http://nrr-sync-no-such-host.invalid", attempts=6)
    with pytest.raises(StripeUnavailableError) as raised:
        api.get("/v1/customers")
    assert api.stats.totals()["requests"] == 2
    assert "'nrr-sync-no-such-host.invalid' does not resolve" in str(raised.value)
    assert "2 time(s)" in str(raised.value)


def test_network_causes_are_named_plainly():
    refused = (
        "ConnectionError: _WatchedHTTPPool(host='127.0.0.1', port=9): Max retries exceeded "
        'with url: /v1/account (Caused by NewConnectionError("...: [Errno 111] Connection '
        'refused"))'
    )
    assert network_cause(refused) == (
        "no answer: connection refused at 127.0.0.1:9, nothing listens there",
        False,
    )
    unresolved = (
        "ConnectionError: _WatchedHTTPPool(host='api.strpe.com', port=443): Max retries "
        "exceeded (Caused by NameResolutionError(\"Failed to resolve 'api.strpe.com'\"))"
    )
    message, unknown_host = network_cause(unresolved)
    assert unknown_host and "'api.strpe.com' does not resolve" in message


def test_a_cancelled_run_stops_waiting_between_retries(scripted):
    """A run that failed (or was stopped) cancels its other requests: one sleeping before
    its next attempt wakes at once, so the process does not wait out its backoff."""
    url, script = scripted({"/v1/customers": [error(503, "busy", **{"Retry-After": "30"})]})
    api = api_for(url, attempts=4, max_wait=30)
    failures = []

    def get():
        try:
            api.get("/v1/customers")
        except NrrSyncError as failure:
            failures.append(str(failure))

    waiting = threading.Thread(target=get)
    waiting.start()
    deadline = time.monotonic() + 10
    while not script.calls and time.monotonic() < deadline:
        time.sleep(0.01)
    waiting.join(0.5)
    assert len(script.calls) == 1 and waiting.is_alive()  # sleeping before attempt 2
    cancelled_at = time.monotonic()
    api.cancel.set()
    waiting.join(5)
    assert not waiting.is_alive()
    assert time.monotonic() - cancelled_at < 2
    assert failures == ["cancelled"]
    assert len(script.calls) == 1
