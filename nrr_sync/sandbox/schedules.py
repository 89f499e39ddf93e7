"""Subscription schedules: phases that change a subscription's items at set times.

A schedule is made from a live subscription (Stripe's ``from_subscription``): its first
phase is the subscription as it is, from the current period's start; each next phase
starts either at a renewal (the renewal invoice simply bills the new items: nothing to
prorate) or at a date inside a period, where the change is made like any update with the
phase's ``proration_behavior`` (``create_prorations``: pending proration items on the next
invoice; ``none``). When the last phase ends (at a renewal) the schedule either
**releases** the subscription (it goes on as it is, ``schedule`` null; the schedule's
status ``released``) or **cancels** it (Stripe puts the end on the subscription's
``cancel_at`` while the schedule is attached; the schedule's status ``completed``).

The subscription's ``schedule`` names the schedule while it is attached. Every change a
schedule makes to the subscription comes with the usual ``customer.subscription.updated``
and ``invoice.*`` events (the sync needs nothing else); the schedule's own
``subscription_schedule.created`` / ``updated`` / ``released`` / ``completed`` /
``canceled`` events are emitted too, and ``/v1/subscription_schedules`` serves them.

Phases keep the subscription's billing interval (a ramp of prices or quantities, the
common case); a schedule that switches interval is not modelled.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import mixed
from .catalog import Price, resolve_items
from .engine import Engine
from .records import DAY, Customer, Sub, parse_time, period_end


@dataclass(slots=True)
class Phase:
    start: int
    end: int
    items: list[tuple[Price, int]]
    proration: str  # create_prorations | none: how a start inside a period is billed


@dataclass(slots=True)
class Schedule:
    id: str
    sub: Sub
    created: int
    phases: list[Phase]
    end_behavior: str  # release | cancel
    status: str = "active"  # active | released | completed | canceled
    current: int = 0  # index of the current phase
    released_at: int | None = None
    completed_at: int | None = None
    canceled_at: int | None = None

    @property
    def end(self) -> int:
        return self.phases[-1].end


# -- making and running schedules ---------------------------------------------------------
def renewal(sub: Sub, k: int) -> int:
    """The k-th renewal (period end) from the current period on, k >= 1."""
    return period_end(sub.cycle_price, sub.anchor, sub.period_index + k - 1)


RENEWAL_COUNT_BELOW = 10**6  # a phase start below this is a renewal number, above a time


def resolve(sub: Sub, when: int) -> int:
    """A phase boundary: k (< RENEWAL_COUNT_BELOW) is the k-th renewal, else a unix time."""
    return renewal(sub, when) if when < RENEWAL_COUNT_BELOW else when


def attach(acct: Engine, customer: Customer, sub: Sub, t: int, phases: list,
           end, end_behavior: str = "release") -> Schedule | None:  # fmt: skip
    """Put ``sub`` on a schedule at ``t``. ``phases``: [(start, items, proration)] after the
    current one (start: a renewal number or a time); ``end``: when the last phase ends (a
    renewal number). Returns None when the subscription cannot take a schedule now."""
    if sub.status not in ("active", "past_due", "trialing") or sub.schedule is not None:
        return None
    if sub.cancel_at is not None or t >= sub.period_end:
        return None
    if mixed.active(sub):
        raise ValueError("the sandbox does not model schedules of mixed-interval subscriptions")
    interval = (sub.cycle_price.interval, sub.cycle_price.interval_count)
    for _start, items, _proration in phases:
        if (items[0][0].interval, items[0][0].interval_count) != interval:
            raise ValueError("a schedule's phases keep the subscription's billing interval")
    current = [(item.price, item.quantity) for item in sub.items]
    starts = [sub.period_start] + [resolve(sub, start) for start, _, _ in phases]
    ends = starts[1:] + [renewal(sub, end)]
    if any(b <= a for a, b in zip(starts, ends, strict=True)) or starts[1] <= t:
        raise ValueError("schedule phases must follow each other, after the schedule starts")
    plans = [(current, "create_prorations")] + [(items, p) for _, items, p in phases]
    schedule = Schedule(acct.make_id("sub_sched", t, customer.rng), sub, t,
                        [Phase(s, e, items, p) for s, e, (items, p) in
                         zip(starts, ends, plans, strict=True)], end_behavior)  # fmt: skip
    customer.schedules.append(schedule)
    before = acct.snap("subscriptions", sub, t)
    sub.schedule = schedule
    if end_behavior == "cancel":
        sub.cancel_at = schedule.end
    acct.emit(t, "subscription_schedule.created", "subscription_schedules", schedule)
    acct.sub_updated(sub, t, before)
    for phase in schedule.phases[1:]:
        if not is_renewal(sub, phase.start):
            acct.schedule(customer, phase.start, "call", start_phase_inside_period,
                          (schedule, phase))  # fmt: skip
    return schedule


def is_renewal(sub: Sub, t: int) -> bool:
    k = 1
    while (end := renewal(sub, k)) < t:
        k += 1
    return end == t


def start_phase_inside_period(acct: Engine, customer: Customer, t: int, schedule: Schedule,
                              phase: Phase) -> None:  # fmt: skip
    """A phase starting inside a period: an update with the phase's proration behavior."""
    sub = schedule.sub
    if schedule.status != "active" or sub.schedule is not schedule or not sub.live:
        return
    before = acct.snap("subscription_schedules", schedule, t)
    schedule.current = schedule.phases.index(phase)
    acct.change_items(customer, sub, t, phase.items, phase.proration)
    acct.emit(t, "subscription_schedule.updated", "subscription_schedules", schedule,
              previous=before)  # fmt: skip


def at_renewal(acct: Engine, sub: Sub, t: int) -> None:
    """Called by the renewal at ``t`` before it bills: start the phase due now (its items
    are what this renewal bills) or end the schedule."""
    schedule: Schedule = sub.schedule
    before = acct.snap("subscription_schedules", schedule, t)
    if t >= schedule.end:
        if schedule.end_behavior == "release":
            schedule.status = "released"
            schedule.released_at = t
            sub.schedule = None
            acct.emit(t, "subscription_schedule.released", "subscription_schedules", schedule,
                      previous=before)  # fmt: skip
        return  # end_behavior cancel: the renewal ends the subscription at its cancel_at
    nxt = schedule.current + 1
    if nxt < len(schedule.phases) and schedule.phases[nxt].start == t:
        schedule.current = nxt
        set_items(acct, sub, t, schedule.phases[nxt].items)
        acct.emit(t, "subscription_schedule.updated", "subscription_schedules", schedule,
                  previous=before)  # fmt: skip


def set_items(acct: Engine, sub: Sub, t: int, new: list[tuple[Price, int]]) -> None:
    """The items of a phase that starts at a renewal: position i keeps item i's id."""
    from .records import Item

    items = []
    for n, (price, quantity) in enumerate(new):
        if n < len(sub.items):
            item = sub.items[n]
            item.price, item.quantity = price, quantity
        else:
            item = Item(acct.make_id("si", t, sub.customer.rng, long=False), price, quantity, t)
        items.append(item)
    sub.items = items


def subscription_ended(acct: Engine, sub: Sub, t: int) -> None:
    """The subscription ended: at the schedule's end (end_behavior cancel: completed) or
    before it (canceled with it)."""
    schedule: Schedule = sub.schedule
    before = acct.snap("subscription_schedules", schedule, t)
    sub.schedule = None
    if schedule.end_behavior == "cancel" and t >= schedule.end:
        schedule.status = "completed"
        schedule.completed_at = t
        if sub.canceled_at is None:
            sub.canceled_at = t
            sub.cancel_reason = "cancellation_requested"
        acct.emit(t, "subscription_schedule.completed", "subscription_schedules", schedule,
                  previous=before)  # fmt: skip
        return
    schedule.status = "canceled"
    schedule.canceled_at = t
    acct.emit(t, "subscription_schedule.canceled", "subscription_schedules", schedule,
              previous=before)  # fmt: skip


# -- scripted and random schedules ----------------------------------------------------------
def step_schedule(acct: Engine, customer: Customer, t: int, sub_index: int, phases, end,
                  end_behavior) -> None:  # fmt: skip

    sub = customer.subs[sub_index]
    resolved = [(start if isinstance(start, int) else parse_time(start),
                 resolve_items(acct.catalog, items), proration)
                for start, items, proration in phases]  # fmt: skip
    attach(acct, customer, sub, t, resolved, end, end_behavior)


STEPS = {"schedule": step_schedule}

# Of new subscriptions with seats of random mid-market and enterprise customers: how many
# are signed as a ramp deal (more seats from a later renewal, on a schedule).
RAMP_RATE = 0.06


def maybe_ramp(acct: Engine, customer: Customer, sub: Sub, t: int) -> None:
    """A seat ramp: the seats grow by half at the 2nd or 3rd renewal; the schedule ends
    two renewals later and releases the subscription (or, one time in five, cancels it:
    a fixed-term contract). Some ramps start inside a period, with or without prorations."""
    rng = customer.rng
    if customer.segment == "smb" or rng.random() >= RAMP_RATE or sub.status != "active":
        return
    seats = [n for n, item in enumerate(sub.items) if item.price.product.key == "seats"]
    if not seats:
        return
    items = [(item.price, item.quantity) for item in sub.items]
    n = seats[0]
    items[n] = (items[n][0], items[n][1] + max(1, items[n][1] // 2))
    k = rng.choice((2, 3))
    start = renewal(sub, k)
    proration = "none"
    if rng.random() < 0.3:  # the ramp starts inside a period
        start = renewal(sub, k - 1) + rng.randint(3, 20) * DAY + rng.randint(0, DAY - 1)
        proration = rng.choice(("create_prorations", "none"))
        if start >= renewal(sub, k):
            start, proration = renewal(sub, k), "none"
    behavior = "cancel" if rng.random() < 0.2 else "release"
    attach(acct, customer, sub, t + 60, [(start, items, proration)], k + 2, behavior)


def archetypes(scenario, ago, later) -> None:
    """A seat ramp at a renewal that releases; a price change inside a period with
    prorations, then one without, ending by canceling; a ramp still running at now."""
    c = scenario(ago(13, 2.5), segment="mid")
    sub = c.subscribe(c.created, [("pro_month_usd", 1), ("seats_month_usd", 4)])
    c.schedule(c.created + 600, sub, [(2, [("pro_month_usd", 1), ("seats_month_usd", 8)],
                                       "none")], end=4, end_behavior="release")  # fmt: skip
    c = scenario(ago(11, 4.5), segment="mid")
    sub = c.subscribe(c.created, [("starter_month_usd", 1)])
    c.schedule(c.created + 3600, sub, [
        (later(c.created, 1, 12.25), [("pro_month_usd", 1)], "create_prorations"),
        (later(c.created, 3, 8.5), [("business_month_usd", 1)], "none"),
    ], end=6, end_behavior="cancel")  # fmt: skip
    c = scenario(ago(3, 6.5), segment="enterprise")
    sub = c.subscribe(c.created, [("business_month_usd", 1), ("seats_month_usd", 20)])
    c.schedule(c.created + 900, sub, [(2, [("business_month_usd", 1), ("seats_month_usd", 30)],
                                       "none")], end=12)  # fmt: skip


# -- rendering ------------------------------------------------------------------------------
def snapshot(schedule: Schedule) -> tuple:
    return (schedule.status, schedule.current, schedule.released_at, schedule.completed_at,
            schedule.canceled_at)  # fmt: skip


def render_schedule(schedule: Schedule, state: tuple | None = None) -> dict:
    status, current, released_at, completed_at, canceled_at = state or snapshot(schedule)
    sub = schedule.sub
    active = status == "active"
    phase = schedule.phases[current]
    return {
        "id": schedule.id,
        "object": "subscription_schedule",
        "application": None,
        "billing_mode": {"type": "classic", "flexible": None},
        "canceled_at": canceled_at,
        "completed_at": completed_at,
        "created": schedule.created,
        "current_phase": {"end_date": phase.end, "start_date": phase.start} if active else None,
        "customer": sub.customer.id,
        "customer_account": None,
        "default_settings": {
            "application_fee_percent": None,
            "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
            "billing_cycle_anchor": "automatic",
            "billing_thresholds": None,
            "collection_method": "charge_automatically",
            "default_payment_method": None,
            "description": None,
            "invoice_settings": {
                "account_tax_ids": None,
                "custom_fields": None,
                "days_until_due": None,
                "description": None,
                "footer": None,
                "issuer": {"type": "self"},
            },
            "on_behalf_of": None,
            "transfer_data": None,
        },
        "end_behavior": schedule.end_behavior,
        "livemode": False,
        "metadata": {},
        "phases": [render_phase(p) for p in schedule.phases],
        "released_at": released_at,
        "released_subscription": sub.id if status == "released" else None,
        "status": status,
        "subscription": sub.id if active else None,
        "test_clock": None,
    }


def render_phase(phase: Phase) -> dict:
    return {
        "add_invoice_items": [],
        "application_fee_percent": None,
        "billing_cycle_anchor": None,
        "billing_thresholds": None,
        "collection_method": None,
        "currency": phase.items[0][0].currency,
        "default_payment_method": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "end_date": phase.end,
        "invoice_settings": None,
        "items": [
            {
                "billing_thresholds": None,
                "discounts": [],
                "metadata": {},
                "plan": price.id,
                "price": price.id,
                "quantity": None if price.usage_type == "metered" else quantity,
                "tax_rates": [],
            }
            for price, quantity in phase.items
        ],
        "metadata": {},
        "on_behalf_of": None,
        "proration_behavior": phase.proration,
        "start_date": phase.start,
        "transfer_data": None,
        "trial_end": None,
    }
