"""What nrr-sync pulls from Stripe: one entry per object kind, and nowhere else.

The backfill lists every kind here, the nightly sync maps Stripe's events to these kinds
and re-fetches what changed, and the landing code turns each kind into rows of its
table and of its children's tables. Adding a kind is one entry in ``KINDS``, its row
builder and column order in ``landing.py``, and its table in a ``sql/V###__*.sql``
migration (docs/architecture.md shows one).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from . import answers, landing


def _params(**values) -> Mapping:
    return MappingProxyType(values)


@dataclass(frozen=True)
class Child:
    """Rows a kind's object carries for another table (an invoice's lines)."""

    table: str  # landing table: "invoice_lines"
    parent_column: str  # its reference to the parent: "invoice_id"
    rows: Callable  # (account_id, parent, synced_at) -> [row tuple]
    # An embedded list Stripe sends only in part (an invoice's first 10 lines): the
    # parent's field, and where the full list is paged (parent id -> path, params).
    field: str | None = None
    rest: Callable[[str], tuple[str, dict]] | None = None
    check: Callable[[dict], None] | None = None  # of one paged-in child (answers.py)


@dataclass(frozen=True)
class Kind:
    """One kind of Stripe object and everything the job needs to know to pull it."""

    table: str  # landing table in schema stripe, and the kind's name: "invoices"
    object: str  # Stripe's ``object`` value, and how other objects refer to it: "invoice"
    path: str  # list endpoint; ``{path}/{id}`` retrieves one
    row: Callable  # (account_id, object, synced_at) -> row tuple
    event_prefix: str  # event types about this kind start with it: "invoice."
    check: Callable[[dict], None]  # raises answers.Malformed unless an object can be trusted
    list_params: Mapping = field(default_factory=dict)
    retrieve_params: Mapping = field(default_factory=dict)
    children: tuple[Child, ...] = ()
    # Listed from the backfill's `since` less `sync.invoice_lookback_months` (invoices and
    # what follows them), not from the account's beginning.
    since_lookback: bool = False
    # When Stripe says an object is gone: "remove" its rows (Stripe deletes only drafts of
    # these, which never counted), or "mark" them deleted and keep their history.
    on_delete: str = "mark"

    @property
    def tables(self) -> tuple[str, ...]:
        return (self.table, *(child.table for child in self.children))

    def object_id(self, event_object: dict) -> str | None:
        """The id of this kind's object that an event's ``data.object`` is about: the
        object itself, or the one it refers to (``customer.discount.*`` is about its
        ``customer``)."""
        if event_object.get("object") == self.object:
            return landing.ref(event_object.get("id"))
        return landing.ref(event_object.get(self.object))


KINDS: tuple[Kind, ...] = (
    Kind(
        table="customers",
        object="customer",
        path="/v1/customers",
        row=landing.customer_row,
        event_prefix="customer.",
        check=answers.check_customer,
    ),
    Kind(
        table="products",
        object="product",
        path="/v1/products",
        row=landing.product_row,
        event_prefix="product.",
        check=answers.check_product,
    ),
    Kind(
        table="prices",
        object="price",
        path="/v1/prices",
        row=landing.price_row,
        event_prefix="price.",
        check=answers.check_price,
        # Tiers and currency options come only when expanded (a proration billed in
        # another currency is valued from its currency option).
        list_params=_params(expand=["data.tiers", "data.currency_options"]),
        retrieve_params=_params(expand=["tiers", "currency_options"]),
    ),
    Kind(
        table="subscriptions",
        object="subscription",
        path="/v1/subscriptions",
        row=landing.subscription_row,
        event_prefix="customer.subscription.",
        check=answers.check_subscription,
        list_params=_params(status="all"),  # canceled ones too
        children=(
            Child(
                table="subscription_items",
                parent_column="subscription_id",
                rows=landing.subscription_items_rows,
                field="items",
                rest=lambda sub_id: ("/v1/subscription_items", {"subscription": sub_id}),
                check=answers.check_subscription_item,
            ),
        ),
        on_delete="remove",
    ),
    Kind(
        table="invoices",
        object="invoice",
        path="/v1/invoices",
        row=landing.invoice_row,
        event_prefix="invoice.",
        check=answers.check_invoice,
        # Discounts with their coupons (percent_off values a discounted proration
        # exactly): no request beyond the invoice's own.
        list_params=_params(expand=["data.discounts.source.coupon"]),
        retrieve_params=_params(expand=["discounts.source.coupon"]),
        children=(
            Child(
                table="invoice_lines",
                parent_column="invoice_id",
                rows=landing.invoice_lines_rows,
                field="lines",
                rest=lambda invoice_id: (f"/v1/invoices/{invoice_id}/lines", {}),
                check=answers.check_invoice_line,
            ),
            Child(
                table="invoice_discounts",
                parent_column="invoice_id",
                rows=landing.invoice_discount_rows,
            ),
        ),
        since_lookback=True,
        on_delete="remove",
    ),
    Kind(
        table="credit_notes",
        object="credit_note",
        path="/v1/credit_notes",
        row=landing.credit_note_row,
        event_prefix="credit_note.",
        check=answers.check_credit_note,
        since_lookback=True,  # they follow their invoices
        on_delete="remove",  # Stripe voids credit notes; gone means not ours to keep
    ),
)

BY_TABLE: dict[str, Kind] = {kind.table: kind for kind in KINDS}
# Every landing table, parents before their children.
TABLES: tuple[str, ...] = tuple(table for kind in KINDS for table in kind.tables)
# One ``type=`` filter per group of events: Stripe takes a ``*`` wildcard in ``type``
# only (``types[]`` wants exact names, at most 20, and these groups hold far more);
# ``customer.*`` covers ``customer.subscription.*`` too.
EVENT_GROUPS: tuple[str, ...] = tuple(
    dict.fromkeys(kind.event_prefix.split(".")[0] + ".*" for kind in KINDS)
)


def _route(path: str) -> str:
    return path.removeprefix("/v1/")


# How every answer the job asks for is checked before it is trusted, by route
# (``invoices``, ``invoices/{id}/lines``): each kind's objects, the children paged in,
# and the job's own (events, the account).
ANSWER_CHECKS: dict[str, Callable[[dict], None]] = {
    **{_route(kind.path): kind.check for kind in KINDS},
    **{
        _route(child.rest("{id}")[0]): child.check
        for kind in KINDS
        for child in kind.children
        if child.rest is not None and child.check is not None
    },
    **answers.JOB_CHECKS,
}


def kind_of_event(event_type: str) -> Kind | None:
    """The kind an event type is about: the one with the longest matching prefix."""
    matches = [kind for kind in KINDS if event_type.startswith(kind.event_prefix)]
    return max(matches, key=lambda kind: len(kind.event_prefix), default=None)


def complete(api, kind: Kind, obj: dict, *, account: str | None) -> dict:
    """Page in what Stripe embedded only in part (lines past an invoice's tenth), so the
    object lands whole; ``api`` is the run's ``StripeApi``."""
    for child in kind.children:
        embedded = obj.get(child.field) or {} if child.field else {}
        if child.rest is None or not (embedded.get("has_more") and embedded.get("data")):
            continue
        path, params = child.rest(obj["id"])
        after = embedded["data"][-1]["id"]
        extra = list(api.list_all(path, params, account=account, after=after))
        obj[child.field] = {**embedded, "data": embedded["data"] + extra, "has_more": False}
    return obj


def needs_completing(kind: Kind, obj: dict) -> bool:
    return any(
        child.rest is not None and (obj.get(child.field) or {}).get("has_more")
        for child in kind.children
    )
