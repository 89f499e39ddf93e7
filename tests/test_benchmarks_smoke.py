"""Every benchmark runs end to end at tiny sizes and records a complete result line.

The numbers are meaningless at these sizes; what is checked is that each benchmark still
works against the current sandbox and CLI, and that its record says what was measured,
on which machine, with which versions.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))


def recorded(path: Path) -> dict:
    (line,) = path.read_text().splitlines()
    record = json.loads(line)
    assert record["machine"]["cores"] >= 1 and record["machine"]["memory_gib"] > 0
    assert {"python", "duckdb", "stripe", "nrr_sync"} <= set(record["versions"])
    assert record["date"].endswith("Z")
    return record["results"]


def test_backfill_throughput_runs_and_records(tmp_path):
    import backfill_throughput

    results_path = tmp_path / "results.jsonl"
    results = backfill_throughput.main(
        [
            *("--quick", "--customers", "40", "--latencies", "5", "--windows", "adaptive,2"),
            *("--results", str(results_path)),
        ]
    )

    adaptive, fixed = results["runs"]
    assert (adaptive["window"], fixed["window"]) == ("adaptive", 2)
    assert fixed["in_flight_peak"] <= 3  # one answer may still be closing at the server
    for result in (adaptive, fixed):
        assert result["pages_needed_total"] > 5
        assert result["requests"] >= result["pages_needed_total"]
        assert result["objects"]["invoices"] > 0
        assert result["bound_seconds"] > 0 and result["ratio_to_bound"] > 0
        # The backfill's time in three parts: start-up, its requests, what follows them.
        parts = ("start_up_seconds", "requests_seconds", "after_last_answer_seconds")
        assert all(0 < result[part] < result["backfill_seconds"] for part in parts)
    assert recorded(results_path)["runs"][0]["requests"] == adaptive["requests"]


def test_backfill_throughput_serves_invoices_created_in_one_second(tmp_path):
    import backfill_throughput

    results = backfill_throughput.main(
        [
            *("--quick", "--customers", "20", "--same-second", "150", "--latencies", "5"),
            *("--results", str(tmp_path / "results.jsonl")),
        ]
    )

    (run,) = results["runs"]
    # 150 renewals a month from 2024-01 to 2025-01 (20 customers alone make about 200)
    assert run["objects"]["invoices"] >= 150 * 13
    assert run["requests"] >= run["pages_needed_total"]
    assert results["same_second"] == 150


def test_nightly_sync_runs_and_records(tmp_path):
    import nightly_sync

    results_path = tmp_path / "results.jsonl"
    (result,) = nightly_sync.main(["--quick", "--sizes", "40", "--results", str(results_path)])

    assert result["changed_objects"] > 0
    assert 0 < result["sync_requests"] < result["backfill_requests"]
    assert recorded(results_path)["sizes"][0]["customers"] == 40


def test_build_and_memory_runs_and_records(tmp_path):
    import build_and_memory

    results_path = tmp_path / "results.jsonl"
    result = build_and_memory.main(
        [
            "--quick",
            "--customers",
            "60",
            "--small",
            "20",
            "--load-customers",
            "30",
            "--results",
            str(results_path),
        ]
    )

    assert [b["customers"] for b in result["backfills"]] == [20, 60]
    assert all(b["peak_rss_mib"] > 0 for b in result["backfills"])
    assert result["build_seconds"] > 0 and result["build_rows"]
    assert result["loads"]["append"]["objects_per_second"] > 0
    assert result["loads"]["upsert"]["rows"] == result["loads"]["append"]["rows"]
    assert recorded(results_path)["loads"] == result["loads"]


def test_page_cpu_runs_and_records(tmp_path):
    import page_cpu

    results_path = tmp_path / "results.jsonl"
    result = page_cpu.main(["--quick", "--results", str(results_path)])

    assert result["invoices"]["pages"] > 0 and result["customers"]["pages"] > 0
    steps = (
        "parse_json_ms", "parse_orjson_ms", "raw_json_ms", "landing_rows_ms",
        "landing_rows_previous_builders_ms", "append_ms", "append_staged_varchar_ms",
        "append_duckdb_parses_json_ms",
    )  # fmt: skip
    for step in steps:
        assert result["invoices"][step] > 0
    assert result["request_ms"] > 0
    assert result["invoices_page_ms"] > result["invoices"]["append_ms"]
    assert recorded(results_path)["invoices"]["pages"] == result["invoices"]["pages"]


def test_storage_runs_and_records(tmp_path):
    import storage

    results_path = tmp_path / "results.jsonl"
    result = storage.main(["--quick", "--results", str(results_path)])

    assert result["invoices"] > 0 and result["file_bytes"] > 0
    parts = result["parts"]
    assert parts["stripe.invoices"]["bytes"] > 0 and parts["  invoices raw JSON"]["bytes"] > 0
    assert recorded(results_path)["invoices"] == result["invoices"]
