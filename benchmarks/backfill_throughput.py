"""Backfill throughput against Stripe's rate limits (docs/benchmarks.md).

The sandbox answers every request after ``--latency-ms`` and enforces Stripe's limits
(``--rate-limit`` over all endpoints, ``--endpoint-rate-limit`` per endpoint, answering
429). ``nrr-sync backfill`` runs against it with the given budgets and concurrency. The
rate-limit bound is the time the fewest pages need at those limits:
max(pages of an endpoint / endpoint limit, all pages / global limit), where pages =
ceil(objects / 100) per list endpoint plus the extra line / item pages of invoices and
subscriptions with more than 10. Fetching page after page with one connection needs at
least pages x latency (computed, not measured).

    python benchmarks/backfill_throughput.py            # 5,000 customers, 250 ms, 100/s, 25/s
    python benchmarks/backfill_throughput.py --quick    # 200 customers, 20 ms: a smoke run
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

SINCE = "2023-01"


def main(argv: list[str] | None = None) -> dict:
    arguments = common.parser(__doc__.splitlines()[0])
    arguments.add_argument("--customers", type=int, default=5000)
    arguments.add_argument("--latency-ms", type=float, default=250)
    arguments.add_argument("--rate-limit", type=int, default=100, help="Sandbox's global limit.")
    arguments.add_argument("--endpoint-rate-limit", type=int, default=25)
    arguments.add_argument("--budget", type=float, default=95, help="nrr-sync's global budget.")
    arguments.add_argument("--endpoint-budget", type=float, default=24)
    arguments.add_argument("--concurrency", type=int, default=32)
    arguments.add_argument("--seed", type=int, default=7)
    args = arguments.parse_args(argv)
    if args.quick:
        args.customers, args.latency_ms = min(args.customers, 200), min(args.latency_ms, 20)

    print(common.header("backfill throughput"), flush=True)
    with tempfile.TemporaryDirectory(prefix="nrr-bench-") as scratch:
        workdir = args.workdir or Path(scratch)
        with common.start_sandbox(
            customers=args.customers,
            seed=args.seed,
            latency_ms=args.latency_ms,
            rate_limit=args.rate_limit,
            endpoint_rate_limit=args.endpoint_rate_limit,
        ) as sandbox:
            config = common.write_config(
                workdir / "throughput",
                max_requests_per_second=args.budget,
                max_requests_per_second_per_endpoint=args.endpoint_budget,
                concurrency=args.concurrency,
            )
            sandbox.reset_stats()
            backfill = common.check(
                common.run_nrr_sync(config, ["backfill", "--since", SINCE], sandbox)
            )
            stats = sandbox.stats()
        db = workdir / "throughput" / "nrr.duckdb"
        build = common.check(common.run_nrr_sync(config, ["build"], None))
        pages = common.pages_needed(db)
        counts = common.landed_counts(db)
        run = common.last_run(db)

    limit, endpoint_limit = args.rate_limit, args.endpoint_rate_limit
    total_pages = sum(pages.values())
    bound_by = max(
        [(n / endpoint_limit, endpoint) for endpoint, n in pages.items()]
        + [(total_pages / limit, "all endpoints")]
    )
    bound = bound_by[0]
    fetch_seconds = backfill.seconds - build.seconds
    sequential = total_pages * args.latency_ms / 1000
    requests = stats["by_endpoint"]
    limited = stats.get("rate_limited_by_endpoint", {})

    rows = []
    for endpoint in sorted(set(pages) | set(requests)):
        n = pages.get(endpoint, 0)
        rows.append(
            [
                endpoint,
                n,
                requests.get(endpoint, 0),
                limited.get(endpoint, 0),
                round(n / endpoint_limit, 2) if n else "",
            ]
        )
    rows.append(["total", total_pages, stats["requests"], stats["rate_limited"], ""])
    print()
    print(f"{args.customers:,} customers; objects landed: {counts}")
    print(
        f"sandbox: {args.latency_ms:g} ms latency, {limit}/s global, {endpoint_limit}/s per "
        f"endpoint; nrr-sync: budgets {args.budget:g}/s and {args.endpoint_budget:g}/s, "
        f"concurrency {args.concurrency}"
    )
    print(
        common.table(
            ["endpoint", "pages needed", "requests", "429s", "bound s (pages/limit)"], rows
        )
    )
    summary = [
        ["rate-limit bound", f"{bound:.1f} s ({bound_by[1]})"],
        ["backfill wall time (whole command)", f"{backfill.seconds:.1f} s"],
        ["  of which build + publish (nrr-sync build alone)", f"{build.seconds:.1f} s"],
        ["  fetch and land", f"{fetch_seconds:.1f} s"],
        ["ratio to the bound (whole command)", f"{backfill.seconds / bound:.3f}x"],
        ["ratio to the bound (fetch and land)", f"{fetch_seconds / bound:.3f}x"],
        ["page after page, one connection (computed)", f"{sequential:.0f} s"],
        ["speed-up over page after page", f"{sequential / backfill.seconds:.1f}x"],
        ["requests / pages needed", f"{stats['requests'] / total_pages:.3f}"],
        ["retries, 429s (nrr-sync's count)", f"{run['retries']}, {run['rate_limited']}"],
        [
            "nrr-sync peak RSS, CPU time",
            f"{backfill.peak_rss_mib:.0f} MiB, {backfill.cpu_seconds:.1f} s",
        ],
    ]
    print()
    print(common.table(["measure", "value"], summary))

    results = {
        "customers": args.customers,
        "objects": counts,
        "pages_needed": pages,
        "pages_needed_total": total_pages,
        "requests_by_endpoint": requests,
        "requests": stats["requests"],
        "rate_limited": stats["rate_limited"],
        "rate_limited_by_endpoint": limited,
        "bound_seconds": round(bound, 2),
        "bound_by": bound_by[1],
        "backfill_seconds": round(backfill.seconds, 2),
        "build_seconds": round(build.seconds, 2),
        "fetch_seconds": round(fetch_seconds, 2),
        "ratio_to_bound": round(backfill.seconds / bound, 3),
        "ratio_to_bound_fetch": round(fetch_seconds / bound, 3),
        "sequential_seconds_computed": round(sequential, 1),
        "speedup_over_sequential": round(sequential / backfill.seconds, 2),
        "retries": run["retries"],
        "peak_rss_mib": round(backfill.peak_rss_mib),
        "cpu_seconds": round(backfill.cpu_seconds, 1),
    }
    params = {
        key: getattr(args, key)
        for key in (
            "customers",
            "latency_ms",
            "rate_limit",
            "endpoint_rate_limit",
            "budget",
            "endpoint_budget",
            "concurrency",
            "seed",
            "quick",
        )
    }
    path = common.record("backfill_throughput", params, results, args.results)
    print(f"\nrecorded in {path}")
    return results


if __name__ == "__main__":
    main()
