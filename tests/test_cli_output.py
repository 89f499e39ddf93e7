"""What the command line prints around the work: the --quiet cron log, global options
anywhere, help without value types on flags, a reader that stops early."""

from __future__ import annotations

import re
import subprocess
import sys

from sync_helpers import cli_process, write_config
from typer.testing import CliRunner

from nrr_sync import dbfile
from nrr_sync.cli import app, hoist_global_options

STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"


def finished(process: subprocess.Popen) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=120)
    return process.returncode, out, err


def test_quiet_success_prints_exactly_one_timestamped_summary_line(tmp_path, sandbox_factory):
    sandbox = sandbox_factory(customers=8, latency_ms=1)
    config = write_config(tmp_path)
    code, out, err = finished(
        cli_process(config, ["--quiet", "backfill", "--since", "2025-01"], sandbox)
    )
    assert code == 0, err
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert re.fullmatch(
        rf"{STAMP} INFO backfill ok in \d+\.\d s: fetched .*customers \d+.*; \d+ requests, "
        r"\d+ retries, \d+ rate-limited \(429\)",
        lines[0],
    ), lines[0]


def test_quiet_failure_prints_the_summary_and_a_timestamped_error(tmp_path, sandbox_factory):
    sandbox = sandbox_factory(customers=3, latency_ms=1)
    config = write_config(tmp_path)
    code, _, err = finished(
        cli_process(config, ["--quiet", "backfill", "--since", "2025-01"], sandbox, key="sk_x")
    )
    assert code == 3
    lines = err.splitlines()
    assert len(lines) == 2, err
    assert re.match(rf"{STAMP} INFO backfill failed \(exit 3\) in .*: fetched nothing;", lines[0])
    assert re.match(rf"{STAMP} ERROR Stripe rejected the API key", lines[1]), lines[1]


def test_global_options_are_accepted_after_the_command(tmp_path):
    config = tmp_path / "elsewhere.yaml"
    config.write_text(f"database:\n  path: {tmp_path / 'mine.duckdb'}\n")
    result = CliRunner().invoke(app, ["status", "--config", str(config), "-q"])
    assert "No such option" not in result.output
    assert "mine.duckdb" in result.stdout  # this config was read


def test_hoisting_moves_only_global_options_after_the_command():
    assert hoist_global_options(["report", "--window", "3", "--config", "c.yaml", "-v"]) == [
        "--config",
        "c.yaml",
        "-v",
        "report",
        "--window",
        "3",
    ]
    assert hoist_global_options(["--config", "c.yaml", "sync", "--quiet"]) == [
        "--config",
        "c.yaml",
        "--quiet",
        "sync",
    ]
    assert hoist_global_options(["report", "--config=c.yaml"]) == ["--config=c.yaml", "report"]
    assert hoist_global_options(["--version"]) == ["--version"]


def test_help_shows_flags_without_a_value_type():
    for args in (
        ["--help"],
        ["backfill", "--help"],
        ["report", "--help"],
        ["sandbox", "serve", "--help"],
    ):
        result = CliRunner().invoke(app, args, terminal_width=100)
        assert result.exit_code == 0
        assert "<bool>" not in result.stdout, args
    backfill = CliRunner().invoke(app, ["backfill", "--help"], terminal_width=100).stdout
    assert "--restart" in backfill and "--no-restart" not in backfill
    assert "<str>" in backfill  # options that take a value keep their type


def test_a_reader_that_stops_early_ends_the_command_quietly():
    command = (
        f"{sys.executable} -c 'from nrr_sync.cli import app; app()' "
        "sandbox truth --customers 300 --format json | head -c 10"
    )
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, timeout=120
    )
    assert done.stdout == '[\n {\n  "ac'
    assert "BrokenPipe" not in done.stderr and "Unexpected error" not in done.stderr
    assert done.returncode == 0, done.stderr


SLOW_QUERY = """
import sys
import duckdb
con = duckdb.connect(sys.argv[1])
con.execute("SET progress_bar_time = 0")  # at once, not after 2 s: a quick test
con.execute("SELECT count(*) FROM range(100000000) AS t(i) WHERE i % 7 = 3").fetchall()
"""


def test_no_progress_bar_of_duckdb_reaches_stdout(tmp_path):
    """DuckDB draws its progress bar on stdout for a query that runs over 2 s, a file or
    pipe included (cron's log, a `report --format csv > file`): shown here with the delay
    at 0. nrr-sync's connections have it off (a 9 s query printed nothing, by hand)."""
    drawn = subprocess.run(
        [sys.executable, "-c", SLOW_QUERY, str(tmp_path / "plain.duckdb")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "%" in drawn

    con = dbfile.connect(tmp_path / "ours.duckdb")
    assert con.execute("SELECT current_setting('enable_progress_bar')").fetchone() == (False,)
    con.close()
