"""What takes the space in the published file: per 1,000 invoices, by table and column.

Each table is copied alone into a fresh DuckDB file (and for the landing tables, once
only the ``raw`` JSON column and once every column but ``raw``); the size of each file,
less that of an empty one, is what that data costs on disk, compressed as DuckDB
compresses it. ``duckdb_tables()`` gives the row counts and ``pragma_storage_info`` the
compression DuckDB chose for each column.

Then three reads of ``raw`` as analysts and models make them, medians of three: a scan
of every invoice's raw JSON for a field, one invoice's by its id (median of 20 ids), and
the raw JSON of the proration lines only (what ``report.mrr_lines`` read before V009 gave
their credited line ids a column).

    python benchmarks/storage.py --db PATH/nrr.duckdb       # a backfilled file
    python benchmarks/storage.py --customers 2500           # backfill one first (no latency)
    python benchmarks/storage.py --db PATH/nrr.duckdb --reads-only
"""

from __future__ import annotations

import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

MIB = 2**20


def main(argv: list[str] | None = None) -> dict:
    arguments = common.parser(__doc__.splitlines()[0])
    arguments.add_argument("--db", type=Path, default=None, help="A backfilled nrr-sync file.")
    arguments.add_argument("--customers", type=int, default=2500)
    arguments.add_argument("--reads-only", action="store_true", help="Only time the reads.")
    args = arguments.parse_args(argv)
    if args.quick:
        args.customers = min(args.customers, 40)

    print(common.header("storage"), flush=True)
    with tempfile.TemporaryDirectory(prefix="nrr-bench-") as scratch:
        db = args.db or backfill(args.customers, args.workdir or Path(scratch))
        results = {} if args.reads_only else measure(db, Path(scratch))
        results["reads_seconds"] = measure_reads(db)
    reads = [[name, f"{seconds * 1000:,.1f}"] for name, seconds in results["reads_seconds"].items()]
    print(common.table(["read of raw", "ms"], reads))
    params = {"db": str(args.db) if args.db else None, "customers": args.customers}
    if args.reads_only:
        print(f"\nrecorded in {common.record('storage', params, results, args.results)}")
        return results

    per = 1000 / max(results["invoices"], 1)
    rows = [
        [
            name,
            f"{entry['rows']:,}",
            round(entry["bytes"] / MIB, 2),
            round(entry["bytes"] * per / MIB, 3),
            entry.get("compression", ""),
        ]
        for name, entry in results["parts"].items()
    ]
    print()
    print(
        f"{results['file_bytes'] / MIB:.1f} MiB for {results['invoices']:,} invoices = "
        f"{results['file_bytes'] * per / MIB:.2f} MiB per 1,000 invoices"
    )
    print(common.table(["part", "rows", "MiB", "MiB per 1,000 invoices", "compression"], rows))
    path = common.record("storage", params, results, args.results)
    print(f"\nrecorded in {path}")
    return results


def backfill(customers: int, workdir: Path) -> Path:
    with common.start_sandbox(customers=customers) as sandbox:
        config = common.write_config(
            workdir / "storage",
            max_requests_per_second=common.NO_LIMIT,
            max_requests_per_second_per_endpoint=common.NO_LIMIT,
        )
        common.check(common.run_nrr_sync(config, ["backfill", "--since", "2023-01"], sandbox))
    return workdir / "storage" / "nrr.duckdb"


def measure(db: Path, scratch: Path) -> dict:
    import duckdb

    from nrr_sync import kinds, landing

    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = con.execute(
            "SELECT schema_name, table_name, estimated_size, sql FROM duckdb_tables() "
            "WHERE NOT internal ORDER BY schema_name, table_name"
        ).fetchall()
        (invoices,) = con.execute("SELECT count(*) FROM stripe.invoices").fetchone()
    finally:
        con.close()
    empty = copy_size(db, scratch / "empty", [])
    parts: dict[str, dict] = {}
    for schema, table, rows, ddl in tables:
        name = f"{schema}.{table}"
        # As published: the table's own definition, with its primary key index.
        whole = [
            f"CREATE SCHEMA {schema}",
            ddl,
            "ATTACH",
            f"INSERT INTO copy.{name} SELECT * FROM source.{name}",
        ]
        parts[name] = {"rows": rows, "bytes": copy_size(db, scratch / name, whole)}
        if schema == "stripe" and table in kinds.TABLES:
            typed = ", ".join(f'"{c}"' for c in landing.COLUMNS[table] if c != "raw")
            # raw as the table defines it, with the compression it names (V008: zstd)
            raw = re.search(r"\braw JSON(?: USING COMPRESSION \w+)?", ddl).group(0)
            only_raw = [
                f"CREATE TABLE copy.copied ({raw})",
                "ATTACH",
                f"INSERT INTO copy.copied SELECT raw FROM source.{name}",
            ]
            only_typed = [
                "ATTACH",
                f"CREATE TABLE copy.copied AS SELECT {typed} FROM source.{name}",
            ]
            for label, copy in (("raw JSON", only_raw), ("typed columns", only_typed)):
                size = copy_size(db, scratch / f"{name}-{label}", copy)
                parts[f"  {label}"] = {"rows": rows, "bytes": size - empty}
            parts["  raw JSON"]["compression"] = raw_compression(db, name)
            parts[name]["bytes"] -= empty
            # Renamed per table, so the next table's parts do not overwrite these.
            for label in ("raw JSON", "typed columns"):
                parts[f"  {table} {label}"] = parts.pop(f"  {label}")
        else:
            parts[name]["bytes"] -= empty
    return {
        "file_bytes": db.stat().st_size,
        "invoices": invoices,
        "empty_file_bytes": empty,
        "parts": parts,
    }


READS = {
    "scan: a field of every invoice": "SELECT count(*) FROM stripe.invoices "
    "WHERE raw ->> '$.billing_reason' = 'manual'",
    "the proration lines": "SELECT count(raw ->> '$.parent') FROM stripe.invoice_lines "
    "WHERE proration",
}


def measure_reads(db: Path) -> dict[str, float]:
    """Median seconds of each read of ``raw`` (READS, and one invoice by its id)."""
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        timed = {}
        for name, sql in READS.items():
            timed[name] = round(statistics.median(_seconds(con, sql) for _ in range(3)), 3)
        ids = [row[0] for row in con.execute(
            "SELECT id FROM stripe.invoices USING SAMPLE 20 ROWS (reservoir, 7)"
        ).fetchall()]  # fmt: skip
        one = "SELECT raw FROM stripe.invoices WHERE id = ?"
        timed["one invoice by id"] = round(
            statistics.median(_seconds(con, one, [i]) for i in ids * 3), 4
        )
        return timed
    finally:
        con.close()


def _seconds(con, sql: str, params=None) -> float:
    started = time.perf_counter()
    con.execute(sql, params or []).fetchall()
    return time.perf_counter() - started


def copy_size(db: Path, target: Path, statements: list[str]) -> int:
    """Bytes of a fresh file after ``statements``: those before "ATTACH" run in the fresh
    file alone, the rest with ``db`` attached read-only as ``source`` (the fresh file's
    own catalog is ``copy``)."""
    import duckdb

    target.mkdir()
    path = target / "copy.duckdb"
    con = duckdb.connect(str(path))
    try:
        for statement in statements:
            if statement == "ATTACH":
                con.execute(f"ATTACH '{db}' AS source (READ_ONLY)")
            else:
                con.execute(statement)
        con.execute("DETACH DATABASE IF EXISTS source")
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return path.stat().st_size


def raw_compression(db: Path, table: str) -> str:
    """The compressions DuckDB chose for the raw column, by share of its segments."""
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        found = con.execute(
            f"SELECT compression, count(*) FROM pragma_storage_info('{table}') "
            "WHERE column_name = 'raw' AND segment_type <> 'VALIDITY' GROUP BY 1 ORDER BY 2 DESC"
        ).fetchall()
    finally:
        con.close()
    total = sum(n for _, n in found) or 1
    return ", ".join(f"{name} {n / total:.0%}" for name, n in found)


if __name__ == "__main__":
    main()
