"""The DuckDB file: bulk loads into the landing tables, and publishing it safely.

Loads go through DuckDB's appender (``action="upsert"``), never row-by-row
``executemany``, so landing a page of 100 invoices is one statement.

Publishing (SPEC 4.4): a run holds a job lock (``<db>.lock``), works in a copy next to
the published file (``<db>.work``, kept after a failure so the next run resumes from
it), and atomically replaces the published file when done. Analysts' read-only
sessions on the published file never block a run and keep their old view.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import json
import logging
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path

import duckdb

from . import landing
from .errors import ConfigError, DatabaseBusyError
from .writable import require_writable_dir


def upsert_rows(con: duckdb.DuckDBPyConnection, kind: str, rows: Sequence[tuple]) -> int:
    """Insert or replace ``rows`` (tuples in ``landing.COLUMNS[kind]`` order)."""
    if not rows:
        return 0
    with con.appender(f"stripe.{kind}", columns=list(landing.COLUMNS[kind]), action="upsert") as ap:
        ap.append_rows(rows)
    return len(rows)


def insert_rows(con: duckdb.DuckDBPyConnection, kind: str, rows: Sequence[tuple]) -> int:
    """Append ``rows`` to a table known not to hold them (a key already there raises
    ``duckdb.ConstraintException``); about twice as fast as ``upsert_rows``."""
    if not rows:
        return 0
    with con.appender(f"stripe.{kind}", columns=list(landing.COLUMNS[kind])) as ap:
        ap.append_rows(rows)
    return len(rows)


def delete_rows(con: duckdb.DuckDBPyConnection, kind: str, keys: Iterable[tuple[str, str]]) -> None:
    """Delete rows by ``(account_id, id)``."""
    keys = list(keys)
    if keys:
        with con.appender(f"stripe.{kind}", action="delete", key=["account_id", "id"]) as ap:
            ap.append_rows(keys)


def landing_rows(
    account_id: str, kind: str, objects: Iterable[dict], synced_at: datetime
) -> dict[str, list[tuple]]:
    """The landing rows of complete Stripe objects of one kind, per table.

    Invoices bring their lines (``lines.data``) and subscriptions their items
    (``items.data``). An invoice whose ``lines.has_more`` is still true is recorded
    with ``lines_complete = false``.
    """
    objects = list(objects)
    if kind == "invoices":
        invoices, lines, discounts = [], [], []
        for invoice in objects:
            discounts.extend(landing.invoice_discount_rows(account_id, invoice, synced_at))
            invoice_lines = (invoice.get("lines") or {}).get("data") or []
            complete = not (invoice.get("lines") or {}).get("has_more", False)
            invoices.append(
                landing.invoice_row(
                    account_id,
                    invoice,
                    synced_at,
                    line_count=len(invoice_lines),
                    lines_complete=complete,
                )
            )
            lines.extend(
                landing.invoice_line_row(account_id, invoice["id"], line, synced_at)
                for line in invoice_lines
            )
        return {"invoices": invoices, "invoice_lines": lines, "invoice_discounts": discounts}
    rows: dict[str, list[tuple]] = {}
    if kind == "subscriptions":
        rows["subscription_items"] = [
            landing.subscription_item_row(account_id, item, synced_at)
            for subscription in objects
            for item in (subscription.get("items") or {}).get("data") or []
        ]
    build_row = landing.ROW_BUILDERS[kind]
    rows[kind] = [build_row(account_id, obj, synced_at) for obj in objects]
    return rows


def load_objects(
    con: duckdb.DuckDBPyConnection,
    account_id: str,
    kind: str,
    objects: Iterable[dict],
    synced_at: datetime | None = None,
) -> int:
    """Land complete Stripe objects of one kind (see ``landing_rows``).

    The caller is responsible for having fetched every page of the embedded lists
    (``has_more`` false).
    """
    rows = landing_rows(account_id, kind, objects, synced_at or landing.now_utc())
    for table, table_rows in rows.items():
        upsert_rows(con, table, table_rows)
    return len(rows[kind])


def delete_children(
    con: duckdb.DuckDBPyConnection,
    kind: str,
    parent_column: str,
    account_id: str,
    parent_ids: Iterable[str],
) -> None:
    """Delete every row of ``kind`` whose ``parent_column`` is one of ``parent_ids``.

    Used before re-landing a re-fetched invoice or subscription, so lines and items
    Stripe removed since the last sync disappear too.
    """
    parent_ids = list(parent_ids)
    if parent_ids:
        con.execute(
            f"DELETE FROM stripe.{kind} WHERE account_id = ? AND {parent_column} IN "
            "(SELECT unnest(?::VARCHAR[]))",
            [account_id, parent_ids],
        )


def mark_deleted(
    con: duckdb.DuckDBPyConnection, kind: str, account_id: str, ids: Iterable[str]
) -> None:
    """Flag objects Stripe deleted (customers, products, prices keep their rows)."""
    ids = list(ids)
    if ids:
        con.execute(
            f"UPDATE stripe.{kind} SET deleted = true, synced_at = now() "
            "WHERE account_id = ? AND id IN (SELECT unnest(?::VARCHAR[]))",
            [account_id, ids],
        )


# meta.sync_state: cursors and checkpoints ------------------------------------------


def get_state(con: duckdb.DuckDBPyConnection, key: str) -> str | None:
    row = con.execute("SELECT value FROM meta.sync_state WHERE key = ?", [key]).fetchone()
    return row[0] if row else None


def state_with_prefix(con: duckdb.DuckDBPyConnection, prefix: str) -> dict[str, str]:
    rows = con.execute(
        "SELECT key, value FROM meta.sync_state WHERE starts_with(key, ?) ORDER BY key", [prefix]
    ).fetchall()
    return dict(rows)


def set_state(con: duckdb.DuckDBPyConnection, values: dict[str, str | None]) -> None:
    """Upsert ``values`` into meta.sync_state (a value of None deletes the key)."""
    deleted = [key for key, value in values.items() if value is None]
    if deleted:
        con.execute(
            "DELETE FROM meta.sync_state WHERE key IN (SELECT unnest(?::VARCHAR[]))", [deleted]
        )
    rows = [(key, value, landing.now_utc()) for key, value in values.items() if value is not None]
    if rows:
        with con.appender("meta.sync_state", action="upsert") as ap:
            ap.append_rows(rows)


def delete_state_prefix(con: duckdb.DuckDBPyConnection, prefix: str) -> None:
    con.execute("DELETE FROM meta.sync_state WHERE starts_with(key, ?)", [prefix])


# The database file: opening it, the job lock, the working copy, publishing ------------
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
    **{("stripe", kind): {"account_id", "raw", "synced_at"} for kind in landing.KINDS},
}


def connect(path: Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """The one way nrr-sync opens a DuckDB file."""
    return duckdb.connect(str(path), read_only=read_only, config=dict(NO_EXTENSIONS))


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
            "SELECT key, value FROM meta.sync_state "
            "WHERE key IN ('backfill:status', 'backfill:since')"
        ).fetchall()
    )
    return state.get("backfill:status"), state.get("backfill:since")


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


@contextlib.contextmanager
def job_lock(db_path: Path) -> Iterator[None]:
    """Hold ``<db>.lock`` for the whole run; a second run on the same file exits 5 at once."""
    require_writable_dir(
        db_path.parent,
        f"the lock, the working copy and the atomic replace of {db_path.name}",
        "check database.path (or NRR_SYNC_DATABASE) or the directory's permissions",
    )
    lock_path = sibling(db_path, ".lock")
    fd = _open_side_file(lock_path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise DatabaseBusyError(
            f"another nrr-sync run (pid {holder}) is working on {db_path}; "
            "this run stops without changing anything."
        ) from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _open_side_file(path: Path) -> int:
    """Open or create a side file we write into, never through a link planted in its
    place (as root under cron, that would overwrite any file)."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as error:
        if error.errno != errno.ELOOP:
            raise
        fd = None
    if fd is not None:
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
            return fd
        os.close(fd)
    raise ConfigError(
        f"{path} is a link or not a plain file; nrr-sync makes its side files itself and "
        "never writes through one. Remove it, then run again."
    )


def write_side_file(path: Path, text: str) -> None:
    """Replace ``path`` atomically with ``text``: written to a new private file in the same
    folder, then renamed (a link planted at ``path`` is replaced, never followed)."""
    handle, temporary = tempfile.mkstemp(prefix=path.name + ".", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        _remove(Path(temporary))
        raise


def read_side_file(path: Path) -> str | None:
    """The text of a side file; None when it is missing or not a plain file of ours."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return handle.read().decode("utf-8", errors="replace")


def _is_plain_file(path: Path) -> bool:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return False
    return stat.S_ISREG(info.st_mode) and info.st_nlink == 1


def fingerprint(db_path: Path) -> dict | None:
    """What changes when anyone writes the published file, or leaves a WAL beside it."""
    try:
        info = os.stat(db_path)
    except FileNotFoundError:
        return None
    wal = sibling(db_path, ".wal")
    wal_info = os.lstat(wal) if os.path.lexists(wal) else None
    return {
        "device": info.st_dev,
        "inode": info.st_ino,
        "size": info.st_size,
        "mtime_ns": info.st_mtime_ns,
        "wal": [wal_info.st_size, wal_info.st_mtime_ns] if wal_info else None,
    }


def open_working_copy(db_path: Path, timeout: float) -> tuple[duckdb.DuckDBPyConnection, Path]:
    """A read-write connection to ``<db>.work``: the one a failed run left, if it is whole
    and the published file is still the one it was copied from; else a fresh copy."""
    work_path = sibling(db_path, ".work")
    for stale in db_path.parent.glob(glob.escape(db_path.name + COPYING) + "*"):
        _remove(stale)  # a copy a killed run left half-made
    con = _resume_working_copy(db_path, work_path, timeout)
    if con is None:
        _fresh_working_copy(db_path, work_path, timeout)
        con = _connect_waiting(work_path, timeout, read_only=False)
    return con, work_path


def _resume_working_copy(
    db_path: Path, work_path: Path, timeout: float
) -> duckdb.DuckDBPyConnection | None:
    if not os.path.lexists(work_path):
        return None
    reason = _working_copy_problem(db_path, work_path)
    if reason is None:
        try:
            con = _connect_waiting(work_path, timeout, read_only=False)
        except ConfigError as error:
            reason = str(error)
        else:
            try:
                problem = truncation(con, work_path)
                reason = f"it {problem}" if problem else None
                foreign_reason(con)
                backfill_state(con)  # reads blocks: a damaged copy fails here
            except duckdb.Error as error:
                reason = _first_line(error)
            if reason is None:
                return con
            con.close()
    log.warning(
        "The working copy %s is discarded (%s); this run starts from a fresh copy of %s.",
        work_path,
        reason,
        db_path,
    )
    discard_working_copy(db_path)
    return None


def _working_copy_problem(db_path: Path, work_path: Path) -> str | None:
    """Why the working copy a failed run left cannot be resumed; None if it can."""
    if not _is_plain_file(work_path):
        return "it is a link or not a plain file"
    if os.path.lexists(sibling(work_path, ".wal")) and not _is_plain_file(
        sibling(work_path, ".wal")
    ):
        return "its WAL is a link or not a plain file"
    problem = file_problem(work_path)
    if problem:
        return f"it {problem}"
    try:
        origin = json.loads(read_side_file(sibling(db_path, ".work.origin")) or "")
    except ValueError:
        return "it does not say which published file it was copied from"
    if not isinstance(origin, dict) or origin.get("published") != fingerprint(db_path):
        return f"{db_path} changed since it was copied"
    return None


def discard_working_copy(db_path: Path) -> None:
    for suffix in (".work", ".work.wal", ".work.origin"):
        _remove(sibling(db_path, suffix))


def _fresh_working_copy(db_path: Path, work_path: Path, timeout: float) -> None:
    """Copy the published file (and a WAL beside it) to ``<db>.work`` and note which file
    it was copied from; with nothing published yet, DuckDB creates the working copy."""
    discard_working_copy(db_path)
    origin = None
    if os.path.lexists(db_path):
        # The read-only connection keeps writers out while the file is copied.
        reader = open_published(db_path, timeout)
        try:
            origin = fingerprint(db_path)
            copy = _private_copy(db_path)
            wal = sibling(db_path, ".wal")
            if _is_plain_file(wal):
                os.replace(_private_copy(wal), sibling(work_path, ".wal"))
            _write_origin(db_path, origin)
            os.replace(copy, work_path)
        finally:
            reader.close()
    else:
        _write_origin(db_path, None)


def _private_copy(source: Path) -> Path:
    """A copy of ``source`` in a new file only its owner can read (mode 0600), beside it."""
    handle, temporary = tempfile.mkstemp(prefix=source.name + COPYING, dir=source.parent)
    try:
        with open(source, "rb") as src, os.fdopen(handle, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
    except BaseException:
        _remove(Path(temporary))
        raise
    return Path(temporary)


def _write_origin(db_path: Path, origin: dict | None) -> None:
    record = {"published": origin, "copied_at": landing.now_utc().isoformat()}
    write_side_file(sibling(db_path, ".work.origin"), json.dumps(record))


def _refuse_if_changed(db_path: Path) -> None:
    """Exit 5 when someone wrote the published file since this run copied it."""
    text = read_side_file(sibling(db_path, ".work.origin"))
    try:
        origin = json.loads(text or "")
    except ValueError:
        origin = None
    if isinstance(origin, dict) and origin.get("published") == fingerprint(db_path):
        return
    copied = origin.get("copied_at", "?") if isinstance(origin, dict) else "?"
    raise DatabaseBusyError(
        f"{db_path} was changed by another process since this run copied it (at {copied}), "
        "so it was not overwritten and that change is kept. The next run starts over from it."
    )


def publish(con: duckdb.DuckDBPyConnection, work_path: Path, db_path: Path, timeout: float) -> None:
    """Checkpoint and close the working copy, then atomically make it the published file,
    with the published file's permission bits, owner and group."""
    if db_path.exists():
        # Nobody may have opened the published file read-write while we worked.
        open_read_only(db_path, timeout).close()
    _refuse_if_changed(db_path)
    con.execute("CHECKPOINT")
    con.close()
    _fsync(work_path)
    # A read-only session of our own keeps writers out until the file is replaced.
    reader = open_read_only(db_path, timeout) if db_path.exists() else None
    try:
        _refuse_if_changed(db_path)
        _keep_mode_and_owner(db_path, work_path)
        _remove(sibling(db_path, ".wal"))
        os.replace(work_path, db_path)
    finally:
        if reader is not None:
            reader.close()
    _remove(sibling(work_path, ".wal"))
    _remove(sibling(db_path, ".work.origin"))
    _fsync(db_path.parent)


def _keep_mode_and_owner(db_path: Path, work_path: Path) -> None:
    """Give the new file the published file's owner, group and permission bits (a file
    kept at 600 must not become world-readable)."""
    try:
        info = os.stat(db_path)
    except FileNotFoundError:
        return
    for uid, gid in ((info.st_uid, info.st_gid), (-1, info.st_gid)):
        try:
            os.chown(work_path, uid, gid)
            break
        except PermissionError:
            continue
    else:
        log.warning(
            "could not keep the owner and group of %s (uid %d, gid %d): not allowed",
            db_path,
            info.st_uid,
            info.st_gid,
        )
    os.chmod(work_path, stat.S_IMODE(info.st_mode))  # after chown, which may clear bits


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
