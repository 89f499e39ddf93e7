"""How much write-ahead log a backfill's landed pages may build up before DuckDB
checkpoints it into the file.

Each commit is durable in the log; a checkpoint writes the log into the file and rewrites
the key indexes of the whole tables, so checkpointing every 16 MB (DuckDB's default) made
the CPU per page grow with the account. But whatever log is left when the last page lands
is checkpointed then, with every request done. So the log may grow to the file's own
size, within ``FETCH_CHECKPOINT_WAL``: few checkpoints in a large account, a short one at
the end of a small one. And once the pages still to come would write less than the
smallest of those, or than a quarter of the log built up, the log is checkpointed at the
next commit, while the last requests are still in flight: a 20,000-customer backfill had
up to 256 MB of log, 2.6 s of checkpoint, left after its last answer; with the smallest
alone as the trigger, a full log's checkpoint still ended 2.7 s after it
(docs/benchmarks.md, section 1).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import duckdb

FETCH_CHECKPOINT_WAL = (32 * 2**20, 256 * 2**20)
# The log is checkpointed early once the pages left would write less than this share of
# what it holds: checkpointing 256 MB took about 4 s at 20,000 customers, while the last
# 32 MB of pages came in 2.3 s, so a full log started its checkpoint too late (2.7 s from
# the last answer to the build). The last quarter of a full log came in 5-8 s there, and the
# build began 0.1-0.6 s after the last answer (docs/benchmarks.md, section 1).
ENDING_SHARE = 0.25


@dataclass
class LandingLog:
    """The write-ahead log of one backfill's working copy, and the pages it holds."""

    path: str  # the log file: the database's path + ".wal"
    pages: int = 0  # pages landed since the last checkpoint
    size: int = 0  # its bytes after the last commit

    @staticmethod
    def of(con: duckdb.DuckDBPyConnection) -> LandingLog:
        (database,) = con.execute(
            "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
        ).fetchone()
        return LandingLog(f"{database}.wal" if database else "")  # "": in memory, no log

    def committed(self, pages: int) -> None:
        """``pages`` more pages were committed (and maybe checkpointed with the rest)."""
        try:
            size = os.stat(self.path).st_size
        except FileNotFoundError:
            size = 0
        if size < self.size:  # checkpointed: the log holds this batch at most
            self.pages = 0
        self.pages = self.pages + pages if size else 0
        self.size = size

    def bytes_for(self, pages: float) -> float:
        """The log ``pages`` more pages would write, at the rate of those it holds."""
        return self.size / self.pages * pages if self.pages else float("inf")


def set_checkpoint_threshold(
    con: duckdb.DuckDBPyConnection,
    log: LandingLog | None = None,
    pages_left: float | None = None,
) -> bool:
    """Let the log grow to the file's size (within ``FETCH_CHECKPOINT_WAL``), or to the
    smallest of those once ``pages_left`` would write less than that (then True)."""
    (size,) = con.execute(
        "SELECT used_blocks * block_size FROM pragma_database_size() "
        "WHERE database_name = current_database()"
    ).fetchone()
    last_pages = log is not None and pages_left is not None and ending(log, pages_left)
    threshold = FETCH_CHECKPOINT_WAL[0] if last_pages else wal_between_checkpoints(size)
    con.execute(f"SET checkpoint_threshold = '{threshold}B'")
    return last_pages


def ending(log: LandingLog, pages_left: float) -> bool:
    """Whether the pages left would write less log than the smallest threshold, or than
    ``ENDING_SHARE`` of the log built up so far."""
    return log.bytes_for(pages_left) < max(FETCH_CHECKPOINT_WAL[0], log.size * ENDING_SHARE)


def wal_between_checkpoints(file_bytes: int) -> int:
    low, high = FETCH_CHECKPOINT_WAL
    return min(max(file_bytes, low), high)
