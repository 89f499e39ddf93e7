"""Injected faults (5% 500/503, 2% dropped connections, bursts of 429) change nothing:
a backfill and the nightly sync after it end with the landing AND report tables of a
clean run, row by row
(docs/benchmarks.md). test_sync_backfill covers the landing tables of a backfill."""

from __future__ import annotations

import json
import time

from hostile_proxy import Answer, HostileProxy
from resilience_helpers import assert_same_data
from sync_helpers import cli, cli_process, write_config

SINCE = "2023-01"
DAY = 86400


def test_backfill_and_sync_under_faults_end_with_the_rows_of_a_clean_run(tmp_path, sandbox_factory):
    clean = sandbox_factory(customers=40, seed=21, latency_ms=1)
    faulty = sandbox_factory(customers=40, seed=21, latency_ms=1, fault_rate=0.05, drop_rate=0.02)
    retry = {"max_attempts": 12, "max_wait_seconds": 0.2}
    (tmp_path / "clean").mkdir()
    (tmp_path / "faulty").mkdir()
    clean_config = write_config(tmp_path / "clean")
    faulty_config = write_config(tmp_path / "faulty", stripe={"retry": retry})
    clean_db, faulty_db = tmp_path / "clean" / "nrr.duckdb", tmp_path / "faulty" / "nrr.duckdb"

    faulty.set_knobs(burst_429=4)
    assert cli(clean_config, ["backfill", "--since", SINCE], clean).exit_code == 0
    result = cli(faulty_config, ["backfill", "--since", SINCE], faulty)
    assert result.exit_code == 0, result.output
    assert_same_data(faulty_db, clean_db)

    for sandbox in (clean, faulty):
        sandbox.advance(2 * DAY)
    faulty.set_knobs(burst_429=4)
    assert cli(clean_config, ["sync"], clean).exit_code == 0
    result = cli(faulty_config, ["sync"], faulty)
    assert result.exit_code == 0, result.output
    assert_same_data(faulty_db, clean_db)

    stats = faulty.stats()
    assert stats["faults"] > 0 and stats["drops"] > 0
    assert stats["rate_limited"] == 8  # both bursts


def test_a_failed_run_exits_without_waiting_out_other_requests_backoff(tmp_path, sandbox_factory):
    """Invoices refused (403, exit 3) while the customers' first page waits 30 s before its
    next attempt (a 503 with Retry-After): the run fails and its process ends at once."""
    sandbox = sandbox_factory(customers=5, seed=22)
    proxy = HostileProxy(sandbox.url)
    busy = json.dumps({"error": {"type": "api_error", "message": "busy"}}).encode()
    refused = json.dumps(
        {
            "error": {
                "type": "invalid_request_error",
                "message": "The provided key does not have the required permissions for this "
                "endpoint. Having the 'rak_invoice_read' permission would allow this request "
                "to continue.",
            }
        }
    ).encode()

    def refuse_after_a_while(request):
        time.sleep(0.5)  # the customers' 503 comes back first: it is waiting by now
        return Answer(403, {"Content-Type": "application/json"}, refused)

    proxy.on("/v1/customers", lambda request: Answer(503, {"Retry-After": "30"}, busy))
    proxy.on("/v1/invoices", refuse_after_a_while)
    config = write_config(tmp_path, stripe={"retry": {"max_attempts": 4, "max_wait_seconds": 60}})
    try:
        started = time.monotonic()
        process = cli_process(config, ["backfill", "--since", SINCE], sandbox, api_base=proxy.url)
        _, errors = process.communicate(timeout=90)
        seconds = time.monotonic() - started
    finally:
        proxy.close()
    assert process.returncode == 3, errors
    assert "rak_invoice_read" in errors
    assert proxy.count("/v1/customers") == 1  # it was waiting for its second attempt
    assert seconds < 15, f"the failed run took {seconds:.1f} s to exit"
    # a first backfill: nothing published, and status says so
    assert not (tmp_path / "nrr.duckdb").exists()
    status = cli(config, ["status"], key="sk_test_unused", api_base="http://127.0.0.1:9")
    assert status.exit_code != 0, status.output
