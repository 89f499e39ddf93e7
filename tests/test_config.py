from datetime import date

import pytest
from typer.testing import CliRunner

from nrr_sync.cli import app
from nrr_sync.config import config_from_dict, load_config, parse_month
from nrr_sync.errors import ConfigError


def write(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_example_config_loads_with_documented_defaults():
    config = load_config("config.example.yaml")
    assert config.stripe.api_key_env == "STRIPE_API_KEY"
    assert config.stripe.concurrency is None  # adaptive
    assert config.stripe.retry.max_attempts == 8
    assert config.database.lock_timeout_seconds == 300
    assert config.sync.invoice_lookback_months == 12
    assert config.reporting.churn_recognition == "period_end"
    assert config.reporting.segments == ("currency", "country", "cohort", "product")


def test_unknown_key_is_named_with_its_file(tmp_path):
    path = write(tmp_path, "stripe:\n  api_kee_env: X\n")
    with pytest.raises(ConfigError, match=r"config.yaml: unknown key stripe.api_kee_env"):
        load_config(path)


def test_unknown_section_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'reportin'"):
        load_config(write(tmp_path, "reportin: {}\n"))


@pytest.mark.parametrize(
    "text, message",
    [
        ("stripe:\n  concurrency: eight\n", r"stripe.concurrency must be an integer"),
        ("stripe:\n  concurrency: true\n", r"stripe.concurrency must be an integer"),
        ("stripe:\n  concurrency: 0\n", r"stripe.concurrency must be greater than 0"),
        ("stripe:\n  retry: {max_attempts: x}\n", r"stripe.retry.max_attempts"),
        ("database:\n  path: [a]\n", r"database.path must be a string"),
        ("sync:\n  backfill_since: 2023-13\n", r"not a month"),
        (
            "reporting:\n  include_metered: 'yes'\n",
            r"reporting.include_metered must be true or false",
        ),
        ("reporting:\n  churn_recognition: later\n", r"churn_recognition must be one of"),
        ("reporting:\n  fx_rates: {eur: -1}\n", r"fx_rates.eur must be a positive number"),
        ("reporting:\n  fx_rates: {euro: 1.1}\n", r"3-letter ISO currency"),
        ("reporting:\n  timezone: Mars/Olympus\n", r"not an IANA time zone"),
        ("reporting:\n  segments: [planet]\n", r"unknown segment 'planet'"),
        ("- a\n- b\n", r"top level must be a mapping"),
        ("stripe: [1]\n", r"stripe must be a mapping"),
    ],
)
def test_bad_values_name_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text))


def test_invalid_yaml_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "stripe: {api_base: [\n"))


def test_missing_explicit_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_missing_default_file_means_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NRR_SYNC_CONFIG", raising=False)
    assert load_config().database.path == "nrr.duckdb"


def test_environment_overrides_api_base_and_database(tmp_path, monkeypatch):
    path = write(tmp_path, "database: {path: file.duckdb}\n")
    monkeypatch.setenv("NRR_SYNC_STRIPE_API_BASE", "http://127.0.0.1:9")
    monkeypatch.setenv("NRR_SYNC_DATABASE", "/tmp/other.duckdb")
    config = load_config(path)
    assert config.stripe.api_base == "http://127.0.0.1:9"
    assert config.database.path == "/tmp/other.duckdb"


def test_nrr_sync_config_env_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("NRR_SYNC_CONFIG", str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match="missing.yaml not found"):
        load_config()


def test_metadata_segments_and_fx_codes_are_normalised():
    config = config_from_dict(
        {"reporting": {"segments": ["metadata:tier"], "fx_rates": {"EUR": 1.1}, "currency": "USD"}}
    )
    assert config.reporting.segments == ("metadata:tier",)
    assert config.reporting.fx_rates == {"eur": 1.1}
    assert config.reporting.currency == "usd"


def test_missing_api_key_says_which_variable(monkeypatch):
    monkeypatch.delenv("MY_KEY", raising=False)
    config = config_from_dict({"stripe": {"api_key_env": "MY_KEY"}})
    with pytest.raises(ConfigError, match="MY_KEY"):
        config.api_key()


@pytest.mark.parametrize("value", ["2023-13", "2023-1", "23-01", "2023-00", "soon"])
def test_bad_months_are_rejected(value):
    with pytest.raises(ConfigError, match="not a month"):
        parse_month(value, "--since")


@pytest.mark.parametrize("value", ["2009-12", "1969-12", "0000-01", "9999-12"])
def test_months_before_stripe_or_after_this_month_are_rejected(value):
    with pytest.raises(ConfigError, match="out of range; use a month from 2010-01 to"):
        parse_month(value, "--since")


def test_the_first_and_the_current_month_are_accepted():
    today = date.today()
    assert parse_month("2010-01", "--since") == (2010, 1)
    assert parse_month(f"{today:%Y-%m}", "--since") == (today.year, today.month)


def test_the_month_after_this_one_is_rejected():
    today = date.today()
    following = date(today.year + today.month // 12, today.month % 12 + 1, 1)
    with pytest.raises(ConfigError, match="out of range"):
        parse_month(f"{following:%Y-%m}", "--since")


def test_a_binary_config_file_is_a_config_error(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_bytes(b"stripe:\n  api_base: \xff\xfe\x00\x01\n")
    with pytest.raises(ConfigError, match="not a text"):
        load_config(path)


@pytest.mark.parametrize("value", ["api.stripe.com", "ftp://api.stripe.com", "http://", " "])
def test_a_bad_api_base_in_the_environment_names_the_variable(tmp_path, monkeypatch, value):
    monkeypatch.setenv("NRR_SYNC_STRIPE_API_BASE", value)
    with pytest.raises(ConfigError, match="NRR_SYNC_STRIPE_API_BASE must be an http"):
        load_config(write(tmp_path, "database: {path: file.duckdb}\n"))


def test_time_zones_the_database_knows_are_accepted():
    config = config_from_dict({"reporting": {"timezone": "Europe/Berlin"}})
    assert config.reporting.timezone == "Europe/Berlin"


def test_cli_bad_config_exits_2_with_one_line(tmp_path):
    path = write(tmp_path, "stripe:\n  bogus: 1\n")
    result = CliRunner().invoke(app, ["--config", str(path), "sync"])
    assert result.exit_code == 2
    assert "unknown key stripe.bogus" in result.output
    assert "Traceback" not in result.output


def test_cli_bad_since_exits_2():
    result = CliRunner().invoke(app, ["backfill", "--since", "2023-13"])
    assert result.exit_code == 2
    assert "not a month" in result.output


def test_version_names_the_pinned_api_version():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert "2026-10-28.endive" in result.output


def test_concurrency_is_adaptive_by_default_and_a_number_caps_it(tmp_path):
    assert load_config(write(tmp_path, "stripe:\n  concurrency: null\n")).stripe.concurrency is None
    assert load_config(write(tmp_path, "stripe:\n  concurrency: 12\n")).stripe.concurrency == 12
