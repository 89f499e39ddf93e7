"""Backfill throughput against Stripe's rate limits, at several latencies and windows.

The sandbox answers every request after a latency and enforces Stripe's limits
(``--rate-limit`` over all endpoints, ``--endpoint-rate-limit`` per endpoint, answering
429). ``nrr-sync backfill`` runs against it with the given budgets, once per latency and
in-flight window, one after the other on the same sandbox account, so their ratios are
measured side by side under the same load. ``adaptive`` is the default configuration
(``stripe.concurrency`` null); a number is a fixed ``stripe.concurrency``.

The budget bound is the time the fewest pages need at nrr-sync's budgets:
max(pages of an endpoint / endpoint budget, all pages / global budget), where pages =
ceil(objects / 100) per list endpoint plus the extra line / item pages of invoices and
subscriptions with more than 10. Fetching page after page with one connection needs at
least pages x latency (computed, not measured).

    python benchmarks/backfill_throughput.py --latencies 100,250,750 --windows adaptive,8
    python benchmarks/backfill_throughput.py --quick    # 200 customers, 20 ms: a smoke run

``--same-second N`` adds N customers whose monthly subscriptions all renew in one second
(same_second_sandbox.py), over 2024-01 to 2025-01: N invoices a month that only the
cursor can page through.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

SINCE = "2023-01"


def main(argv: list[str] | None = None) -> dict:
    arguments = common.parser(__doc__.splitlines()[0])
    arguments.add_argument("--customers", type=int, default=2500)
    arguments.add_argument(
        "--latencies", default="250", help="Milliseconds per answer, comma-separated."
    )
    arguments.add_argument(
        "--windows",
        default="adaptive",
        help="Comma-separated: 'adaptive' (the default configuration) or a fixed concurrency.",
    )
    arguments.add_argument("--rate-limit", type=int, default=100, help="Sandbox's global limit.")
    arguments.add_argument("--endpoint-rate-limit", type=int, default=25)
    arguments.add_argument("--budget", type=float, default=95, help="nrr-sync's global budget.")
    arguments.add_argument("--endpoint-budget", type=float, default=24)
    arguments.add_argument("--seed", type=int, default=7)
    arguments.add_argument(
        "--same-second",
        type=int,
        default=0,
        help="Also this many customers renewing in the same second, 2024-01 to 2025-01.",
    )
    arguments.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="Also run each backfill with nrr-sync imported from this source tree (e.g. "
        "`mkdir /tmp/base && git archive ab4102c | tar -x -C /tmp/base`), right after "
        "the current code's.",
    )
    args = arguments.parse_args(argv)
    latencies = [float(v) for v in args.latencies.split(",")]
    windows = [None if w == "adaptive" else int(w) for w in args.windows.split(",")]
    if args.quick:
        args.customers = min(args.customers, 200)
        args.same_second = min(args.same_second, 250)
        latencies = [min(latency, 20) for latency in latencies]
    history = {"start": "2024-01", "now": "2025-01-15T00:00:00Z"} if args.same_second else {}

    print(common.header("backfill throughput"), flush=True)
    runs = []
    with tempfile.TemporaryDirectory(prefix="nrr-bench-") as scratch:
        workdir = args.workdir or Path(scratch)
        with common.start_sandbox(
            customers=args.customers,
            seed=args.seed,
            rate_limit=args.rate_limit,
            endpoint_rate_limit=args.endpoint_rate_limit,
            same_second=args.same_second,
            **history,
        ) as sandbox:
            codes = (None, args.baseline) if args.baseline else (None,)
            for code in codes:
                common.warm_up(code)
            for latency in latencies:
                for window in windows:
                    for code in codes:
                        run = backfill_once(sandbox, workdir, args, latency, window, code)
                        runs.append(run)
                        print_run(run, args)

    print()
    print(
        common.table(
            [
                "latency ms",
                "code",
                "window",
                "budget bound s",
                "backfill s",
                "ratio",
                "fetch ratio",
                "requests",
                "429s",
                "peak in flight",
                "CPU s",
                "fetch CPU ms/request",
                "load avg",
            ],
            [
                [
                    run["latency_ms"],
                    run["code"],
                    run["window"],
                    run["bound_seconds"],
                    run["backfill_seconds"],
                    f"{run['ratio_to_bound']:.2f}x",
                    f"{run['ratio_to_bound_fetch']:.2f}x",
                    run["requests"],
                    run["rate_limited"],
                    run["in_flight_peak"],
                    run["cpu_seconds"],
                    run["fetch_cpu_ms_per_request"],
                    run["load_average"],
                ]
                for run in runs
            ],
        )
    )
    results = {"customers": args.customers, "same_second": args.same_second, "runs": runs}
    params = {
        "customers": args.customers,
        "same_second": args.same_second,
        "latencies_ms": latencies,
        "windows": args.windows,
        "rate_limit": args.rate_limit,
        "endpoint_rate_limit": args.endpoint_rate_limit,
        "budget": args.budget,
        "endpoint_budget": args.endpoint_budget,
        "seed": args.seed,
        "quick": args.quick,
        "baseline": str(args.baseline) if args.baseline else None,
    }
    path = common.record("backfill_throughput", params, results, args.results)
    print(f"\nrecorded in {path}")
    return results


def backfill_once(
    sandbox, workdir: Path, args, latency_ms: float, window: int | None, code: Path | None
) -> dict:
    """One backfill of the whole account at ``latency_ms`` with a window; its measures.
    ``code``: the source tree nrr-sync is imported from (None: the installed one)."""
    label = "baseline" if code else "current"
    name = f"{latency_ms:g}ms-{window or 'adaptive'}-{label}"
    settings = {
        "max_requests_per_second": args.budget,
        "max_requests_per_second_per_endpoint": args.endpoint_budget,
    }
    if window is not None:
        settings["concurrency"] = window
    config = common.write_config(workdir / name, **settings)
    sandbox.set_knobs(latency_ms=latency_ms)
    sandbox.reset_stats()
    load_average = os.getloadavg()[0]
    backfill = common.check(
        common.run_nrr_sync(config, ["backfill", "--since", SINCE], sandbox, code=code)
    )
    stats = sandbox.stats()
    db = workdir / name / "nrr.duckdb"
    # The build alone, by the same code as the backfill, is what the backfill's own build
    # cost: fetch and land = the backfill less it.
    build = common.check(common.run_nrr_sync(config, ["build"], None, code=code))
    pages = common.pages_needed(db)
    total_pages = sum(pages.values())
    bound, bound_by = max(
        [(n / args.endpoint_budget, endpoint) for endpoint, n in pages.items()]
        + [(total_pages / args.budget, "all endpoints")]
    )
    fetch_seconds = backfill.seconds - build.seconds
    # Where the time beyond the bound went: the process's start-up before its first
    # request, the requests (first one sent to last answer), and what followed them.
    start_up = stats["first_request_at"] - backfill.started_at
    requests_span = stats["last_answer_at"] - stats["first_request_at"]
    fetch_cpu = backfill.cpu_seconds - build.cpu_seconds
    sequential = total_pages * latency_ms / 1000
    return {
        "latency_ms": latency_ms,
        "code": label,
        # An older tree's own default when none is set (before adaptive: a fixed 8).
        "window": window or ("default" if code else "adaptive"),
        "load_average": round(load_average, 1),
        "objects": common.landed_counts(db),
        "pages_needed": pages,
        "pages_needed_total": total_pages,
        "requests_by_endpoint": stats["by_endpoint"],
        "requests": stats["requests"],
        "rate_limited": stats["rate_limited"],
        "rate_limited_by_endpoint": stats.get("rate_limited_by_endpoint", {}),
        "in_flight_peak": stats.get("in_flight_peak"),
        "bound_seconds": round(bound, 2),
        "bound_by": bound_by,
        "backfill_seconds": round(backfill.seconds, 2),
        "build_seconds": round(build.seconds, 2),
        "fetch_seconds": round(fetch_seconds, 2),
        "start_up_seconds": round(start_up, 2),
        "requests_seconds": round(requests_span, 2),
        "ratio_to_bound_requests": round(requests_span / bound, 3),
        "after_last_answer_seconds": round(backfill.seconds - start_up - requests_span, 2),
        "ratio_to_bound": round(backfill.seconds / bound, 3),
        "ratio_to_bound_fetch": round(fetch_seconds / bound, 3),
        "sequential_seconds_computed": round(sequential, 1),
        "speedup_over_sequential": round(sequential / backfill.seconds, 2),
        "retries": common.last_run(db)["retries"],
        "peak_rss_mib": round(backfill.peak_rss_mib),
        "cpu_seconds": round(backfill.cpu_seconds, 1),
        "cpu_ms_per_request": round(1000 * backfill.cpu_seconds / max(stats["requests"], 1), 1),
        # Without the start-up and the build that ends the command (measured alone).
        "fetch_cpu_seconds": round(fetch_cpu, 1),
        "fetch_cpu_ms_per_request": round(1000 * fetch_cpu / max(stats["requests"], 1), 1),
    }


def print_run(run: dict, args) -> None:
    print()
    print(
        f"{args.customers:,} customers, {run['latency_ms']:g} ms, {run['code']} code, "
        f"window {run['window']} "
        f"(load average {run['load_average']}); objects landed: {run['objects']}"
    )
    rows = [
        [
            endpoint,
            run["pages_needed"].get(endpoint, 0),
            run["requests_by_endpoint"].get(endpoint, 0),
            run["rate_limited_by_endpoint"].get(endpoint, 0),
        ]
        for endpoint in sorted(set(run["pages_needed"]) | set(run["requests_by_endpoint"]))
    ]
    rows.append(["total", run["pages_needed_total"], run["requests"], run["rate_limited"]])
    print(common.table(["endpoint", "pages needed", "requests", "429s"], rows))
    print(
        f"budget bound {run['bound_seconds']} s ({run['bound_by']}); backfill "
        f"{run['backfill_seconds']} s = {run['ratio_to_bound']:.2f}x (fetch and land "
        f"{run['ratio_to_bound_fetch']:.2f}x, build {run['build_seconds']} s); page after page "
        f"{run['sequential_seconds_computed']} s; CPU {run['cpu_seconds']} s "
        f"({run['cpu_ms_per_request']} ms/request; without start-up and build "
        f"{run['fetch_cpu_ms_per_request']} ms/request), peak RSS {run['peak_rss_mib']} MiB",
        flush=True,
    )
    print(
        f"start-up to the first request {run['start_up_seconds']} s; first request to last "
        f"answer {run['requests_seconds']} s = {run['ratio_to_bound_requests']:.2f}x the bound; "
        f"after the last answer (last pages landed, build, publish, exit) "
        f"{run['after_last_answer_seconds']} s",
        flush=True,
    )


if __name__ == "__main__":
    main()
