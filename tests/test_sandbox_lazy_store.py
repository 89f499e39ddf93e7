"""The server holds a generated world's big collections lazily (indexed from the records,
rendered when asked for): it must serve exactly what rendering everything up front serves,
render nothing at start, and render only what a request returns."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import requests

from nrr_sync.sandbox.api_requests import SANDBOX_API_KEY
from nrr_sync.sandbox.generator import SandboxOptions, generate

DAY = 86400


class RenderedUpFront:
    """The same world without index_entries / render: the server stores every object's
    bytes at start, as it did before objects were held lazily."""

    def __init__(self, world):
        self.world = world

    def __getattr__(self, name):
        if name in ("index_entries", "render"):
            raise AttributeError(name)
        return getattr(self.world, name)


class CountingRenders:
    """The world, counting the objects the server renders."""

    def __init__(self, world):
        self.world = world
        self.renders = 0

    def __getattr__(self, name):
        return getattr(self.world, name)

    def render(self, account_id, kind, record):
        self.renders += 1
        return self.world.render(account_id, kind, record)


def get(sandbox, path: str, params=None, account=None) -> requests.Response:
    headers = {"Authorization": f"Bearer {SANDBOX_API_KEY}"}
    if account:
        headers["Stripe-Account"] = account
    query = "?" + urlencode(params, doseq=True) if params else ""
    return requests.get(sandbox.url + path + query, headers=headers, timeout=30)


def pages(sandbox, path: str, params: dict, account=None) -> list[bytes]:
    """Every page of a list, as the bytes on the wire."""
    params = dict(params)
    found = []
    while True:
        response = get(sandbox, path, params, account)
        assert response.status_code == 200, response.text
        found.append(response.content)
        page = json.loads(response.content)
        if not page["has_more"]:
            return found
        params["starting_after"] = page["data"][-1]["id"]


LISTS = [
    ("/v1/customers", {"limit": 100}),
    ("/v1/customers", {"limit": 7}),
    ("/v1/subscriptions", {"limit": 100, "status": "all"}),
    ("/v1/subscriptions", {"limit": 100}),
    ("/v1/subscriptions", {"limit": 100, "status": "past_due"}),
    ("/v1/invoices", {"limit": 100}),
    ("/v1/invoices", {"limit": 100, "status": "open"}),
    ("/v1/invoices", {"limit": 30, "created[lt]": 1_750_000_000}),
    ("/v1/events", {"limit": 100}),
    ("/v1/events", {"limit": 100, "type": "invoice.*"}),
    ("/v1/events", {"limit": 100, "types[]": ["invoice.paid", "customer.subscription.updated"]}),
    ("/v1/prices", {"limit": 100, "expand[]": "data.tiers"}),
]


def test_lazily_held_objects_are_served_byte_for_byte_as_rendered_up_front(sandbox_factory):
    world = generate(SandboxOptions(customers=60, accounts=2, seed=11))
    lazy = sandbox_factory(world=world)
    up_front = sandbox_factory(world=RenderedUpFront(world))
    for account in world.account_ids:
        for path, params in LISTS:
            assert pages(lazy, path, params, account) == pages(up_front, path, params, account)
        objects = {
            kind: [o["id"] for o in world.objects(account, kind)]
            for kind in ("customers", "subscriptions", "invoices", "events")
        }
        some_customer = objects["customers"][5]
        for path, params in (
            ("/v1/invoices", {"customer": some_customer, "limit": 3}),
            ("/v1/subscriptions", {"customer": some_customer, "status": "all"}),
        ):
            assert pages(lazy, path, params, account) == pages(up_front, path, params, account)
        paths = [
            f"/v1/{kind}/{object_id}" for kind, ids in objects.items() for object_id in ids[::10]
        ]
        long_invoices = [
            i["id"] for i in world.objects(account, "invoices") if len(i["lines"]["data"]) > 10
        ]
        assert long_invoices, "the archetypes have invoices of more than 10 lines"
        paths += [f"/v1/invoices/{invoice_id}/lines?limit=4" for invoice_id in long_invoices]
        for subscription in list(world.objects(account, "subscriptions"))[::5]:
            paths.append(f"/v1/subscription_items?subscription={subscription['id']}")
            paths.append(f"/v1/subscription_items/{subscription['items']['data'][0]['id']}")
        paths += [f"/v1/customers/{i}" for i in world.deleted_ids(account, "customers")]
        paths += [f"/v1/invoices/{i}" for i in world.deleted_ids(account, "invoices")]
        for path in paths:
            answers = [get(sandbox, path, account=account) for sandbox in (lazy, up_front)]
            assert answers[0].status_code == answers[1].status_code, path
            assert answers[0].content == answers[1].content, path


def test_after_advance_every_object_is_served_as_the_world_renders_it_now(sandbox_factory):
    world = generate(SandboxOptions(customers=60, seed=4))
    sandbox = sandbox_factory(world=world)
    account = world.account_ids[0]
    pages(sandbox, "/v1/customers", {"limit": 100})  # rendered (and kept) before the advance
    pages(sandbox, "/v1/invoices", {"limit": 100})
    response = requests.post(sandbox.url + "/_sandbox/advance", data={"days": 40}, timeout=60)
    assert response.json()["changes"]["invoices"]["upserted"] > 0
    for kind, params in (
        ("customers", {}),
        ("subscriptions", {"status": "all"}),
        ("invoices", {}),
        ("events", {}),
    ):
        served = [
            obj
            for page in pages(sandbox, f"/v1/{kind}", {"limit": 100, **params})
            for obj in json.loads(page)["data"]
        ]
        expected = sorted(
            world.objects(account, kind), key=lambda o: (o["created"], o["id"]), reverse=True
        )
        assert [o["id"] for o in served] == [o["id"] for o in expected], kind
        for got, want in zip(served, expected, strict=True):
            for embedded in ("lines", "items"):
                if embedded in want:
                    want = {**want, embedded: {**want[embedded]}}
                    want[embedded]["has_more"] = len(want[embedded]["data"]) > 10
                    want[embedded]["data"] = want[embedded]["data"][:10]
            if kind == "invoices" and want.get("discounts"):  # ids unless expanded
                want = {**want, "discounts": [d["id"] for d in want["discounts"]]}
            assert got == want, (kind, got["id"])


def test_starting_renders_nothing_and_a_page_renders_only_its_own_objects(sandbox_factory):
    world = CountingRenders(generate(SandboxOptions(customers=300, seed=2)))
    sandbox = sandbox_factory(world=world)
    assert world.renders == 0
    first = get(sandbox, "/v1/invoices", {"limit": 100}).json()
    assert len(first["data"]) == 100 and world.renders == 100
    second = get(sandbox, "/v1/invoices", {"limit": 100, "starting_after": first["data"][-1]["id"]})
    assert len(second.json()["data"]) == 100 and world.renders == 200
    again = get(sandbox, "/v1/invoices", {"limit": 100}).json()
    assert again == first and world.renders == 200  # kept, not rendered again
    customer = first["data"][0]["customer"]
    own = get(sandbox, "/v1/invoices", {"customer": customer, "limit": 100}).json()["data"]
    assert {i["customer"] for i in own} == {customer}
    assert world.renders <= 200 + len(own)
