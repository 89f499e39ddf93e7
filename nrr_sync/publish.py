"""Publishing safely (docs/operations.md): a run holds a job lock (``<db>.lock``), works in a
copy next to the published file (``<db>.work``, kept after a failure so the next run
resumes from it), and atomically replaces the published file when done. Analysts'
read-only sessions on the published file never block a run and keep their old view.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import json
import logging
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import duckdb

from . import landing, signals
from .clone import clone_file
from .dbfile import (
    COPYING,
    _connect_waiting,
    _first_line,
    _is_plain_file,
    backfill_state,
    file_problem,
    foreign_reason,
    open_published,
    open_read_only,
    sibling,
    truncation,
)
from .errors import ConfigError, DatabaseBusyError
from .writable import require_writable_dir

log = logging.getLogger("nrr_sync")

# DuckDB reuses a file's free blocks but never gives them back. A working copy more than
# half free (a migration wrote its largest tables anew) is written into a new file before
# it is published, so a run leaves a file the size of its data.
COMPACT_ABOVE_FREE_SHARE = 0.5


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
        _remove(stale)  # a copy (or a compacted copy's directory) a killed run left half-made
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
    os.close(handle)
    try:
        clone_file(source, temporary)  # copy-on-write where the filesystem can
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
    compacted = _compacted_copy(con, db_path)
    con.close()
    if compacted is not None:
        os.replace(compacted, work_path)
        _remove(compacted.parent)
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


def _compacted_copy(con: duckdb.DuckDBPyConnection, db_path: Path) -> Path | None:
    """The checkpointed working copy written into a new file, in a directory only its owner
    can open, when more than half of its blocks are free; None when it is not (or could not
    be written: the working copy is then published as it is, a complete file all the same)."""
    source, total, free = con.execute(
        "SELECT database_name, total_blocks, free_blocks FROM pragma_database_size() "
        "WHERE database_name = current_database()"
    ).fetchone()
    if free <= total * COMPACT_ABOVE_FREE_SHARE:
        return None
    directory = Path(tempfile.mkdtemp(prefix=db_path.name + COPYING, dir=db_path.parent))
    target = directory / db_path.name
    try:
        with signals.interruptible(con):  # SIGINT / SIGTERM stop it, as they stop a build
            con.execute("ATTACH '" + str(target).replace("'", "''") + "' AS compacted")
            con.execute('COPY FROM DATABASE "' + source.replace('"', '""') + '" TO compacted')
            con.execute("DETACH compacted")
    except duckdb.Error as error:
        with contextlib.suppress(duckdb.Error):
            con.execute("DETACH compacted")
        _remove(directory)
        if signals.translated(error) is not error:  # a signal, not a failure to compact
            raise signals.translated(error) from None
        log.warning(
            "The working copy was published without compacting it (%s); %d of its %d blocks "
            "stay free.",
            _first_line(error),
            free,
            total,
        )
        return None
    log.info("compacted the working copy: %d of its %d blocks were free", free, total)
    return target


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
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
        return
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
