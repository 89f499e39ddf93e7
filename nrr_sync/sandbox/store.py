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
"""

from __future__ import annotations

import bisect
import heapq
import json
import operator
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator

ZDICT_SIZE = 32 * 1024  # deflate's window: the most of a preset dictionary it can use
EMBEDDED_LIMIT = 10  # Stripe embeds the first 10 invoice lines and subscription items
RENDERED_KEPT = 4096  # rendered objects kept per collection (pages asked again, retries)

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

# Fields with their own index, per kind: the list filters that select few objects.
INDEXED_FIELDS = {
    "customers": (),
    "products": ("active",),
    "prices": ("active", "product"),
    "subscriptions": ("status", "customer"),
    "invoices": ("status", "customer", "subscription"),
    "credit_notes": ("customer", "invoice"),
    "subscription_schedules": ("customer",),
    "billing_meters": (),
    "events": ("type",),
}


# Compact JSON; the objects are trees, so the encoder need not look for cycles (10 % faster).
ENCODER = json.JSONEncoder(separators=(",", ":"), check_circular=False)


def dumps(obj) -> bytes:
    return ENCODER.encode(obj).encode()


def _field_value(obj: dict, field: str):
    value = obj.get(field)
    if field == "subscription" and value is None:  # invoices: where this API version puts it
        value = ((obj.get("parent") or {}).get("subscription_details") or {}).get("subscription")
    if isinstance(value, dict):  # an expanded reference
        value = value.get("id")
    return value


class Collection:
    """One kind of object of one account: sorted (created, id) keys, and per id an entry
    ``(key, filter values, payload)``; the payload is deflated bytes, or a record that
    ``render`` turns into the default shape's bytes."""

    def __init__(self, kind: str, render: Callable[[object], bytes] | None = None):
        self.kind = kind
        self.entries: dict[str, tuple[tuple[int, str], tuple, object]] = {}
        self.keys: list[tuple[int, str]] = []  # ascending; lists walk it backwards
        self.index: dict[str, dict[object, list[tuple[int, str]]]] = {
            field: {} for field in INDEXED_FIELDS[kind]
        }
        self.tombstones: dict[str, int | None] = {}  # deleted id -> created (for cursors)
        self.zdict: bytes | None = None
        self.packer = None  # a compressor primed with zdict; each object deflates a copy
        self.render = render
        self.rendered: OrderedDict[str, bytes] = OrderedDict()  # the last RENDERED_KEPT

    def pack(self, data: bytes) -> bytes:
        if self.packer is None:
            if self.zdict is None:
                self.zdict = data[-ZDICT_SIZE:]
            self.packer = zlib.compressobj(1, zlib.DEFLATED, -15, 8, 0, self.zdict)
        packer = self.packer.copy()
        return packer.compress(data) + packer.flush()

    def unpack(self, blob: bytes) -> bytes:
        return zlib.decompressobj(-15, self.zdict).decompress(blob)

    def get(self, object_id: str) -> bytes | None:
        entry = self.entries.get(object_id)
        return None if entry is None else self._data(object_id, entry[2])

    def record(self, object_id: str):
        """The record of a lazily held object, None if it is held as bytes (or absent)."""
        entry = self.entries.get(object_id)
        if entry is None or isinstance(entry[2], bytes):
            return None
        return entry[2]

    def _data(self, object_id: str, payload) -> bytes:
        if isinstance(payload, bytes):
            return self.unpack(payload)
        rendered = self.rendered
        data = rendered.get(object_id)
        if data is not None:
            rendered.move_to_end(object_id)
            return data
        data = self.render(payload)
        rendered[object_id] = data
        if len(rendered) > RENDERED_KEPT:
            rendered.popitem(last=False)
        return data

    def __len__(self) -> int:
        return len(self.entries)

    def key(self, object_id: str) -> tuple[int, str] | None:
        entry = self.entries.get(object_id)
        return None if entry is None else entry[0]

    def load(self, objects: Iterable[tuple[dict, bytes]]) -> None:
        """Bulk load (initial state): append everything, sort once."""
        pending = []  # the first objects make the preset dictionary for all
        for obj, data in objects:
            if self.zdict is None and len(pending) < 8:
                pending.append((obj, data))
                if len(pending) == 8:
                    self._load_first(pending)
                continue
            self._append(obj, data)
        if self.zdict is None and pending:
            self._load_first(pending)
        self._sort()

    def load_records(self, entries: Iterable[tuple[int, str, tuple, object]]) -> None:
        """Bulk load of lazily held objects: (created, id, filter values, record)."""
        append_key = self.keys.append
        fields = [self.index[field] for field in INDEXED_FIELDS[self.kind]]
        for created, object_id, values, record in entries:
            key = (created, object_id)
            self.entries[object_id] = (key, values, record)
            append_key(key)
            for by_value, value in zip(fields, values, strict=True):
                keys = by_value.get(value)
                if keys is None:
                    by_value[value] = [key]
                else:
                    keys.append(key)
        self._sort()

    def _sort(self) -> None:
        self.keys.sort()
        for by_value in self.index.values():
            for keys in by_value.values():
                keys.sort()

    def _load_first(self, pending: list) -> None:
        self.zdict = b"".join(data for _, data in pending)[-ZDICT_SIZE:]
        for obj, data in pending:
            self._append(obj, data)

    def _append(self, obj: dict, data: bytes) -> None:
        object_id = obj["id"]
        key = (int(obj.get("created") or 0), object_id)
        values = tuple(_field_value(obj, field) for field in INDEXED_FIELDS[self.kind])
        self.entries[object_id] = (key, values, self.pack(data))
        self.keys.append(key)
        for field, value in zip(INDEXED_FIELDS[self.kind], values, strict=True):
            self.index[field].setdefault(value, []).append(key)

    def put(self, obj: dict, data: bytes) -> None:
        object_id = obj["id"]
        if object_id in self.entries:
            self.remove(object_id)
        key = (int(obj.get("created") or 0), object_id)
        self.tombstones.pop(object_id, None)
        values = tuple(_field_value(obj, field) for field in INDEXED_FIELDS[self.kind])
        self.entries[object_id] = (key, values, self.pack(data))
        bisect.insort(self.keys, key)
        for field, value in zip(INDEXED_FIELDS[self.kind], values, strict=True):
            bisect.insort(self.index[field].setdefault(value, []), key)

    def remove(self, object_id: str) -> None:
        entry = self.entries.pop(object_id, None)
        if entry is None:
            return
        key, values, _ = entry
        self.rendered.pop(object_id, None)
        _remove_key(self.keys, key)
        for field, value in zip(INDEXED_FIELDS[self.kind], values, strict=True):
            _remove_key(self.index[field][value], key)
        self.tombstones[object_id] = key[0]

    def cursor_key(self, object_id: str) -> tuple[int, str] | None:
        """Where an object sits in the order (also a deleted one), None if never seen."""
        key = self.key(object_id)
        if key is None and self.tombstones.get(object_id) is not None:
            key = (self.tombstones[object_id], object_id)
        return key

    def key_lists(self, field: str | None, values: Iterable | None) -> list[list]:
        """The sorted key lists to merge: the whole collection or the union of index values."""
        if field is None:
            return [self.keys]
        by_value = self.index[field]
        return [by_value[value] for value in values if value in by_value]

    def page(
        self,
        key_lists: list[list],
        *,
        limit: int,
        low: tuple | None = None,
        high: tuple | None = None,
        ending_before: bool = False,
        keep: Callable[[str], bool] | None = None,
    ) -> tuple[list[bytes], bool]:
        """Up to ``limit`` objects, newest first, with keys strictly inside (low, high).

        Walks down from ``high`` (starting_after, the default) or up from ``low``
        (ending_before: the page just before the cursor, still returned newest first).
        Returns the objects' bytes and whether more match beyond the page.
        """
        walks = [_walk(keys, low, high, upward=ending_before) for keys in key_lists]
        merged = walks[0] if len(walks) == 1 else heapq.merge(*walks, reverse=not ending_before)
        found: list[str] = []
        for _, object_id in merged:
            if keep is not None and not keep(object_id):
                continue
            found.append(object_id)
            if len(found) > limit:
                break
        has_more = len(found) > limit
        found = found[:limit]
        if ending_before:
            found.reverse()
        entries = self.entries
        return [self._data(object_id, entries[object_id][2]) for object_id in found], has_more


def _walk(keys: list, low: tuple | None, high: tuple | None, upward: bool) -> Iterator:
    """Keys strictly between low and high: descending, or ascending when ``upward``."""
    start = 0 if low is None else bisect.bisect_right(keys, low)
    stop = len(keys) if high is None else bisect.bisect_left(keys, high)
    if upward:
        return (keys[i] for i in range(start, stop))
    return (keys[i] for i in range(stop - 1, start - 1, -1))


def _remove_key(keys: list, key: tuple) -> None:
    position = bisect.bisect_left(keys, key)
    if position < len(keys) and keys[position] == key:
        del keys[position]


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


def default_shape(kind: str, obj: dict) -> dict:
    """The object as lists and retrieves show it by default: embedded lines and items cut
    to the first 10 (with ``has_more`` and the URL of all), price tiers and currency options
    left out."""
    object_id = obj["id"]
    if kind == "invoices" and isinstance(obj.get("lines"), dict):
        lines = obj["lines"].get("data") or []
        url = f"/v1/invoices/{object_id}/lines"
        shaped = {**obj, "lines": _embedded_list(obj["lines"], lines, url)}
        if obj.get("discounts"):
            shaped["discounts"] = [ref_id(d) for d in obj["discounts"]]
        return shaped
    if kind == "subscriptions" and isinstance(obj.get("items"), dict):
        items = obj["items"].get("data") or []
        url = f"/v1/subscription_items?subscription={object_id}"
        return {**obj, "items": _embedded_list(obj["items"], items, url)}
    if kind == "prices" and any(key in obj for key in PRICE_INCLUDABLE):
        return {key: value for key, value in obj.items() if key not in PRICE_INCLUDABLE}
    return obj


def ref_id(value):
    return value["id"] if isinstance(value, dict) else value


def invoice_with_discounts(invoice: dict, discounts: dict[str, dict], coupons: bool) -> dict:
    """The invoice with ``discounts`` expanded (``expand[]=discounts``), their coupons too
    with ``coupons`` (``expand[]=discounts.source.coupon``); unknown ids stay ids."""
    expanded = []
    for discount_id in invoice.get("discounts") or []:
        discount = discounts.get(discount_id)
        if discount is not None and not coupons:
            coupon = discount["source"]["coupon"]
            discount = {**discount, "source": {**discount["source"], "coupon": ref_id(coupon)}}
        expanded.append(discount_id if discount is None else discount)
    return {**invoice, "discounts": expanded}


# Fields of a price Stripe includes only when expanded.
PRICE_INCLUDABLE = ("tiers", "currency_options")


def price_with(full: dict, expand: set[str]) -> dict:
    """A price as Stripe answers it with ``expand`` (names without the ``data.`` prefix):
    the includable fields asked for, none of the others."""
    return {key: value for key, value in full.items()
            if key not in PRICE_INCLUDABLE or key in expand}  # fmt: skip


def _embedded_list(original: dict, data: list, url: str) -> dict:
    embedded = {
        "object": "list",
        "data": data[:EMBEDDED_LIMIT],
        "has_more": len(data) > EMBEDDED_LIMIT,
        "total_count": len(data),
        "url": url,
    }
    if "total_count" not in original:
        del embedded["total_count"]
    return embedded


def page_of_sequence(
    items: list[dict],
    *,
    limit: int,
    starting_after: str | None = None,
    ending_before: str | None = None,
) -> tuple[list[dict], bool] | None:
    """A page of a short, ordered sub-list (invoice lines, subscription items).

    These lists keep the order of the embedded list, so the first page equals the
    embedded one. Returns None if the cursor id is not in the list.
    """
    ids = [item["id"] for item in items]
    if starting_after is not None:
        if starting_after not in ids:
            return None
        start = ids.index(starting_after) + 1
        page = items[start : start + limit]
        return page, start + limit < len(items)
    if ending_before is not None:
        if ending_before not in ids:
            return None
        stop = ids.index(ending_before)
        start = max(0, stop - limit)
        return items[start:stop], start > 0
    return items[:limit], limit < len(items)
