"""What the rules do not recognize is a report.data_quality finding naming the object, never a
silent zero or a silent count (docs/metrics.md, "What nrr-sync does not recognize").

A small scripted account is served by the sandbox once clean, then with one thing changed
into something nrr-sync does not know (through the ``Corrupted`` world of the bad-data
tests). Each case asserts its finding names the object, and that every customer whose MRR
moved is named by a warning (the MRR effect is explained, never silent).
"""

from __future__ import annotations

import copy

import duckdb
import pytest
from sync_helpers import cli, query, write_config
from test_resilience_bad_data import Corrupted

from nrr_sync.build import sql_dir
from nrr_sync.sandbox.generator import SandboxOptions, Scenario, generate

SINCE = "2024-01"
FX = {"eur": 1.1, "gbp": 1.3, "jpy": 0.0067, "ves": 0.02}


def scenarios() -> tuple[Scenario, ...]:
    coupon = Scenario("2024-01-05T09:00:00Z", name="Coupon upgrade")
    sub = coupon.subscribe(
        coupon.created, [("pro_month_usd", 1), ("seats_month_usd", 3)], coupon="forever20"
    )
    coupon.change("2024-03-17T13:00:00Z", sub, [("business_month_usd", 1), ("seats_month_usd", 3)])
    tiered = Scenario("2024-01-20T12:00:00Z", name="Tiered upgrade")
    sub = tiered.subscribe(tiered.created, [("platform_month_usd", 8)])
    tiered.change("2024-03-02T11:00:00Z", sub, [("platform_month_usd", 23)])
    eur = Scenario("2024-02-03T10:00:00Z", country="DE", currency="eur", name="EUR seats")
    sub = eur.subscribe(eur.created, [("pro_month_usd", 1), ("seats_month_usd", 4)])
    eur.change("2024-03-19T08:00:00Z", sub, [("pro_month_usd", 1), ("seats_month_usd", 7)])
    return coupon, tiered, eur


def world():
    return generate(
        SandboxOptions(
            customers=0,
            start="2024-01",
            now="2024-06-01T00:00:00Z",
            archetypes=False,
            scenarios=scenarios(),
        )
    )


WORLD = world()
ACCOUNT = WORLD.account_ids[0]
PRICE_IDS = {p["lookup_key"]: p["id"] for p in WORLD.objects(ACCOUNT, "prices")}
CUSTOMER_IDS = {c["name"]: c["id"] for c in WORLD.objects(ACCOUNT, "customers")}


def backfill(directory, sandbox):
    result = cli(
        write_config(directory, reporting={"fx_rates": FX}), ["backfill", "--since", SINCE], sandbox
    )
    assert result.exit_code == 0, result.output
    return directory / "nrr.duckdb"


@pytest.fixture(scope="module")
def clean_db(tmp_path_factory):
    from nrr_sync.sandbox.server import start

    sandbox = start(world=world())
    try:
        return backfill(tmp_path_factory.mktemp("clean"), sandbox)
    finally:
        sandbox.stop()


def corrupted_db(tmp_path, sandbox_factory, corrupt):
    return backfill(tmp_path, sandbox_factory(world=Corrupted(world(), corrupt)))


def findings(db, check: str) -> list[tuple]:
    return query(
        db,
        "SELECT severity, customer_id, invoice_id, object_id, detail "
        'FROM report.data_quality WHERE "check" = ? ORDER BY ALL',
        [check],
    )


def changed_customers(db, clean_db) -> set[str]:
    sql = "SELECT customer_id, month, mrr FROM report.customer_mrr_monthly"
    return {row[0] for row in set(query(db, sql)) ^ set(query(clean_db, sql))}


def assert_explained(db, clean_db, check: str, customer: str, names: str) -> list[tuple]:
    """The finding is there (and not in the clean run), is a warning for ``customer`` whose
    detail names ``names``; every customer whose MRR moved is named by some warning."""
    assert not findings(clean_db, check) or all(
        names not in detail for *_, detail in findings(clean_db, check)
    ), "positive control: the clean account has no such finding"
    rows = [row for row in findings(db, check) if names in row[-1] and row[0] == "warning"]
    assert rows, findings(db, check)
    assert {who for _, who, *_ in rows} == {customer}
    warned = {
        who
        for (who,) in query(
            db, "SELECT customer_id FROM report.data_quality WHERE severity IN ('warning', 'error')"
        )
    }
    assert changed_customers(db, clean_db) <= warned
    return rows


def on_price(key: str, change):
    def corrupt(kind, obj):
        if kind == "prices" and obj["id"] == PRICE_IDS[key]:
            change(obj)
        return obj

    return corrupt


def on_invoices_of(name: str, change):
    def corrupt(kind, obj):
        if kind == "invoices" and obj["customer"] == CUSTOMER_IDS[name]:
            change(obj)
        return obj

    return corrupt


def test_an_unknown_billing_scheme_values_prorations_by_period_and_names_the_price(
    tmp_path, sandbox_factory, clean_db
):
    db = corrupted_db(
        tmp_path,
        sandbox_factory,
        on_price("business_month_usd", lambda p: p.update(billing_scheme="package")),
    )

    rows = assert_explained(
        db,
        clean_db,
        "proration_valued_by_period_ratio",
        CUSTOMER_IDS["Coupon upgrade"],
        PRICE_IDS["business_month_usd"],
    )
    assert all("billing_scheme 'package'" in detail for *_, detail in rows)
    valuations = query(
        db,
        "SELECT DISTINCT valuation FROM report.mrr_lines WHERE price_id = ? AND proration",
        [PRICE_IDS["business_month_usd"]],
    )
    assert valuations == [("period_ratio",)]


def test_an_unknown_tiers_mode_is_not_guessed_and_names_the_price(
    tmp_path, sandbox_factory, clean_db
):
    db = corrupted_db(
        tmp_path,
        sandbox_factory,
        on_price("platform_month_usd", lambda p: p.update(tiers_mode="stepped")),
    )

    rows = assert_explained(
        db,
        clean_db,
        "proration_valued_by_period_ratio",
        CUSTOMER_IDS["Tiered upgrade"],
        PRICE_IDS["platform_month_usd"],
    )
    assert all("tiers_mode 'stepped'" in detail for *_, detail in rows)


def test_a_proration_in_a_currency_without_a_currency_option_names_the_price(
    tmp_path, sandbox_factory, clean_db
):
    def drop_eur(price):
        price["currency_options"].pop("eur", None)

    db = corrupted_db(tmp_path, sandbox_factory, on_price("seats_month_usd", drop_eur))

    rows = assert_explained(
        db,
        clean_db,
        "proration_valued_by_period_ratio",
        CUSTOMER_IDS["EUR seats"],
        PRICE_IDS["seats_month_usd"],
    )
    assert all("no amount in eur" in detail for *_, detail in rows)


def test_a_tax_of_unknown_behavior_is_named_and_its_customer_warned(
    tmp_path, sandbox_factory, clean_db
):
    def mixed_taxes(invoice):
        for line in invoice["lines"]["data"]:
            for tax in line["taxes"]:
                tax["tax_behavior"] = "mixed"

    db = corrupted_db(tmp_path, sandbox_factory, on_invoices_of("EUR seats", mixed_taxes))

    customer = CUSTOMER_IDS["EUR seats"]
    rows = assert_explained(db, clean_db, "unknown_tax_behavior", customer, "'mixed'")
    findings_before = findings(db, "unknown_tax_behavior")
    assert customer in changed_customers(db, clean_db), "the tax is counted: MRR moves"
    assert all(object_id and object_id.startswith("il_") for *_, object_id, _ in rows)

    # The model reads the raw taxes of only the lines whose other_tax_amount says they have
    # such a tax, or does not say (NULL: landed before the column existed).
    def rebuilt_after(update: str) -> list[tuple]:
        with duckdb.connect(str(db)) as con:
            con.execute(f"UPDATE stripe.invoice_lines SET other_tax_amount = {update}")
        config = write_config(tmp_path, reporting={"fx_rates": FX})
        result = cli(config, ["build"], key="sk_test_unused", api_base="http://127.0.0.1:9")
        assert result.exit_code == 0, result.output
        return findings(db, "unknown_tax_behavior")

    with_other_taxes = "SELECT count(*) FROM stripe.invoice_lines WHERE other_tax_amount <> 0"
    assert query(db, with_other_taxes)[0][0] > 0
    loaded = query(db, "SELECT id, other_tax_amount FROM stripe.invoice_lines ORDER BY id")
    assert rebuilt_after("NULL") == findings_before

    # A file landed before the column: its migration fills it as the loader does.
    by_line = "SELECT id, other_tax_amount FROM stripe.invoice_lines ORDER BY id"
    with duckdb.connect(str(db)) as con:
        con.execute("UPDATE stripe.invoice_lines SET other_tax_amount = NULL")
        con.execute((sql_dir() / "V006__invoice_line_other_taxes.sql").read_text())
    assert query(db, by_line) == loaded
    assert rebuilt_after("0") == [], "positive control: the column is what is read"


def test_a_line_discount_that_was_not_landed_is_named(tmp_path, sandbox_factory, clean_db):
    db = corrupted_db(
        tmp_path,
        sandbox_factory,
        on_invoices_of("Coupon upgrade", lambda i: i.update(discounts=[])),
    )

    assert query(db, "SELECT count(*) FROM stripe.invoice_discounts") == [(0,)]
    rows = assert_explained(db, clean_db, "unknown_discount", CUSTOMER_IDS["Coupon upgrade"], "di_")
    assert all("proration" in detail for *_, detail in rows)
    assert any("included in the line's amount" in detail for *_, detail in rows)
    infos = [row for row in findings(db, "unknown_discount") if row[0] == "info"]
    assert infos, "renewal lines are named too, as notes: their value does not change"


def test_a_currency_of_unknown_decimals_is_named_for_its_customer(
    tmp_path, sandbox_factory, clean_db
):
    def in_bolivars(invoice):
        invoice["currency"] = "ves"
        for line in invoice["lines"]["data"]:
            line["currency"] = "ves"

    db = corrupted_db(tmp_path, sandbox_factory, on_invoices_of("Tiered upgrade", in_bolivars))

    customer = CUSTOMER_IDS["Tiered upgrade"]
    assert_explained(db, clean_db, "unknown_currency_exponent", customer, "ves")
    assert customer in changed_customers(db, clean_db)


# Lines of live subscription invoices that report.counted_lines leaves out and that no
# data_quality row names, other than those a documented rule leaves out on purpose (one-time
# items, metered usage without include_metered, empty periods, open invoices of failed
# subscriptions, drafts Stripe will not finalize).
UNEXPLAINED_LINES = """
SELECT lines.id
FROM stripe.invoice_lines AS lines
JOIN stripe.invoices AS invoices
    ON invoices.account_id = lines.account_id AND invoices.id = lines.invoice_id
LEFT JOIN stripe.prices AS prices
    ON prices.account_id = lines.account_id AND prices.id = lines.price_id
WHERE invoices.status IN ('paid', 'open', 'draft')
    AND coalesce(lines.subscription_id, invoices.subscription_id) IS NOT NULL
    AND lines.id NOT IN (SELECT line_id FROM report.counted_lines)
    AND lines.id NOT IN (SELECT object_id FROM report.data_quality WHERE object_id IS NOT NULL)
    AND NOT (lines.parent_type = 'invoice_item_details' AND NOT lines.proration)
    AND NOT coalesce(prices.recurring_usage_type = 'metered', false)
    AND NOT coalesce(lines.period_end <= lines.period_start, false)
    AND invoices.status <> 'draft'
    AND invoices.status <> 'open'
"""


@pytest.mark.parametrize(
    "corrupt, names",
    [
        (on_price("pro_month_usd", lambda p: p["recurring"].update(interval="fortnight")), "price"),
        (on_price("seats_month_usd", lambda p: p.update(type="one_time", recurring=None)), "price"),
        (
            on_invoices_of(
                "Tiered upgrade",
                lambda inv: inv["lines"]["data"][0]["parent"].update(type="license_details"),
            ),
            "parent",
        ),
    ],
)
def test_every_line_the_counting_rules_turn_away_is_named_in_data_quality(
    tmp_path, sandbox_factory, clean_db, corrupt, names
):
    """report.counted_lines and report.data_quality share their predicates (R000): a line
    one turns away, the other names."""
    db = corrupted_db(tmp_path, sandbox_factory, corrupt)
    sql = "SELECT line_id FROM report.counted_lines"
    counted, clean_counted = ({line for (line,) in query(path, sql)} for path in (db, clean_db))
    assert clean_counted - counted, "positive control: the corruption turns lines away"
    assert query(clean_db, UNEXPLAINED_LINES) == []
    assert query(db, UNEXPLAINED_LINES) == []
    named = query(
        db,
        "SELECT count(*) FROM report.data_quality WHERE object_id IN "
        f"({', '.join('?' * len(clean_counted - counted))}) AND detail LIKE ?",
        [*sorted(clean_counted - counted), f"%{names}%"],
    )
    assert named[0][0] == len(clean_counted - counted)


AMOUNT_OFF_ID = "di_amountoff"


def include_an_amount_off_coupon(invoice: dict) -> None:
    """An amount-off coupon on the invoice that its prorations show included (entry 0)."""
    prorations = [
        line for line in invoice["lines"]["data"]
        if (line["parent"].get(line["parent"]["type"]) or {}).get("proration")
    ]  # fmt: skip
    if prorations and invoice["discounts"]:
        invoice["discounts"].append(AMOUNT_OFF_ID)
        for line in prorations:
            line["discount_amounts"].append({"amount": 0, "discount": AMOUNT_OFF_ID})


def test_an_amount_off_coupon_included_in_a_proration_is_not_guessed_and_named(
    tmp_path, sandbox_factory, clean_db
):
    served = Corrupted(world(), on_invoices_of("Coupon upgrade", include_an_amount_off_coupon))
    discounts = served.discount_objects(ACCOUNT)
    amount_off = copy.deepcopy(next(iter(discounts.values())))
    amount_off["id"] = AMOUNT_OFF_ID
    amount_off["source"]["coupon"].update(
        id="FIVEOFF", percent_off=None, amount_off=500, currency="usd"
    )
    served.discount_objects = lambda account: {**discounts, AMOUNT_OFF_ID: amount_off}
    db = backfill(tmp_path, sandbox_factory(world=served))

    customer = CUSTOMER_IDS["Coupon upgrade"]
    rows = assert_explained(
        db, clean_db, "proration_valued_by_period_ratio", customer, "amount-off"
    )
    valuations = query(
        db,
        "SELECT DISTINCT valuation FROM report.mrr_lines WHERE customer_id = ? AND proration",
        [customer],
    )
    assert valuations == [("period_ratio",)] and rows
