"""What went wrong talking to Stripe, classified: retry or not, and what to tell the user.

Stripe's retry rules (docs/operations.md): 429, 409 ``lock_timeout``, 5xx, timeouts and
dropped connections are retried, ``Stripe-Should-Retry`` is obeyed, 400/401/403/404 never.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # failure_of imports it: redact() alone must not load the Stripe SDK
    import stripe

MAX_MESSAGE = 500  # characters of Stripe's error message quoted to the user


_KEY_PATTERN = re.compile(r"\b([sr]k_(?:live|test)_)[A-Za-z0-9_*]+")


_NETWORK_ERROR_PATTERN = re.compile(r"\(Network error: (.*)\)", re.DOTALL)


_HOST_PATTERN = re.compile(r"host='([^']*)', port=(\d+)")


def redact(text: str, api_key: str | None = None) -> str:
    """Remove anything that looks like a Stripe secret or restricted key from ``text``."""
    if api_key:
        text = text.replace(api_key, "[redacted]")
    return _KEY_PATTERN.sub(r"\1[redacted]", text)


def endpoint_of(path: str) -> str:
    """Route template of a path: ``/v1/invoices/in_1/lines`` -> ``/v1/invoices/{id}/lines``."""
    parts = path.split("?")[0].rstrip("/").split("/")
    if len(parts) > 3 and parts[2] != "account":
        parts[3] = "{id}"
    return "/".join(parts)


@dataclass
class Failure:
    """A failed attempt, classified."""

    status: int | None  # HTTP status, None for connection errors and timeouts
    code: str | None  # Stripe's error code (e.g. lock_timeout)
    should_retry_header: str | None  # Stripe-Should-Retry, "true" / "false" / None
    message: str
    unknown_host: bool = False  # the API base's host name did not resolve


def failure_of(error: stripe.StripeError) -> Failure:
    import stripe

    headers = error.headers or {}
    should_retry = None
    for name, value in headers.items():
        if name.lower() == "stripe-should-retry":
            should_retry = str(value).strip().lower()
    status = error.http_status
    if isinstance(error, stripe.APIConnectionError):
        status = None
    message = error.user_message or str(error) or type(error).__name__
    network_error = _NETWORK_ERROR_PATTERN.search(message)
    unknown_host = False
    if isinstance(error, stripe.APIConnectionError) and network_error:
        # The SDK wraps the cause in advice to write to Stripe's support.
        message, unknown_host = network_cause(network_error.group(1).strip())
    elif isinstance(error, stripe.APIError) and (status is None or status < 400):
        message = f"a response that is not valid JSON (HTTP {status})"
    elif "Invalid response body from API" in message:
        message = f"a response that is not Stripe's JSON (HTTP {status}); is the API base right?"
    if len(message) > MAX_MESSAGE:
        message = message[:MAX_MESSAGE] + "…"
    code = error.code
    if code is None and isinstance(error.json_body, dict):
        body_error = error.json_body.get("error")
        code = body_error.get("code") if isinstance(body_error, dict) else None
    return Failure(status, code, should_retry, message, unknown_host)


def network_cause(detail: str) -> tuple[str, bool]:
    """A short cause for a request that got no answer, and whether the host is unknown.

    urllib3's own text ("Max retries exceeded ... Caused by NewConnectionError(...)") hides
    the one fact a user can act on: the host did not resolve, refused, or did not answer.
    """
    host = _HOST_PATTERN.search(detail)
    where = f"{host.group(1)}:{host.group(2)}" if host else "the API base"
    if "NameResolutionError" in detail or "Failed to resolve" in detail:
        name = host.group(1) if host else "the API base's host"
        return f"no answer: the host name {name!r} does not resolve (DNS)", True
    if "Connection refused" in detail:
        return f"no answer: connection refused at {where}, nothing listens there", False
    return f"no answer ({detail})", False


def is_retryable(failure: Failure) -> bool:
    """Stripe's retry rules (docs/operations.md); 400/401/403/404 are never retried."""
    if failure.status in (400, 401, 403, 404):
        return False
    if failure.should_retry_header == "true":
        return True
    if failure.should_retry_header == "false":
        return False
    if failure.status is None:  # timeout or connection error
        return True
    if failure.status == 409:
        return failure.code == "lock_timeout"
    return failure.status == 429 or failure.status >= 500 or failure.status < 400


def _retry_after(headers) -> float | None:
    for name, value in (headers or {}).items():
        if name.lower() == "retry-after":
            try:
                return float(value)
            except (TypeError, ValueError):
                return None
    return None
