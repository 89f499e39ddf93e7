"""Run the versioned SQL files of ``sql/`` (docs/tables.md).

``V###__name.sql`` files are schema migrations: each is applied once, in version order,
and recorded in ``meta.sql_migrations`` with its sha256; an applied file that was edited
afterwards is refused. ``R###__name.sql`` files are the report models: every build re-runs
all of them, in version order, inside ONE transaction, so a failing model leaves the
previous report tables exactly as they were.

The report models read their inputs from plain tables, so any of them can be run by hand
in ``duckdb nrr.duckdb`` after one build:

- ``meta.build_settings``: one row, the ``reporting`` section of the config plus the
  report's ``since_month`` and ``as_of`` (from ``meta.sync_state``).
- ``meta.fx_rates(currency, rate)``: reporting-currency units per unit of ``currency``
  (the reporting currency itself has rate 1).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import time
from decimal import Decimal
from pathlib import Path

import duckdb

from . import signals
from .config import Config
from .errors import BuildError
from .jobs import state as state_keys

SQL_FILE = re.compile(r"^(?P<kind>[VR])(?P<number>\d{3,})__(?P<title>[A-Za-z0-9_]+)\.sql$")
# DuckDB's optimizer that swaps a join's sides by cardinality estimates (off during a build).
JOIN_SIDE_OPTIMIZER = "build_side_probe_side"

REPORT_TABLES = (
    "mrr_lines",
    "build_info",
    "months",
    "customer_mrr_monthly",
    "mrr_movements",
    "mrr_summary",
    "retention",
    "data_quality",
)

BOOTSTRAP = """
CREATE SCHEMA IF NOT EXISTS meta;
CREATE TABLE IF NOT EXISTS meta.sql_migrations (
    version      VARCHAR PRIMARY KEY,   -- V001, R003, ...
    name         VARCHAR NOT NULL,      -- the file name
    kind         VARCHAR NOT NULL,      -- migration (applied once) | model (re-run every build)
    checksum     VARCHAR NOT NULL,      -- sha256 of the file as applied / last run
    applied_at   TIMESTAMPTZ NOT NULL,
    duration_ms  DOUBLE
);
"""


def sql_dir() -> Path:
    """``sql/`` of a repository checkout, else the copy installed as ``nrr_sync/sql``."""
    package = Path(__file__).resolve().parent
    checkout = package.parent / "sql"
    if checkout.is_dir() and any(checkout.glob("V*.sql")):
        return checkout
    return package / "sql"


def sql_files(kind: str, directory: Path | None = None) -> list[Path]:
    """The ``V`` or ``R`` files of ``directory`` in version order."""
    found = []
    for path in (directory or sql_dir()).glob("*.sql"):
        match = SQL_FILE.match(path.name)
        if match and match.group("kind") == kind:
            found.append((int(match.group("number")), path))
    return [path for _, path in sorted(found)]


def checksum(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def version_of(path: Path) -> str:
    match = SQL_FILE.match(path.name)
    assert match, path
    return f"{match.group('kind')}{match.group('number')}"


def migrate(con: duckdb.DuckDBPyConnection, directory: Path | None = None) -> list[str]:
    """Apply the pending ``V###`` files in version order; return their file names."""
    con.execute(BOOTSTRAP)
    applied = dict(
        con.execute("SELECT version, checksum FROM meta.sql_migrations WHERE kind = 'migration'")
        .fetchall()
    )  # fmt: skip
    newly_applied = []
    for path in sql_files("V", directory):
        version, digest = version_of(path), checksum(path)
        if version in applied:
            if applied[version] != digest:
                raise BuildError(
                    f"sql/{path.name} was edited after it was applied (checksum "
                    f"{applied[version][:12]}… recorded, {digest[:12]}… now). Restore it and "
                    f"add a new V### file instead."
                )
            continue
        started = time.perf_counter()
        con.begin()
        try:
            con.execute(path.read_text())
            record_run(con, path, "migration", digest, started)
            con.commit()
        except duckdb.Error as error:
            con.rollback()
            raise BuildError(f"Migration sql/{path.name} failed: {error}") from None
        newly_applied.append(path.name)
    return newly_applied


def record_run(
    con: duckdb.DuckDBPyConnection, path: Path, kind: str, digest: str, started: float
) -> None:
    con.execute(
        "INSERT OR REPLACE INTO meta.sql_migrations "
        "(version, name, kind, checksum, applied_at, duration_ms) VALUES (?, ?, ?, ?, now(), ?)",
        [version_of(path), path.name, kind, digest, (time.perf_counter() - started) * 1000],
    )


def after_failed_build(con: duckdb.DuckDBPyConnection) -> str:
    """What a failed build leaves, and the quick way on: the fetched data is kept, so a
    build alone finishes the job once the cause is fixed."""
    built = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'report' "
        "AND table_name = 'mrr_summary'"
    ).fetchone()[0]
    before = (
        "The previous report tables are unchanged." if built else "No report tables were built yet."
    )
    return (
        f"{before} The fetched data is kept: once this is fixed, `nrr-sync build` finishes the "
        "job in seconds, without fetching anything again."
    )


def build(con: duckdb.DuckDBPyConnection, config: Config, directory: Path | None = None) -> dict:
    """Migrate, then re-run every ``R###`` file in one transaction.

    Returns ``{"migrations": [...], "models": {file: ms}, "rows": {table: n}, "duration_ms"}``.
    Raises BuildError (exit 6) naming the failing file; the previous report tables stay.
    """
    build_started = time.perf_counter()
    applied = migrate(con, directory)
    timings: dict[str, float] = {}
    swaps_off = _without_join_side_swaps(con)
    con.begin()
    current = "the build settings"
    try:
        write_settings(con, config)
        # models are recorded as last run; a removed or renamed file leaves no stale row
        con.execute("DELETE FROM meta.sql_migrations WHERE kind = 'model'")
        for path in sql_files("R", directory):
            current = f"sql/{path.name}"
            started = time.perf_counter()
            con.execute(path.read_text())
            record_run(con, path, "model", checksum(path), started)
            timings[path.name] = round((time.perf_counter() - started) * 1000, 1)
        rows = report_row_counts(con)
        con.commit()
    except duckdb.Error as error:
        con.rollback()
        if signals.translated(error) is not error:  # SIGINT / SIGTERM, not a broken model
            raise signals.translated(error) from None
        raise BuildError(
            f"SQL build failed in {current}: {error}\n{after_failed_build(con)}"
        ) from None
    except BaseException:
        con.rollback()
        raise
    finally:
        if swaps_off:  # never in the way of the error that ended the build
            with contextlib.suppress(duckdb.Error):
                con.execute("RESET disabled_optimizers")
    return {
        "migrations": applied,
        "models": timings,
        "rows": rows,
        "duration_ms": round((time.perf_counter() - build_started) * 1000, 1),
    }


def _without_join_side_swaps(con: duckdb.DuckDBPyConnection) -> bool:
    """Keep DuckDB from swapping the sides of a join by its cardinality estimates while the
    models run; True if it took.

    The models' chains of views, filters and joins drive those estimates to a few rows for
    tables of a million, and the swap then hashed 1.3 million wide lines to look up a few
    hundred coupons in them (100,000 customers: build 14.5 -> 11.9 s, peak memory 3.3 ->
    2.5 GiB; docs/benchmarks.md). Only plans change, never results; a DuckDB without this
    optimizer keeps its own plans.
    """
    try:
        con.execute(f"SET disabled_optimizers = '{JOIN_SIDE_OPTIMIZER}'")
    except duckdb.Error:
        return False
    return True


def write_settings(con: duckdb.DuckDBPyConnection, config: Config) -> None:
    """Make the ``reporting`` config and the sync's since / as_of readable from SQL."""
    reporting = config.reporting
    # The tables come from V005__build_settings.sql; each build writes them anew.
    con.execute("DELETE FROM meta.build_settings; DELETE FROM meta.fx_rates;")
    con.execute(
        """
        INSERT INTO meta.build_settings
        SELECT ?, ?, ?, ?, ?, ?, ?::VARCHAR[],
            (SELECT strptime(value, '%Y-%m')::DATE
             FROM meta.sync_state WHERE key = ?),
            (SELECT value::TIMESTAMPTZ FROM meta.sync_state WHERE key = ?),
            now()
        """,
        [
            reporting.currency.lower(),
            reporting.timezone,
            reporting.include_open_invoices,
            reporting.include_metered,
            reporting.subtract_discounts,
            reporting.churn_recognition,
            list(reporting.segments),
            state_keys.REPORT_SINCE,
            state_keys.REPORT_AS_OF,
        ],
    )
    rates = {code.lower(): Decimal(str(rate)) for code, rate in reporting.fx_rates.items()}
    rates[reporting.currency.lower()] = Decimal(1)
    con.executemany("INSERT INTO meta.fx_rates VALUES (?, ?)", sorted(rates.items()))


def report_row_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    existing = {
        name
        for (name,) in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'report'"
        ).fetchall()
    }
    return {
        name: con.execute(f"SELECT count(*) FROM report.{name}").fetchone()[0]
        for name in REPORT_TABLES
        if name in existing
    }
