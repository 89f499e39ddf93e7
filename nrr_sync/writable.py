"""Checking that a directory can be written before any work that needs it starts.

A read-only mount, an immutable directory or missing permissions would otherwise show as
an OSError deep inside a run (exit 1). Saying which directory, and why it is needed, is
a usage problem the user can fix (exit 2).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from .errors import ConfigError


def require_writable_dir(directory: Path, needed_for: str, fix: str) -> None:
    """Create (if missing) and probe ``directory`` with a real file; ConfigError if refused."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=".nrr-write-check-", dir=directory)
    except OSError as error:
        raise ConfigError(
            f"cannot write in {directory} (needed for {needed_for}): "
            f"{error.strerror or type(error).__name__}; {fix}."
        ) from None
    os.close(handle)
    with contextlib.suppress(OSError):
        os.unlink(probe)
