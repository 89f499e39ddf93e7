"""Checks on Stripe's answers before anything in them is trusted.

Every answer of ``StripeApi.get`` goes through ``check_answer``: a list page must hold
objects and move on from the cursor it was given, and every object must have an id,
integer timestamps and integer amounts in range, and (invoices, subscriptions) their
embedded lists. A failed check raises ``Malformed``; the caller treats it like a 5xx
(retried, then exit 4), so a bad answer is never landed, rounded or read as "no more
data". Fields that may be absent stay allowed to be absent (NULL in the landing
tables): what a missing field does to a report is for ``report.data_quality`` to say.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Any

# Seconds since 1970; nothing in Stripe is dated after 2100-01-01.
MAX_TIMESTAMP = 4102444800
# Amounts land in BIGINT columns; decimal strings in DECIMAL(38, 12).
MAX_AMOUNT = 2**63 - 1
MAX_DECIMAL_DIGITS_BEFORE_POINT = 26
# The API server's clock may run ahead of ours by a little, not by more than this.
MAX_CLOCK_LEAD = timedelta(days=1)


class Malformed(Exception):
    """An answer that cannot be trusted: ``subject`` (e.g. "invoice in_1") and its ``field``."""

    def __init__(self, subject: str, field: str):
        super().__init__(f"{subject}: {field}")
        self.subject = subject
        self.field = field


# Fields -------------------------------------------------------------------------------


# Fields are checked on every object of every page: kept to plain loops, as a backfill
# is bound by CPU about as much as by Stripe's rate limit.
Fields = tuple[tuple[str, str, tuple[str, ...]], ...]


def fields(*names: str) -> Fields:
    """``fields("created", "period.start")``: each name, its first key and the keys below."""
    return tuple((name, name.split(".")[0], tuple(name.split(".")[1:])) for name in names)


def _is_int(value: Any) -> bool:
    return type(value) is int  # not bool, not float


def _object_id(obj: dict, name: str) -> str:
    object_id = obj.get("id")
    if not isinstance(object_id, str) or not object_id:
        raise Malformed(f"{name} without an id", "id")
    return object_id


def _timestamps(obj: dict, subject: str, times: Fields) -> None:
    for name, first, below in times:
        value = obj.get(first)
        for key in below:
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None and not (type(value) is int and 0 <= value <= MAX_TIMESTAMP):
            raise Malformed(subject, f"{name} ({_show(value)} is not a time)")


def _amounts(obj: dict, subject: str, amounts: Fields) -> None:
    for name, first, below in amounts:
        value = obj.get(first)
        for key in below:
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None and not (type(value) is int and -MAX_AMOUNT <= value <= MAX_AMOUNT):
            raise Malformed(subject, f"{name} ({_show(value)} is not an integer amount)")


def _decimals(obj: dict, subject: str, decimals: Fields) -> None:
    for name, first, below in decimals:
        value = obj.get(first)
        for key in below:
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None and not _is_decimal_string(value):
            raise Malformed(subject, f"{name} ({_show(value)} is not a decimal amount)")


def _is_decimal_string(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        number = Decimal(value)
    except InvalidOperation:
        return False
    return number.is_finite() and number.adjusted() < MAX_DECIMAL_DIGITS_BEFORE_POINT


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "…"


def _embedded_list(obj: dict, subject: str, field: str, check_item: Callable) -> None:
    """An embedded list (invoice ``lines``, subscription ``items``): present, a list of
    objects, and not claiming more when it holds none."""
    embedded = obj.get(field)
    if not isinstance(embedded, dict) or not isinstance(embedded.get("data"), list):
        raise Malformed(subject, f"{field} (missing or not a list)")
    if embedded.get("has_more") and not embedded["data"]:
        raise Malformed(subject, f"{field}.has_more (true, but no {field} sent)")
    for item in embedded["data"]:
        if not isinstance(item, dict):
            raise Malformed(subject, f"{field} (holds {_show(item)}, not an object)")
        try:
            check_item(item)
        except Malformed as malformed:
            raise Malformed(f"{malformed.subject} of {subject}", malformed.field) from None


# One check per kind of object ---------------------------------------------------------

CREATED = fields("created")
PRICE_AMOUNTS = fields("unit_amount", "recurring.interval_count", "transform_quantity.divide_by")
PRICE_DECIMALS = fields("unit_amount_decimal")
TIER_AMOUNTS = fields("up_to", "unit_amount", "flat_amount")
TIER_DECIMALS = fields("unit_amount_decimal", "flat_amount_decimal")
ITEM_TIMES = fields("created", "current_period_start", "current_period_end")
QUANTITY = fields("quantity")
SUBSCRIPTION_TIMES = fields(
    "created", "start_date", "billing_cycle_anchor", "trial_start", "trial_end", "cancel_at",
    "canceled_at", "ended_at",
)  # fmt: skip
LINE_TIMES = fields("period.start", "period.end")
LINE_AMOUNTS = fields("amount", "quantity")
AMOUNT = fields("amount")
INVOICE_TIMES = fields(
    "created", "period_start", "period_end", "status_transitions.finalized_at",
    "status_transitions.paid_at", "status_transitions.voided_at",
)  # fmt: skip
INVOICE_AMOUNTS = fields("subtotal", "total", "amount_due", "amount_paid")


def check_customer(obj: dict) -> None:
    _timestamps(obj, f"customer {_object_id(obj, 'customer')}", CREATED)


def check_product(obj: dict) -> None:
    _timestamps(obj, f"product {_object_id(obj, 'product')}", CREATED)


def check_price(obj: dict) -> None:
    subject = f"price {_object_id(obj, 'price')}"
    _timestamps(obj, subject, CREATED)
    _amounts(obj, subject, PRICE_AMOUNTS)
    _decimals(obj, subject, PRICE_DECIMALS)
    tiers = obj.get("tiers")
    if tiers is None:
        return
    if not isinstance(tiers, list):
        raise Malformed(subject, "tiers (not a list)")
    for i, tier in enumerate(tiers):
        if not isinstance(tier, dict):
            raise Malformed(subject, f"tiers[{i}] (not an object)")
        _amounts(tier, f"{subject} tiers[{i}]", TIER_AMOUNTS)
        _decimals(tier, f"{subject} tiers[{i}]", TIER_DECIMALS)


def check_subscription_item(obj: dict) -> None:
    subject = f"subscription item {_object_id(obj, 'subscription item')}"
    _timestamps(obj, subject, ITEM_TIMES)
    _amounts(obj, subject, QUANTITY)


def check_subscription(obj: dict) -> None:
    subject = f"subscription {_object_id(obj, 'subscription')}"
    _timestamps(obj, subject, SUBSCRIPTION_TIMES)
    _embedded_list(obj, subject, "items", check_subscription_item)


def _currency(obj: dict, subject: str) -> None:
    """Stripe gives every invoice and invoice line a currency (a three-letter ISO code). A
    line without one could be valued in no currency and would drop out of MRR unseen."""
    value = obj.get("currency")
    if not (isinstance(value, str) and value):
        raise Malformed(subject, f"currency ({_show(value)} is not a currency code)")


def check_invoice_line(obj: dict) -> None:
    subject = f"invoice line {_object_id(obj, 'invoice line')}"
    _currency(obj, subject)
    _timestamps(obj, subject, LINE_TIMES)
    _amounts(obj, subject, LINE_AMOUNTS)
    for field in ("discount_amounts", "taxes"):
        parts = obj.get(field)
        if not parts:
            continue
        if not isinstance(parts, list) or not all(isinstance(part, dict) for part in parts):
            raise Malformed(subject, f"{field} (not a list of objects)")
        for i, part in enumerate(parts):
            _amounts(part, f"{subject} {field}[{i}]", AMOUNT)


def check_invoice(obj: dict) -> None:
    subject = f"invoice {_object_id(obj, 'invoice')}"
    _currency(obj, subject)
    _timestamps(obj, subject, INVOICE_TIMES)
    _amounts(obj, subject, INVOICE_AMOUNTS)
    _embedded_list(obj, subject, "lines", check_invoice_line)


CREDIT_NOTE_TIMES = fields("created", "effective_at", "voided_at")
CREDIT_NOTE_AMOUNTS = fields(
    "amount", "subtotal", "discount_amount", "pre_payment_amount", "post_payment_amount",
    "out_of_band_amount",
)  # fmt: skip


def check_credit_note(obj: dict) -> None:
    subject = f"credit note {_object_id(obj, 'credit note')}"
    _timestamps(obj, subject, CREDIT_NOTE_TIMES)
    _amounts(obj, subject, CREDIT_NOTE_AMOUNTS)


def check_event(obj: dict) -> None:
    subject = f"event {_object_id(obj, 'event')}"
    if obj.get("created") is None:
        raise Malformed(subject, "created (missing)")
    _timestamps(obj, subject, CREATED)
    if not isinstance(obj.get("type"), str):
        raise Malformed(subject, "type (missing)")


def check_account(obj: dict) -> None:
    _timestamps(obj, f"account {_object_id(obj, 'account')}", CREATED)


# The answers the job asks for beyond the object kinds (whose checks the catalogue in
# kinds.py names): by route.
JOB_CHECKS: dict[str, Callable[[dict], None]] = {
    "events": check_event,
    "account": check_account,
}


def _deleted_or(check: Callable[[dict], None]) -> Callable[[dict], None]:
    """A deleted object (``{"id", "object", "deleted": true}``) carries nothing else."""

    def checked(obj: dict) -> None:
        if obj.get("deleted") is True:
            _object_id(obj, str(obj.get("object") or "object"))
        else:
            check(obj)

    return checked


# Answers ------------------------------------------------------------------------------


def check_answer(
    endpoint: str, params: dict, answer: dict, checks: Mapping[str, Callable[[dict], None]]
) -> None:
    """Raise ``Malformed`` unless ``answer`` to GET ``endpoint`` can be trusted.

    ``endpoint`` is the route template (``/v1/invoices/{id}/lines``). A list endpoint's
    answer must be a page; an object endpoint's answer (``/v1/invoices/{id}``) an object.
    ``checks`` maps routes (``invoices``, ``invoices/{id}/lines``) to their item's check.
    """
    route = endpoint.removeprefix("/v1/")
    if route in checks and route != "account":
        check_page(answer, params, checks[route])
        return
    kind = route.removesuffix("/{id}")
    if kind in checks:
        _deleted_or(checks[kind])(answer)


def check_page(page: dict, params: dict, check_item: Callable[[dict], None]) -> None:
    """A list page: objects that pass ``check_item``, in the asked ``created`` range, after
    the asked cursor, and ``has_more`` only when it holds objects."""
    data = page.get("data")
    if not isinstance(data, list):
        raise Malformed("list page", "data (missing or not a list)")
    has_more = page.get("has_more")
    if not isinstance(has_more, bool):
        raise Malformed("list page", f"has_more ({_show(has_more)} is not true or false)")
    if has_more and not data:
        raise Malformed("list page", "has_more (true on an empty page)")
    for item in data:
        if not isinstance(item, dict):
            raise Malformed("list page", f"data (holds {_show(item)}, not an object)")
        check_item(item)
    after = params.get("starting_after")
    if after is not None and any(item.get("id") == after for item in data):
        raise Malformed(
            "list page", f"starting_after (the page holds {after} again: the cursor did not move)"
        )
    created = params.get("created")
    if isinstance(created, dict):
        for item in data:
            if not _in_range(item.get("created"), created):
                raise Malformed(
                    f"{item.get('object') or 'object'} {item['id']}",
                    f"created ({_show(item.get('created'))} is outside the asked range)",
                )


def _in_range(value: Any, bounds: dict) -> bool:
    # Plain comparisons: this runs for every object of every page of a backfill.
    if not _is_int(value):
        return False
    for op, bound in bounds.items():
        if (
            (op == "gte" and value < bound)
            or (op == "gt" and value <= bound)
            or (op == "lte" and value > bound)
            or (op == "lt" and value >= bound)
        ):
            return False
    return True


# The server's clock -------------------------------------------------------------------


def date_header(headers: dict) -> datetime:
    """The answer's ``Date`` header as an aware UTC time; ``Malformed`` if it has none."""
    for name, value in headers.items():
        if name.lower() == "date":
            try:
                return parsedate_to_datetime(value).astimezone(UTC)
            except (TypeError, ValueError, OverflowError):
                raise Malformed("answer", f"Date header ({_show(value)} is not a date)") from None
    raise Malformed("answer", "Date header (missing)")


def clock_lead(server_time: datetime, local_time: datetime | None = None) -> timedelta | None:
    """How far the server's clock runs ahead of ours, if by more than ``MAX_CLOCK_LEAD``."""
    lead = server_time - (local_time or datetime.now(tz=UTC))
    return lead if lead > MAX_CLOCK_LEAD else None
