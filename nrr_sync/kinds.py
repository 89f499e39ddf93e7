"""What nrr-sync pulls from Stripe: one entry per object kind, and nowhere else.

The backfill lists every kind here, the nightly sync maps Stripe's events to these kinds
and re-fetches what changed, and the landing code turns each kind into rows of its
table (and of its embedded child list's table). Adding a kind is one entry in ``KINDS``,
its row builder in ``landing.py`` and its table in a ``sql/V###__*.sql`` migration.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from . import landing

FROZEN_EMPTY: Mapping = MappingProxyType({})


@dataclass(frozen=True)
class Embedded:
    """A list Stripe embeds in its parent only in part (an invoice's first 10 lines, a
    subscription's first items); the rest is paged from ``rest_path``."""

    field: str  # the parent's field holding the list: "lines"
    table: str  # its landing table: "invoice_lines"
    parent_column: str  # the child table's reference to the parent: "invoice_id"
    row: Callable  # (account_id, parent_id, child, synced_at) -> row tuple
    rest_path: Callable[[str], tuple[str, dict]]  # parent id -> (path, params) of the full list


@dataclass(frozen=True)
class Kind:
    """One kind of Stripe object and everything the job needs to know to pull it."""

    table: str  # landing table in schema stripe, also the kind's name: "invoices"
    object: str  # Stripe's ``object`` value, and how other objects refer to it: "invoice"
    path: str  # list endpoint; ``{path}/{id}`` retrieves one
    row: Callable  # (account_id, object, synced_at) -> row tuple
    event_prefix: str  # event types about this kind start with it: "invoice."
    list_params: Mapping = FROZEN_EMPTY
    retrieve_params: Mapping = FROZEN_EMPTY
    embedded: Embedded | None = None
    # Listed from the backfill's `since` less `sync.invoice_lookback_months`, not from the
    # account's beginning: only invoices are that many.
    since_lookback: bool = False
    # What a deletion does: "remove" the rows (Stripe deletes only drafts of these, which
    # never counted), or "mark" them deleted and keep their history.
    on_delete: str = "mark"
    tables: tuple[str, ...] = field(init=False)

    def __post_init__(self):
        tables = (self.table, self.embedded.table) if self.embedded else (self.table,)
        object.__setattr__(self, "tables", tables)

    def object_id(self, event_object: dict) -> str | None:
        """The id of this kind's object that an event's ``data.object`` is about: the
        object itself, or the object it refers to (a ``customer.discount.*`` event is
        about its ``customer``)."""
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
    ),
    Kind(
        table="products",
        object="product",
        path="/v1/products",
        row=landing.product_row,
        event_prefix="product.",
    ),
    Kind(
        table="prices",
        object="price",
        path="/v1/prices",
        row=landing.price_row,
        event_prefix="price.",
        # Prices carry their tiers only when expanded.
        list_params=MappingProxyType({"expand": ["data.tiers"]}),
        retrieve_params=MappingProxyType({"expand": ["tiers"]}),
    ),
    Kind(
        table="subscriptions",
        object="subscription",
        path="/v1/subscriptions",
        row=landing.subscription_row,
        event_prefix="customer.subscription.",
        list_params=MappingProxyType({"status": "all"}),  # canceled ones too
        embedded=Embedded(
            field="items",
            table="subscription_items",
            parent_column="subscription_id",
            row=landing.subscription_item_row,
            rest_path=lambda sub_id: ("/v1/subscription_items", {"subscription": sub_id}),
        ),
        on_delete="remove",
    ),
    Kind(
        table="invoices",
        object="invoice",
        path="/v1/invoices",
        row=landing.invoice_row,
        event_prefix="invoice.",
        embedded=Embedded(
            field="lines",
            table="invoice_lines",
            parent_column="invoice_id",
            row=landing.invoice_line_row,
            rest_path=lambda invoice_id: (f"/v1/invoices/{invoice_id}/lines", {}),
        ),
        since_lookback=True,
        on_delete="remove",
    ),
)

BY_TABLE: dict[str, Kind] = {kind.table: kind for kind in KINDS}
# Every landing table, parents before their children.
TABLES: tuple[str, ...] = tuple(table for kind in KINDS for table in kind.tables)


def event_groups(kinds: Iterable[Kind] = KINDS) -> tuple[str, ...]:
    """The ``type=`` filters that list every event about these kinds, one per group.

    Stripe takes a ``*`` wildcard only in ``type`` (``types[]`` wants exact names, at
    most 20, and these groups hold far more); ``customer.*`` covers
    ``customer.subscription.*`` too.
    """
    return tuple(sorted({kind.event_prefix.split(".")[0] + ".*" for kind in kinds}))


def kind_of_event(event_type: str) -> Kind | None:
    """The kind an event type is about: the one with the longest matching prefix."""
    matches = [kind for kind in KINDS if event_type.startswith(kind.event_prefix)]
    return max(matches, key=lambda kind: len(kind.event_prefix), default=None)
