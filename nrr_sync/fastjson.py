"""JSON in and out of a backfill's hot path, with orjson.

Per page of 100 invoices (benchmarks/page_cpu.py, docs/benchmarks.md) orjson parses in
less than half the CPU of the standard library and writes the ``raw`` text of every
object in about a seventh. Its output is the same JSON, compact, in the input's key
order, with non-ASCII characters as UTF-8 instead of ``\\u`` escapes. Two differences
from the standard library: writing an integer beyond 64 bits falls back to it, and
parsing one gives a float (no Stripe amount or timestamp comes near; DuckDB's BIGINT
columns could not hold it either).
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_compact = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def loads(body: bytes | str) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body)  # raises ValueError if it is not JSON at all


def dumps(value: Any) -> str:
    """Compact JSON text, keys in their order."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return _compact(value)


def dumps_sorted(value: Any) -> str:
    """Compact JSON text, keys sorted at every level."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
