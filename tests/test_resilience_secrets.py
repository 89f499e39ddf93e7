"""The Stripe key never leaks: after runs with faults, 429s, a kill, a rejected key, an
unreachable API, verbose logging, reports and status, the key appears in no file next
to the database, in no table of it, and in no output (docs/operations.md)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
import sync_helpers
from resilience_helpers import wait_for_requests
from sync_helpers import write_config

SINCE = "2023-01"
DAY = 86400
NRR_SYNC = [sys.executable, "-c", "from nrr_sync.cli import app; app()"]
BAD_KEY = "sk_test_51NrrSyncLeakCanary0123456789abcdefXYZ"


def start(config: Path, args: list[str], sandbox, **env) -> tuple[subprocess.Popen, Path]:
    """nrr-sync --verbose ARGS in a process, its output going to a log file next to the DB."""
    log = config.parent / "logs" / f"{len(list(config.parent.glob('logs/*')))}.log"
    log.parent.mkdir(exist_ok=True)
    environment = {**os.environ, **sync_helpers.environment(sandbox, **env)}
    environment.pop("NRR_SYNC_DATABASE", None)
    with open(log, "w") as stream:
        process = subprocess.Popen(
            [*NRR_SYNC, "--config", str(config), "--verbose", *args],
            env=environment,
            stdout=stream,
            stderr=subprocess.STDOUT,
        )
    return process, log


def run(config: Path, args: list[str], sandbox, **env) -> tuple[int, str]:
    process, log = start(config, args, sandbox, **env)
    process.wait(timeout=120)
    return process.returncode, log.read_text()


def text_columns_containing(db_path: Path, secret: str) -> list[str]:
    """Every table column (of every schema) whose text contains ``secret``."""
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        columns = con.execute(
            "SELECT schema_name, table_name, column_name FROM duckdb_columns() "
            "WHERE NOT internal AND database_name = current_database()"
        ).fetchall()
        found = []
        for schema, table, column in columns:
            (hits,) = con.execute(
                f'SELECT count(*) FROM "{schema}"."{table}" WHERE contains("{column}"::VARCHAR, ?)',
                [secret],
            ).fetchone()
            if hits:
                found.append(f"{schema}.{table}.{column}")
        return found
    finally:
        con.close()


@pytest.mark.slow
def test_the_key_appears_in_no_file_table_or_output(tmp_path, sandbox_factory):
    sandbox = sandbox_factory(customers=25, seed=51, latency_ms=5, fault_rate=0.1, drop_rate=0.05)
    config = write_config(tmp_path, stripe={"retry": {"max_attempts": 12, "max_wait_seconds": 0.1}})
    outputs = []

    sandbox.set_knobs(burst_429=3)
    outputs.append(run(config, ["backfill", "--since", SINCE], sandbox))
    sandbox.advance(2 * DAY)
    outputs.append(run(config, ["sync"], sandbox))
    base = sandbox.stats()["requests"]
    killed, log = start(config, ["backfill", "--since", SINCE, "--restart"], sandbox)
    assert wait_for_requests(sandbox, base + 15, killed)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    outputs.append((killed.returncode, log.read_text()))
    outputs.append(run(config, ["backfill", "--since", SINCE], sandbox))
    outputs.append(run(config, ["sync"], sandbox, key=BAD_KEY))
    outputs.append(run(config, ["sync"], sandbox, api_base="http://127.0.0.1:9"))
    for args in (["report", "--format", "json"], ["report", "--html", str(tmp_path / "r.html")]):
        outputs.append(run(config, args, sandbox))
    outputs.append(run(config, ["status"], sandbox))

    codes = [code for code, _ in outputs]
    assert codes[:2] == [0, 0] and codes[3] == 0, outputs
    assert codes[4] == 3 and codes[5] == 4, outputs
    assert sandbox.stats()["faults"] > 0 and sandbox.stats()["rate_limited"] > 0
    for secret in (sandbox.api_key, BAD_KEY):
        for code, output in outputs:
            assert secret not in output, f"the key is in the output of a run that exited {code}"
        for path in tmp_path.rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), f"the key is in {path}"
        assert text_columns_containing(tmp_path / "nrr.duckdb", secret) == []
