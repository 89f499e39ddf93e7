"""Cash events: customer balances, credit notes and refunds, the way Stripe books them.

None of these changes a contract, so none changes MRR (docs/metrics.md, "Cash events"):
the ground truth (truth.py) never looks at them, and the report must not either.

- **Customer balance.** A negative invoice total (a cancellation or downgrade credit) and a
  post-payment credit note credited to the balance leave the customer a credit
  (``customer.balance`` < 0). Stripe applies it when the next invoice is finalized:
  ``starting_balance`` is the balance then, ``amount_due`` = max(0, total +
  starting_balance), ``ending_balance`` = min(0, total + starting_balance). An invoice
  fully covered by the balance is paid at once (``amount_paid`` 0); one partly covered is
  charged the rest (``amount_paid`` < ``total``). Voiding an invoice gives back the
  credit it used.
- **Credit notes** on finalized invoices: on an open invoice the credit first lowers
  ``amount_due`` / ``amount_remaining`` (``pre_payment_amount``; the sandbox never credits
  an open invoice in full); on a paid invoice it is a ``post_payment_amount``, refunded to
  the card (a ``re_`` refund), credited to the customer balance (a ``cbtxn_`` balance
  transaction) or settled outside Stripe (``out_of_band_amount``).

Random customers get them at realistic rates, decided by a hash of the invoice id (not
the customer's random stream, so the rest of a customer's history does not move);
scripted customers get them through ``Scenario.credit_note`` / ``Scenario.credit_balance``.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass

from .engine import Engine
from .records import DAY, HOUR, Customer, Invoice, b62

# Of paid subscription invoices with a positive total: how many get a post-payment credit
# note, and of those how the credit is settled and how much of the invoice it covers.
POST_PAYMENT_RATE = 0.015
# Of failed payments: how many get a goodwill credit note while the invoice is still open.
PRE_PAYMENT_RATE = 0.2
REASONS = ("product_unsatisfactory", "order_change", "duplicate", None)


@dataclass(slots=True)
class CreditNoteLine:
    kind: str  # invoice_line_item | custom_line_item
    position: int | None  # the invoice line credited (invoice_line_item)
    amount: int  # gross, excluding exclusive tax and before discounts (Stripe's line amount)
    discount_amount: int
    description: str


@dataclass(slots=True)
class CreditNote:
    id: str
    number: str
    invoice: Invoice
    created: int
    lines: list[CreditNoteLine]
    pre_payment_amount: int
    post_payment_amount: int
    settled_by: str | None  # refund | customer_balance | out_of_band (post-payment part)
    settlement_id: str | None  # the refund's or balance transaction's id
    reason: str | None
    memo: str | None
    status: str = "issued"
    voided_at: int | None = None

    @property
    def subtotal(self) -> int:
        return sum(line.amount for line in self.lines)

    @property
    def discount_amount(self) -> int:
        return sum(line.discount_amount for line in self.lines)

    @property
    def total(self) -> int:
        return self.pre_payment_amount + self.post_payment_amount

    @property
    def type(self) -> str:
        if self.pre_payment_amount and self.post_payment_amount:
            return "mixed"
        return "pre_payment" if self.pre_payment_amount else "post_payment"


# -- invoice amounts ----------------------------------------------------------------------
def amount_due(inv: Invoice) -> int:
    """What the customer is asked to pay: the total after the balance applied and the
    pre-payment credit notes, never below 0."""
    return max(0, inv.total() + inv.starting_balance) - inv.pre_payment_credit


def ending_balance(inv: Invoice) -> int:
    return min(0, inv.total() + inv.starting_balance)


def apply_balance(acct: Engine, inv: Invoice, t: int) -> None:
    """At finalization: the customer's balance goes onto the invoice (Stripe's order)."""
    customer = inv.customer
    inv.starting_balance = customer.balance
    set_balance(acct, customer, ending_balance(inv), t)


def give_back_balance(acct: Engine, inv: Invoice, t: int) -> None:
    """A voided invoice returns the credit it used (or takes back the credit it made)."""
    used = ending_balance(inv) - inv.starting_balance
    if used:
        set_balance(acct, inv.customer, inv.customer.balance - used, t)


def set_balance(acct: Engine, customer: Customer, balance: int, t: int) -> None:
    if balance == customer.balance:
        return
    before = acct.snap("customers", customer, t)
    customer.balance = balance
    customer.updated = t
    acct.emit(t, "customer.updated", "customers", customer, previous=before)


# -- credit notes -------------------------------------------------------------------------
def issue_credit_note(acct: Engine, inv: Invoice, t: int, amount: int | None,
                      settle: str = "refund", reason: str | None = None,
                      rng: random.Random | None = None) -> CreditNote | None:  # fmt: skip
    """Credit ``amount`` (None: the whole invoice) of a finalized invoice at ``t``.

    On an open invoice the credit lowers what is due and must leave something due; on a
    paid one it is settled by ``settle`` (refund | customer_balance | out_of_band).
    Returns None where Stripe would refuse (draft, void, uncollectible, nothing left)."""
    if inv.status not in ("open", "paid") or inv.deleted:
        return None
    customer = inv.customer
    rng = rng or random.Random(f"{acct.seed}:{inv.id}:credit_note:{t}")
    credited = sum(cn.total for cn in customer.credit_notes if cn.invoice is inv)
    # an open invoice keeps something due; a paid one can be credited up to its total
    room = amount_due(inv) - 1 if inv.status == "open" else inv.total() - credited
    whole = amount is None
    if whole:
        amount = room if inv.status == "paid" else 0
    if amount <= 0 or amount > room:
        return None
    if (
        whole
        and not credited
        and all(line.tax_rate is None for line in inv.lines)
        and all(line.amount >= 0 for line in inv.lines)
    ):
        lines = [
            CreditNoteLine(
                "invoice_line_item", n, line.amount, line.discount_amount, line_text(line)
            )  # fmt: skip
            for n, line in enumerate(inv.lines)
            if line.amount
        ]
    else:
        lines = [CreditNoteLine("custom_line_item", None, amount, 0, "Service credit")]
    pre = amount if inv.status == "open" else 0
    post = amount - pre
    settlement_id = None
    if post and settle == "refund":
        settlement_id = acct.make_id("re", t, rng)
    elif post and settle == "customer_balance":
        settlement_id = acct.make_id("cbtxn", t, rng)
    sequence = 1 + sum(1 for cn in customer.credit_notes if cn.invoice is inv)
    note = CreditNote(acct.make_id("cn", t, rng), f"{inv.number}-CN-{sequence:02d}", inv, t,
                      lines, pre, post, settle if post else None, settlement_id, reason,
                      None)  # fmt: skip
    before = acct.snap("invoices", inv, t)
    inv.pre_payment_credit += pre
    inv.post_payment_credit += post
    customer.credit_notes.append(note)
    acct.emit(t, "credit_note.created", "credit_notes", note)
    acct.emit(t, "invoice.updated", "invoices", inv, previous=before)
    if post and settle == "customer_balance":
        set_balance(acct, customer, customer.balance - post, t)
    return note


def line_text(line) -> str:
    return f"{line.quantity} × {line.price.product.name}"


# -- scripted steps -----------------------------------------------------------------------
def latest_finalized(customer: Customer, sub_index: int | None, t: int) -> Invoice | None:
    """The newest open or paid invoice of the customer's ``sub_index``-th subscription
    (or of the customer, for None) created at or before ``t``."""
    sub = customer.subs[sub_index] if sub_index is not None else None
    for inv in reversed(customer.invoices):
        if inv.created <= t and inv.status in ("open", "paid") and (sub is None or inv.sub is sub):
            return inv
    return None


def step_credit_note(acct: Engine, customer: Customer, t: int, sub_index, amount, settle,
                     reason) -> None:  # fmt: skip
    inv = latest_finalized(customer, sub_index, t)
    if inv is None or issue_credit_note(acct, inv, t, amount, settle, reason) is None:
        raise ValueError(f"no invoice of {customer.id} can be credited {amount} at {t}")


def step_credit_balance(acct: Engine, customer: Customer, t: int, amount: int) -> None:
    """A balance adjustment in the Dashboard: ``amount`` < 0 is a credit to the customer."""
    set_balance(acct, customer, customer.balance + amount, t)


STEPS = {"credit_note": step_credit_note, "credit_balance": step_credit_balance}


# -- random customers ---------------------------------------------------------------------
def draw(inv: Invoice, what: str) -> float:
    """A uniform draw in [0, 1) fixed by the invoice id (see the module docstring)."""
    return zlib.crc32(f"{inv.id}:{what}".encode()) / 2**32


def after_paid(acct: Engine, inv: Invoice, t: int) -> None:
    """Now and then a merchant credits a paid subscription invoice some days later."""
    sub = inv.sub
    if sub is None or sub.scripted or inv.customer.scripted or inv.total() <= 0:
        return
    if inv.starting_balance or draw(inv, "post") >= POST_PAYMENT_RATE:
        return
    rng = random.Random(f"{acct.seed}:{inv.id}:post")
    when = t + rng.randint(2 * HOUR, 20 * DAY)
    settle = rng.choice(("refund", "refund", "refund", "customer_balance", "out_of_band"))
    share = rng.choice((None, None, 0.6, 0.3, 0.15))  # None: the whole invoice
    amount = None if share is None else max(1, int(inv.total() * share))
    acct.schedule(inv.customer, when, "call", random_credit_note,
                  (inv, amount, settle, rng.choice(REASONS)))  # fmt: skip


def after_failed_payment(acct: Engine, inv: Invoice, t: int, recovers_at: int) -> None:
    """Some merchants soften a failed renewal that will be paid later with a credit on the
    open invoice (before it is paid)."""
    sub = inv.sub
    if sub is None or sub.scripted or inv.customer.scripted or draw(inv, "pre") >= PRE_PAYMENT_RATE:
        return
    rng = random.Random(f"{acct.seed}:{inv.id}:pre")
    amount = max(1, int(amount_due(inv) * rng.choice((0.1, 0.2, 0.25, 0.5))))
    when = t + rng.randint(HOUR // 2, max(HOUR, recovers_at - t - HOUR))
    acct.schedule(inv.customer, min(when, recovers_at - 60), "call", random_credit_note,
                  (inv, amount, "refund", "order_change"))  # fmt: skip


def random_credit_note(acct: Engine, customer: Customer, t: int, inv: Invoice, amount, settle,
                       reason) -> None:  # fmt: skip
    if inv.status == "open" and amount is not None and amount >= amount_due(inv):
        return
    issue_credit_note(acct, inv, t, amount, settle, reason)


# -- rendering ----------------------------------------------------------------------------
def snapshot(note: CreditNote) -> tuple:
    return (note.status, note.voided_at)


def render_credit_note(note: CreditNote, state: tuple | None = None) -> dict:
    """The credit note in the pinned API version's shape (fixtures3.json ``credit_note``)."""
    status, voided_at = state or snapshot(note)
    inv = note.invoice
    lines = [render_line(note, line, n) for n, line in enumerate(note.lines)]
    discounts = {}
    for line in note.lines:
        if line.discount_amount and line.position is not None:
            # A credit note credits whole lines, so with each line's own discount amounts.
            for discount, amount in inv.lines[line.position].discounts:
                discounts[discount.id] = discounts.get(discount.id, 0) + amount
    refunds = []
    if note.settled_by == "refund":
        refunds.append({"amount_refunded": note.post_payment_amount,
                        "payment_record_refund": None, "refund": note.settlement_id,
                        "type": "refund"})  # fmt: skip
    total = note.total
    return {
        "id": note.id,
        "object": "credit_note",
        "amount": total,
        "amount_shipping": 0,
        "created": note.created,
        "currency": inv.lines[0].price.currency if inv.lines else inv.customer.currency,
        "customer": inv.customer.id,
        "customer_account": None,
        "customer_balance_transaction": note.settlement_id
        if note.settled_by == "customer_balance"
        else None,
        "discount_amount": note.discount_amount,
        "discount_amounts": [{"amount": a, "discount": d} for d, a in discounts.items()],
        "effective_at": note.created,
        "invoice": inv.id,
        "lines": {
            "object": "list",
            "data": lines,
            "has_more": False,
            "url": f"/v1/credit_notes/{note.id}/lines",
        },
        "livemode": False,
        "memo": note.memo,
        "metadata": {},
        "number": note.number,
        "out_of_band_amount": note.post_payment_amount
        if note.settled_by == "out_of_band"
        else None,
        "pdf": f"https://invoice.sandbox.invalid/credit_notes/{note.id}/pdf",
        "post_payment_amount": note.post_payment_amount,
        "pre_payment_amount": note.pre_payment_amount,
        "pretax_credit_amounts": [],
        "reason": note.reason,
        "refunds": refunds,
        "shipping_cost": None,
        "status": status,
        "subtotal": note.subtotal,
        "subtotal_excluding_tax": note.subtotal,
        "total": total,
        "total_excluding_tax": total,
        "total_taxes": [],
        "type": note.type,
        "voided_at": voided_at,
    }


def render_line(note: CreditNote, line: CreditNoteLine, n: int) -> dict:
    obj = {
        "id": f"cnli_{note.id[3:]}{n:02d}",
        "object": "credit_note_line_item",
        "amount": line.amount,
        "description": line.description,
        "discount_amount": line.discount_amount,
        "discount_amounts": [],
        "livemode": False,
        "metadata": {},
        "pretax_credit_amounts": [],
        "quantity": 1,
        "tax_rates": [],
        "taxes": [],
        "type": line.kind,
        "unit_amount": None,
        "unit_amount_decimal": None,
    }
    if line.kind == "invoice_line_item":
        inv = note.invoice
        credited = inv.lines[line.position]
        obj["invoice_line_item"] = f"il_{inv.id[3:]}{b62(line.position, 2)}"
        obj["quantity"] = credited.quantity
        if line.discount_amount:
            obj["discount_amounts"] = [
                {"amount": amount, "discount": discount.id}
                for discount, amount in credited.discounts
            ]
    else:
        obj["unit_amount"] = line.amount
        obj["unit_amount_decimal"] = str(line.amount)
    return obj


# -- archetypes ---------------------------------------------------------------------------
def archetypes(scenario, ago, later) -> None:
    """Scripted customers that make every cash event occur in every account (see
    scenarios.archetypes: ``scenario(created)`` adds one, ``ago`` / ``later`` date steps)."""
    # a renewal refunded in full (credited by more than half: a data-quality note)
    c = scenario(ago(5, 3.0))
    sub = c.subscribe(c.created, [("pro_month_usd", 1)])
    c.credit_note(later(c.created, 3, 4.0), sub, None, "refund", "product_unsatisfactory")
    # part of a renewal credited to the balance, which pays part of the next renewal
    c = scenario(ago(6, 8.0), segment="mid")
    sub = c.subscribe(c.created, [("pro_month_usd", 1), ("seats_month_usd", 3)])
    c.credit_note(later(c.created, 2, 6.0), sub, 6000, "customer_balance", "order_change")
    # a goodwill credit on the balance paying two renewals in full and one in part
    c = scenario(ago(7, 2.5))
    c.subscribe(c.created, [("starter_month_usd", 1)])
    c.credit_balance(later(c.created, 3, 9.0), -7000)
    # a failed renewal softened by a credit on the open invoice, then paid
    c = scenario(ago(8, 6.5))
    sub = c.subscribe(c.created, [("pro_month_usd", 1)])
    c.fail_payment(later(c.created, 4, -1), sub, "recover", days=5)
    c.credit_note(later(c.created, 4, 2.0), sub, 2500, reason="order_change")
    # an annual plan credited in part outside Stripe
    c = scenario(ago(9, 1.5), segment="mid")
    sub = c.subscribe(c.created, [("pro_year_usd", 1)])
    c.credit_note(later(c.created, 1, 3.0), sub, 20000, "out_of_band")
