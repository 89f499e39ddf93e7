"""Injected faults (5% 500/503, 2% dropped connections, bursts of 429) change nothing:
a backfill and the nightly sync after it end with the landing AND report tables of a
clean run, row by row
(docs/benchmarks.md). test_sync_backfill covers the landing tables of a backfill."""

from __future__ import annotations

from resilience_helpers import assert_same_data
from sync_helpers import cli, write_config

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
