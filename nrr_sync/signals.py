"""SIGINT and SIGTERM end a run the same way: a message, a recorded outcome, exit 130 / 143.

Python turns SIGINT into KeyboardInterrupt; SIGTERM (systemd stop, ``timeout``, a
container stop) would kill the process on the spot, with no record and no message. While a
command runs, both raise in the main thread instead, so the run's clean-up records them.

DuckDB checks for signals while a query runs and answers with its own error
("Query interrupted", a RuntimeError or duckdb.InterruptException) instead of ours, so the
signal that arrived is noted here and ``translated`` turns that error back into it.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
import weakref
from collections.abc import Iterator

import duckdb


class Terminated(BaseException):  # noqa: N818 - named like KeyboardInterrupt, its sibling
    """SIGTERM arrived; like KeyboardInterrupt, no ``except Exception`` swallows it."""

    def __str__(self) -> str:
        return "terminated by SIGTERM"


EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}
_received: list[int] = []
# DuckDB runs a query without looking at Python's signal handlers for long stretches, so a
# thread woken by each signal interrupts the connections that run long queries.
_interruptible: weakref.WeakSet = weakref.WeakSet()


def _raise(signum: int, frame) -> None:
    _received.append(signum)
    # A second signal while the run records its end takes the default way out.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if signum == signal.SIGTERM:
        raise Terminated()
    raise KeyboardInterrupt()


def _interrupt_queries(wakeup: socket.socket) -> None:
    while True:
        try:
            data = wakeup.recv(64)
        except OSError:
            return
        if not data:
            return
        for signum in data:
            if signum in EXIT_CODES:
                _received.append(signum)
                for con in list(_interruptible):
                    with contextlib.suppress(Exception):
                        con.interrupt()


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """Raise KeyboardInterrupt on SIGINT and Terminated on SIGTERM while the block runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received.clear()
    previous = {signum: signal.getsignal(signum) for signum in EXIT_CODES}
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    previous_wakeup = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    threading.Thread(target=_interrupt_queries, args=(reader,), daemon=True).start()
    for signum in EXIT_CODES:
        signal.signal(signum, _raise)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        signal.set_wakeup_fd(previous_wakeup)
        writer.close()
        reader.shutdown(socket.SHUT_RDWR)
        reader.close()


@contextlib.contextmanager
def interruptible(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """SIGINT / SIGTERM interrupt the queries ``con`` runs in the block."""
    _interruptible.add(con)
    try:
        yield
    finally:
        _interruptible.discard(con)


def translated(error: BaseException) -> BaseException:
    """The signal behind DuckDB's "Query interrupted", or behind a DuckDB error that wraps
    the exception ``_raise`` raised while DuckDB was calling into Python ("reading the
    schema of the Python object 'arrow_rows' failed: Terminated: ..."); else ``error``."""
    interrupted = isinstance(error, duckdb.InterruptException) or (
        isinstance(error, RuntimeError) and "interrupted" in str(error).lower()
    )
    wrapped = isinstance(error, duckdb.Error) and any(
        f"{raised.__name__}: " in str(error) for raised in (Terminated, KeyboardInterrupt)
    )
    if not (interrupted or wrapped) or not _received:
        return error
    if _received[0] == signal.SIGTERM:
        return Terminated()
    return KeyboardInterrupt()


def exit_code(error: BaseException) -> int | None:
    """130 for an interrupt, 143 for SIGTERM, None for anything else."""
    if isinstance(error, Terminated):
        return EXIT_CODES[signal.SIGTERM]
    if isinstance(error, KeyboardInterrupt):
        return EXIT_CODES[signal.SIGINT]
    return None
