"""A directory the job cannot write in is named, with what it was needed for (exit 2)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from report_fixtures import make_report_db
from sync_helpers import cli, write_config
from typer.testing import CliRunner

from nrr_sync.cli import app


@pytest.fixture
def unwritable_dir(tmp_path):
    """A directory nobody may create files in: mode 0555, and immutable when run as root
    (root ignores mode bits). Skips where neither can be arranged."""
    directory = tmp_path / "locked"
    directory.mkdir()
    directory.chmod(0o555)
    immutable = False
    if os.geteuid() == 0 and shutil.which("chattr"):
        immutable = subprocess.run(["chattr", "+i", str(directory)]).returncode == 0
    try:
        (directory / "probe").touch()
    except OSError:
        pass
    else:
        (directory / "probe").unlink()
        pytest.skip("cannot make a directory unwritable here")
    yield directory
    if immutable:
        subprocess.run(["chattr", "-i", str(directory)], check=True)
    directory.chmod(0o755)


def test_a_run_into_an_unwritable_directory_exits_2_naming_it(tmp_path, unwritable_dir):
    config = write_config(tmp_path, database={"path": str(unwritable_dir / "nrr.duckdb")})
    result = cli(config, ["build"], key="sk_test_unused", api_base="http://127.0.0.1:9")
    assert result.exit_code == 2, result.output
    assert f"cannot write in {unwritable_dir} (needed for the lock" in result.stderr
    assert "database.path" in result.stderr
    assert "Unexpected error" not in result.stderr


def test_html_into_an_unwritable_place_names_the_path_asked_for(tmp_path, unwritable_dir):
    db = make_report_db(tmp_path / "nrr.duckdb")
    target = unwritable_dir / "report.html"
    result = CliRunner().invoke(
        app, ["report", "--html", str(target)], env={"NRR_SYNC_DATABASE": str(db)}
    )
    assert result.exit_code == 2, result.output
    assert f"--html {target}: cannot write it" in result.stderr
    assert ".nrr-report-" not in result.stderr
    assert not list(unwritable_dir.iterdir())


def test_the_demo_refuses_a_file_that_is_not_a_database_naming_db_not_the_config(tmp_path):
    junk = tmp_path / "junk"
    junk.write_text("junk\n")
    result = CliRunner().invoke(app, ["demo", "--db", str(junk)])
    assert result.exit_code == 2
    assert f"--db {junk} is not a DuckDB database file" in result.stderr
    assert "database.path" not in result.stderr and "config" not in result.stderr
    assert junk.read_text() == "junk\n"


def test_the_demo_into_an_unwritable_directory_says_so_before_starting(unwritable_dir):
    result = CliRunner().invoke(app, ["demo", "--db", str(unwritable_dir / "demo.duckdb")])
    assert result.exit_code == 2
    assert f"cannot write in {unwritable_dir}" in result.stderr and "--db" in result.stderr
    assert "Starting the Stripe sandbox" not in result.stderr
