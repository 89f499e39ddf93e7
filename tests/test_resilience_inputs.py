"""Bad input from users: every malformed config value and command-line argument gets one
clear error line and exit 2, through the real CLI
(README, config.example.yaml). test_config checks the
loader's messages; this goes through ``nrr-sync`` for every key of the config."""

from __future__ import annotations

import os
import re

import pytest
from typer.testing import CliRunner

from nrr_sync.cli import app

# (config text, words the error must contain): one or more bad values for every key.
BAD_CONFIG = [
    ("stripe:\n  api_key_env: [STRIPE_API_KEY]\n", "stripe.api_key_env"),
    ("stripe:\n  api_key_env: ''\n", "stripe.api_key_env"),
    ("stripe:\n  api_base: 443\n", "stripe.api_base"),
    ("stripe:\n  api_base: 'ftp://x'\n", "stripe.api_base"),
    ("stripe:\n  api_base: 'api.stripe.com'\n", "stripe.api_base"),
    ("stripe:\n  accounts: acct_1\n", "stripe.accounts"),
    ("stripe:\n  accounts: [acct_1, 7]\n", "stripe.accounts"),
    ("stripe:\n  accounts: ['']\n", "stripe.accounts"),
    ("stripe:\n  max_requests_per_second: -5\n", "stripe.max_requests_per_second"),
    ("stripe:\n  max_requests_per_second: fast\n", "stripe.max_requests_per_second"),
    (
        "stripe:\n  max_requests_per_second_per_endpoint: 0\n",
        "stripe.max_requests_per_second_per_endpoint",
    ),
    ("stripe:\n  concurrency: 2.5\n", "stripe.concurrency"),
    ("stripe:\n  concurrency: -1\n", "stripe.concurrency"),
    ("stripe:\n  retry: 3\n", "stripe.retry"),
    ("stripe:\n  retry: {backoff: 2}\n", "stripe.retry.backoff"),
    ("stripe:\n  retry: {max_attempts: 0}\n", "stripe.retry.max_attempts"),
    ("stripe:\n  retry: {max_wait_seconds: soon}\n", "stripe.retry.max_wait_seconds"),
    ("stripe:\n  retry: {max_wait_seconds: -1}\n", "stripe.retry.max_wait_seconds"),
    ("stripe:\n  api_key: sk_test_123\n", "stripe.api_key"),
    ("database:\n  path: 5\n", "database.path"),
    ("database:\n  path: ''\n", "database.path"),
    ("database:\n  lock_timeout_seconds: -1\n", "database.lock_timeout_seconds"),
    ("database:\n  lock_timeout_seconds: soon\n", "database.lock_timeout_seconds"),
    ("database:\n  colour: red\n", "database.colour"),
    ("sync:\n  backfill_since: '2023-1'\n", "sync.backfill_since"),
    ("sync:\n  backfill_since: 2023\n", "sync.backfill_since"),
    ("sync:\n  invoice_lookback_months: -1\n", "sync.invoice_lookback_months"),
    ("sync:\n  invoice_lookback_months: 1.5\n", "sync.invoice_lookback_months"),
    ("reporting:\n  currency: dollars\n", "reporting.currency"),
    ("reporting:\n  currency: 840\n", "reporting.currency"),
    ("reporting:\n  fx_rates: [eur]\n", "reporting.fx_rates"),
    ("reporting:\n  fx_rates: {eur: '1.1'}\n", "reporting.fx_rates.eur"),
    ("reporting:\n  fx_rates: {eur: 0}\n", "reporting.fx_rates.eur"),
    ("reporting:\n  timezone: ''\n", "reporting.timezone"),
    ("reporting:\n  timezone: CEST\n", "reporting.timezone"),
    ("reporting:\n  include_open_invoices: 1\n", "reporting.include_open_invoices"),
    ("reporting:\n  include_metered: 'no'\n", "reporting.include_metered"),
    ("reporting:\n  subtract_discounts: null\n", "reporting.subtract_discounts"),
    ("reporting:\n  churn_recognition: ''\n", "reporting.churn_recognition"),
    ("reporting:\n  segments: currency\n", "reporting.segments"),
    ("reporting:\n  segments: ['metadata:']\n", "reporting.segments"),
    ("report:\n  window: 12\n", "unknown key 'report'"),
    ("stripe: {concurrency: 4\n", "not valid YAML"),
    ("just a sentence\n", "top level must be a mapping"),
    # values a parser takes but the run cannot use: refused at load, before any request
    ('stripe:\n  accounts: ["acct_1\\r\\nX-Evil: 1"]\n', "stripe.accounts"),
    ("stripe:\n  accounts: [cus_123]\n", "stripe.accounts"),
    ("stripe:\n  concurrency: 100000\n", "stripe.concurrency"),
    ("stripe:\n  max_requests_per_second: .inf\n", "stripe.max_requests_per_second"),
    ("stripe:\n  retry: {max_wait_seconds: .nan}\n", "stripe.retry.max_wait_seconds"),
    ("stripe:\n  retry: {max_wait_seconds: .inf}\n", "stripe.retry.max_wait_seconds"),
    ("database:\n  lock_timeout_seconds: .nan\n", "database.lock_timeout_seconds"),
    ("database:\n  lock_timeout_seconds: .inf\n", "database.lock_timeout_seconds"),
    ("sync:\n  backfill_since: '2009-12'\n", "sync.backfill_since"),
    ("sync:\n  backfill_since: '2999-01'\n", "sync.backfill_since"),
    ("reporting:\n  fx_rates: {eur: .inf}\n", "reporting.fx_rates.eur"),
    ("reporting:\n  fx_rates: {eur: .nan}\n", "reporting.fx_rates.eur"),
    ("reporting:\n  fx_rates: {eur: -1.1}\n", "reporting.fx_rates.eur"),
    ("reporting:\n  fx_rates: {eur: 1.0e-12}\n", "reporting.fx_rates.eur"),
    ("reporting:\n  fx_rates: {eur: 1.0e+12}\n", "reporting.fx_rates.eur"),
    ("reporting:\n  timezone: localtime\n", "reporting.timezone"),  # Python knows it
]


def invoke(args: list[str], tmp_path, config_text: str | None = None):
    config = tmp_path / "config.yaml"
    text = f"database:\n  path: {tmp_path / 'nrr.duckdb'}\n"
    config.write_text(config_text if config_text is not None else text)
    env = {"STRIPE_API_KEY": "sk_test_unused", "NRR_SYNC_STRIPE_API_BASE": "http://127.0.0.1:9"}
    saved = {name: os.environ.pop(name) for name in list(os.environ) if name.startswith("NRR_")}
    try:
        return CliRunner().invoke(app, ["--config", str(config), *args], env=env)
    finally:
        os.environ.update(saved)


def error_line(output: str) -> str:
    """The error line (timestamped, as under cron: the runner's stderr is no terminal)."""
    lines = [line for line in output.splitlines() if ERROR_LINE.match(line)]
    assert lines, output
    return ERROR_LINE.match(lines[0]).group(1)


ERROR_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ERROR (.*)")


@pytest.mark.parametrize("text, words", BAD_CONFIG)
def test_a_malformed_config_value_exits_2_naming_the_key_and_the_file(tmp_path, text, words):
    result = invoke(["build"], tmp_path, text)

    assert result.exit_code == 2, result.output
    line = error_line(result.output)
    assert words in line
    assert str(tmp_path / "config.yaml") in line
    assert "Traceback" not in result.output
    assert not (tmp_path / "nrr.duckdb").exists()


BAD_ARGUMENTS = [
    (["backfill"], "Missing option '--since'"),
    (["backfill", "--since", "2023-13"], "--since"),
    (["backfill", "--since", "23-01"], "--since"),
    (["backfill", "--since", ""], "--since"),
    (["backfill", "--since", "2023-01", "--bogus"], "No such option"),
    (["sync", "--since", "2023-01"], "No such option"),
    (["build", "extra"], "unexpected extra argument"),
    (["report", "--window", "2"], "--window"),
    (["report", "--window", "twelve"], "--window"),
    (["report", "--format", "xml"], "--format"),
    (["report", "--from", "2023-13"], "--from"),
    (["report", "--to", "last month"], "--to"),
    (["backfill", "--since", "2999-01"], "--since"),
    (["backfill", "--since", "1969-12"], "--since"),
    (["backfill", "--since", "0000-01"], "--since"),
    (["report", "--from", "2009-12"], "--from"),
    (["report", "--to", "2999-12"], "--to"),
    (["status", "now"], "unexpected extra argument"),
    (["frobnicate"], "No such command"),
    (["sandbox", "serve", "--customers", "0"], "--customers"),
    (["sandbox", "serve", "--fault-rate", "2"], "--fault-rate"),
    (["sandbox", "serve", "--drop-rate", "-0.1"], "--drop-rate"),
    (["sandbox", "serve", "--latency-ms", "-1"], "--latency-ms"),
    (["sandbox", "serve", "--port", "70000"], "--port"),
    (["sandbox", "serve", "--now", "garbage"], "--now"),
    (["sandbox", "serve", "--start", "2023-1"], "--start"),
    (["sandbox", "truth", "--format", "xml"], "--format"),
    (["sandbox", "truth", "--start", "2030-01"], "--start"),
    (["sandbox", "truth", "--fx", "eur:1.1"], "--fx"),
    (["sandbox", "truth", "--currency", "dollars"], "--currency"),
]


@pytest.mark.parametrize("args, words", BAD_ARGUMENTS)
def test_a_malformed_argument_exits_2_naming_it(tmp_path, args, words):
    result = invoke(args, tmp_path)

    assert result.exit_code == 2, result.output
    assert words.lower() in result.output.lower()
    assert "Traceback" not in result.output
    assert not (tmp_path / "nrr.duckdb").exists()


def test_the_config_flag_naming_a_missing_file_exits_2(tmp_path):
    result = CliRunner().invoke(app, ["--config", str(tmp_path / "nope.yaml"), "build"])

    assert result.exit_code == 2
    assert "nope.yaml not found" in error_line(result.output)


def test_demo_with_a_database_in_a_missing_directory_exits_2(tmp_path):
    result = invoke(["demo", "--db", "/proc/no/such/dir/demo.duckdb"], tmp_path)

    assert result.exit_code == 2, result.output
    assert "/proc/no/such/dir" in error_line(result.output)
