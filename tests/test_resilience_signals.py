"""SIGTERM, SIGINT and SIGKILL at points of a real run, and a month out of bounds: the
published file stays byte-identical, the run is recorded where `status` shows it (exit
130 / 143, "killed" for a process that died), and a rerun lands the data of a clean run,
fetching again only what was not landed (docs/operations.md, "Signals, interrupted runs
and bad input")."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import subprocess
import sys
import time

import pytest
from hostile_proxy import HostileProxy
from resilience_helpers import assert_same_data, wait_for_requests
from sync_helpers import cli, cli_process, environment, query, write_config

SINCE = "2023-01"
DAY = 86400
RATE = 10  # requests per second: slow enough to stop a run in the middle
SQL = __import__("pathlib").Path(__file__).resolve().parent.parent / "sql"


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sidecar(db_path) -> list[dict]:
    return json.loads(db_path.with_name(db_path.name + ".runs.json").read_text())


def stop_at(sandbox, config, args, requests: int, signum: int):
    """Start nrr-sync, send ``signum`` once the sandbox answered ``requests`` more requests."""
    base = sandbox.stats()["requests"]
    process = cli_process(config, args, sandbox)
    assert wait_for_requests(sandbox, base + requests, process), process.communicate()
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    return process.returncode, stderr


def backfilled(tmp_path, sandbox, name: str, **stripe):
    (tmp_path / name).mkdir()
    config = write_config(tmp_path / name, stripe=stripe)
    result = cli(config, ["backfill", "--since", SINCE], sandbox)
    assert result.exit_code == 0, result.output
    return config, tmp_path / name / "nrr.duckdb"


@pytest.mark.slow
def test_sigterm_late_in_a_sync_exits_143_and_the_rerun_fetches_only_what_is_missing(
    tmp_path, sandbox_factory
):
    clean = sandbox_factory(customers=150, seed=41)
    stopped = sandbox_factory(customers=150, seed=41)
    clean_config, clean_db = backfilled(tmp_path, clean, "clean", max_requests_per_second=RATE)
    config, db = backfilled(tmp_path, stopped, "stopped", max_requests_per_second=RATE)
    for sandbox in (clean, stopped):
        sandbox.advance(25 * DAY)
        sandbox.reset_stats()
    assert cli(clean_config, ["sync"], clean).exit_code == 0
    sync_requests = clean.stats()["requests"]
    assert sync_requests > 60, "the changes take enough requests to stop the run late"
    published = sha256(db)

    code, stderr = stop_at(stopped, config, ["sync"], sync_requests * 95 // 100, signal.SIGTERM)

    assert code == 143, stderr
    assert "Terminated (SIGTERM)" in stderr
    assert "Traceback" not in stderr
    assert sha256(db) == published
    last = sidecar(db)[-1]
    assert (last["command"], last["outcome"], last["exit_code"]) == ("sync", "failed:143", 143)
    status = cli(config, ["status"], stopped)
    assert status.exit_code == 1
    assert "failed:143" in status.output

    first_requests = stopped.stats()["requests"]
    stopped.reset_stats()
    result = cli(config, ["sync"], stopped)

    assert result.exit_code == 0, result.output
    rerun_requests = stopped.stats()["requests"]
    # events are listed again; of the objects only those not landed yet are fetched
    assert rerun_requests < sync_requests // 4, (rerun_requests, sync_requests)
    assert rerun_requests < first_requests / 2
    assert_same_data(db, clean_db)
    assert query(db, "SELECT count(*) FROM meta.sync_state WHERE key LIKE 'events:landed:%'") == [
        (0,)
    ]
    assert cli(config, ["status"], stopped).exit_code == 0


@pytest.mark.slow
def test_a_sync_stopped_after_some_commits_then_changed_again_refetches_what_changed(
    tmp_path, sandbox_factory
):
    """An object landed by the stopped run and changed after it is fetched again."""
    clean = sandbox_factory(customers=150, seed=42)
    stopped = sandbox_factory(customers=150, seed=42)
    clean_config, clean_db = backfilled(tmp_path, clean, "clean", max_requests_per_second=RATE)
    config, db = backfilled(tmp_path, stopped, "stopped", max_requests_per_second=RATE)
    for sandbox in (clean, stopped):
        sandbox.advance(20 * DAY)
    stopped.reset_stats()
    code, stderr = stop_at(stopped, config, ["sync"], 40, signal.SIGTERM)
    assert code == 143, stderr
    landed = query(db.with_name("nrr.duckdb.work"), "SELECT count(*) FROM meta.sync_state "
                   "WHERE key LIKE 'events:landed:%'")  # fmt: skip
    assert landed[0][0] > 0, "the stopped run committed batches"
    for sandbox in (clean, stopped):
        sandbox.advance(5 * DAY)

    assert cli(config, ["sync"], stopped).exit_code == 0
    assert cli(clean_config, ["sync"], clean).exit_code == 0

    assert_same_data(db, clean_db)


def slow_sql_dir(tmp_path):
    """sql/ plus a last model that signals it started (a file) and then runs for minutes:
    a build that is certainly running when the signal arrives."""
    directory = tmp_path / "slow-sql"
    shutil.copytree(SQL, directory)
    marker = tmp_path / "build-started.csv"
    (directory / "R999__slow.sql").write_text(
        f"COPY (SELECT 1 AS started) TO '{marker}' (HEADER false);\n"
        "CREATE OR REPLACE TABLE report.slow AS\n"
        "SELECT count(*) AS n FROM range(100000000000) WHERE hash(range) % 7 = 3;\n"
    )
    return directory, marker


def build_process(config, sandbox, sql_dir):
    """`nrr-sync build` in its own process, with the report models of ``sql_dir``."""
    import os
    import subprocess

    code = (
        "import sys, pathlib; import nrr_sync.build as t; "
        "directory = pathlib.Path(sys.argv.pop(1)); t.sql_dir = lambda: directory; "
        "from nrr_sync.cli import app; app()"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code, str(sql_dir), "--config", str(config), "build"],
        env={**os.environ, **environment(sandbox)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize(("signum", "code", "words"), [
    (signal.SIGINT, 130, "Interrupted"),
    (signal.SIGTERM, 143, "Terminated (SIGTERM)"),
])  # fmt: skip
def test_a_signal_during_the_sql_build_exits_130_or_143(
    tmp_path, sandbox_factory, signum, code, words
):
    sandbox = sandbox_factory(customers=20, seed=43)
    config, db = backfilled(tmp_path, sandbox, "db")
    published = sha256(db)
    sql_dir, marker = slow_sql_dir(tmp_path)
    process = build_process(config, sandbox, sql_dir)
    deadline = time.monotonic() + 60
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert marker.exists(), process.communicate()

    process.send_signal(signum)
    try:
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:  # the signal was not heard: leave no build running
            process.kill()
            process.communicate()

    assert process.returncode == code, stderr
    assert words in stderr
    assert "Unexpected error" not in stderr and "Query interrupted" not in stderr
    assert sha256(db) == published
    last = sidecar(db)[-1]
    assert (last["command"], last["outcome"], last["exit_code"]) == (
        "build",
        f"failed:{code}",
        code,
    )
    status = cli(config, ["status"], sandbox)
    assert status.exit_code == 1
    assert f"failed:{code}" in status.output
    assert cli(config, ["build"], sandbox).exit_code == 0
    assert cli(config, ["status"], sandbox).exit_code == 0


READ_ROWS_AT_A_SIGNAL = """
import os, signal, sys, time
import duckdb, pyarrow
from nrr_sync import signals

signum = getattr(signal, sys.argv[1])


class Rows:  # DuckDB calls into Python to read them, as it reads each page's Arrow rows
    def __arrow_c_stream__(self, requested_schema=None):
        os.kill(os.getpid(), signum)
        time.sleep(1)  # the handler raises in here, inside DuckDB's call
        return pyarrow.table({"a": [1]}).__arrow_c_stream__(requested_schema)


con = duckdb.connect()
rows = Rows()
with signals.handled():
    try:
        con.execute("SELECT * FROM rows").fetchall()
    except duckdb.Error as error:
        stopped = signals.translated(error)
        print(type(error).__name__, type(stopped).__name__, signals.exit_code(stopped))
    try:  # a DuckDB error of its own stays itself, a signal received or not
        con.execute("SELECT * FROM no_such_table")
    except duckdb.Error as error:
        print(type(signals.translated(error)).__name__)
"""


@pytest.mark.parametrize(
    ("signum", "stopped", "code"),
    [("SIGTERM", "Terminated", 143), ("SIGINT", "KeyboardInterrupt", 130)],
)
def test_a_signal_while_duckdb_reads_rows_from_python_ends_the_run_as_that_signal(
    signum, stopped, code
):
    """The handler's exception, raised while DuckDB reads a page's Arrow rows from Python,
    comes back wrapped in a DuckDB error ("reading the schema of the Python object
    'arrow_rows' failed: Terminated: ..."): the run must still end as the signal (exit 143 /
    130), not as an unexpected error (exit 1)."""
    result = subprocess.run(
        [sys.executable, "-c", READ_ROWS_AT_A_SIGNAL, signum],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    # DuckDB's own error type first: the wrapping this translation exists for
    assert result.stdout.split() == [
        "InvalidInputException",
        stopped,
        str(code),
        "CatalogException",
    ]


def test_a_killed_run_shows_as_killed_never_as_running(tmp_path, sandbox_factory):
    sandbox = sandbox_factory(customers=60, seed=44)
    config, db = backfilled(tmp_path, sandbox, "db", max_requests_per_second=RATE)
    published = sha256(db)
    code, _ = stop_at(sandbox, config, ["backfill", "--since", SINCE, "--restart"], 5,
                      signal.SIGKILL)  # fmt: skip
    assert code == -signal.SIGKILL
    assert sha256(db) == published
    assert sidecar(db)[-1]["outcome"] == "running", "the record a killed run leaves behind"

    status = cli(config, ["status"], sandbox)

    assert status.exit_code == 1
    assert "killed" in status.output
    assert "ended without recording an outcome" in status.output

    assert cli(config, ["backfill", "--since", SINCE], sandbox).exit_code == 0
    outcomes = query(db, "SELECT outcome FROM meta.sync_runs ORDER BY started_at")
    assert [o for (o,) in outcomes] == ["ok", "killed", "ok"]
    status = cli(config, ["status"], sandbox)
    assert status.exit_code == 0, status.output
    assert "running" not in status.output


def test_a_run_in_progress_shows_as_running(tmp_path, sandbox_factory):
    """The positive control of the one above: a live run is not called killed."""
    sandbox = sandbox_factory(customers=60, seed=45)
    config, db = backfilled(tmp_path, sandbox, "db", max_requests_per_second=RATE)
    base = sandbox.stats()["requests"]
    process = cli_process(config, ["backfill", "--since", SINCE, "--restart"], sandbox)
    try:
        assert wait_for_requests(sandbox, base + 5, process)
        status = cli(config, ["status"], sandbox)
        assert "running" in status.output
        assert "killed" not in status.output
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)
    assert process.returncode == 143


@pytest.mark.parametrize("since", ["2999-01", "1969-12", "0000-01"])
def test_a_month_out_of_bounds_exits_2_before_any_request(tmp_path, sandbox_factory, since):
    sandbox = sandbox_factory(customers=5, seed=46)
    config, db = backfilled(tmp_path, sandbox, "db")
    published = sha256(db)
    sandbox.reset_stats()

    result = cli(config, ["backfill", "--since", since, "--restart"], sandbox)

    assert result.exit_code == 2, result.output
    assert "out of range" in result.output
    assert sandbox.stats()["requests"] == 0
    assert sha256(db) == published


@pytest.mark.parametrize(
    ("signum", "code", "path"),
    [
        (signal.SIGTERM, 143, "/v1/invoices"),  # while slices are fetched
        (signal.SIGINT, 130, "/v1/invoices"),
        (signal.SIGTERM, 143, "/v1/events"),  # while the backfill starts
    ],
)
def test_a_signal_cuts_a_slow_answer_in_flight_and_the_process_ends_at_once(
    tmp_path, sandbox_factory, signum, code, path
):
    """Answers to ``path`` trickle in for a minute (a byte every 0.2 s): a stop signal
    must not wait for them, as systemd kills a unit that takes 90 s to stop."""
    sandbox = sandbox_factory(customers=5, seed=23)
    proxy = HostileProxy(sandbox.url)
    started_answers = []

    def trickle(request):
        answer = request.forward()
        answer.pace, answer.pace_for = 0.2, 60
        started_answers.append(time.monotonic())
        return answer

    proxy.on(path, trickle)
    config = write_config(tmp_path)
    try:
        process = cli_process(config, ["backfill", "--since", SINCE], sandbox, api_base=proxy.url)
        deadline = time.monotonic() + 30
        while not started_answers and time.monotonic() < deadline:
            time.sleep(0.05)
        assert started_answers, f"no answer to {path} started"
        time.sleep(1)
        assert process.poll() is None  # still reading the slow answer
        signalled = time.monotonic()
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=120)
        seconds = time.monotonic() - signalled
    finally:
        proxy.close()
    assert process.returncode == code, stderr
    assert "the published database is unchanged" in stderr
    assert "retrying" not in stderr  # a cancelled request is not retried, nor said to be
    assert seconds < 10, f"the process took {seconds:.1f} s to end after the signal"
    # a first backfill: nothing published, and status says so
    assert not (tmp_path / "nrr.duckdb").exists()
    status = cli(config, ["status"], key="sk_test_unused", api_base="http://127.0.0.1:9")
    assert status.exit_code != 0, status.output
