"""The landing layer reads Stripe's own example objects (fixtures3.json) into typed rows."""

import copy
import json

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
        {"amount": 9, "tax_behavior": None, "type": "tax_rate_details"},
        {"amount": 4, "tax_behavior": "unspecified", "type": "tax_rate_details"},
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
    assert json.loads(row["discount_amounts"]) == [{"amount": 300, "discount": "di_1"}]
    assert row["inclusive_tax_amount"] == 150
    assert row["exclusive_tax_amount"] == 70
    assert row["other_tax_amount"] == 13  # what report.data_quality reads raw for
    assert json.loads(row["credited_line_ids"]) == ["invoice_line_items"]
    assert row["period_start"] == line["period"]["start"]  # unix seconds, typed by load.py


def test_a_line_that_credits_nothing_has_no_credited_line_ids(stripe_fixtures):
    line = copy.deepcopy(stripe_fixtures["line_item"])
    line["parent"]["type"] = "subscription_item_details"
    details = line["parent"]["subscription_item_details"]
    details["proration_details"] = {"credited_items": None}
    credited = row_dict(
        "invoice_lines", landing.invoice_line_row("acct_1", "in_1", line, landing.now_utc())
    )
    details["proration_details"] = {"credited_items": {"invoice_line_items": ["il_9"]}}
    details["proration"] = False  # only a proration's credited items count (mrr_lines)
    not_a_proration = row_dict(
        "invoice_lines", landing.invoice_line_row("acct_1", "in_1", line, landing.now_utc())
    )
    assert credited["credited_line_ids"] is None
    assert not_a_proration["credited_line_ids"] is None


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


@pytest.mark.parametrize("write", [load.insert_rows, load.upsert_rows])
def test_every_row_of_a_batch_lands_once_and_in_full(con, stripe_fixtures, write):
    # A table's rows are turned into columns (Arrow arrays) and inserted in one statement:
    # every row must land once, its values in their own columns.
    count = 2001
    template, synced_at = stripe_fixtures["customer"], landing.now_utc()
    rows = [
        landing.customer_row("acct_1", {**template, "id": f"cus_{n:04d}", "balance": n}, synced_at)
        for n in range(count)
    ]
    assert write(con, "customers", rows) == count
    landed = con.execute(
        "select count(*), count(distinct id), sum(balance), max(id) from stripe.customers"
    ).fetchone()
    assert landed == (count, count, sum(range(count)), f"cus_{count - 1:04d}")


@pytest.mark.parametrize("write", [load.insert_rows, load.upsert_rows])
def test_timestamps_land_as_the_instants_of_fromtimestamp(con, stripe_fixtures, write):
    """Stripe's unix seconds land as the very instants ``datetime.fromtimestamp`` gives
    (value and time zone, read back from DuckDB), from 1970 to the checks' upper bound;
    ``synced_at``, a ``datetime`` with microseconds, lands whole."""
    from datetime import UTC, datetime

    from nrr_sync.answers import MAX_TIMESTAMP

    seconds = [0, 1, 951782400, 1262304000, 1700000000, 2147483648, MAX_TIMESTAMP]
    seconds += list(range(0, MAX_TIMESTAMP, 7_919_993))  # a prime step: every time of day
    seconds += [1700000000.9, None, True]
    synced_at = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    rows = [
        landing.customer_row(
            "acct_1", {**stripe_fixtures["customer"], "id": f"cus_{n}", "created": value},
            synced_at,
        )
        for n, value in enumerate(seconds)
    ]  # fmt: skip
    write(con, "customers", rows)
    landed = dict(
        con.execute(
            "select id, created from stripe.customers where synced_at = ?", [synced_at]
        ).fetchall()
    )
    assert len(landed) == len(seconds)
    for n, value in enumerate(seconds):
        got = landed[f"cus_{n}"]
        if value is None or value is True:
            assert got is None
            continue
        expected = datetime.fromtimestamp(int(value), tz=UTC)
        assert (got, got.utcoffset()) == (expected, expected.utcoffset())


@pytest.mark.parametrize("write", [load.insert_rows, load.upsert_rows])
@pytest.mark.parametrize(
    ("field", "value", "refusal"),
    [
        ("name", 4242, "stripe.customers.name holds values of type int, not VARCHAR"),
        ("balance", True, "stripe.customers.balance holds values of type bool, not BIGINT"),
        ("balance", 42.5, "stripe.customers.balance holds values of type float, not BIGINT"),
        ("balance", 2**70, "stripe.customers.balance holds a value out of the range of BIGINT"),
    ],
)
def test_a_value_its_column_does_not_take_is_refused_by_type(
    con, stripe_fixtures, write, field, value, refusal
):
    """A field holding a value its column does not take, on every object of the batch, is
    a malformed answer: refused by name and type, never cast (a float cut to an integer, a
    number turned into text), and never quoted; nothing lands. The same rows with the
    field as Stripe sends it land (the control)."""
    from nrr_sync.errors import MalformedAnswer

    synced_at = landing.now_utc()

    def rows(field_value):
        customers = [
            {**stripe_fixtures["customer"], "id": f"cus_{n}", field: field_value} for n in range(3)
        ]
        return [landing.customer_row("acct_1", obj, synced_at) for obj in customers]

    with pytest.raises(MalformedAnswer) as refused:
        write(con, "customers", rows(value))
    assert refusal in str(refused.value)
    assert str(value) not in str(refused.value)
    assert con.execute("select count(*) from stripe.customers").fetchone() == (0,)

    as_stripe_sends_it = {"name": "Jenny Rosen", "balance": -500}[field]
    assert write(con, "customers", rows(as_stripe_sends_it)) == 3
    assert con.execute("select count(*) from stripe.customers").fetchone() == (3,)


def test_raw_leaves_out_embedded_lists_and_keeps_the_key_order(stripe_fixtures):
    """``raw`` of an invoice (subscription) is the object without ``lines`` (``items``),
    every other key in Stripe's order: the text landed before, byte for byte."""
    for kind, field in (("invoices", "lines"), ("subscriptions", "items")):
        obj = copy.deepcopy(stripe_fixtures[BY_TABLE[kind].object])
        assert field in obj
        expected = landing.raw_json({key: value for key, value in obj.items() if key != field})
        (row,) = landing.rows_of(BY_TABLE[kind], "acct_1", [obj], landing.now_utc())[kind]
        assert row_dict(kind, row)["raw"] == expected
        assert field in obj  # the object itself is left whole
        assert landing.without({"id": "x"}, field) == {"id": "x"}


def test_a_backfill_lands_the_rows_the_previous_row_builders_landed(
    tmp_path, sandbox_factory, monkeypatch
):
    """Every landing table after a backfill, every column and value (``raw`` and
    ``metadata`` as text, timestamps with their zone), equals that of a backfill of the
    same account with the row builders' and writers' previous ways: ``datetime``s made by
    ``datetime.fromtimestamp``, a comprehension leaving ``lines``/``items`` out of
    ``raw``, and DuckDB's appender taking the rows one value at a time."""
    from datetime import UTC, datetime

    from sync_helpers import cli, write_config

    sandbox = sandbox_factory(customers=25, latency_ms=1)

    def backfill(name: str) -> dict[str, list[tuple]]:
        directory = tmp_path / name
        directory.mkdir()
        result = cli(write_config(directory), ["backfill", "--since", "2023-01"], sandbox)
        assert result.exit_code == 0, result.output
        return landed_tables(directory / "nrr.duckdb")

    now = backfill("now")
    monkeypatch.setattr(
        landing,
        "timestamp",
        lambda v: (
            None if v is None or isinstance(v, bool) else (datetime.fromtimestamp(int(v), tz=UTC))
        ),
    )
    monkeypatch.setattr(
        landing, "without", lambda obj, field: {k: v for k, v in obj.items() if k != field}
    )
    monkeypatch.setattr(load, "insert_rows", appended_rows())
    monkeypatch.setattr(load, "upsert_rows", appended_rows(action="upsert"))
    before = backfill("before")
    assert now.keys() == before.keys() == set(TABLES)
    for table in TABLES:
        assert now[table] == before[table], table
    assert now["invoices"] and now["invoice_lines"] and now["subscription_items"]


def appended_rows(**options):
    """The previous ``load.insert_rows`` (``upsert_rows`` with ``action="upsert"``):
    DuckDB's appender, the rows 100 at a time."""

    def write(con, kind, rows):
        if rows:
            columns = list(landing.COLUMNS[kind])
            with con.appender(f"stripe.{kind}", columns=columns, **options) as appender:
                for start in range(0, len(rows), 100):
                    appender.append_rows(rows[start : start + 100])
        return len(rows)

    return write


def landed_tables(db_path) -> dict[str, list[tuple]]:
    """Every landing table's rows, sorted, every column but ``synced_at``; JSON columns
    as their text."""
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        tables = {}
        for table in TABLES:
            columns = [c for c in landing.COLUMNS[table] if c != "synced_at"]
            types = dict(
                con.execute(
                    "SELECT column_name, data_type FROM duckdb_columns() "
                    "WHERE schema_name = 'stripe' AND table_name = ?",
                    [table],
                ).fetchall()
            )
            select = ", ".join(f"{c}::VARCHAR" if types[c] == "JSON" else c for c in columns)
            tables[table] = sorted(
                con.execute(f"SELECT {select} FROM stripe.{table}").fetchall(), key=repr
            )
        return tables
    finally:
        con.close()


def test_json_columns_land_as_json_text_that_parses(tmp_path, sandbox_factory):
    """The JSON columns go to DuckDB as Arrow's JSON type, which DuckDB takes without
    parsing the text again (load.ARROW_TYPES): what lands must be JSON because fastjson
    wrote it. After a backfill, every value of every JSON column is JSON DuckDB can read
    (``json_valid``; it says false for text that is not, the control below)."""
    from sync_helpers import cli, write_config

    sandbox = sandbox_factory(customers=25, latency_ms=1)
    result = cli(write_config(tmp_path), ["backfill", "--since", "2023-01"], sandbox)
    assert result.exit_code == 0, result.output
    con = duckdb.connect(str(tmp_path / "nrr.duckdb"), read_only=True)
    try:
        json_columns = con.execute(
            "SELECT table_name, column_name FROM duckdb_columns() "
            "WHERE schema_name = 'stripe' AND data_type = 'JSON'"
        ).fetchall()
        assert ("invoices", "raw") in json_columns and ("prices", "tiers") in json_columns
        checked = 0
        for table, column in json_columns:
            values, invalid = con.execute(
                f"SELECT count({column}), count(*) FILTER (NOT json_valid({column})) "
                f"FROM stripe.{table}"
            ).fetchone()
            assert invalid == 0, (table, column)
            checked += values
        assert checked > 1000
        assert con.execute(
            "SELECT json_valid('{\"a\": 1'), json_valid('{\"a\": 1}')"
        ).fetchone() == (
            False,
            True,
        )
    finally:
        con.close()


def test_arrow_json_text_is_not_checked_by_duckdb_so_the_writer_must_make_json():
    """Why the test above checks the landed text: DuckDB takes Arrow's JSON type as is
    (a plain string column is checked, and refused when it is not JSON)."""
    import pyarrow

    con = duckdb.connect()
    con.execute("CREATE TABLE t (j JSON)")
    json_type = load.ARROW_TYPES[("JSON", str)]
    json_typed = pyarrow.table([pyarrow.array(["{", "{}"], json_type)], ["j"])  # noqa: F841
    con.execute("INSERT INTO t SELECT * FROM json_typed")
    assert con.execute("SELECT count(*) FROM t").fetchone() == (2,)
    text_typed = pyarrow.table([pyarrow.array(["{", "{}"], pyarrow.string())], ["j"])  # noqa: F841
    with pytest.raises(duckdb.ConversionException):
        con.execute("INSERT INTO t SELECT * FROM text_typed")
