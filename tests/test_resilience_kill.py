"""SIGKILL at random points of a backfill and of a sync, then a rerun: the result is row by
row the data of an uninterrupted run, and a resumed backfill fetches exactly the objects
that were not landed yet (docs/operations.md). test_sync_backfill kills a backfill once; these
kill the same run again and again at seeded random points, and a sync too."""

from __future__ import annotations

import json
import os
import random
import signal

import pytest
from resilience_helpers import assert_same_data, landed_counts, wait_for_requests
from sync_helpers import cli, cli_process, query, write_config

SINCE = "2023-01"
DAY = 86400
# 10 kill points, as docs/benchmarks.md
# reports: NRR_RESILIENCE_KILLS=10 pytest tests/test_resilience_kill.py
KILLS = int(os.environ.get("NRR_RESILIENCE_KILLS", "4"))
RATE = 10  # requests per second: slow enough to kill a run in the middle


def kill_at(sandbox, config, args, requests: int) -> bool:
    """Start nrr-sync, SIGKILL it once it has made ``requests`` requests.

    Returns False if the run ended on its own first.
    """
    base = sandbox.stats()["requests"]
    process = cli_process(config, args, sandbox)
    reached = wait_for_requests(sandbox, base + requests, process)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    return reached and process.returncode == -signal.SIGKILL


@pytest.mark.slow
def test_a_backfill_killed_again_and_again_resumes_to_the_data_of_a_clean_run(
    tmp_path, sandbox_factory
):
    customers = 80 * KILLS  # long enough to be killed KILLS times before it finishes
    clean = sandbox_factory(customers=customers, seed=31, latency_ms=20)
    (tmp_path / "clean").mkdir()
    clean_config = write_config(tmp_path / "clean", stripe={"max_requests_per_second": RATE})
    assert cli(clean_config, ["backfill", "--since", SINCE], clean).exit_code == 0
    clean_db = tmp_path / "clean" / "nrr.duckdb"
    clean_requests = clean.stats()["requests"]
    clean_counts = landed_counts(clean_db)

    killed = sandbox_factory(customers=customers, seed=31, latency_ms=20)
    config = write_config(tmp_path, stripe={"max_requests_per_second": RATE})
    work = tmp_path / "nrr.duckdb.work"
    rng = random.Random(6)
    # each run is killed after 1 to 2.5 s of requests: past its first commit (once a second)
    points = [rng.randrange(RATE, RATE * 5 // 2) for _ in range(KILLS)]
    landed_before = {kind: 0 for kind in clean_counts}
    for point in points:
        assert kill_at(killed, config, ["backfill", "--since", SINCE], point), point
        assert not (tmp_path / "nrr.duckdb").exists(), "a killed run publishes nothing"
        if work.exists():
            landed = landed_counts(work)
            assert all(landed[k] >= landed_before[k] for k in landed), "nothing is lost"
            assert all(landed[k] <= clean_counts[k] for k in landed), "nothing is duplicated"
            landed_before = landed
    assert 0 < sum(landed_before.values()) < sum(clean_counts.values())
    before_rerun = killed.stats()["requests"]

    result = cli(config, ["backfill", "--since", SINCE], killed)

    assert result.exit_code == 0, result.output
    assert_same_data(tmp_path / "nrr.duckdb", clean_db)
    # the finishing run fetched exactly what was not landed yet: no page twice
    (objects,) = query(
        tmp_path / "nrr.duckdb",
        "SELECT objects::VARCHAR FROM meta.sync_runs WHERE outcome = 'ok'",
    )[0]
    fetched = json.loads(objects)
    for kind, total in clean_counts.items():
        assert fetched.get(kind, 0) == total - landed_before[kind], kind
    # and every kill cost at most the pages in flight or not yet committed
    wasted = before_rerun + (killed.stats()["requests"] - before_rerun) - clean_requests
    assert wasted <= KILLS * (4 + RATE + 2)  # concurrency + a second of pages + resume calls


@pytest.mark.slow
def test_a_sync_killed_at_random_points_reruns_to_the_data_of_a_clean_sync(
    tmp_path, sandbox_factory
):
    clean = sandbox_factory(customers=15 * KILLS, seed=32, latency_ms=20)
    killed = sandbox_factory(customers=15 * KILLS, seed=32, latency_ms=20)
    (tmp_path / "clean").mkdir()
    clean_config = write_config(tmp_path / "clean")
    config = write_config(tmp_path)
    for sandbox, cfg in ((clean, clean_config), (killed, config)):
        assert cli(cfg, ["backfill", "--since", SINCE], sandbox).exit_code == 0
        sandbox.advance(3 * DAY)
    clean.reset_stats()
    assert cli(clean_config, ["sync"], clean).exit_code == 0
    sync_requests = clean.stats()["requests"]
    assert sync_requests > KILLS + 3, "the day's changes take some requests"

    rng = random.Random(7)
    points = sorted(rng.sample(range(1, sync_requests - 2), KILLS))
    for point in points:
        killed.reset_stats()
        assert kill_at(killed, config, ["sync"], point), point
    killed.reset_stats()
    result = cli(config, ["sync"], killed)

    assert result.exit_code == 0, result.output
    assert_same_data(tmp_path / "nrr.duckdb", tmp_path / "clean" / "nrr.duckdb")
