"""The landing layer reads Stripe's own example objects (fixtures3.json) into typed rows."""

import copy

import duckdb
import pytest

from nrr_sync import landing, load
from nrr_sync.kinds import BY_TABLE, KINDS, TABLES


@pytest.fixture
def con(tmp_path):
    from nrr_sync import build

    connection = duckdb.connect(str(tmp_path / "landing.duckdb"))
    build.migrate(connection)
    yield connection
    connection.close()


def row_dict(kind, row):
    return dict(zip(landing.COLUMNS[kind], row, strict=True))


def test_every_kind_and_child_matches_its_column_list(stripe_fixtures):
    """Stripe's own example of each kind, landed through the catalogue: every row of the
    kind's table and of its children's has the columns of its table."""
    synced_at = landing.now_utc()
    tables_seen = set()
    for kind in KINDS:
        sample = copy.deepcopy(stripe_fixtures[kind.object])
        rows = landing.rows_of(kind, "acct_1", [sample], synced_at)
        assert set(rows) == set(kind.tables)
        assert len(rows[kind.table]) == 1
        for table, table_rows in rows.items():
            tables_seen.add(table)
            for row in table_rows:
                assert len(row) == len(landing.COLUMNS[table]), table
    assert tables_seen == set(landing.COLUMNS) == set(TABLES)


def test_invoice_line_fields_come_from_the_basil_paths(stripe_fixtures):
    line = copy.deepcopy(stripe_fixtures["line_item"])
    line["parent"]["type"] = "subscription_item_details"
    line["pricing"]["price_details"] = {"price": "price_123", "product": "prod_9"}
    line["discount_amounts"] = [{"amount": 300, "discount": "di_1"}]
    line["taxes"] = [
        {"amount": 150, "tax_behavior": "inclusive", "type": "tax_rate_details"},
        {"amount": 70, "tax_behavior": "exclusive", "type": "tax_rate_details"},
    ]
    row = row_dict(
        "invoice_lines", landing.invoice_line_row("acct_1", "in_1", line, landing.now_utc())
    )
    assert row["parent_type"] == "subscription_item_details"
    assert row["subscription_id"] == "subscription"
    assert row["subscription_item_id"] == "subscription_item"
    assert row["proration"] is True
    assert row["price_id"] == "price_123"
    assert row["product_id"] == "prod_9"
    assert row["discount_amount"] == 300
    assert row["inclusive_tax_amount"] == 150
    assert row["exclusive_tax_amount"] == 70
    assert row["period_start"].timestamp() == line["period"]["start"]


def test_invoice_subscription_comes_from_parent_subscription_details(stripe_fixtures):
    invoice = stripe_fixtures["invoice"]
    row = row_dict("invoices", landing.invoice_row("acct_1", invoice, landing.now_utc()))
    assert row["subscription_id"] == "subscription"
    assert row["customer_id"] == invoice["customer"]
    assert '"lines"' not in row["raw"]


def test_price_recurring_and_transform_fields(stripe_fixtures):
    row = row_dict(
        "prices", landing.price_row("acct_1", stripe_fixtures["price"], landing.now_utc())
    )
    assert row["recurring_interval"] == "month"
    assert row["recurring_interval_count"] == 1
    assert row["recurring_usage_type"] == "licensed"
    assert row["transform_quantity_round"] == "down"
    assert row["product_id"] == stripe_fixtures["price"]["product"]


def test_expanded_references_are_reduced_to_ids(stripe_fixtures):
    item = copy.deepcopy(stripe_fixtures["subscription_item"])
    row = row_dict(
        "subscription_items", landing.subscription_item_row("acct_1", item, landing.now_utc())
    )
    assert row["price_id"] == item["price"]["id"]


def test_missing_fields_become_null_not_errors():
    row = row_dict("invoices", landing.invoice_row("acct_1", {"id": "in_x"}, landing.now_utc()))
    assert row["status"] is None and row["subscription_id"] is None


def test_load_objects_lands_invoice_lines_and_upserts(con, stripe_fixtures):
    invoice = copy.deepcopy(stripe_fixtures["invoice"])
    subscription = copy.deepcopy(stripe_fixtures["subscription"])
    load.load_objects(con, "acct_1", BY_TABLE["invoices"], [invoice])
    load.load_objects(con, "acct_1", BY_TABLE["subscriptions"], [subscription])
    invoice["status"] = "paid"
    load.load_objects(con, "acct_1", BY_TABLE["invoices"], [invoice])
    assert con.execute("select count(*), any_value(status) from stripe.invoices").fetchone() == (
        1,
        "paid",
    )
    assert con.execute("select count(*) from stripe.invoice_lines").fetchone() == (1,)
    assert con.execute("select count(*) from stripe.subscription_items").fetchone() == (1,)
    assert con.execute("select lines_complete, line_count from stripe.invoices").fetchone() == (
        True,
        1,
    )
