"""Load and validate the YAML configuration (config.example.yaml documents every key).

Every key is declared once in ``SCHEMA`` with its type and default; unknown keys and
wrong types are errors that name the key and the file.
"""

from __future__ import annotations

import functools
import math
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

MONTH_PATTERN = re.compile(r"^(\d{4})-(\d{2})$")
# Stripe started in 2010: no account holds an older object, and a month after the current
# one has no data yet, so anything outside these bounds is a typo.
FIRST_MONTH = (2010, 1)
API_BASE_PATTERN = re.compile(r"https?://[^\s/]+(/\S*)?")
ACCOUNT_PATTERN = re.compile(r"acct_[A-Za-z0-9]+")
MAX_CONCURRENCY = 256  # far above what Stripe's rate limits can use
# fx rates are stored as DECIMAL(18, 8): smaller rounds to 0, larger overflows.
FX_RATE_MIN, FX_RATE_MAX = 1e-8, 1e10
CHURN_RECOGNITION = ("period_end", "canceled_at")
BUILT_IN_SEGMENTS = ("currency", "country", "cohort", "product")


@dataclass(frozen=True)
class Retry:
    max_attempts: int = 8
    max_wait_seconds: float = 60


@dataclass(frozen=True)
class StripeSettings:
    api_key_env: str = "STRIPE_API_KEY"
    api_base: str = "https://api.stripe.com"
    accounts: tuple[str, ...] = ()
    max_requests_per_second: float | None = None
    max_requests_per_second_per_endpoint: float | None = None
    concurrency: int | None = None  # an upper bound on requests in flight; None = adaptive
    retry: Retry = field(default_factory=Retry)


@dataclass(frozen=True)
class DatabaseSettings:
    path: str = "nrr.duckdb"
    lock_timeout_seconds: float = 300


@dataclass(frozen=True)
class SyncSettings:
    backfill_since: str | None = None
    invoice_lookback_months: int = 12


@dataclass(frozen=True)
class ReportingSettings:
    currency: str = "usd"
    fx_rates: dict[str, float] = field(default_factory=dict)
    timezone: str = "UTC"
    include_open_invoices: bool = True
    include_metered: bool = False
    subtract_discounts: bool = True
    churn_recognition: str = "period_end"
    segments: tuple[str, ...] = BUILT_IN_SEGMENTS


@dataclass(frozen=True)
class Config:
    stripe: StripeSettings = field(default_factory=StripeSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    sync: SyncSettings = field(default_factory=SyncSettings)
    reporting: ReportingSettings = field(default_factory=ReportingSettings)
    source: str = "defaults"  # the file the settings came from, for messages

    def api_key(self) -> str:
        """The Stripe key from the environment; never stored anywhere else."""
        key = os.environ.get(self.stripe.api_key_env, "").strip()
        if not key:
            raise ConfigError(
                f"No Stripe API key: set the environment variable {self.stripe.api_key_env} "
                f"(named by stripe.api_key_env in {self.source}) to a restricted read-only key."
            )
        return key


# key -> (python types accepted, nullable)
_NUMBER = (int, float)
SCHEMA: dict[str, dict[str, tuple[tuple[type, ...], bool]]] = {
    "stripe": {
        "api_key_env": ((str,), False),
        "api_base": ((str,), False),
        "accounts": ((list,), False),
        "max_requests_per_second": (_NUMBER, True),
        "max_requests_per_second_per_endpoint": (_NUMBER, True),
        "concurrency": ((int,), True),
        "retry": ((dict,), False),
    },
    "stripe.retry": {
        "max_attempts": ((int,), False),
        "max_wait_seconds": (_NUMBER, False),
    },
    "database": {
        "path": ((str,), False),
        "lock_timeout_seconds": (_NUMBER, False),
    },
    "sync": {
        "backfill_since": ((str,), True),
        "invoice_lookback_months": ((int,), False),
    },
    "reporting": {
        "currency": ((str,), False),
        "fx_rates": ((dict,), False),
        "timezone": ((str,), False),
        "include_open_invoices": ((bool,), False),
        "include_metered": ((bool,), False),
        "subtract_discounts": ((bool,), False),
        "churn_recognition": ((str,), False),
        "segments": ((list,), False),
    },
}
TOP_LEVEL = ("stripe", "database", "sync", "reporting")


def parse_month(value: str, what: str) -> tuple[int, int]:
    """``"2023-01"`` -> ``(2023, 1)``; anything else is a usage error naming ``what``."""
    match = MONTH_PATTERN.match(str(value).strip())
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise ConfigError(f"{what}: {value!r} is not a month; use YYYY-MM, e.g. 2023-01.")
    month = int(match.group(1)), int(match.group(2))
    last = current_month()
    if not FIRST_MONTH <= month <= last:
        raise ConfigError(
            f"{what}: {value!r} is out of range; use a month from "
            f"{FIRST_MONTH[0]}-{FIRST_MONTH[1]:02d} to {last[0]}-{last[1]:02d} (this month)."
        )
    return month


def current_month() -> tuple[int, int]:
    """This month where it is latest: a user east of UTC may already be in the next one."""
    today = max(date.today(), datetime.now(UTC).date())
    return today.year, today.month


def default_config_path() -> Path:
    return Path(os.environ.get("NRR_SYNC_CONFIG") or "config.yaml")


def load_config(path: str | Path | None = None, *, required: bool | None = None) -> Config:
    """Read ``path`` (default ``$NRR_SYNC_CONFIG`` or ``./config.yaml``).

    A file named explicitly (or by ``NRR_SYNC_CONFIG``) must exist; the default
    ``./config.yaml`` may be absent, and then the defaults apply.
    """
    explicit = path is not None or bool(os.environ.get("NRR_SYNC_CONFIG"))
    config_path = Path(path) if path is not None else default_config_path()
    if required is None:
        required = explicit
    if not config_path.exists():
        if required:
            raise ConfigError(
                f"Config file {config_path} not found. Copy config.example.yaml to "
                f"{config_path} and edit it, or pass --config PATH."
            )
        return apply_environment(Config(source="defaults (no config.yaml)"))
    try:
        data = yaml.safe_load(config_path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{config_path} is not valid YAML: {error}") from None
    except OSError as error:
        raise ConfigError(f"Cannot read config file {config_path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{config_path} is not a text (UTF-8) file; is it a config?") from None
    return apply_environment(config_from_dict(data, source=str(config_path)))


def config_from_dict(data: Any, *, source: str = "config") -> Config:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections {TOP_LEVEL}.")
    for key in data:
        if key not in TOP_LEVEL:
            raise ConfigError(
                f"{source}: unknown key {key!r}; the sections are {', '.join(TOP_LEVEL)}."
            )
    sections = {name: _checked_section(data.get(name), name, source) for name in TOP_LEVEL}

    stripe_values = dict(sections["stripe"])
    retry = Retry(**_checked_section(stripe_values.pop("retry", None), "stripe.retry", source))
    stripe_values["accounts"] = tuple(
        _checked_list(stripe_values.get("accounts", []), "stripe.accounts", source, str)
    )
    stripe = StripeSettings(retry=retry, **stripe_values)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", stripe.api_key_env):
        raise ConfigError(
            f"{source}: stripe.api_key_env must name an environment variable "
            f"(e.g. STRIPE_API_KEY), not {stripe.api_key_env!r}."
        )
    _check_api_base(stripe.api_base, f"{source}: stripe.api_base")
    for account in stripe.accounts:
        if not ACCOUNT_PATTERN.fullmatch(account):
            raise ConfigError(
                f"{source}: stripe.accounts: {account!r} is not a Stripe account id "
                "(acct_ followed by letters and digits)."
            )
    if stripe.concurrency is not None:
        _check_positive(stripe.concurrency, "stripe.concurrency", source)
        if stripe.concurrency > MAX_CONCURRENCY:
            raise ConfigError(
                f"{source}: stripe.concurrency must be at most {MAX_CONCURRENCY}, "
                f"not {stripe.concurrency}: Stripe's rate limits leave nothing for more."
            )
    if retry.max_wait_seconds < 0:
        raise ConfigError(f"{source}: stripe.retry.max_wait_seconds must be >= 0.")
    _check_positive(retry.max_attempts, "stripe.retry.max_attempts", source)
    for key in ("max_requests_per_second", "max_requests_per_second_per_endpoint"):
        value = getattr(stripe, key)
        if value is not None:
            _check_positive(value, f"stripe.{key}", source)

    database = DatabaseSettings(**sections["database"])
    if not database.path.strip():
        raise ConfigError(f"{source}: database.path must name a file, e.g. nrr.duckdb.")
    if database.lock_timeout_seconds < 0:
        raise ConfigError(f"{source}: database.lock_timeout_seconds must be >= 0.")

    sync = SyncSettings(**sections["sync"])
    if sync.backfill_since is not None:
        parse_month(sync.backfill_since, f"{source}: sync.backfill_since")
    if sync.invoice_lookback_months < 0:
        raise ConfigError(f"{source}: sync.invoice_lookback_months must be >= 0.")

    reporting_values = dict(sections["reporting"])
    if "fx_rates" in reporting_values:
        reporting_values["fx_rates"] = _checked_fx_rates(reporting_values["fx_rates"], source)
    if "segments" in reporting_values:
        reporting_values["segments"] = tuple(
            _checked_segments(reporting_values["segments"], source)
        )
    if "currency" in reporting_values:
        reporting_values["currency"] = _checked_currency(
            reporting_values["currency"], "reporting.currency", source
        )
    reporting = ReportingSettings(**reporting_values)
    if reporting.churn_recognition not in CHURN_RECOGNITION:
        raise ConfigError(
            f"{source}: reporting.churn_recognition must be one of {', '.join(CHURN_RECOGNITION)}, "
            f"not {reporting.churn_recognition!r}."
        )
    _check_timezone(reporting.timezone, source)
    return Config(stripe=stripe, database=database, sync=sync, reporting=reporting, source=source)


def apply_environment(config: Config) -> Config:
    """Environment variables listed in config.example.yaml override the file."""
    from dataclasses import replace

    api_base = os.environ.get("NRR_SYNC_STRIPE_API_BASE")
    if api_base:
        _check_api_base(api_base, "the environment variable NRR_SYNC_STRIPE_API_BASE")
        config = replace(config, stripe=replace(config.stripe, api_base=api_base))
    database = os.environ.get("NRR_SYNC_DATABASE")
    if database:
        config = replace(config, database=replace(config.database, path=database))
    return config


def _checked_section(values: Any, name: str, source: str) -> dict[str, Any]:
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: {name} must be a mapping of keys, not {_kind(values)}.")
    schema = SCHEMA[name]
    checked = {}
    for key, value in values.items():
        if key not in schema:
            raise ConfigError(
                f"{source}: unknown key {name}.{key}; known keys in {name}: {', '.join(schema)}."
            )
        types, nullable = schema[key]
        if value is None and nullable:
            checked[key] = None
            continue
        # bool is an int in Python; a `true` where a number belongs is still a mistake.
        wrong_bool = isinstance(value, bool) and bool not in types
        if wrong_bool or not isinstance(value, types):
            wanted = " or ".join(_TYPE_NAMES[t] for t in types) + (" or null" if nullable else "")
            raise ConfigError(f"{source}: {name}.{key} must be {wanted}, not {_kind(value)}.")
        # YAML reads .inf and .nan as numbers; no timeout, wait or rate can be either.
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{source}: {name}.{key} must be a finite number, not {value!r}.")
        checked[key] = value
    return checked


def _checked_list(values: list, name: str, source: str, item_type: type) -> list:
    for item in values:
        if not isinstance(item, item_type):
            raise ConfigError(
                f"{source}: every entry of {name} must be {_TYPE_NAMES[item_type]}, "
                f"not {_kind(item)}."
            )
    return values


def _checked_currency(value: str, name: str, source: str) -> str:
    if not re.fullmatch(r"[A-Za-z]{3}", value):
        raise ConfigError(f"{source}: {name} must be a 3-letter ISO currency code, not {value!r}.")
    return value.lower()


def _checked_fx_rates(rates: dict, source: str) -> dict[str, float]:
    checked = {}
    for currency, rate in rates.items():
        code = _checked_currency(str(currency), f"reporting.fx_rates key {currency!r}", source)
        number = not isinstance(rate, bool) and isinstance(rate, _NUMBER)
        if not number or not FX_RATE_MIN <= rate < FX_RATE_MAX:  # False for nan too
            raise ConfigError(
                f"{source}: reporting.fx_rates.{currency} must be a positive number from "
                f"{FX_RATE_MIN:g} to {FX_RATE_MAX:g} (reporting-currency units per unit), "
                f"not {rate!r}."
            )
        checked[code] = float(rate)
    return checked


def _checked_segments(segments: list, source: str) -> list[str]:
    _checked_list(segments, "reporting.segments", source, str)
    for segment in segments:
        is_metadata = segment.startswith("metadata:") and len(segment) > len("metadata:")
        if segment not in BUILT_IN_SEGMENTS and not is_metadata:
            raise ConfigError(
                f"{source}: reporting.segments: unknown segment {segment!r}; use "
                f"{', '.join(BUILT_IN_SEGMENTS)} or metadata:<key>."
            )
    return segments


def _check_api_base(value: str, what: str) -> None:
    if not API_BASE_PATTERN.fullmatch(value):
        raise ConfigError(
            f"{what} must be an http(s) URL such as https://api.stripe.com, not {value!r}."
        )


def _check_positive(value: float, name: str, source: str) -> None:
    if value <= 0:
        raise ConfigError(f"{source}: {name} must be greater than 0, not {value!r}.")


def _check_timezone(name: str, source: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
        known = name == "UTC" or name in duckdb_time_zones()
    except (ZoneInfoNotFoundError, ValueError):
        known = False
    if not known:
        raise ConfigError(
            f"{source}: reporting.timezone {name!r} is not an IANA time zone the database "
            f"knows (e.g. UTC, Europe/Berlin, America/New_York)."
        )


@functools.cache
def duckdb_time_zones() -> frozenset[str]:
    """The zones the SQL build can use (Python may know more, e.g. ``localtime``)."""
    from .dbfile import connect  # the one opener: no extension is ever loaded

    con = connect(":memory:")
    try:
        rows = con.execute("SELECT name FROM pg_timezone_names()").fetchall()
        return frozenset(name for (name,) in rows)
    finally:
        con.close()


_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    list: "a list",
    dict: "a mapping",
}


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    for python_type, name in reversed(list(_TYPE_NAMES.items())):
        if isinstance(value, python_type):
            return f"{name} ({value!r})" if not isinstance(value, dict | list) else name
    return type(value).__name__
