"""The sandbox server's object store: Stripe objects indexed for cheap list pages.

An object is served in the shape a list or retrieve answers with by default (embedded
``lines`` / ``items`` cut to their first 10, price ``tiers`` and ``currency_options`` left
out) as compact JSON bytes, and is held in one of two ways:

- lazily (the generator's big collections: customers, subscriptions, invoices, events):
  only its sort key and filter values are indexed, taken from the generator's records
  without rendering; the JSON is rendered when a page or retrieve needs it, and the last
  few thousand rendered objects are kept. Loading a million invoices takes seconds and
  little memory, and a page renders only its own objects.
- as bytes (any other world, and every object ``advance`` hands over): deflated against
  a preset dictionary made of the collection's first objects. Stripe objects of one kind
  share nearly all their keys and most values, so a 5 KB invoice keeps in a few hundred
  bytes and inflating a page of 100 costs well under a millisecond. What the default
  shape leaves out (the rest of the lines and items, the tiers, the currency options) is kept
  aside.

Every list is ordered like Stripe's: newest first, by ``(created, id)`` descending. Each
collection keeps its keys in an ascending sorted list; a page is a bisect to the cursor and
a walk down the list. Filters that narrow a list a lot (a customer's invoices, a status,
an event type) have their own sorted key lists, so those pages cost the same.

One kind's objects are a ``Collection`` (collection.py); the shapes objects are sent in,
and what ``expand[]`` adds back, are in shapes.py.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Iterable

from .collection import INDEXED_FIELDS, Collection
from .shapes import EMBEDDED_LIMIT, PRICE_INCLUDABLE, default_shape, dumps

KINDS = (
    "customers",
    "products",
    "prices",
    "subscriptions",
    "invoices",
    "credit_notes",
    "subscription_schedules",
    "billing_meters",
    "events",
)


class AccountStore:
    """All collections of one account, plus what the default shapes leave out."""

    def __init__(self, account_id: str):
        self.account_id = account_id
        self.collections = {kind: Collection(kind) for kind in KINDS}
        self.renderers: dict[str, Callable[[object], dict]] = {}  # kind -> record -> dict
        self.full_lines: dict[str, bytes] = {}  # invoice id -> all lines (when more than 10)
        self.full_items: dict[str, bytes] = {}  # subscription id -> all items (when > 10)
        self.full_prices: dict[str, bytes] = {}  # price id -> price with tiers (tiered only)
        self.discounts: dict[str, dict] = {}  # discount id -> discount, its coupon expanded
        self.item_subscription: dict[str, str] = {}  # subscription item id -> subscription id
        self.subscription_item_ids: dict[str, list[str]] = {}

    def load(self, kind: str, objects: Iterable[dict]) -> None:
        self.collections[kind].load(self._encode(kind, obj) for obj in objects)

    def load_records(
        self,
        kind: str,
        entries: Iterable[tuple[int, str, dict, object]],
        render: Callable[[object], dict],
    ) -> None:
        """Hold objects lazily: ``entries`` are (created, id, filter fields, record) as
        ``World.index_entries`` yields them; ``render(record)`` is the full Stripe object.
        (Prices are held as bytes: their tiers are kept aside at load.)"""
        if kind == "prices":
            raise ValueError("prices are loaded as objects")
        self.renderers[kind] = render
        collection = self.collections[kind]
        collection.render = lambda record: dumps(default_shape(kind, render(record)))
        fields = INDEXED_FIELDS[kind]
        values_of = operator.itemgetter(*fields) if len(fields) > 1 else None
        item_subscription = self.item_subscription
        item_ids_of = self.subscription_item_ids

        def indexed():
            for created, object_id, found, record in entries:
                if kind == "subscriptions":
                    item_ids = found["item_ids"]
                    item_ids_of[object_id] = item_ids
                    for item_id in item_ids:
                        item_subscription[item_id] = object_id
                if values_of is not None:
                    values = values_of(found)
                else:
                    values = tuple(found[field] for field in fields)
                yield created, object_id, values, record

        collection.load_records(indexed())

    def forget_rendered(self) -> None:
        """Drop the kept renderings: the records behind them may have moved on."""
        for collection in self.collections.values():
            collection.rendered.clear()

    def put(self, kind: str, obj: dict) -> None:
        self._forget_extras(kind, obj["id"])
        self.collections[kind].put(*self._encode(kind, obj))

    def remove(self, kind: str, object_id: str) -> None:
        self._forget_extras(kind, object_id)
        self.collections[kind].remove(object_id)

    def get(self, kind: str, object_id: str) -> bytes | None:
        return self.collections[kind].get(object_id)

    def _forget_extras(self, kind: str, object_id: str) -> None:
        if kind == "invoices":
            self.full_lines.pop(object_id, None)
        elif kind == "prices":
            self.full_prices.pop(object_id, None)
        elif kind == "subscriptions":
            self.full_items.pop(object_id, None)
            for item_id in self.subscription_item_ids.pop(object_id, ()):
                self.item_subscription.pop(item_id, None)

    def _encode(self, kind: str, obj: dict) -> tuple[dict, bytes]:
        """The object's default shape as bytes; keep aside what that shape leaves out."""
        object_id = obj["id"]
        if kind == "invoices" and isinstance(obj.get("lines"), dict):
            lines = obj["lines"].get("data") or []
            if len(lines) > EMBEDDED_LIMIT:
                self.full_lines[object_id] = dumps(lines)
            for discount in obj.get("discounts") or []:
                if isinstance(discount, dict):
                    self.discounts[discount["id"]] = discount
        elif kind == "subscriptions" and isinstance(obj.get("items"), dict):
            items = obj["items"].get("data") or []
            for item in items:
                self.item_subscription[item["id"]] = object_id
            self.subscription_item_ids[object_id] = [item["id"] for item in items]
            if len(items) > EMBEDDED_LIMIT:
                self.full_items[object_id] = dumps(items)
        elif kind == "prices" and any(obj.get(key) is not None for key in PRICE_INCLUDABLE):
            self.full_prices[object_id] = dumps(obj)
        obj = default_shape(kind, obj)
        return obj, dumps(obj)

    def _full(self, kind: str, object_id: str) -> dict | None:
        """The whole object (all lines / items) of a lazily held one, None otherwise."""
        record = self.collections[kind].record(object_id)
        return None if record is None else self.renderers[kind](record)

    def all_lines(self, invoice_id: str) -> list[dict] | None:
        """Every line of an invoice, in order; None if there is no such invoice."""
        if invoice_id in self.full_lines:
            return json.loads(self.full_lines[invoice_id])
        invoice = self._full("invoices", invoice_id)
        if invoice is None:
            data = self.get("invoices", invoice_id)
            if data is None:
                return None
            invoice = json.loads(data)
        return (invoice.get("lines") or {}).get("data") or []

    def all_items(self, subscription_id: str) -> list[dict] | None:
        """Every item of a subscription, in order; None if there is no such subscription."""
        if subscription_id in self.full_items:
            return json.loads(self.full_items[subscription_id])
        subscription = self._full("subscriptions", subscription_id)
        if subscription is None:
            data = self.get("subscriptions", subscription_id)
            if data is None:
                return None
            subscription = json.loads(data)
        return (subscription.get("items") or {}).get("data") or []

    def subscription_item(self, item_id: str) -> dict | None:
        subscription_id = self.item_subscription.get(item_id)
        if subscription_id is None:
            return None
        for item in self.all_items(subscription_id) or []:
            if item["id"] == item_id:
                return item
        return None
