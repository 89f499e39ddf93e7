"""An unwritable directory or a full disk: a clear error, the published file untouched,
and once there is room again the next run finishes with the data of a clean run
(docs/benchmarks.md).

Runs nrr-sync as a separate process, as cron would. A full disk is a small tmpfs
mounted for the test (needs root; skipped otherwise); an unwritable directory is
``chmod a-w``, or ``chattr +i`` for root, whom permissions do not stop.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import pytest
from resilience_helpers import assert_same_data, small_tmpfs
from sync_helpers import cli, cli_process, write_config

SINCE = "2023-01"
NO_STRIPE = {"key": "unused", "api_base": "http://127.0.0.1:9"}


def run(config: Path, args: list[str], sandbox=None, **env) -> tuple[int, str]:
    process = cli_process(config, args, sandbox, **env)
    out, err = process.communicate(timeout=120)
    return process.returncode, out + err


@contextlib.contextmanager
def unwritable(directory: Path):
    if os.geteuid() == 0:
        made = subprocess.run(["chattr", "+i", str(directory)], capture_output=True)
        if made.returncode != 0:
            pytest.skip(f"cannot make a directory immutable here: {made.stderr.decode()}")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(directory)], check=True)
    else:
        directory.chmod(0o555)
        try:
            yield
        finally:
            directory.chmod(0o755)


@pytest.fixture
def small_disk(tmp_path):
    """A 32 MiB tmpfs; ``fill(leave)`` leaves ``leave`` bytes free, ``fill(None)`` frees it."""
    with small_tmpfs(tmp_path / "disk", "32m") as mount_point:
        filler = mount_point / "filler"

        def fill(leave: int | None) -> None:
            filler.unlink(missing_ok=True)
            if leave is not None:
                stat = os.statvfs(mount_point)
                size = stat.f_bavail * stat.f_frsize - leave
                subprocess.run(["fallocate", "-l", str(size), str(filler)], check=True)

        yield mount_point, fill


def publish_an_empty_account(config: Path, sandbox_factory) -> None:
    """A finished backfill of an account with no customers: a small published file."""
    code, output = run(config, ["backfill", "--since", SINCE], sandbox_factory(customers=0))
    assert code == 0, output


def test_an_unwritable_directory_fails_clearly_and_leaves_the_published_file(
    tmp_path, sandbox_factory
):
    data = tmp_path / "data"
    data.mkdir()
    config = write_config(tmp_path, database={"path": str(data / "nrr.duckdb")})
    publish_an_empty_account(config, sandbox_factory)
    before = (data / "nrr.duckdb").read_bytes()

    with unwritable(data):
        code, output = run(config, ["build"], **NO_STRIPE)

    assert code != 0
    assert str(data) in output
    assert "not permitted" in output or "Permission denied" in output
    assert "Traceback" not in output
    assert (data / "nrr.duckdb").read_bytes() == before


def test_no_room_for_the_working_copy_fails_clearly_and_leaves_the_published_file(
    tmp_path, small_disk, sandbox_factory
):
    disk, fill = small_disk
    config = write_config(tmp_path, database={"path": str(disk / "nrr.duckdb")})
    publish_an_empty_account(config, sandbox_factory)
    before = (disk / "nrr.duckdb").read_bytes()
    fill(len(before) // 2)

    code, output = run(config, ["build"], **NO_STRIPE)

    assert code != 0
    assert "No space left on device" in output
    assert "Traceback" not in output
    assert (disk / "nrr.duckdb").read_bytes() == before
    fill(None)
    assert run(config, ["build"], **NO_STRIPE)[0] == 0


def fill_up_during_a_backfill(
    tmp_path, small_disk, sandbox, sandbox_factory
) -> tuple[Path, bytes, int, str]:
    """Publish an empty account, leave just room for its copy, then backfill."""
    disk, fill = small_disk
    config = write_config(tmp_path, database={"path": str(disk / "nrr.duckdb")})
    publish_an_empty_account(config, sandbox_factory)
    before = (disk / "nrr.duckdb").read_bytes()
    fill(len(before) + 64 * 1024)
    code, output = run(config, ["backfill", "--since", SINCE], sandbox)
    return config, before, code, output


def test_a_disk_that_fills_up_during_a_backfill_leaves_the_published_file_and_recovers(
    tmp_path, small_disk, sandbox_factory
):
    sandbox = sandbox_factory(customers=30, seed=3)
    config, before, code, output = fill_up_during_a_backfill(
        tmp_path, small_disk, sandbox, sandbox_factory
    )
    disk, fill = small_disk

    assert code != 0
    assert "Traceback" not in output
    assert (disk / "nrr.duckdb").read_bytes() == before

    fill(None)
    code, output = run(config, ["backfill", "--since", SINCE], sandbox)
    assert code == 0, output
    (tmp_path / "clean").mkdir()
    clean_config = write_config(tmp_path / "clean")
    assert cli(clean_config, ["backfill", "--since", SINCE], sandbox).exit_code == 0
    assert_same_data(disk / "nrr.duckdb", tmp_path / "clean" / "nrr.duckdb")


def test_a_disk_that_fills_up_during_a_backfill_says_so(tmp_path, small_disk, sandbox_factory):
    sandbox = sandbox_factory(customers=30, seed=3)
    _, _, code, output = fill_up_during_a_backfill(tmp_path, small_disk, sandbox, sandbox_factory)

    assert code != 0
    assert "No space left on device" in output
