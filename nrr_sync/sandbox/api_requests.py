"""Stripe's request conventions as the sandbox answers them: query parameters, the error
envelope, list pages."""

import re
from urllib.parse import parse_qsl

from .store import dumps


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
