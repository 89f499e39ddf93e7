"""The sandbox server's Stripe API endpoints: the account, lists with their filters, cursors
and expands, retrieves, and the pages of an invoice's lines and a subscription's items,
answered as JSON bytes from an account's store.
"""

from __future__ import annotations

import json
import re

from .api_requests import (
    EVENT_RETENTION_SECONDS,
    INVOICE_STATUSES,
    LIST_EXPANDS,
    LIST_PARAMS,
    NO_INVOICES_API_KEY,
    OBJECT_NAMES,
    PAGING,
    RETRIEVE_EXPANDS,
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
from .shapes import dumps, invoice_with_discounts, page_of_sequence, price_with
from .store import AccountStore


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


class Endpoints:
    """The API's answers (a part of ``server.Sandbox``, a mixin: it uses the sandbox's
    ``world``, ``stores`` and ``lock``)."""

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
