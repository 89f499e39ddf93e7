"""One kind of object of one account in the sandbox server's store (store.py): sorted
``(created, id)`` keys, a sorted key list per value of each indexed field, and each object
held deflated against a preset dictionary, or as a record rendered when asked for. A list
page is a bisect to the cursor and a walk down the merged key lists.
"""

from __future__ import annotations

import bisect
import heapq
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator

ZDICT_SIZE = 32 * 1024  # deflate's window: the most of a preset dictionary it can use
RENDERED_KEPT = 4096  # rendered objects kept per collection (pages asked again, retries)

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
