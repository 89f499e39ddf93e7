"""The adaptive in-flight window end to end: a backfill against a sandbox with Stripe's
latency and rate limits keeps more requests in flight than a fixed small window, and
lands exactly the data of a clean run. (How fast is a benchmark, never a test here:
benchmarks/backfill_throughput.py.)"""

from __future__ import annotations

from resilience_helpers import assert_same_data
from sync_helpers import cli, write_config

SINCE = "2023-01"


def test_an_adaptive_backfill_at_high_latency_lands_the_data_of_a_clean_run(
    tmp_path, sandbox_factory
):
    world = {"customers": 150, "seed": 13}
    clean = sandbox_factory(**world, latency_ms=1)
    slow = sandbox_factory(**world, latency_ms=200, rate_limit=100, endpoint_rate_limit=25)
    (tmp_path / "clean").mkdir()
    (tmp_path / "adaptive").mkdir()
    # The clean run is the positive control of the in-flight count: a window of 2.
    clean_config = write_config(tmp_path / "clean", stripe={"concurrency": 2})
    adaptive_config = write_config(
        tmp_path / "adaptive",
        stripe={
            "concurrency": None,
            "max_requests_per_second": 95,
            "max_requests_per_second_per_endpoint": 24,
        },
    )

    assert cli(clean_config, ["backfill", "--since", SINCE], clean).exit_code == 0
    result = cli(adaptive_config, ["backfill", "--since", SINCE], slow)
    assert result.exit_code == 0, result.output
    assert_same_data(tmp_path / "adaptive" / "nrr.duckdb", tmp_path / "clean" / "nrr.duckdb")

    # (one answer may still be closing at the server when the next request arrives)
    assert clean.stats()["in_flight_peak"] <= 3
    # 24/s per endpoint at 0.2 s needs 6 in flight on each busy endpoint
    assert slow.stats()["in_flight_peak"] > 4
