"""report.data_quality names what may make the numbers wrong, with the object ids."""

import pytest
from stripe_objects import build_report, invoice, line, price, renewals, subscription


@pytest.fixture
def db(tmp_path):
    return tmp_path / "nrr.duckdb"


BASIC = price("price_basic", 10000)


def findings(con, check):
    return con.execute(
        "SELECT severity, customer_id, subscription_id, invoice_id, object_id, detail "
        'FROM report.data_quality WHERE "check" = ? ORDER BY ALL',
        [check],
    ).fetchall()


def test_invoice_with_lines_not_all_fetched_is_an_error(db):
    partial = renewals("cus_a", "s", BASIC, "2024-01-01", 1)[0]
    partial["lines"]["has_more"] = True
    con = build_report(db, invoices=[partial], prices=[BASIC], since="2024-01", as_of="2024-01-31")
    [(severity, customer_id, _, invoice_id, _, detail)] = findings(con, "invoice_lines_incomplete")
    assert (severity, customer_id, invoice_id) == ("error", "cus_a", partial["id"])
    assert "not every page was fetched" in detail


def test_line_with_an_unknown_price_is_left_out_and_reported(db):
    invoices = [invoice("cus_a", [line(10000, "price_missing", ("2024-01-01", "2024-02-01"),
                                       subscription="s")])]  # fmt: skip
    con = build_report(db, invoices=invoices, since="2024-01", as_of="2024-01-31")
    [(severity, customer_id, _, _, line_id, detail)] = findings(con, "unknown_price")
    assert (severity, customer_id) == ("warning", "cus_a")
    assert line_id == invoices[0]["lines"]["data"][0]["id"]
    assert "price_missing" in detail
    assert con.execute("SELECT count(*) FROM report.mrr_lines").fetchone() == (0,)


def test_active_subscription_without_a_line_covering_as_of_is_a_warning(db):
    invoices = renewals("cus_a", "s_late", BASIC, "2024-01-01", 1) + renewals(
        "cus_b", "s_ok", BASIC, "2024-01-01", 2
    )
    subscriptions = [
        subscription("s_late", "cus_a", [("si_1", BASIC, 1)], created="2024-01-01"),
        subscription("s_ok", "cus_b", [("si_2", BASIC, 1)], created="2024-01-01"),
    ]
    con = build_report(db, invoices=invoices, prices=[BASIC], subscriptions=subscriptions,
                       since="2024-01", as_of="2024-02-10")  # fmt: skip
    rows = findings(con, "active_subscription_without_line")
    assert [(row[0], row[1], row[2]) for row in rows] == [("warning", "cus_a", "s_late")]


def test_floored_negative_mrr_is_noted(db):
    credit = line(-20000, BASIC, ("2024-01-10", "2024-02-01"), subscription="s", quantity=2,
                  proration=True, invoice_item=True)  # fmt: skip
    invoices = renewals("cus_a", "s", BASIC, "2023-12-01", 2) + [invoice("cus_a", [credit])]
    con = build_report(db, invoices=invoices, prices=[BASIC], since="2024-01", as_of="2024-01-31")
    [(severity, customer_id, *_, detail)] = findings(con, "negative_mrr_floored")
    assert (severity, customer_id) == ("info", "cus_a")
    assert "-100.00" in detail


def test_a_clean_account_has_no_findings(db):
    sub = subscription("s", "cus_a", [("si", BASIC, 1)], created="2024-01-01")
    con = build_report(db, invoices=renewals("cus_a", "s", BASIC, "2024-01-01", 2),
                       prices=[BASIC], subscriptions=[sub], since="2024-01",
                       as_of="2024-02-10")  # fmt: skip
    assert con.execute("SELECT count(*) FROM report.data_quality").fetchone() == (0,)


def test_invoice_with_an_unknown_status_is_reported(db):
    odd = renewals("cus_a", "s", BASIC, "2024-01-01", 1)[0]
    odd["status"] = "in_review"
    con = build_report(db, invoices=[odd], prices=[BASIC], since="2024-01", as_of="2024-01-31")
    [(severity, customer_id, _, invoice_id, _, detail)] = findings(con, "unknown_invoice_status")
    assert (severity, customer_id, invoice_id) == ("warning", "cus_a", odd["id"])
    assert "'in_review'" in detail


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (lambda line: line.pop("amount"), "no amount"),
        (lambda line: line.pop("period"), "no service period"),
        (lambda line: line.update(parent={"type": "quote_details", "quote_details": {}}),
         "parent type quote_details"),
    ],
)  # fmt: skip
def test_a_subscription_line_that_cannot_be_read_is_reported(db, damage, said):
    broken = renewals("cus_a", "s", BASIC, "2024-01-01", 1)[0]
    damage(broken["lines"]["data"][0])
    con = build_report(db, invoices=[broken], prices=[BASIC], since="2024-01", as_of="2024-01-31")
    [(severity, customer_id, _, _, line_id, detail)] = findings(con, "unreadable_line")
    assert (severity, customer_id) == ("warning", "cus_a")
    assert line_id == broken["lines"]["data"][0]["id"]
    assert said in detail


def test_a_price_without_a_usable_recurrence_is_reported(db):
    no_recurrence = {**BASIC, "recurring": None}
    con = build_report(db, invoices=renewals("cus_a", "s", BASIC, "2024-01-01", 1),
                       prices=[no_recurrence], since="2024-01", as_of="2024-01-31")  # fmt: skip
    [(severity, customer_id, *_, detail)] = findings(con, "unusable_price")
    assert (severity, customer_id) == ("warning", "cus_a")
    assert "interval NULL" in detail
