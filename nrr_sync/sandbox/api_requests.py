"""Stripe's request conventions as the sandbox answers them: query parameters, the error
envelope, list pages."""

import re
from urllib.parse import parse_qsl

from .shapes import dumps

SANDBOX_API_KEY = "sk_test_sandbox"
RESTRICTED_API_KEY = "rk_test_sandbox"
NO_INVOICES_API_KEY = "rk_test_sandbox_no_invoices"  # a restricted key without invoice read
API_KEYS = (SANDBOX_API_KEY, RESTRICTED_API_KEY, NO_INVOICES_API_KEY)

EVENT_RETENTION_SECONDS = 30 * 86400  # Stripe lists and retrieves events of the last 30 days

SUBSCRIPTION_STATUSES = (
    "active",
    "canceled",
    "incomplete",
    "incomplete_expired",
    "past_due",
    "paused",
    "trialing",
    "unpaid",
)
INVOICE_STATUSES = ("draft", "open", "paid", "uncollectible", "void")

PAGING = {"limit", "starting_after", "ending_before", "expand"}

# kind -> the object name Stripe uses in messages ("No such customer: ...")
OBJECT_NAMES = {
    "customers": "customer",
    "products": "product",
    "prices": "price",
    "subscriptions": "subscription",
    "invoices": "invoice",
    "credit_notes": "credit_note",
    "subscription_schedules": "subscription_schedule",
    "billing_meters": "billing.meter",
    "events": "event",
}
# kinds served under another path than /v1/<kind>
URL_PATHS = {"billing_meters": "billing/meters"}

# Held lazily (rendered when asked for) when the world can list records without rendering.
LAZY_KINDS = ("customers", "subscriptions", "invoices", "events")

# List filters each endpoint accepts beyond paging, and the expands it serves.
LIST_PARAMS = {
    "customers": {"created"},
    "products": {"created", "active"},
    "prices": {"created", "active", "product"},
    "subscriptions": {"created", "status", "customer"},
    "invoices": {"created", "status", "customer", "subscription"},
    "credit_notes": {"created", "customer", "invoice"},
    "subscription_schedules": {"created", "customer"},
    "billing_meters": set(),
    "events": {"created", "type", "types"},
}
# Expands that change nothing here (the sandbox's objects already hold these) are accepted.
LIST_EXPANDS = {
    "prices": {"data.tiers", "data.currency_options"},
    "invoices": {"data.lines", "data.lines.data", "data.discounts", "data.discounts.source.coupon"},
    "subscriptions": {"data.items", "data.items.data"},
}
RETRIEVE_EXPANDS = {
    "prices": {"tiers", "currency_options"},
    "invoices": {"lines", "lines.data", "discounts", "discounts.source.coupon"},
    "subscriptions": {"items", "items.data"},
}

ROUTES = [
    # (regex, route template, handler name)
    (re.compile(r"^/v1/account$"), "/v1/account", "account"),
    (re.compile(r"^/v1/invoices/([^/]+)/lines$"), "/v1/invoices/{id}/lines", "invoice_lines"),
    (re.compile(r"^/v1/subscription_items$"), "/v1/subscription_items", "subscription_items"),
    (
        re.compile(r"^/v1/subscription_items/([^/]+)$"),
        "/v1/subscription_items/{id}",
        "subscription_item",
    ),
]
for _kind in OBJECT_NAMES:
    _path = URL_PATHS.get(_kind, _kind)
    ROUTES.append((re.compile(rf"^/v1/{_path}$"), f"/v1/{_path}", f"list:{_kind}"))
    ROUTES.append((re.compile(rf"^/v1/{_path}/([^/]+)$"), f"/v1/{_path}/{{id}}", f"get:{_kind}"))


class ApiError(Exception):
    """An answer in Stripe's error envelope."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type="invalid_request_error",
        code=None,
        param=None,
        headers=None,
    ):
        super().__init__(message)
        self.status = status
        self.body = {"message": message, "type": type}
        if code:
            self.body["code"] = code
            self.body["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
        if param:
            self.body["param"] = param
        self.headers = headers or {}


def unknown_parameter(name: str) -> ApiError:
    return ApiError(
        400, f"Received unknown parameter: {name}", code="parameter_unknown", param=name
    )


def no_such(kind_name: str, object_id: str, param: str = "id", status: int = 404) -> ApiError:
    return ApiError(
        status, f"No such {kind_name}: '{object_id}'", code="resource_missing", param=param
    )


def mask_key(key: str) -> str:
    """Stripe's way of naming a key in messages: prefix, stars, the last 4 characters."""
    prefix = re.match(r"^(sk|rk|pk)_(test|live)_", key)
    head = prefix.group(0) if prefix else ""
    tail = key[-4:] if len(key) - len(head) > 8 else ""
    return head + "*" * max(len(key) - len(head) - len(tail), 4) + tail


def parse_params(query: str) -> dict:
    """Form-encoded params to {name: str | {sub: str} | [str]}, Stripe's bracket syntax."""
    params: dict = {}
    for raw_key, value in parse_qsl(query, keep_blank_values=True):
        match = re.fullmatch(r"([A-Za-z0-9_]+)\[([^\]]*)\]", raw_key)
        if match is None:
            if not re.fullmatch(r"[A-Za-z0-9_]+", raw_key):
                raise unknown_parameter(raw_key)
            params[raw_key] = value
            continue
        name, sub = match.groups()
        if sub == "" or sub.isdigit():
            params.setdefault(name, [])
            if not isinstance(params[name], list):
                raise ApiError(400, f"Invalid array: {name}", param=name)
            params[name].append(value)
        else:
            params.setdefault(name, {})
            if not isinstance(params[name], dict):
                raise ApiError(400, f"Invalid hash: {name}", param=name)
            params[name][sub] = value
    return params


def parse_int(value, param: str) -> int:
    if not isinstance(value, str) or not re.fullmatch(r"-?\d+", value.strip()):
        raise ApiError(
            400, f"Invalid integer: {value}", code="parameter_invalid_integer", param=param
        )
    return int(value)


def created_bounds(value) -> tuple[tuple | None, tuple | None]:
    """``created`` / ``created[gt|gte|lt|lte]`` as exclusive (created, id) key bounds."""
    if value is None:
        return None, None
    if isinstance(value, str):
        moment = parse_int(value, "created")
        return (moment, ""), (moment, "\uffff")
    if isinstance(value, list):
        raise ApiError(
            400, "Invalid timestamp: must be an integer Unix timestamp.", param="created"
        )
    low = high = None
    for op, raw in value.items():
        moment = parse_int(raw, f"created[{op}]")
        if op == "gt":
            bound, is_low = (moment, "\uffff"), True
        elif op == "gte":
            bound, is_low = (moment, ""), True
        elif op == "lt":
            bound, is_low = (moment, ""), False
        elif op == "lte":
            bound, is_low = (moment, "\uffff"), False
        else:
            raise unknown_parameter(f"created[{op}]")
        if is_low:
            low = bound if low is None else max(low, bound)
        else:
            high = bound if high is None else min(high, bound)
    return low, high


def parse_limit(params: dict) -> int:
    if "limit" not in params:
        return 10
    limit = parse_int(params["limit"], "limit")
    if not 1 <= limit <= 100:
        raise ApiError(
            400,
            f"Invalid limit: must be between 1 and 100. You passed {limit}.",
            code="parameter_invalid_integer",
            param="limit",
        )
    return limit


def parse_expand(params: dict, allowed: set[str]) -> set[str]:
    expand = params.get("expand", [])
    if isinstance(expand, str | dict):
        raise ApiError(400, "Invalid array", param="expand")
    for path in expand:
        if path not in allowed:
            raise ApiError(400, f"This property cannot be expanded ({path}).", param="expand")
    return set(expand)


def check_params(params: dict, allowed: set[str]) -> None:
    for name in params:
        if name not in allowed:
            raise unknown_parameter(name)


def wildcard(pattern: str) -> re.Pattern:
    return re.compile("^" + re.escape(pattern).replace(r"\*", ".*") + "$")


def list_body(data: list[bytes], has_more: bool, url: str) -> bytes:
    return b"".join(
        [
            b'{"object":"list","data":[',
            b",".join(data),
            b'],"has_more":',
            b"true" if has_more else b"false",
            b',"url":',
            dumps(url),
            b"}",
        ]
    )
