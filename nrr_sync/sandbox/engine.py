"""What the billing features ask of the engine that runs an account (``billing.Account``
is the one): the features (cash, flexible billing, meters, schedules) are called by the
engine, and only need this much of it back, so they import this and never the engine.
"""

from __future__ import annotations

import random
from typing import Any, Protocol

from .catalog import Catalog, Coupon, Price
from .records import Customer, Discount, Invoice, Line, Sub


class Engine(Protocol):
    id: str
    seed: str
    catalog: Catalog

    def make_id(
        self, prefix: str, ts: int, rng: random.Random | None = None, long: bool = True
    ) -> str: ...

    def emit(self, t: int, type_: str, kind: str, obj: Any, previous: tuple | None = None) -> None:
        """Record an event of ``type_`` about ``obj`` at ``t``."""

    def snap(self, kind: str, obj: Any, t: int) -> tuple | None:
        """The object's state before a change at ``t``, if an event will need it."""

    def schedule(self, customer: Customer, t: int, action: str, *args: Any) -> None: ...

    def sub_updated(self, sub: Sub, t: int, before: tuple) -> None: ...

    def new_line(self, customer: Customer, t: int, price: Price, quantity: int, amount: int,
                 start: int, end: int, **details: Any) -> Line: ...  # fmt: skip

    def invoice_now(self, customer: Customer, sub: Sub, t: int, lines: list[Line],
                    period: tuple[int, int], reason: str = ...) -> Invoice: ...  # fmt: skip

    def change_items(self, customer: Customer, sub: Sub, t: int,
                     new: list[tuple[Price, int]], proration: str = ...) -> None: ...  # fmt: skip

    def new_discount(self, customer: Customer, sub: Sub, t: int, coupon: Coupon,
                     promotion_code: str | None = None) -> Discount: ...  # fmt: skip

    def credit_line(self, customer: Customer, sub: Sub, item: Any, t: int,
                    parent: str) -> Line | None: ...  # fmt: skip
