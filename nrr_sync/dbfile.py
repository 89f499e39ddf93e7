"""The DuckDB file: the one way it is opened, and the checks before it is trusted.

``db_path`` is always the real path (``real_path``): the lock and every side file sit
next to the real file. DuckDB's errors are translated here, once, into the messages and
exit codes of docs/operations.md.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import time
from pathlib import Path

import duckdb

from . import landing
from .errors import ConfigError, DatabaseBusyError
from .jobs import state as checkpoints

#
# Everything about the file's life is kept together here. ``db_path`` is always the real
# path (``real_path``): the lock and every side file sit next to the real file.

log = logging.getLogger("nrr_sync")

# No connection ever fetches code: DuckDB would otherwise download its sqlite extension
# to read a SQLite file put at database.path.
NO_EXTENSIONS = {"autoload_known_extensions": False, "autoinstall_known_extensions": False}
HEADER_BYTES = 3 * 4096  # DuckDB's main header and its two database headers
# The files a run keeps next to the database (none may be overwritten by a report).
SIDE_SUFFIXES = (
    ".wal",
    ".lock",
    ".work",
    ".work.wal",
    ".work.origin",
    ".runs.json",
    ".runs.json.partial",
    ".copying",
)
COPYING = ".copying-"  # <db>.copying-XXXXXXXX: a copy in progress (private, 0600)
# Problems that mean the file was never an nrr-sync database (the others mean damage).
FOREIGN = ("is a directory", "is not a regular file", "is a SQLite", "is not a DuckDB")
NOT_OURS = (
    "point database.path (or NRR_SYNC_DATABASE) at the nrr-sync DuckDB file, or at a path "
    "that does not exist yet"
)
START_OVER = (
    "restore it from a backup, or move it away and run `nrr-sync backfill --since YYYY-MM` "
    "to start over"
)
# Columns every nrr-sync database has in these tables (older files may lack newer ones).
OWN_COLUMNS = {
    ("meta", "sql_migrations"): {"version", "name", "kind", "checksum"},
    ("meta", "sync_state"): {"key", "value"},
    ("meta", "sync_runs"): {"run_id", "command", "outcome"},
    # Every landing table, whatever its key, carries these (docs/tables.md).
    **{("stripe", table): {"account_id", "raw", "synced_at"} for table in landing.COLUMNS},
}


def connect(path: Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """The one way nrr-sync opens a DuckDB file."""
    con = duckdb.connect(str(path), read_only=read_only, config=dict(NO_EXTENSIONS))
    # DuckDB's Python client draws a progress bar on stdout for any query that runs over 2 s,
    # a file or a pipe included: 10 kB of it per model in cron's log, and in the middle of a
    # `report --format csv > file`. The run's own progress lines say what is going on.
    con.execute("SET enable_progress_bar = false")
    return con


def real_path(path: str | Path) -> Path:
    """``database.path`` with symbolic links resolved: the file a run updates (a link
    stays a link), with the lock and the side files next to it."""
    return Path(os.path.realpath(path))


def sibling(db_path: Path, suffix: str) -> Path:
    return db_path.with_name(db_path.name + suffix)


def file_problem(path: Path) -> str | None:
    """Why ``path`` is not a DuckDB file, judged from its headers alone; None if it is."""
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            return "is a directory"
        if not stat.S_ISREG(info.st_mode):
            return "is not a regular file"
        with open(path, "rb") as handle:
            head = handle.read(HEADER_BYTES)
    except OSError as error:
        return f"cannot be read ({error.strerror})"
    if not head:
        return "is empty"
    if head.startswith(b"SQLite format 3\x00"):
        return "is a SQLite database"
    if head[8:12] != b"DUCK":
        return "is not a DuckDB database file"
    if len(head) < HEADER_BYTES:
        return f"is truncated ({info.st_size:,} bytes, less than DuckDB's headers)"
    return None


def truncation(con: duckdb.DuckDBPyConnection, path: Path) -> str | None:
    """Why the open file is shorter than the blocks it uses; None if it is not.

    A truncated file (a full disk, an interrupted copy) still opens, and reads numbers
    from what is left of it. Free blocks at the end may be cut off legitimately, so the
    file must reach the last block a table uses, and hold as many blocks as are in use.
    """
    used, block_size = con.execute(
        "SELECT used_blocks, block_size FROM pragma_database_size() "
        "WHERE database_name = current_database()"
    ).fetchone()
    needed = max(used, _last_table_block(con) + 1)
    expected = HEADER_BYTES + needed * block_size
    size = path.stat().st_size
    if size < expected:
        return f"is truncated ({size:,} bytes, less than the {expected:,} its blocks in use need)"
    return None


def _last_table_block(con: duckdb.DuckDBPyConnection) -> int:
    tables = con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() "
        "WHERE database_name = current_database() AND NOT internal"
    ).fetchall()
    last = -1
    for schema, table in tables:
        name = ".".join('"' + part.replace('"', '""') + '"' for part in (schema, table))
        row = con.execute(
            "SELECT max(greatest(block_id, coalesce(list_max(additional_block_ids), -1))) "
            "FROM pragma_storage_info(?) WHERE persistent",
            [name],
        ).fetchone()
        if row[0] is not None:
            last = max(last, row[0])
    return last


def _refusal(path: Path, problem: str) -> ConfigError:
    """Exit 2 for a file that is not a readable nrr-sync database, with what to do."""
    if problem.startswith(FOREIGN):
        return ConfigError(f"{path} {problem}, so not an nrr-sync database: {NOT_OURS}.")
    if problem.startswith("cannot"):
        return ConfigError(f"{path} {problem}: {START_OVER}.")
    return ConfigError(f"{path} {problem}, so it cannot be read: {START_OVER}.")


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


_HOLDER = re.compile(r"Conflicting lock is held in (.*?) \(PID (\d+)\)")


def open_read_only(db_path: Path, timeout: float) -> duckdb.DuckDBPyConnection:
    """Open the file read-only, waiting up to ``timeout`` s for a read-write holder."""
    return _connect_waiting(db_path, timeout, read_only=True)


def _connect_waiting(path: Path, timeout: float, read_only: bool) -> duckdb.DuckDBPyConnection:
    """Connect; a process holding the file past ``timeout`` -> exit 5 naming it, a file
    DuckDB cannot open -> exit 2. Read-only sessions of other processes never block."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return connect(path, read_only)
        except duckdb.Error as error:
            holder = _HOLDER.search(str(error))
            if not holder:
                problem = _first_line(error)
                if "not a valid DuckDB database" in problem:
                    raise _refusal(path, "is not a DuckDB database file") from None
                raise _refusal(path, f"cannot be opened ({problem})") from None
            if time.monotonic() >= deadline:
                waited = (
                    f" and stayed so for {timeout:g} s (database.lock_timeout_seconds)"
                    if timeout
                    else ""
                )
                raise DatabaseBusyError(
                    f"{path} is open for writing by another process, {holder.group(1)} "
                    f"(PID {holder.group(2)}){waited}. Close that session or open it with "
                    "read_only=True, then run again."
                ) from None
            time.sleep(min(0.5, max(0.05, deadline - time.monotonic())))


def open_published(db_path: Path, timeout: float) -> duckdb.DuckDBPyConnection:
    """The published file read-only, once it is known to be a whole nrr-sync database
    (exit 2 otherwise, before anything else is done)."""
    problem = file_problem(db_path)
    if problem:
        raise _refusal(db_path, problem)
    con = open_read_only(db_path, timeout)
    try:
        problem = truncation(con, db_path)
        reason = foreign_reason(con)
        backfill_state(con)  # reads blocks: a damaged file fails here
    except duckdb.Error as error:
        problem = f"cannot be read ({_first_line(error)})"
    if problem:
        con.close()
        raise _refusal(db_path, problem)
    if reason:
        con.close()
        raise ConfigError(f"{db_path} is not an nrr-sync database: {reason}. Please {NOT_OURS}.")
    return con


def foreign_reason(con: duckdb.DuckDBPyConnection) -> str | None:
    """Why the open file is not an nrr-sync database (None: it is one, or it is empty)."""
    rows = con.execute(
        "SELECT t.schema_name, t.table_name, list(c.column_name) FROM duckdb_tables() t "
        "LEFT JOIN duckdb_columns() c ON c.table_oid = t.table_oid "
        "WHERE t.database_name = current_database() AND NOT t.internal "
        "GROUP BY ALL"
    ).fetchall()
    tables = {(schema, table): set(columns) for schema, table, columns in rows}
    if tables and ("meta", "sql_migrations") not in tables:
        return "it holds tables but no meta.sql_migrations"
    for name, needed in OWN_COLUMNS.items():
        missing = needed - tables.get(name, needed)
        if missing:
            return f"its {'.'.join(name)} has no column {', '.join(sorted(missing))}"
    return None


def backfill_state(con: duckdb.DuckDBPyConnection) -> tuple[str | None, str | None]:
    """``(backfill:status, backfill:since)`` of the open file: ``done`` once a backfill
    finished, ``running`` while one is unfinished, None when nothing was fetched."""
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = 'meta' AND table_name = 'sync_state'"
    ).fetchone()[0]
    if not exists:
        return None, None
    state = dict(
        con.execute(
            "SELECT key, value FROM meta.sync_state WHERE key IN (?, ?)",
            [checkpoints.BACKFILL_STATUS, checkpoints.BACKFILL_SINCE],
        ).fetchall()
    )
    return state.get(checkpoints.BACKFILL_STATUS), state.get(checkpoints.BACKFILL_SINCE)


def check_publishable(con: duckdb.DuckDBPyConnection) -> None:
    """Only a finished backfill (and the syncs after it) may be published."""
    status, since = backfill_state(con)
    if status == "running":
        raise ConfigError(
            f"A backfill from {since} is unfinished: publishing now would replace the "
            f"report with part of the data. Finish it with `nrr-sync backfill --since {since}` "
            "(or `nrr-sync sync`); the published database is unchanged."
        )
    if status != "done":
        raise ConfigError(
            "Nothing fetched yet: run `nrr-sync backfill --since YYYY-MM` first; "
            "nothing was published."
        )


def unfinished_backfill(db_path: Path) -> str | None:
    """The month an unfinished backfill in the working copy starts from; None when there
    is none, or a run holds the working copy now, or it cannot be read."""
    work_path = sibling(db_path, ".work")
    if not _is_plain_file(work_path) or file_problem(work_path):
        return None
    try:
        con = connect(work_path, read_only=True)
    except duckdb.Error:
        return None
    try:
        status, since = backfill_state(con)
    except duckdb.Error:
        return None
    finally:
        con.close()
    return since if status == "running" else None


def check_output_path(path: Path, db_path: Path) -> Path:
    """Where a report may be written (its real path): never the database or one of its
    side files, never over something that is not a regular file."""
    real = real_path(path)
    db_real = real_path(db_path)
    own = {db_real, *(sibling(db_real, suffix) for suffix in SIDE_SUFFIXES)}
    if real in own or real.name.startswith(db_real.name + COPYING):
        raise ConfigError(
            f"--html {path} is the database or one of its side files; "
            "give another file name, like report.html."
        )
    if os.path.lexists(real):
        info = os.stat(real)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(
                f"--html {path} exists and is not a regular file; give a file name, "
                "like report.html."
            )
        if db_real.exists() and os.path.samefile(real, db_real):
            raise ConfigError(f"--html {path} is the database itself (a hard link to it).")
    return real


def _is_plain_file(path: Path) -> bool:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return False
    return stat.S_ISREG(info.st_mode) and info.st_nlink == 1
