"""The sandbox server's object store: Stripe objects indexed for cheap list pages.

Objects are kept as compact JSON bytes in the shape a list or retrieve answers with by
default (embedded ``lines`` / ``items`` cut to their first 10, price ``tiers`` left out),
so a page is a join of stored bytes: no parsing, no sorting, no scan per request. What the
default shape leaves out (the rest of the lines and items, the tiers) is kept aside for the
few objects that have it.

Each object's bytes are deflated against a preset dictionary made of the collection's first
objects: Stripe objects of one kind share nearly all their keys and most values, so a 5 KB
invoice keeps in a few hundred bytes, and inflating a page of 100 costs well under a
millisecond. That is what lets an account of a million invoices fit in memory.

Every list is ordered like Stripe's: newest first, by ``(created, id)`` descending. Each
collection keeps its keys in an ascending sorted list; a page is a bisect to the cursor and
a walk down the list. Filters that narrow a list a lot (a customer's invoices, a status,
an event type) have their own sorted key lists, so those pages cost the same.
"""

from __future__ import annotations

import bisect
import heapq
import json
import zlib
from collections.abc import Callable, Iterable, Iterator

ZDICT_SIZE = 32 * 1024  # deflate's window: the most of a preset dictionary it can use
EMBEDDED_LIMIT = 10  # Stripe embeds the first 10 invoice lines and subscription items

KINDS = ("customers", "products", "prices", "subscriptions", "invoices", "events")

# Fields with their own index, per kind: the list filters that select few objects.
INDEXED_FIELDS = {
    "customers": (),
    "products": ("active",),
    "prices": ("active", "product"),
    "subscriptions": ("status", "customer"),
    "invoices": ("status", "customer", "subscription"),
    "events": ("type",),
}


def dumps(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _field_value(obj: dict, field: str):
    value = obj.get(field)
    if field == "subscription" and value is None:  # invoices: where this API version puts it
        value = ((obj.get("parent") or {}).get("subscription_details") or {}).get("subscription")
    if isinstance(value, dict):  # an expanded reference
        value = value.get("id")
    return value


class Collection:
    """One kind of object of one account: bytes by id, and sorted (created, id) keys."""

    def __init__(self, kind: str):
        self.kind = kind
        self.by_id: dict[str, bytes] = {}
        self.key_of: dict[str, tuple[int, str]] = {}
        self.keys: list[tuple[int, str]] = []  # ascending; lists walk it backwards
        self.index: dict[str, dict[object, list[tuple[int, str]]]] = {
            field: {} for field in INDEXED_FIELDS[kind]
        }
        self.indexed_value: dict[str, tuple] = {}  # id -> values of INDEXED_FIELDS
        self.tombstones: dict[str, int | None] = {}  # deleted id -> created (for cursors)
        self.zdict: bytes | None = None
        self.packer = None  # a compressor primed with zdict; each object deflates a copy

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
        blob = self.by_id.get(object_id)
        return None if blob is None else self.unpack(blob)

    def __len__(self) -> int:
        return len(self.by_id)

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
        self.by_id[object_id] = self.pack(data)
        self.key_of[object_id] = key
        self.keys.append(key)
        values = tuple(_field_value(obj, field) for field in INDEXED_FIELDS[self.kind])
        self.indexed_value[object_id] = values
        for field, value in zip(INDEXED_FIELDS[self.kind], values, strict=True):
            self.index[field].setdefault(value, []).append(key)

    def put(self, obj: dict, data: bytes) -> None:
        object_id = obj["id"]
        if object_id in self.by_id:
            self.remove(object_id)
        key = (int(obj.get("created") or 0), object_id)
        self.tombstones.pop(object_id, None)
        self.by_id[object_id] = self.pack(data)
        self.key_of[object_id] = key
        bisect.insort(self.keys, key)
        values = tuple(_field_value(obj, field) for field in INDEXED_FIELDS[self.kind])
        self.indexed_value[object_id] = values
        for field, value in zip(INDEXED_FIELDS[self.kind], values, strict=True):
            bisect.insort(self.index[field].setdefault(value, []), key)

    def remove(self, object_id: str) -> None:
        key = self.key_of.pop(object_id, None)
        if key is None:
            return
        del self.by_id[object_id]
        _remove_key(self.keys, key)
        values = self.indexed_value.pop(object_id)
        for field, value in zip(INDEXED_FIELDS[self.kind], values, strict=True):
            _remove_key(self.index[field][value], key)
        self.tombstones[object_id] = key[0]

    def cursor_key(self, object_id: str) -> tuple[int, str] | None:
        """Where an object sits in the order (also a deleted one), None if never seen."""
        key = self.key_of.get(object_id)
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
        return [self.unpack(self.by_id[object_id]) for object_id in found], has_more


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
        self.full_lines: dict[str, bytes] = {}  # invoice id -> all lines (when more than 10)
        self.full_items: dict[str, bytes] = {}  # subscription id -> all items (when > 10)
        self.full_prices: dict[str, bytes] = {}  # price id -> price with tiers (tiered only)
        self.item_subscription: dict[str, str] = {}  # subscription item id -> subscription id
        self.subscription_item_ids: dict[str, list[str]] = {}

    def load(self, kind: str, objects: Iterable[dict]) -> None:
        self.collections[kind].load(self._encode(kind, obj) for obj in objects)

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
            url = f"/v1/invoices/{object_id}/lines"
            if len(lines) > EMBEDDED_LIMIT:
                self.full_lines[object_id] = dumps(lines)
            obj = {**obj, "lines": _embedded_list(obj["lines"], lines, url)}
        elif kind == "subscriptions" and isinstance(obj.get("items"), dict):
            items = obj["items"].get("data") or []
            for item in items:
                self.item_subscription[item["id"]] = object_id
            self.subscription_item_ids[object_id] = [item["id"] for item in items]
            url = f"/v1/subscription_items?subscription={object_id}"
            if len(items) > EMBEDDED_LIMIT:
                self.full_items[object_id] = dumps(items)
            obj = {**obj, "items": _embedded_list(obj["items"], items, url)}
        elif kind == "prices" and "tiers" in obj:
            if obj.get("tiers") is not None:
                self.full_prices[object_id] = dumps(obj)
            obj = {key: value for key, value in obj.items() if key != "tiers"}
        return obj, dumps(obj)

    def all_lines(self, invoice_id: str) -> list[dict] | None:
        """Every line of an invoice, in order; None if there is no such invoice."""
        if invoice_id in self.full_lines:
            return json.loads(self.full_lines[invoice_id])
        data = self.get("invoices", invoice_id)
        if data is None:
            return None
        return (json.loads(data).get("lines") or {}).get("data") or []

    def all_items(self, subscription_id: str) -> list[dict] | None:
        """Every item of a subscription, in order; None if there is no such subscription."""
        if subscription_id in self.full_items:
            return json.loads(self.full_items[subscription_id])
        data = self.get("subscriptions", subscription_id)
        if data is None:
            return None
        return (json.loads(data).get("items") or {}).get("data") or []

    def subscription_item(self, item_id: str) -> dict | None:
        subscription_id = self.item_subscription.get(item_id)
        if subscription_id is None:
            return None
        for item in self.all_items(subscription_id) or []:
            if item["id"] == item_id:
                return item
        return None


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
