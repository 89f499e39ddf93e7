"""What a user sees when Stripe refuses, fails or cannot be reached, and that the key
never leaks: each case gives its documented exit code and leaves the published file alone."""

from __future__ import annotations

import json
from pathlib import Path

from sync_helpers import cli, cli_process, write_config

from nrr_sync.sandbox.api_requests import NO_INVOICES_API_KEY

SINCE = "2024-01"


def published_backfill(tmp_path: Path, sandbox) -> tuple[Path, Path, bytes]:
    config = write_config(tmp_path)
    result = cli(config, ["backfill", "--since", SINCE], sandbox)
    assert result.exit_code == 0, result.output
    db = tmp_path / "nrr.duckdb"
    return config, db, db.read_bytes()


def test_a_bad_key_exits_3_and_names_the_variable_to_fix(tmp_path, sandbox_factory):
    sandbox = sandbox_factory(customers=10, latency_ms=1)
    config, db, before = published_backfill(tmp_path, sandbox)

    result = cli(config, ["sync"], sandbox, key="sk_test_wrongKey42")

    assert result.exit_code == 3
    assert "Stripe rejected the API key in $STRIPE_API_KEY" in result.output
    assert "wrongKey42" not in result.output
    assert db.read_bytes() == before
    runs = json.loads((tmp_path / "nrr.duckdb.runs.json").read_text())
    assert runs[-1]["outcome"] == "failed:3"
    assert "wrongKey42" not in json.dumps(runs)


def test_a_restricted_key_without_invoice_access_names_the_permission(tmp_path, sandbox_factory):
    sandbox = sandbox_factory(customers=10, latency_ms=1)
    config = write_config(tmp_path)

    result = cli(config, ["backfill", "--since", SINCE], sandbox, key=NO_INVOICES_API_KEY)

    assert result.exit_code == 3
    assert "rak_invoice_read" in result.output
    assert "/v1/invoices" in result.output
    assert not (tmp_path / "nrr.duckdb").exists()


def test_an_unreachable_api_exits_4_after_the_retries(tmp_path):
    config = write_config(tmp_path, stripe={"retry": {"max_attempts": 2, "max_wait_seconds": 0.05}})

    result = cli(
        config, ["backfill", "--since", SINCE], key="sk_test_x", api_base="http://127.0.0.1:9"
    )

    assert result.exit_code == 4
    assert "http://127.0.0.1:9" in result.output
    assert "2 time(s)" in result.output
    assert not (tmp_path / "nrr.duckdb").exists()


def test_a_failed_sql_build_exits_6_and_keeps_the_published_file(tmp_path, sandbox_factory):
    sandbox = sandbox_factory(customers=20, currency="eur", latency_ms=1)
    config, db, before = published_backfill(tmp_path, sandbox)
    no_rates = write_config(tmp_path, reporting={"fx_rates": {}})

    result = cli(no_rates, ["build"], sandbox)

    assert result.exit_code == 6, result.output
    assert "eur" in result.output.lower()
    assert db.read_bytes() == before
    config = write_config(tmp_path)  # with the rates again
    assert cli(config, ["build"], sandbox).exit_code == 0


def test_the_api_key_never_reaches_the_database_logs_or_output(tmp_path, sandbox_factory):
    sandbox = sandbox_factory(customers=15, latency_ms=1, fault_rate=0.05)
    config = write_config(tmp_path)

    process = cli_process(config, ["-v", "backfill", "--since", SINCE], sandbox)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    process = cli_process(config, ["-v", "sync"], sandbox, key=sandbox.api_key + "x")
    out2, err2 = process.communicate(timeout=60)
    assert process.returncode == 3

    key = sandbox.api_key.encode()
    assert b"backfill ok" in err.encode()  # the summary line, under no TTY
    for blob in (out.encode(), err.encode(), out2.encode(), err2.encode()):
        assert key not in blob
    for path in tmp_path.iterdir():
        if path.is_file():
            assert key not in path.read_bytes(), path.name


def test_an_unknown_connect_account_is_named_not_blamed_on_a_permission(tmp_path, sandbox_factory):
    sandbox = sandbox_factory(customers=5, latency_ms=1)
    config = write_config(tmp_path, accounts=["acct_doesnotexist"])

    result = cli(config, ["backfill", "--since", SINCE], sandbox)

    assert result.exit_code == 3, result.output
    assert "does not know the account acct_doesnotexist" in result.stderr
    assert "stripe.accounts" in result.stderr
    assert "lacks" not in result.stderr
    assert not (tmp_path / "nrr.duckdb").exists()
