"""The sandbox server answers like Stripe, through the real stripe SDK.

Most tests serve a small hand-made world (Stripe-shaped dicts whose every property is
known) so that each assertion can be checked against it exactly; a few serve a world
from the real generator.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
import urllib.request
from decimal import Decimal
from email.utils import parsedate_to_datetime
from urllib.parse import urlencode

import pytest
import requests
import stripe

from nrr_sync.sandbox import generator
from nrr_sync.sandbox.api_requests import NO_INVOICES_API_KEY, RESTRICTED_API_KEY, SANDBOX_API_KEY

NOW = 1768435200  # 2026-01-15T00:00:00Z
DAY = 86400
MAIN = "acct_1SandboxMain00001"
OTHER = "acct_1SandboxConn00002"
SUBSCRIPTION_STATUSES = [
    "active",
    "trialing",
    "past_due",
    "canceled",
    "unpaid",
    "incomplete_expired",
    "paused",
    "active",
]
INVOICE_STATUSES = ["paid", "open", "draft", "void", "uncollectible", "paid"]
EVENT_TYPES = [
    "customer.created",
    "customer.subscription.updated",
    "invoice.paid",
    "invoice.finalized",
    "price.updated",
    "product.updated",
    "charge.succeeded",
]


class TinyWorld:
    """A few Stripe-shaped objects per account, following the World interface."""

    def __init__(self, customers: int = 30, other_customers: int = 5):
        self.account_ids = [MAIN, OTHER]
        self.now = NOW
        self.store = {account: {} for account in self.account_ids}
        self.sequence = 0
        for account, count in ((MAIN, customers), (OTHER, other_customers)):
            self._fill(account, count)

    def objects(self, account_id: str, kind: str):
        return list(self.store[account_id][kind].values())

    def _fill(self, account: str, count: int) -> None:
        kinds = generator.KINDS
        objects = {kind: {} for kind in kinds}
        self.store[account] = objects
        tag = account[-2:]
        start = NOW - 400 * DAY
        for i, (name, active) in enumerate((("Basic", True), ("Pro", True), ("Old", False))):
            product = {
                "id": f"prod_{tag}{i}",
                "object": "product",
                "active": active,
                "created": start + i,
                "name": name,
            }
            objects["products"][product["id"]] = product
        prices = [
            self._price(f"price_{tag}m", f"prod_{tag}0", start + 10, True, None),
            self._price(
                f"price_{tag}t",
                f"prod_{tag}1",
                start + 11,
                True,
                [
                    {"up_to": 10, "unit_amount": 1000, "flat_amount": None},
                    {"up_to": None, "unit_amount": 800, "flat_amount": None},
                ],
            ),
            self._price(f"price_{tag}o", f"prod_{tag}2", start + 12, False, None),
        ]
        for price in prices:
            objects["prices"][price["id"]] = price
        for i in range(count):
            # Pairs of customers share a created second: the id breaks the tie.
            created = start + 20 * DAY + (i // 2) * 5 * DAY
            self._add_customer(account, i, created)
        for i in range(60 if account == MAIN else 4):
            event = {
                "id": f"evt_{tag}{i:05d}",
                "object": "event",
                "api_version": "2026-10-28.endive",
                "created": NOW - 40 * DAY + i * 16 * 3600,
                "data": {"object": {"id": f"cus_{tag}00000"}},
                "type": EVENT_TYPES[i % len(EVENT_TYPES)],
            }
            objects["events"][event["id"]] = event

    def _price(self, price_id, product, created, active, tiers):
        price = {
            "id": price_id,
            "object": "price",
            "active": active,
            "billing_scheme": "tiered" if tiers else "per_unit",
            "created": created,
            "currency": "usd",
            "product": product,
            "recurring": {"interval": "month", "interval_count": 1, "usage_type": "licensed"},
            "tiers_mode": "graduated" if tiers else None,
            "type": "recurring",
            "unit_amount": None if tiers else 1000,
        }
        if tiers:
            price["tiers"] = tiers
        return price

    def _add_customer(self, account: str, i: int, created: int) -> list:
        objects = self.store[account]
        tag = account[-2:]
        customer_id = f"cus_{tag}{i:05d}"
        objects["customers"][customer_id] = {
            "id": customer_id,
            "object": "customer",
            "created": created,
            "email": f"c{i}@example.com",
            "metadata": {},
        }
        subscription_id = f"sub_{tag}{i:05d}"
        item_count = 13 if i == 0 else 1
        items = [
            {
                "id": f"si_{tag}{i:05d}_{n:02d}",
                "object": "subscription_item",
                "created": created,
                "price": objects["prices"][f"price_{tag}m"],
                "quantity": n + 1,
                "subscription": subscription_id,
            }
            for n in range(item_count)
        ]
        objects["subscriptions"][subscription_id] = {
            "id": subscription_id,
            "object": "subscription",
            "created": created + 1,
            "customer": customer_id,
            "status": SUBSCRIPTION_STATUSES[i % len(SUBSCRIPTION_STATUSES)],
            "items": {
                "object": "list",
                "data": items,
                "has_more": False,
                "url": f"/v1/subscription_items?subscription={subscription_id}",
            },
        }
        added = [("customers", customer_id), ("subscriptions", subscription_id)]
        for n in range(3):
            invoice_id = f"in_{tag}{i:05d}_{n}"
            line_count = 25 if (i, n) == (0, 0) else 2
            lines = [
                {
                    "id": f"il_{tag}{i:05d}_{n}_{k:02d}",
                    "object": "line_item",
                    "amount": 1000 + k,
                    "invoice": invoice_id,
                    "period": {"start": created, "end": created + 30 * DAY},
                }
                for k in range(line_count)
            ]
            objects["invoices"][invoice_id] = {
                "id": invoice_id,
                "object": "invoice",
                "created": created + 2 + n * 30 * DAY,
                "customer": customer_id,
                "status": INVOICE_STATUSES[(i + n) % len(INVOICE_STATUSES)],
                "parent": {
                    "type": "subscription_details",
                    "subscription_details": {"subscription": subscription_id},
                },
                "lines": {
                    "object": "list",
                    "data": lines,
                    "has_more": False,
                    "url": f"/v1/invoices/{invoice_id}/lines",
                },
            }
            added.append(("invoices", invoice_id))
        return added

    def advance(self, seconds: int) -> list:
        """A new customer signs up (with its invoices), customer 1 is deleted, and a
        draft invoice is deleted; each with an event."""
        self.now += seconds
        self.sequence += 1
        objects = self.store[MAIN]
        changes = []
        number = 90000 + self.sequence
        for kind, object_id in self._add_customer(MAIN, number, self.now - 60):
            changes.append((MAIN, kind, objects[kind][object_id], object_id))
        deleted_customer = "cus_0100001"
        draft = next((i for i in objects["invoices"].values() if i["status"] == "draft"), None)
        deletions = [("customers", deleted_customer)]
        if draft is not None:
            deletions.append(("invoices", draft["id"]))
        for kind, object_id in deletions:
            if objects[kind].pop(object_id, None) is not None:
                changes.append((MAIN, kind, None, object_id))
        for n, event_type in enumerate(("customer.created", "customer.deleted", "invoice.deleted")):
            event = {
                "id": f"evt_01adv{self.sequence:03d}{n}",
                "object": "event",
                "created": self.now - 30 + n,
                "data": {"object": {}},
                "type": event_type,
            }
            objects["events"][event["id"]] = event
            changes.append((MAIN, "events", event, event["id"]))
        return changes

    def truth(self):
        return [(MAIN, "cus_0100000", "2026-01-01", Decimal("10.00"))]


def newest_first(objects):
    return sorted(objects, key=lambda o: (o["created"], o["id"]), reverse=True)


@pytest.fixture
def world():
    return TinyWorld()


@pytest.fixture
def sandbox(sandbox_factory, world):
    return sandbox_factory(world=world)


def client_for(sandbox, key=SANDBOX_API_KEY, **kwargs) -> stripe.StripeClient:
    return stripe.StripeClient(key, base_addresses={"api": sandbox.url}, **kwargs)


def walk(list_method, params=None, options=None) -> list[dict]:
    """Every object of a list, page after page with starting_after, as plain dicts."""
    params = dict(params or {})
    found = []
    while True:
        page = list_method(params=params, options=options)
        found.extend(item.to_dict() for item in page.data)
        if not page.has_more:
            return found
        params["starting_after"] = page.data[-1].id


def raw_walk(sandbox, path: str, params: dict | None = None, account: str | None = None):
    """Every object of a list as the JSON on the wire (the SDK turns decimal strings into
    Decimal objects, which would hide what the server sent)."""
    params = dict(params or {}, limit=100)
    headers = {"Stripe-Account": account} if account else {}
    found = []
    while True:
        page = get(sandbox, path + "?" + urlencode(params, doseq=True), **headers).json()
        found.extend(page["data"])
        if not page["has_more"]:
            return found
        params["starting_after"] = page["data"][-1]["id"]


def get(sandbox, path: str, key: str = SANDBOX_API_KEY, **headers):
    return requests.get(
        sandbox.url + path, headers={"Authorization": f"Bearer {key}", **headers}, timeout=10
    )


# -- lists and pagination ---------------------------------------------------------------


def test_every_list_walked_with_the_sdk_returns_the_worlds_objects_newest_first(sandbox, world):
    client = client_for(sandbox)
    services = {
        "customers": client.v1.customers,
        "products": client.v1.products,
        "prices": client.v1.prices,
        "invoices": client.v1.invoices,
        "events": client.v1.events,
    }
    for kind, service in services.items():
        expected = newest_first(world.objects(MAIN, kind))
        if kind == "events":
            expected = [e for e in expected if e["created"] >= NOW - 30 * DAY]
        got = walk(service.list, {"limit": 7})
        assert [o["id"] for o in got] == [o["id"] for o in expected], kind
    subscriptions = walk(client.v1.subscriptions.list, {"limit": 100, "status": "all"})
    expected = newest_first(world.objects(MAIN, "subscriptions"))
    assert [s["id"] for s in subscriptions] == [s["id"] for s in expected]


def test_objects_come_back_as_stored_apart_from_truncated_embedded_lists(sandbox, world):
    client = client_for(sandbox)
    customers = {c["id"]: c for c in walk(client.v1.customers.list, {"limit": 100})}
    for customer in world.objects(MAIN, "customers"):
        assert customers[customer["id"]] == customer
    invoices = {i["id"]: i for i in walk(client.v1.invoices.list, {"limit": 100})}
    for invoice in world.objects(MAIN, "invoices"):
        served = invoices[invoice["id"]]
        assert {k: v for k, v in served.items() if k != "lines"} == {
            k: v for k, v in invoice.items() if k != "lines"
        }
        assert served["lines"]["data"] == invoice["lines"]["data"][:10]


def test_a_page_holds_limit_objects_and_says_whether_more_follow(sandbox):
    client = client_for(sandbox)
    page = client.v1.customers.list(params={"limit": 30})
    assert len(page.data) == 30 and page.has_more is False
    page = client.v1.customers.list(params={"limit": 29})
    assert len(page.data) == 29 and page.has_more is True
    assert page.url == "/v1/customers"
    assert len(client.v1.customers.list().data) == 10  # Stripe's default limit


def test_starting_after_and_ending_before_move_through_pages_both_ways(sandbox, world):
    client = client_for(sandbox)
    ids = [c["id"] for c in newest_first(world.objects(MAIN, "customers"))]
    second = client.v1.customers.list(params={"limit": 5, "starting_after": ids[4]})
    assert [c.id for c in second.data] == ids[5:10]
    before = client.v1.customers.list(params={"limit": 3, "ending_before": ids[5]})
    assert [c.id for c in before.data] == ids[2:5]
    assert before.has_more is True  # ids[0:2] are newer still
    first = client.v1.customers.list(params={"limit": 10, "ending_before": ids[2]})
    assert [c.id for c in first.data] == ids[0:2]
    assert first.has_more is False
    last = client.v1.customers.list(params={"limit": 10, "starting_after": ids[-1]})
    assert last.data == [] and last.has_more is False


def test_sdk_auto_paging_visits_each_object_once(sandbox, world):
    client = client_for(sandbox)
    seen = [c.id for c in client.v1.customers.list(params={"limit": 4}).auto_paging_iter()]
    assert sorted(seen) == sorted(c["id"] for c in world.objects(MAIN, "customers"))
    assert len(seen) == len(set(seen))


def test_created_filters_select_by_creation_time(sandbox, world):
    client = client_for(sandbox)
    invoices = world.objects(MAIN, "invoices")
    moments = sorted({i["created"] for i in invoices})
    middle = moments[len(moments) // 2]
    cases = {
        "gt": lambda c: c > middle,
        "gte": lambda c: c >= middle,
        "lt": lambda c: c < middle,
        "lte": lambda c: c <= middle,
    }
    for op, keep in cases.items():
        got = walk(client.v1.invoices.list, {"limit": 100, "created": {op: middle}})
        expected = newest_first(i for i in invoices if keep(i["created"]))
        assert [i["id"] for i in got] == [i["id"] for i in expected], op
    window = walk(
        client.v1.invoices.list,
        {"limit": 3, "created": {"gte": moments[3], "lt": moments[9]}},
    )
    assert {i["created"] for i in window} == set(moments[3:9])
    exact = get(sandbox, f"/v1/customers?created={world.objects(MAIN, 'customers')[0]['created']}")
    assert [c["id"] for c in exact.json()["data"]] == ["cus_0100001", "cus_0100000"]


def test_subscriptions_list_skips_canceled_unless_asked(sandbox, world):
    client = client_for(sandbox)
    subscriptions = world.objects(MAIN, "subscriptions")
    default = walk(client.v1.subscriptions.list, {"limit": 100})
    assert {s["id"] for s in default} == {
        s["id"] for s in subscriptions if s["status"] != "canceled"
    }
    everything = walk(client.v1.subscriptions.list, {"limit": 100, "status": "all"})
    assert len(everything) == len(subscriptions)
    for status in ("canceled", "trialing", "past_due"):
        got = walk(client.v1.subscriptions.list, {"limit": 100, "status": status})
        assert {s["id"] for s in got} == {s["id"] for s in subscriptions if s["status"] == status}
        assert got
    ended = walk(client.v1.subscriptions.list, {"limit": 100, "status": "ended"})
    assert {s["status"] for s in ended} == {"canceled", "incomplete_expired"}


def test_invoices_filter_by_status_customer_and_subscription(sandbox, world):
    client = client_for(sandbox)
    invoices = world.objects(MAIN, "invoices")
    for status in ("draft", "open", "paid", "uncollectible", "void"):
        got = walk(client.v1.invoices.list, {"limit": 5, "status": status})
        assert [i["id"] for i in got] == [
            i["id"] for i in newest_first(i for i in invoices if i["status"] == status)
        ]
    mine = walk(client.v1.invoices.list, {"customer": "cus_0100003", "status": "paid"})
    assert mine and all(i["customer"] == "cus_0100003" and i["status"] == "paid" for i in mine)
    by_subscription = walk(client.v1.invoices.list, {"subscription": "sub_0100004"})
    assert len(by_subscription) == 3


def test_prices_and_products_filter_on_active(sandbox):
    client = client_for(sandbox)
    assert [p.id for p in client.v1.prices.list(params={"active": False}).data] == ["price_01o"]
    assert {p.id for p in client.v1.products.list(params={"active": True}).data} == {
        "prod_010",
        "prod_011",
    }


def test_event_types_match_wildcards(sandbox):
    client = client_for(sandbox)
    customer_events = walk(client.v1.events.list, {"type": "customer.*", "limit": 3})
    assert {e["type"] for e in customer_events} == {
        "customer.created",
        "customer.subscription.updated",
    }
    several = walk(
        client.v1.events.list, {"types": ["invoice.paid", "price.updated"], "limit": 100}
    )
    assert {e["type"] for e in several} == {"invoice.paid", "price.updated"}
    # `types[]` takes exact names, as Stripe documents: a wildcard there matches nothing.
    assert walk(client.v1.events.list, {"types": ["invoice.*"], "limit": 100}) == []
    exact = walk(client.v1.events.list, {"type": "invoice.paid", "limit": 100})
    assert exact and {e["type"] for e in exact} == {"invoice.paid"}


def test_events_older_than_30_days_are_gone(sandbox, world):
    client = client_for(sandbox)
    events = walk(client.v1.events.list, {"limit": 100})
    assert min(e["created"] for e in events) >= NOW - 30 * DAY
    old = min(world.objects(MAIN, "events"), key=lambda e: e["created"])
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.events.retrieve(old["id"])


# -- embedded lists, sub-lists, expand ----------------------------------------------------


def test_invoice_embeds_ten_lines_and_the_lines_endpoint_returns_all(sandbox, world):
    client = client_for(sandbox)
    invoice = client.v1.invoices.retrieve("in_0100000_0")
    assert len(invoice.lines.data) == 10
    assert invoice.lines.has_more is True
    assert invoice.lines.url == "/v1/invoices/in_0100000_0/lines"
    lines = walk(
        lambda params, options: client.v1.invoices.line_items.list(
            "in_0100000_0", params=params, options=options
        ),
        {"limit": 4},
    )
    expected = world.store[MAIN]["invoices"]["in_0100000_0"]["lines"]["data"]
    assert lines == expected
    small = client.v1.invoices.retrieve("in_0100001_0")
    assert small.lines.has_more is False and len(small.lines.data) == 2


def test_subscription_items_page_through_all_items(sandbox, world):
    client = client_for(sandbox)
    subscription = client.v1.subscriptions.retrieve("sub_0100000")
    assert len(subscription["items"].data) == 10 and subscription["items"].has_more is True
    assert subscription["items"].url == "/v1/subscription_items?subscription=sub_0100000"
    items = walk(client.v1.subscription_items.list, {"subscription": "sub_0100000", "limit": 3})
    expected = world.store[MAIN]["subscriptions"]["sub_0100000"]["items"]["data"]
    assert items == expected
    one = client.v1.subscription_items.retrieve("si_0100000_12")
    assert one.quantity == 13


def test_subscription_items_need_a_subscription(sandbox):
    client = client_for(sandbox)
    with pytest.raises(stripe.InvalidRequestError) as error:
        client.v1.subscription_items.list(params={})
    assert error.value.param == "subscription"


def test_price_tiers_appear_only_when_expanded(sandbox):
    client = client_for(sandbox)
    plain = {p.id: p.to_dict() for p in client.v1.prices.list().data}
    assert "tiers" not in plain["price_01t"]
    expanded = {p.id: p.to_dict() for p in client.v1.prices.list(params={"expand": ["data.tiers"]})}
    assert expanded["price_01t"]["tiers"][1]["unit_amount"] == 800
    assert "tiers" not in client.v1.prices.retrieve("price_01t").to_dict()
    price = client.v1.prices.retrieve("price_01t", params={"expand": ["tiers"]})
    assert len(price.tiers) == 2


# -- errors -------------------------------------------------------------------------------


def test_bad_key_is_rejected_without_echoing_it(sandbox):
    key = "sk_test_thisIsNotTheRightKey1234"
    with pytest.raises(stripe.AuthenticationError) as error:
        client_for(sandbox, key).v1.customers.list()
    assert error.value.http_status == 401
    assert key not in str(error.value.user_message)
    assert key not in error.value.http_body
    assert error.value.user_message.endswith("1234")
    missing = requests.get(sandbox.url + "/v1/customers", timeout=10)
    assert missing.status_code == 401
    assert "did not provide an API key" in missing.json()["error"]["message"]


def test_restricted_keys_read_and_a_key_without_invoice_permission_gets_403(sandbox):
    assert client_for(sandbox, RESTRICTED_API_KEY).v1.invoices.list().data
    limited = client_for(sandbox, NO_INVOICES_API_KEY)
    assert limited.v1.customers.list().data
    with pytest.raises(stripe.PermissionError) as error:
        limited.v1.invoices.list()
    assert "rak_invoice_read" in error.value.user_message
    assert NO_INVOICES_API_KEY not in error.value.user_message


def test_basic_auth_is_accepted(sandbox):
    answer = requests.get(sandbox.url + "/v1/customers", auth=(SANDBOX_API_KEY, ""), timeout=10)
    assert answer.status_code == 200


def test_unknown_and_invalid_parameters_are_400(sandbox):
    client = client_for(sandbox)
    with pytest.raises(stripe.InvalidRequestError) as error:
        client.v1.customers.list(params={"colour": "blue"})
    assert error.value.http_status == 400
    assert error.value.user_message == "Received unknown parameter: colour"
    assert error.value.param == "colour"
    for params in ({"limit": 0}, {"limit": 101}, {"limit": "ten"}):
        with pytest.raises(stripe.InvalidRequestError) as error:
            client.v1.customers.list(params=params)
        assert error.value.param == "limit"
    for params in (
        {"created": {"gte": "yesterday"}},
        {"status": "sleeping"},
        {"starting_after": "sub_nope"},
        {"starting_after": "sub_0100000", "ending_before": "sub_0100001"},
    ):
        with pytest.raises(stripe.InvalidRequestError):
            client.v1.subscriptions.list(params=params)
    body = get(sandbox, "/v1/invoices?status=pending").json()["error"]
    assert body["type"] == "invalid_request_error" and body["param"] == "status"


def test_unknown_ids_and_routes_are_404_resource_missing(sandbox):
    client = client_for(sandbox)
    with pytest.raises(stripe.InvalidRequestError) as error:
        client.v1.customers.retrieve("cus_nope")
    assert error.value.http_status == 404
    assert error.value.code == "resource_missing"
    assert error.value.user_message == "No such customer: 'cus_nope'"
    answer = get(sandbox, "/v1/charges")
    assert answer.status_code == 404
    assert "Unrecognized request URL" in answer.json()["error"]["message"]


def test_stripe_account_selects_the_connected_account(sandbox, world):
    main = client_for(sandbox)
    other = client_for(sandbox, stripe_account=OTHER)
    assert len(walk(main.v1.customers.list, {"limit": 100})) == 30
    other_ids = [c["id"] for c in walk(other.v1.customers.list, {"limit": 100})]
    assert other_ids == [c["id"] for c in newest_first(world.objects(OTHER, "customers"))]
    assert main.v1.accounts.retrieve_current().id == MAIN
    assert other.v1.accounts.retrieve_current().id == OTHER
    with pytest.raises(stripe.PermissionError):
        client_for(sandbox, stripe_account="acct_unknown").v1.customers.list()


def test_headers_carry_the_sandbox_clock_request_id_and_version(sandbox):
    answer = get(sandbox, "/v1/customers", **{"Stripe-Version": "2026-10-28.endive"})
    assert parsedate_to_datetime(answer.headers["Date"]).timestamp() == NOW
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.headers["Request-Id"].startswith("req_")
    assert answer.headers["Stripe-Version"] == "2026-10-28.endive"
    error = get(sandbox, "/v1/customers/cus_nope")
    assert parsedate_to_datetime(error.headers["Date"]).timestamp() == NOW
    assert error.headers["Request-Id"] != answer.headers["Request-Id"]


# -- time ----------------------------------------------------------------------------------


def test_advance_adds_objects_events_and_deletions_and_moves_the_clock(sandbox):
    client = client_for(sandbox)
    before = {c.id for c in client.v1.customers.list(params={"limit": 100}).data}
    answer = requests.post(sandbox.url + "/_sandbox/advance", data={"days": 2}, timeout=10)
    summary = answer.json()
    assert summary["now"] == NOW + 2 * DAY
    assert summary["changes"]["customers"] == {"upserted": 1, "deleted": 1}
    after = client.v1.customers.list(params={"limit": 100})
    assert {c.id for c in after.data} == before - {"cus_0100001"} | {"cus_0190001"}
    assert after.data[0].id == "cus_0190001"  # the newest comes first
    deleted = client.v1.customers.retrieve("cus_0100001")
    assert deleted.deleted is True
    events = client.v1.events.list(params={"created": {"gt": NOW}}).data
    assert {e.type for e in events} == {"customer.created", "customer.deleted", "invoice.deleted"}
    date = get(sandbox, "/v1/customers").headers["Date"]
    assert parsedate_to_datetime(date).timestamp() == NOW + 2 * DAY
    # a cursor on the deleted customer still pages on
    page = client.v1.customers.list(params={"starting_after": "cus_0100001", "limit": 100})
    assert "cus_0100000" in {c.id for c in page.data}


def test_deleted_draft_invoice_is_404(sandbox, world):
    drafts = [i["id"] for i in world.objects(MAIN, "invoices") if i["status"] == "draft"]
    sandbox.advance(3600)
    client = client_for(sandbox)
    with pytest.raises(stripe.InvalidRequestError) as error:
        client.v1.invoices.retrieve(drafts[0])
    assert error.value.http_status == 404


# -- knobs ---------------------------------------------------------------------------------


def test_rate_limit_answers_429_like_stripe(sandbox_factory, world):
    sandbox = sandbox_factory(world=world, rate_limit=5)
    client = client_for(sandbox)
    with pytest.raises(stripe.RateLimitError) as error:
        for _ in range(20):
            client.v1.customers.list(params={"limit": 1})
    assert error.value.http_status == 429
    assert error.value.json_body["error"]["code"] == "rate_limit"
    stats = sandbox.stats()
    assert stats["rate_limited"] == 1 and stats["requests"] == 6
    time.sleep(1.05)
    assert client.v1.customers.list(params={"limit": 1}).data


def test_endpoint_rate_limit_counts_each_route_separately(sandbox_factory, world):
    sandbox = sandbox_factory(world=world, endpoint_rate_limit=3)
    statuses = [get(sandbox, "/v1/customers").status_code for _ in range(4)]
    statuses += [get(sandbox, "/v1/invoices/in_0100000_0/lines").status_code for _ in range(3)]
    statuses += [get(sandbox, "/v1/invoices/in_0100001_0/lines").status_code]
    assert statuses == [200, 200, 200, 429, 200, 200, 200, 429]
    assert sandbox.stats()["rate_limited_by_endpoint"] == {
        "/v1/customers": 1,
        "/v1/invoices/{id}/lines": 1,
    }


def test_faults_and_drops_happen_at_about_the_configured_rate(sandbox_factory, world):
    sandbox = sandbox_factory(world=world, fault_rate=0.2, drop_rate=0.1)
    outcomes = {"ok": 0, "fault": 0, "drop": 0}
    should_retry = set()
    for _ in range(400):
        try:
            answer = get(sandbox, "/v1/customers?limit=1")
        except requests.ConnectionError:
            outcomes["drop"] += 1
            continue
        if answer.status_code >= 500:
            outcomes["fault"] += 1
            assert answer.json()["error"]["type"] == "api_error"
            should_retry.add(answer.headers.get("Stripe-Should-Retry"))
        else:
            outcomes["ok"] += 1
    assert 50 <= outcomes["fault"] <= 110
    assert 20 <= outcomes["drop"] <= 65
    assert "true" in should_retry
    stats = sandbox.stats()
    assert stats["faults"] == outcomes["fault"] and stats["drops"] == outcomes["drop"]


def test_sdk_sees_dropped_connections_as_connection_errors(sandbox_factory, world):
    sandbox = sandbox_factory(world=world, drop_rate=1.0)
    with pytest.raises(stripe.APIConnectionError):
        client_for(sandbox).v1.customers.list()


def test_knobs_change_at_run_time_and_a_429_burst_ends(sandbox):
    answer = requests.post(
        sandbox.url + "/_sandbox/faults", json={"burst_429": 3, "latency_ms": 30}, timeout=10
    )
    assert answer.json()["burst_429"] == 3
    started = time.monotonic()
    statuses = [get(sandbox, "/v1/products").status_code for _ in range(4)]
    assert statuses == [429, 429, 429, 200]
    assert time.monotonic() - started >= 4 * 0.03
    requests.post(sandbox.url + "/_sandbox/faults", data={"latency_ms": 0}, timeout=10)
    bad = requests.post(sandbox.url + "/_sandbox/faults", data={"fault_rate": 2}, timeout=10)
    assert bad.status_code == 400


def test_stats_count_requests_per_endpoint_and_reset(sandbox):
    get(sandbox, "/v1/customers")
    get(sandbox, "/v1/invoices/in_0100000_0")
    get(sandbox, "/v1/invoices/in_0100001_0")
    stats = requests.get(sandbox.url + "/_sandbox/stats", timeout=10).json()
    assert stats["requests"] == 3
    assert stats["by_endpoint"] == {"/v1/customers": 1, "/v1/invoices/{id}": 2}
    assert stats["by_status"] == {"200": 3}
    requests.post(sandbox.url + "/_sandbox/stats/reset", timeout=10)
    assert sandbox.stats()["requests"] == 0


def test_latency_does_not_serialize_concurrent_requests(sandbox_factory, world):
    sandbox = sandbox_factory(world=world, latency_ms=200)
    started = time.monotonic()
    threads = [
        threading.Thread(target=get, args=(sandbox, "/v1/customers?limit=100")) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert time.monotonic() - started < 0.2 * 3


def test_server_stops_and_frees_its_port_and_kept_alive_connections(sandbox_factory, world):
    sandbox = sandbox_factory(world=world)
    port = sandbox.port
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {SANDBOX_API_KEY}"
    assert session.get(sandbox.url + "/v1/account", timeout=5).status_code == 200
    sandbox.stop()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0
    with pytest.raises(requests.ConnectionError):
        session.get(sandbox.url + "/v1/account", timeout=5)


def test_a_client_that_hangs_up_prints_no_traceback_but_a_server_error_does(sandbox, capsys):
    # A run that fails cuts its requests in flight; the hang-up is the client's doing and
    # must not print a traceback into the run's output.
    with socket.create_connection((sandbox.host, sandbox.port)) as client:
        client.sendall(b"GET /v1/acc")  # half a request line: the server waits for more
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    deadline = time.monotonic() + 5  # the server's thread for it has read the reset
    while sandbox.httpd.connections and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not sandbox.httpd.connections
    assert "Traceback" not in capsys.readouterr().err

    try:
        raise ValueError("a bug in the sandbox")
    except ValueError:
        sandbox.httpd.handle_error(None, ("127.0.0.1", 0))
    assert "a bug in the sandbox" in capsys.readouterr().err


def test_urllib_client_gets_json(sandbox):
    request = urllib.request.Request(
        sandbox.url + "/v1/account", headers={"Authorization": f"Bearer {SANDBOX_API_KEY}"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert json.loads(answer.read())["id"] == MAIN


# -- the generated world ------------------------------------------------------------------


@pytest.fixture(scope="module")
def generated():
    """A generated world of two accounts, served once for the read-only tests below."""
    pytest.importorskip("nrr_sync.sandbox.generator")
    from nrr_sync.sandbox.generator import SandboxOptions
    from nrr_sync.sandbox.server import start

    with start(SandboxOptions(customers=40, seed=11, accounts=2)) as sandbox:
        yield sandbox


def served_shape(kind: str, obj: dict) -> dict:
    """What a list returns for a world object: embedded lists cut to 10, no price tiers nor
    currency options."""
    obj = dict(obj)
    for field in ("lines", "items"):
        if isinstance(obj.get(field), dict):
            embedded = dict(obj[field])
            embedded["has_more"] = len(embedded["data"]) > 10
            embedded["data"] = embedded["data"][:10]
            obj[field] = embedded
    if kind == "prices":
        obj.pop("tiers", None)
        obj.pop("currency_options", None)
    if kind == "invoices" and obj.get("discounts"):
        obj["discounts"] = [d["id"] for d in obj["discounts"]]
    return obj


def test_generated_world_lists_match_its_objects_in_every_account(generated):
    world = generated.world
    for account_id in world.account_ids:
        client = client_for(generated, stripe_account=account_id)
        params = {
            "customers": {},
            "products": {},
            "prices": {},
            "subscriptions": {"status": "all"},
            "invoices": {},
            "events": {},
        }
        for kind, extra in params.items():
            served = walk(getattr(client.v1, kind).list, {"limit": 100, **extra})
            expected = newest_first(world.objects(account_id, kind))
            assert [o["id"] for o in served] == [o["id"] for o in expected], (account_id, kind)
            raw = raw_walk(generated, f"/v1/{kind}", extra, account_id)
            assert raw == [served_shape(kind, o) for o in expected], (account_id, kind)


def test_generated_long_invoices_and_subscriptions_page_out_in_full(generated):
    world = generated.world
    account_id = world.account_ids[0]
    client = client_for(generated)
    long_invoices = [
        i for i in world.objects(account_id, "invoices") if len(i["lines"]["data"]) > 10
    ]
    assert long_invoices, "the history has invoices with more than 10 lines"
    for invoice in long_invoices[:3]:
        lines = walk(
            lambda params, options, invoice_id=invoice["id"]: client.v1.invoices.line_items.list(
                invoice_id, params=params, options=options
            ),
            {"limit": 3},
        )
        assert [line["id"] for line in lines] == [line["id"] for line in invoice["lines"]["data"]]
        raw = raw_walk(generated, f"/v1/invoices/{invoice['id']}/lines")
        assert raw == invoice["lines"]["data"]
    for subscription in world.objects(account_id, "subscriptions"):
        items = walk(
            client.v1.subscription_items.list, {"subscription": subscription["id"], "limit": 2}
        )
        assert [i["id"] for i in items] == [i["id"] for i in subscription["items"]["data"]]
        raw = raw_walk(generated, "/v1/subscription_items", {"subscription": subscription["id"]})
        assert raw == subscription["items"]["data"]


def test_generated_tiered_prices_show_tiers_when_expanded(generated):
    world = generated.world
    tiered = [p for p in world.objects(world.account_ids[0], "prices") if p.get("tiers")]
    assert tiered
    expanded = {p["id"]: p for p in raw_walk(generated, "/v1/prices", {"expand[]": "data.tiers"})}
    for price in tiered:
        assert expanded[price["id"]] == {k: v for k, v in price.items() if k != "currency_options"}


def test_generated_prices_show_currency_options_only_when_expanded(generated):
    world = generated.world
    prices = list(world.objects(world.account_ids[0], "prices"))
    multi = [p for p in prices if p.get("currency_options")]
    tiered = [p for p in multi if p.get("tiers")]
    assert multi and tiered  # per-unit and tiered prices with options
    both = {"expand[]": ["data.tiers", "data.currency_options"]}
    expanded = {p["id"]: p for p in raw_walk(generated, "/v1/prices", both)}
    assert all(expanded[p["id"]] == p for p in prices)
    only = {
        p["id"]: p for p in raw_walk(generated, "/v1/prices", {"expand[]": "data.currency_options"})
    }
    assert "tiers" not in only[tiered[0]["id"]]
    assert only[tiered[0]["id"]]["currency_options"] == tiered[0]["currency_options"]
    client = client_for(generated)
    assert "currency_options" not in client.v1.prices.retrieve(multi[0]["id"]).to_dict()
    path = f"/v1/prices/{tiered[0]['id']}?expand[]=tiers&expand[]=currency_options"
    retrieved = get(generated, path).json()
    assert retrieved == tiered[0]
    eur = retrieved["currency_options"]["eur"]
    assert eur["tiers"][0]["unit_amount"] != tiered[0]["tiers"][0]["unit_amount"]


def test_generated_invoices_expand_their_discounts_and_coupons(generated):
    world = generated.world
    discounted = [i for i in world.objects(world.account_ids[0], "invoices") if i["discounts"]]
    assert discounted
    deep = {"expand[]": ["data.discounts.source.coupon"]}
    expanded = {i["id"]: i for i in raw_walk(generated, "/v1/invoices", deep)}
    assert all(expanded[i["id"]]["discounts"] == i["discounts"] for i in discounted)
    coupon = discounted[0]["discounts"][0]["source"]["coupon"]
    assert coupon["object"] == "coupon" and set(coupon) >= {"percent_off", "amount_off", "duration"}
    shallow = {
        i["id"]: i for i in raw_walk(generated, "/v1/invoices", {"expand[]": "data.discounts"})
    }
    first = shallow[discounted[0]["id"]]["discounts"][0]
    assert first["object"] == "discount" and first["source"]["coupon"] == coupon["id"]
    plain = get(generated, f"/v1/invoices/{discounted[0]['id']}").json()
    assert plain["discounts"] == [d["id"] for d in discounted[0]["discounts"]]
    path = f"/v1/invoices/{discounted[0]['id']}?expand[]=discounts.source.coupon"
    assert get(generated, path).json()["discounts"] == discounted[0]["discounts"]


def test_generated_deleted_customers_retrieve_as_deleted(generated):
    world = generated.world
    deleted = world.deleted_ids(world.account_ids[0], "customers")
    if not deleted:
        pytest.skip("no customer deleted in this history")
    answer = client_for(generated).v1.customers.retrieve(deleted[0])
    assert answer.to_dict() == {"id": deleted[0], "object": "customer", "deleted": True}


def test_generated_date_header_is_the_generated_now(generated):
    answer = get(generated, "/v1/account")
    assert parsedate_to_datetime(answer.headers["Date"]).timestamp() == generated.world.now


def test_advancing_a_generated_world_serves_the_new_invoices_and_events(sandbox_factory):
    pytest.importorskip("nrr_sync.sandbox.generator")
    sandbox = sandbox_factory(customers=30, seed=5)
    client = client_for(sandbox)
    before = sandbox.world.now
    summary = requests.post(sandbox.url + "/_sandbox/advance", data={"days": 35}, timeout=60)
    assert summary.json()["now"] == before + 35 * DAY
    new_invoices = walk(client.v1.invoices.list, {"created": {"gt": before}, "limit": 100})
    assert new_invoices, "a month of life renews subscriptions"
    world_ids = {i["id"] for i in sandbox.world.objects(sandbox.world.account_ids[0], "invoices")}
    assert {i["id"] for i in new_invoices} <= world_ids
    events = walk(client.v1.events.list, {"created": {"gt": before}, "type": "invoice.*"})
    assert events
    everything = walk(client.v1.invoices.list, {"limit": 100})
    assert [i["id"] for i in everything] == [
        i["id"]
        for i in newest_first(sandbox.world.objects(sandbox.world.account_ids[0], "invoices"))
    ]


def test_a_page_touches_only_its_own_objects_however_large_the_account():
    from nrr_sync.sandbox.store import AccountStore

    store = AccountStore(MAIN)
    store.load(
        "invoices",
        (
            {
                "id": f"in_{n:06d}",
                "object": "invoice",
                "created": 1_600_000_000 + n // 3,
                "customer": f"cus_{n % 5000:05d}",
                "status": INVOICE_STATUSES[n % 5],
            }
            for n in range(30_000)
        ),
    )
    invoices = store.collections["invoices"]
    unpacked = []
    original = invoices.unpack
    invoices.unpack = lambda blob: unpacked.append(blob) or original(blob)
    data, has_more = invoices.page(
        invoices.key_lists(None, None), limit=100, high=invoices.cursor_key("in_015000")
    )
    assert [json.loads(d)["id"] for d in data][:2] == ["in_014999", "in_014998"]
    assert has_more and len(unpacked) == 100
    unpacked.clear()
    data, _ = invoices.page(invoices.key_lists("customer", ["cus_00042"]), limit=100)
    assert len(data) == 6 and len(unpacked) == 6
