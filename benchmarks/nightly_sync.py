"""Nightly sync cost: after one simulated day, on accounts of growing size (docs/benchmarks.md).

For each account size: backfill from a sandbox without latency or limits, move the
sandbox clock one day (``POST /_sandbox/advance days=1``: renewals, payments, sign-ups,
cancellations happen), then time ``nrr-sync sync`` and count its requests. The sync's
cost must follow the day's changes, not the account's size.

    python benchmarks/nightly_sync.py                       # 1k, 10k, 100k customers
    python benchmarks/nightly_sync.py --sizes 1000,10000    # a subset
    python benchmarks/nightly_sync.py --quick               # 50 and 200 customers
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

SINCE = "2023-01"


def one_size(customers: int, args, workdir: Path) -> dict:
    with common.start_sandbox(customers=customers, seed=args.seed) as sandbox:
        config = common.write_config(
            workdir / f"sync-{customers}",
            max_requests_per_second=common.NO_LIMIT,
            max_requests_per_second_per_endpoint=common.NO_LIMIT,
            concurrency=args.concurrency,
        )
        backfill = common.check(
            common.run_nrr_sync(config, ["backfill", "--since", SINCE], sandbox)
        )
        backfill_requests = sandbox.stats()["requests"]
        day = sandbox.advance(args.days)
        sandbox.reset_stats()
        sync = common.check(common.run_nrr_sync(config, ["sync"], sandbox))
        stats = sandbox.stats()
    db = workdir / f"sync-{customers}" / "nrr.duckdb"
    build = common.check(common.run_nrr_sync(config, ["build"], None))
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        (objects,) = con.execute(
            "SELECT objects::VARCHAR FROM meta.sync_runs WHERE command = 'sync' "
            "ORDER BY started_at DESC LIMIT 1"
        ).fetchone()
    finally:
        con.close()
    objects = json.loads(objects or "{}")
    changes = day.get("changes", {})
    changed = sum(
        c.get("upserted", 0) + c.get("deleted", 0)
        for kind, c in changes.items()
        if kind != "events"  # events say what changed; they are not changes themselves
    )
    counts = common.landed_counts(db)
    return {
        "customers": customers,
        "invoices": counts["invoices"],
        "backfill_seconds": round(backfill.seconds, 1),
        "backfill_requests": backfill_requests,
        "changes": changes,
        "changed_objects": changed,
        "events": objects.get("events", 0),
        "sync_requests": stats["requests"],
        "sync_requests_by_endpoint": stats["by_endpoint"],
        "sync_seconds": round(sync.seconds, 2),
        "build_seconds": round(build.seconds, 2),
        "sync_fetch_seconds": round(sync.seconds - build.seconds, 2),
        "sync_peak_rss_mib": round(sync.peak_rss_mib),
        "refetched": {k: v for k, v in objects.items() if k != "events"},
    }


def main(argv: list[str] | None = None) -> list[dict]:
    arguments = common.parser(__doc__.splitlines()[0])
    arguments.add_argument("--sizes", default="1000,10000,100000", help="Customer counts.")
    arguments.add_argument("--days", type=float, default=1)
    arguments.add_argument("--concurrency", type=int, default=8)
    arguments.add_argument("--seed", type=int, default=7)
    args = arguments.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]
    if args.quick:
        sizes = [min(size, limit) for size, limit in zip(sizes, (50, 200, 400), strict=False)]

    print(common.header("nightly sync after one simulated day"), flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="nrr-bench-") as scratch:
        workdir = args.workdir or Path(scratch)
        for customers in sizes:
            result = one_size(customers, args, workdir)
            results.append(result)
            print(
                f"  {customers:,} customers: {result['changed_objects']:,} changes, "
                f"{result['sync_requests']:,} requests, {result['sync_seconds']:.1f} s",
                flush=True,
            )

    rows = [
        [
            r["customers"],
            r["invoices"],
            r["backfill_requests"],
            r["changed_objects"],
            r["events"],
            r["sync_requests"],
            round(r["sync_requests"] / max(r["changed_objects"], 1), 2),
            r["sync_seconds"],
            r["build_seconds"],
            r["sync_fetch_seconds"],
        ]
        for r in results
    ]
    print()
    print(
        common.table(
            [
                "customers",
                "invoices",
                "backfill requests",
                "objects changed in the day",
                "events",
                "sync requests",
                "requests / change",
                "sync s",
                "build s",
                "sync minus build s",
            ],
            rows,
        )
    )
    params = {"sizes": sizes, "days": args.days, "concurrency": args.concurrency, "seed": args.seed}
    path = common.record("nightly_sync", params, {"sizes": results}, args.results)
    print(f"\nrecorded in {path}")
    return results


if __name__ == "__main__":
    main()
