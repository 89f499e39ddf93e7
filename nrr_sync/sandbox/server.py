"""A Stripe-compatible, read-only HTTP server over a generated account history.

It answers the GET endpoints the sync uses the way Stripe does (list envelope, cursor
pagination newest first, ``created`` / ``status`` / ``customer`` / ``type`` filters,
``expand[]`` of price tiers, error envelope, Bearer auth, ``Stripe-Account``), and adds
what tests and benchmarks need: latency, rate limits answering 429, injected 500/503
and dropped connections, and admin endpoints under ``/_sandbox/`` to advance the
sandbox clock and read request statistics. Every response's ``Date`` header is the
sandbox clock (``World.now``), not wall time.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import gc
import json
import random
import re
import threading
import time
from dataclasses import dataclass

from .api_requests import (
    EVENT_RETENTION_SECONDS,
    INVOICE_STATUSES,
    LAZY_KINDS,
    LIST_EXPANDS,
    LIST_PARAMS,
    NO_INVOICES_API_KEY,
    OBJECT_NAMES,
    PAGING,
    RETRIEVE_EXPANDS,
    SANDBOX_API_KEY,
    SUBSCRIPTION_STATUSES,
    URL_PATHS,
    ApiError,
    check_params,
    created_bounds,
    list_body,
    mask_key,
    no_such,
    parse_expand,
    parse_limit,
    wildcard,
)
from .generator import no_cyclic_gc
from .handler import Handler, SandboxHTTPServer
from .shapes import dumps, invoice_with_discounts, page_of_sequence, price_with
from .store import AccountStore


@dataclass
class Knobs:
    latency_ms: float = 0
    rate_limit: int = 0  # requests per second over all endpoints; 0 = off
    endpoint_rate_limit: int = 0  # requests per second per route template; 0 = off
    fault_rate: float = 0.0  # fraction answered 500 / 503
    drop_rate: float = 0.0  # fraction whose connection is closed without an answer
    burst_429: int = 0  # answer the next N requests with 429


@contextlib.contextmanager
def paused_cyclic_gc():
    """Millions of index tuples: the cyclic collector would rescan them while they are
    made. Once made, one full collection moves them (and the world's records, made with
    the collector paused too) to the oldest generation, about 1 s per million objects;
    otherwise the first requests would pay for it, twice."""
    with no_cyclic_gc():
        yield
    gc.collect()


def page_cursors(params: dict) -> tuple[str | None, str | None]:
    """A list request's ``starting_after`` and ``ending_before``; Stripe refuses both."""
    starting_after = params.get("starting_after")
    ending_before = params.get("ending_before")
    if starting_after is not None and ending_before is not None:
        raise ApiError(
            400,
            "Received both starting_after and ending_before parameters. Please pass in only one.",
        )
    return starting_after, ending_before


def load_account(world, account_id: str) -> AccountStore:
    """Index one account's objects. A world that can list its records without rendering
    them (``index_entries`` / ``render``, as the generator's) has its big collections held
    lazily, rendered when asked for; any other world's objects are stored as bytes."""
    store = AccountStore(account_id)
    lazy = hasattr(world, "index_entries") and hasattr(world, "render")
    discount_objects = getattr(world, "discount_objects", None)
    if discount_objects is not None:  # what expand[]=discounts needs of lazily held invoices
        store.discounts.update(discount_objects(account_id))
    for kind in OBJECT_NAMES:
        if lazy and kind in LAZY_KINDS:
            render = functools.partial(world.render, account_id, kind)
            store.load_records(kind, world.index_entries(account_id, kind), render)
        else:
            store.load(kind, world.objects(account_id, kind))
    # Deleted before "now": a deleted customer still retrieves as deleted.
    deleted_ids = getattr(world, "deleted_ids", None)
    for kind in ("customers", "invoices") if deleted_ids else ():
        for object_id in deleted_ids(account_id, kind):
            store.collections[kind].tombstones.setdefault(object_id, None)
    return store


class Sandbox:
    """The server's state: the world, its indexed objects, knobs and statistics."""

    def __init__(self, world, knobs: Knobs, seed: int = 7):
        self.world = world
        self.knobs = knobs
        self.lock = threading.Lock()  # guards the stores and the world
        self.stats_lock = threading.Lock()  # guards stats, rate windows, knobs, randomness
        self.random = random.Random(seed)
        self.response_number = 0
        self.windows: dict[str, collections.deque] = collections.defaultdict(collections.deque)
        self.in_flight = 0  # API requests being served now
        self.stores: dict[str, AccountStore] = {}
        with paused_cyclic_gc():
            for account_id in world.account_ids:
                self.stores[account_id] = load_account(world, account_id)
        self.reset_stats()

    # -- statistics and knobs --------------------------------------------------------

    def reset_stats(self) -> None:
        with self.stats_lock:
            self.counters = {
                "requests": 0,
                "rate_limited": 0,
                "faults": 0,
                "drops": 0,
                "by_endpoint": collections.Counter(),
                "by_status": collections.Counter(),
                "rate_limited_by_endpoint": collections.Counter(),
                "in_flight_peak": 0,  # most API requests being served at once
            }

    def stats(self) -> dict:
        with self.stats_lock:
            counters = self.counters
            return {
                "requests": counters["requests"],
                "rate_limited": counters["rate_limited"],
                "faults": counters["faults"],
                "drops": counters["drops"],
                "by_endpoint": dict(counters["by_endpoint"]),
                "by_status": {str(k): v for k, v in sorted(counters["by_status"].items())},
                "rate_limited_by_endpoint": dict(counters["rate_limited_by_endpoint"]),
                "in_flight_peak": counters["in_flight_peak"],
                "now": self.world.now,
                "knobs": vars(self.knobs).copy(),
            }

    def request_started(self) -> None:
        with self.stats_lock:
            self.in_flight += 1
            peak = max(self.counters["in_flight_peak"], self.in_flight)
            self.counters["in_flight_peak"] = peak

    def request_finished(self) -> None:
        with self.stats_lock:
            self.in_flight -= 1

    def set_knobs(self, **changes) -> dict:
        with self.stats_lock:
            for name, value in changes.items():
                if not hasattr(self.knobs, name):
                    raise ApiError(400, f"Unknown knob: {name}", param=name)
                current = getattr(self.knobs, name)
                try:
                    value = type(current)(value)
                except (TypeError, ValueError):
                    raise ApiError(
                        400, f"Invalid value for {name}: {value!r}", param=name
                    ) from None
                if value < 0 or (name.endswith("_rate") and value > 1):
                    raise ApiError(400, f"Invalid value for {name}: {value!r}", param=name)
                setattr(self.knobs, name, value)
            return vars(self.knobs).copy()

    def admit(self, template: str) -> str | None:
        """Count a request and decide its fate: None (serve it), or drop / fault / 429."""
        with self.stats_lock:
            counters = self.counters
            counters["requests"] += 1
            counters["by_endpoint"][template] += 1
            knobs = self.knobs
            if knobs.drop_rate or knobs.fault_rate:
                draw = self.random.random()
                if draw < knobs.drop_rate:
                    counters["drops"] += 1
                    return "drop"
                if draw < knobs.drop_rate + knobs.fault_rate:
                    counters["faults"] += 1
                    return "fault_503" if self.random.random() < 1 / 3 else "fault_500"
            if knobs.burst_429 > 0:
                knobs.burst_429 -= 1
                return self._rate_limited(template, "burst")
            now = time.monotonic()
            limits = []
            if knobs.rate_limit:
                limits.append(("*", knobs.rate_limit, "global-rate"))
            if knobs.endpoint_rate_limit:
                limits.append((template, knobs.endpoint_rate_limit, "endpoint-rate"))
            for key, limit, reason in limits:
                window = self.windows[key]
                while window and window[0] <= now - 1.0:
                    window.popleft()
                if len(window) >= limit:
                    return self._rate_limited(template, reason)
            for key, _, _ in limits:
                self.windows[key].append(now)
            return None

    def _rate_limited(self, template: str, reason: str) -> str:
        self.counters["rate_limited"] += 1
        self.counters["rate_limited_by_endpoint"][template] += 1
        return f"429:{reason}"

    def count_status(self, status: int) -> None:
        with self.stats_lock:
            self.counters["by_status"][status] += 1

    def next_request_id(self) -> str:
        with self.stats_lock:
            self.response_number += 1
            number = self.response_number
        return f"req_sandbox{number:010d}"

    # -- time ------------------------------------------------------------------------

    def advance(self, seconds: int) -> dict:
        """Move the sandbox clock: let the world live ``seconds`` more, store what changed."""
        summary: dict = collections.defaultdict(lambda: {"upserted": 0, "deleted": 0})
        with self.lock:
            before = self.world.now
            changes = self.world.advance(seconds)
            for account_id, kind, obj, object_id in changes:
                store = self.stores[account_id]
                if obj is None:
                    store.remove(kind, object_id)
                    summary[kind]["deleted"] += 1
                else:
                    store.put(kind, obj)
                    summary[kind]["upserted"] += 1
            for store in self.stores.values():  # records may have changed under them
                store.forget_rendered()
            now = self.world.now
        return {"from": before, "now": now, "seconds": now - before, "changes": dict(summary)}

    # -- the API ---------------------------------------------------------------------

    def handle(
        self, handler: str, match: re.Match, params: dict, account_id: str, key: str
    ) -> bytes:
        """Answer one authenticated API request (bytes of JSON) or raise ApiError."""
        invoice_endpoint = handler.endswith(":invoices") or handler == "invoice_lines"
        if invoice_endpoint and key == NO_INVOICES_API_KEY:
            raise ApiError(
                403,
                f"The provided key '{mask_key(key)}' does not have the required "
                f"permissions for this endpoint on account '{account_id}'. Having the "
                "'rak_invoice_read' permission would allow this request to continue.",
            )
        with self.lock:
            store = self.stores[account_id]
            if handler == "account":
                check_params(params, {"expand"})
                return dumps(self.account_object(account_id))
            if handler.startswith("list:"):
                return self.list_objects(store, handler[5:], params)
            if handler.startswith("get:"):
                return self.retrieve(store, handler[4:], match.group(1), params)
            if handler == "invoice_lines":
                return self.invoice_lines(store, match.group(1), params)
            if handler == "subscription_items":
                return self.subscription_items(store, params)
            if handler == "subscription_item":
                check_params(params, {"expand"})
                parse_expand(params, set())
                item = store.subscription_item(match.group(1))
                if item is None:
                    raise no_such("subscription_item", match.group(1))
                return dumps(item)
        raise AssertionError(handler)

    def account_object(self, account_id: str) -> dict:
        return {
            "id": account_id,
            "object": "account",
            "business_profile": {"name": f"Sandbox {account_id}"},
            "charges_enabled": True,
            "country": "US",
            "created": min(
                (key[0] for key in self.stores[account_id].collections["customers"].keys[:1]),
                default=self.world.now,
            ),
            "default_currency": "usd",
            "details_submitted": True,
            "email": None,
            "payouts_enabled": True,
            "type": "standard",
        }

    def list_objects(self, store: AccountStore, kind: str, params: dict) -> bytes:
        check_params(params, PAGING | LIST_PARAMS[kind])
        limit = parse_limit(params)
        expand = parse_expand(params, LIST_EXPANDS.get(kind, set()))
        low, high = created_bounds(params.get("created"))
        if kind == "events":
            oldest = (self.world.now - EVENT_RETENTION_SECONDS, "")
            low = oldest if low is None else max(low, oldest)
        collection = store.collections[kind]
        starting_after, ending_before = page_cursors(params)
        cursor = starting_after if starting_after is not None else ending_before
        if cursor is not None:
            param = "starting_after" if starting_after is not None else "ending_before"
            key = collection.cursor_key(cursor) if isinstance(cursor, str) else None
            if key is None:
                raise no_such(OBJECT_NAMES[kind], str(cursor), param=param, status=400)
            if starting_after is not None:
                high = key if high is None else min(high, key)
            else:
                low = key if low is None else max(low, key)

        field, values, keep = self.filters(collection, kind, params)
        data, has_more = collection.page(
            collection.key_lists(field, values),
            limit=limit,
            low=low,
            high=high,
            ending_before=ending_before is not None,
            keep=keep,
        )
        if kind == "prices" and expand:
            wanted = {path.removeprefix("data.") for path in expand}
            data = [self._price_with(store, item, wanted) for item in data]
        if kind == "invoices" and expand & {"data.discounts", "data.discounts.source.coupon"}:
            coupons = "data.discounts.source.coupon" in expand
            data = [self._invoice_with(store, item, coupons) for item in data]
        return list_body(data, has_more, f"/v1/{URL_PATHS.get(kind, kind)}")

    def filters(self, collection, kind: str, params: dict):
        """Pick the index to walk and a check for the remaining filters."""
        wanted: dict[str, set] = {}  # indexed field -> accepted values
        if kind in ("products", "prices") and "active" in params:
            if params["active"] not in ("true", "false"):
                raise ApiError(400, "Invalid boolean: " + str(params["active"]), param="active")
            wanted["active"] = {params["active"] == "true"}
        for name in ("customer", "subscription", "product", "invoice"):
            if name in params:
                if not isinstance(params[name], str):
                    raise ApiError(400, f"Invalid string: {name}", param=name)
                wanted[name] = {params[name]}
        if kind == "subscriptions":
            status = params.get("status")
            if status is None:
                wanted["status"] = set(SUBSCRIPTION_STATUSES) - {"canceled"}
            elif status == "ended":
                wanted["status"] = {"canceled", "incomplete_expired"}
            elif status in SUBSCRIPTION_STATUSES:
                wanted["status"] = {status}
            elif status != "all":
                raise ApiError(
                    400,
                    "Invalid status: must be one of "
                    + ", ".join((*SUBSCRIPTION_STATUSES, "ended"))
                    + ", or all",
                    param="status",
                )
        if kind == "invoices" and "status" in params:
            if params["status"] not in INVOICE_STATUSES:
                raise ApiError(
                    400,
                    "Invalid status: must be one of " + ", ".join(INVOICE_STATUSES),
                    param="status",
                )
            wanted["status"] = {params["status"]}
        if kind == "events":
            if "type" in params and "types" in params:
                raise ApiError(400, "You may pass either type or types, but not both.")
            # Like Stripe: `type` takes one name or a group with a `*` wildcard
            # (`invoice.*`); `types[]` takes up to 20 exact event names, no wildcards.
            if "type" in params:
                matcher = wildcard(params["type"])
                wanted["type"] = {
                    value for value in collection.index["type"] if matcher.match(value or "")
                }
            elif "types" in params:
                names = params["types"]
                if isinstance(names, str):
                    names = [names]
                if not isinstance(names, list) or len(names) > 20:
                    raise ApiError(400, "types must be an array of up to 20 strings", param="types")
                wanted["type"] = set(names)
        if not wanted:
            return None, None, None
        # Walk the most selective index; check the others per object.
        order = ("customer", "invoice", "subscription", "product", "type", "status", "active")
        field = next(name for name in order if name in wanted)
        fields = list(collection.index)
        rest = [
            (fields.index(name), accepted) for name, accepted in wanted.items() if name != field
        ]
        if not rest:
            return field, wanted[field], None
        entries = collection.entries

        def keep(object_id: str) -> bool:
            values = entries[object_id][1]
            return all(values[position] in accepted for position, accepted in rest)

        return field, wanted[field], keep

    def _invoice_with(self, store: AccountStore, data: bytes, coupons: bool) -> bytes:
        return dumps(invoice_with_discounts(json.loads(data), store.discounts, coupons))

    def _price_with(self, store: AccountStore, data: bytes, expand: set[str]) -> bytes:
        full = store.full_prices.get(json.loads(data)["id"])
        return data if full is None else dumps(price_with(json.loads(full), expand))

    def retrieve(self, store: AccountStore, kind: str, object_id: str, params: dict) -> bytes:
        check_params(params, {"expand"})
        expand = parse_expand(params, RETRIEVE_EXPANDS.get(kind, set()))
        collection = store.collections[kind]
        data = collection.get(object_id)
        if data is None:
            if kind == "customers" and object_id in collection.tombstones:
                return dumps({"id": object_id, "object": "customer", "deleted": True})
            raise no_such(OBJECT_NAMES[kind], object_id)
        if kind == "events" and collection.key(object_id)[0] < (
            self.world.now - EVENT_RETENTION_SECONDS
        ):
            raise no_such("event", object_id)
        if kind == "prices" and expand:
            return self._price_with(store, data, expand)
        if kind == "invoices" and expand & {"discounts", "discounts.source.coupon"}:
            return self._invoice_with(store, data, "discounts.source.coupon" in expand)
        return data

    def invoice_lines(self, store: AccountStore, invoice_id: str, params: dict) -> bytes:
        check_params(params, PAGING)
        limit = parse_limit(params)
        parse_expand(params, set())
        lines = store.all_lines(invoice_id)
        if lines is None:
            raise no_such("invoice", invoice_id)
        return self._sequence_page(lines, params, limit, f"/v1/invoices/{invoice_id}/lines")

    def subscription_items(self, store: AccountStore, params: dict) -> bytes:
        check_params(params, PAGING | {"subscription"})
        limit = parse_limit(params)
        parse_expand(params, set())
        subscription_id = params.get("subscription")
        if not isinstance(subscription_id, str) or not subscription_id:
            raise ApiError(
                400,
                "Missing required param: subscription.",
                code="parameter_missing",
                param="subscription",
            )
        items = store.all_items(subscription_id)
        if items is None:
            raise no_such("subscription", subscription_id, param="subscription")
        return self._sequence_page(items, params, limit, "/v1/subscription_items")

    def _sequence_page(self, items: list[dict], params: dict, limit: int, url: str) -> bytes:
        starting_after, ending_before = page_cursors(params)
        page = page_of_sequence(
            items, limit=limit, starting_after=starting_after, ending_before=ending_before
        )
        if page is None:
            param = "starting_after" if starting_after is not None else "ending_before"
            cursor = starting_after if starting_after is not None else ending_before
            raise ApiError(400, f"No such object: '{cursor}'", code="resource_missing", param=param)
        data, has_more = page
        return list_body([dumps(item) for item in data], has_more, url)


class RunningSandbox:
    """A sandbox server serving in a background thread; a context manager."""

    api_key = SANDBOX_API_KEY

    def __init__(self, sandbox: Sandbox, httpd: SandboxHTTPServer):
        self.sandbox = sandbox
        self.world = sandbox.world
        self.httpd = httpd
        host, port = httpd.server_address[:2]
        self.host, self.port = host, port
        self.url = f"http://{host}:{port}"
        self.stopped = False
        self.thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="sandbox", daemon=True
        )
        self.thread.start()

    def stats(self) -> dict:
        return self.sandbox.stats()

    def reset_stats(self) -> None:
        self.sandbox.reset_stats()

    def advance(self, seconds: int) -> dict:
        return self.sandbox.advance(seconds)

    def set_knobs(self, **knobs) -> dict:
        return self.sandbox.set_knobs(**knobs)

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        self.httpd.shutdown()
        self.httpd.server_close()
        self.httpd.close_connections()
        self.thread.join(timeout=5)

    def __enter__(self) -> RunningSandbox:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start(
    options=None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    latency_ms: float = 0,
    rate_limit: int = 0,
    endpoint_rate_limit: int = 0,
    fault_rate: float = 0.0,
    drop_rate: float = 0.0,
    world=None,
) -> RunningSandbox:
    """Generate the world of ``options`` (or serve the given ``world``) on host:port.

    ``port=0`` picks a free port; the URL is on the returned object.
    """
    if world is None:
        from .generator import SandboxOptions, generate

        world = generate(options if options is not None else SandboxOptions())
    knobs = Knobs(
        latency_ms=latency_ms,
        rate_limit=rate_limit,
        endpoint_rate_limit=endpoint_rate_limit,
        fault_rate=fault_rate,
        drop_rate=drop_rate,
    )
    sandbox = Sandbox(world, knobs, seed=getattr(options, "seed", 7))
    handler = type("BoundHandler", (Handler,), {"sandbox": sandbox})
    httpd = SandboxHTTPServer((host, port), handler)
    return RunningSandbox(sandbox, httpd)
