"""Build time, peak memory and load rate at 100k customers and over 1M invoices
(docs/benchmarks.md).

1. Backfill peak memory: ``nrr-sync backfill`` from a sandbox without latency or limits,
   on a small account and on one with over a million invoices; the peak RSS of the
   nrr-sync process (``wait4`` rusage) must follow the batch size, not the account size.
   End-to-end load rate = landed rows / backfill wall time.
2. Build: the SQL models (``build.build``) on the large backfilled database —
   100k customers x 37 months (2023-01 to 2026-01) — timed in a child process with its
   peak RSS; and the whole ``nrr-sync build`` command (working copy, build, publish).
3. Load rate into DuckDB alone: the generator's objects landed in batches, no HTTP,
   objects per second — the backfill's way (``landing.rows_of`` + ``insert_rows``, plain
   appends) and the nightly sync's (``load_objects``, upserts).

    python benchmarks/build_and_memory.py --workdir W    # 105,000 and 10,000 customers
    python benchmarks/build_and_memory.py --build-db W/backfill-105000/nrr.duckdb [--baseline DIR]
    python benchmarks/build_and_memory.py --build-db FILE --baseline DIR --baseline-db OTHER_FILE
    python benchmarks/build_and_memory.py --load-only    # part 3 alone
    python benchmarks/build_and_memory.py --quick        # 400 and 100 customers
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

SINCE = "2023-01"

BUILD_ONLY = """
import json, sys, time
import duckdb
from nrr_sync import build
from nrr_sync.config import load_config
con = duckdb.connect(sys.argv[1])
config = load_config(sys.argv[2])
started = time.perf_counter()
result = build.build(con, config)
seconds = time.perf_counter() - started
con.close()
print(json.dumps({"seconds": seconds, "models": result.get("models"), "rows": result.get("rows")}))
"""

LOAD_ONLY = """
import json, sys, time
import duckdb
from nrr_sync import build, kinds, landing, load
from nrr_sync.sandbox.generator import SandboxOptions, generate
customers, batch, path, how = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
world = generate(SandboxOptions(customers=customers, seed=7))
account = world.account_ids[0]
con = duckdb.connect(path)
build.migrate(con)
loaded, seconds, rows = 0, 0.0, 0
for kind in ("customers", "products", "prices", "subscriptions", "invoices"):
    objects = iter(world.objects(account, kind))
    while True:
        chunk = [obj for _, obj in zip(range(batch), objects)]
        if not chunk:
            break
        chunk = json.loads(json.dumps(chunk))  # as parsed from an HTTP answer
        started = time.perf_counter()
        con.begin()
        if how == "upsert":  # the nightly sync's way: load_objects upserts
            load.load_objects(con, account, kinds.BY_TABLE[kind], chunk)
        else:  # the backfill's way: rows built, then plain appends
            tables = landing.rows_of(kinds.BY_TABLE[kind], account, chunk, landing.now_utc())
            for table, table_rows in tables.items():
                load.insert_rows(con, table, table_rows)
        con.commit()
        seconds += time.perf_counter() - started
        loaded += len(chunk)
for kind in kinds.TABLES:
    rows += con.execute(f"SELECT count(*) FROM stripe.{kind}").fetchone()[0]
print(json.dumps({"objects": loaded, "rows": rows, "seconds": seconds}))
"""


def child(script: str, *args: str, code: Path | None = None) -> tuple[dict, float, float]:
    """Run a Python snippet in a child process: (its JSON answer, wall s, peak RSS MiB).
    ``code``: the source tree nrr-sync is imported from (None: the installed one)."""
    env = dict(os.environ, PYTHONPATH=str(code)) if code is not None else None
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=str(code) if code is not None else None,
    )
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.monotonic() - started
    output, errors = process.stdout.read(), process.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"child failed: {errors.decode()[-3000:]}")
    return json.loads(output.decode().strip().splitlines()[-1]), seconds, usage.ru_maxrss / 1024


def backfill(customers: int, workdir: Path, concurrency: int) -> dict:
    directory = workdir / f"backfill-{customers}"
    with common.start_sandbox(customers=customers) as sandbox:
        config = common.write_config(
            directory,
            max_requests_per_second=common.NO_LIMIT,
            max_requests_per_second_per_endpoint=common.NO_LIMIT,
            concurrency=concurrency,
        )
        run = common.check(
            common.run_nrr_sync(config, ["backfill", "--since", SINCE], sandbox, sample=True)
        )
        requests = sandbox.stats()["requests"]
        sandbox_rss = sandbox.peak_rss_mib()
    db = directory / "nrr.duckdb"
    counts = common.landed_counts(db)
    rows = sum(counts.values())
    return {
        "customers": customers,
        "config": config,
        "db": db,
        "counts": counts,
        "requests": requests,
        "seconds": round(run.seconds, 1),
        "peak_rss_mib": round(run.peak_rss_mib),
        "peak_rss_fetching_mib": round(run.peak_rss_while_fetching_mib()),
        "cpu_seconds": round(run.cpu_seconds, 1),
        "rows_per_second": round(rows / run.seconds),
        "db_mib": round(db.stat().st_size / 2**20),
        "sandbox_generation_seconds": round(sandbox.generation_seconds, 1),
        "sandbox_peak_rss_mib": round(sandbox_rss),
    }


def copy_to_disk(source: Path, target: Path) -> None:
    """Copy a file and wait until every copy waiting in the page cache is on disk. A copy
    of 2.8 GB still being written back while the models write their tables made them
    1.5-2x slower (section 3 of docs/benchmarks.md), and the first tree measured paid for
    the benchmark's own copies; ``nrr-sync build`` still makes and pays its own."""
    shutil.copyfile(source, target)
    os.sync()


def measure_build(db: Path, config: Path, workdir: Path, code: Path | None = None):
    """The SQL models alone on a copy of ``db`` (child process), then ``nrr-sync build``;
    ``code``: another source tree (its own sql/), as for ``--baseline``."""
    copy = workdir / "build-copy.duckdb"
    copy_to_disk(db, copy)
    built, _, build_rss = child(BUILD_ONLY, str(copy), str(config), code=code)
    copy.unlink()
    command = common.check(common.run_nrr_sync(config, ["build"], None, code=code))
    print(f"  build: {built['seconds']:.1f} s, peak RSS {build_rss:.0f} MiB", flush=True)
    return built, build_rss, command


def measure_loads(args, workdir: Path) -> dict:
    """Objects per second into DuckDB, the backfill's way (append) and the sync's (upsert)."""
    loads = {}
    for how in ("append", "upsert"):
        load_db = workdir / f"load-{how}.duckdb"
        loaded, _, rss = child(
            LOAD_ONLY, str(args.load_customers), str(args.batch), str(load_db), how
        )
        load_db.unlink()
        loads[how] = {
            "objects": loaded["objects"],
            "rows": loaded["rows"],
            "objects_per_second": round(loaded["objects"] / loaded["seconds"]),
            "rows_per_second": round(loaded["rows"] / loaded["seconds"]),
            "peak_rss_mib": round(rss),
        }
        print(f"  load ({how}): {loads[how]['objects_per_second']:,} objects/s", flush=True)
    return loads


def build_only(args, workdir: Path) -> dict:
    trees = {"current": None, **({"baseline": args.baseline} if args.baseline else {})}
    files = {"current": args.build_db, "baseline": args.baseline_db or args.build_db}
    configs = {}
    for label in trees:  # each tree builds and publishes its own copy
        directory = workdir / f"build-only-{label}"
        configs[label] = common.write_config(directory)
        copy_to_disk(files[label], directory / "nrr.duckdb")
    counts = common.landed_counts(workdir / "build-only-current" / "nrr.duckdb")
    results: dict = {"build_db_counts": counts, "runs": []}
    rows = []
    for label, code in list(trees.items()) * args.rounds:
        config = configs[label]
        built, build_rss, command = measure_build(
            config.parent / "nrr.duckdb", config, workdir, code
        )
        slowest = sorted((built.get("models") or {}).items(), key=lambda kv: -kv[1])
        print(f"  {label} models (ms): {slowest}", flush=True)
        rows += [
            [f"{label}: build (SQL models only), {counts['invoices']:,} invoices",
             f"{built['seconds']:.2f} s", f"{build_rss:.0f} MiB"],
            [f"{label}: nrr-sync build (copy, build, publish)", f"{command.seconds:.2f} s",
             f"{command.peak_rss_mib:.0f} MiB"],
        ]  # fmt: skip
        results["runs"].append(
            {"tree": label, "build_seconds": round(built["seconds"], 2),
             "build_command_seconds": round(command.seconds, 2)}
        )  # fmt: skip
        prefix = "" if label == "current" else "baseline_"  # the last round's, below
        results |= {
            f"{prefix}build_seconds": round(built["seconds"], 2),
            f"{prefix}build_models_ms": built.get("models"),
            f"{prefix}build_rows": built.get("rows"),
            f"{prefix}build_peak_rss_mib": round(build_rss),
            f"{prefix}build_command_seconds": round(command.seconds, 2),
            f"{prefix}build_command_peak_rss_mib": round(command.peak_rss_mib),
        }
    print()
    print(common.table(["measure", "value", "peak RSS"], rows))
    params = {
        "build_db": str(args.build_db),
        "baseline": str(args.baseline or "") or None,
        "baseline_db": str(args.baseline_db or "") or None,
        "rounds": args.rounds,
    }
    path = common.record("build_and_memory", params, results, args.results)
    print(f"\nrecorded in {path}")
    return results


def main(argv: list[str] | None = None) -> dict:
    arguments = common.parser(__doc__.splitlines()[0])
    arguments.add_argument("--customers", type=int, default=105_000, help="The large account.")
    arguments.add_argument("--small", type=int, default=10_000, help="The small account.")
    arguments.add_argument("--load-customers", type=int, default=10_000)
    arguments.add_argument("--batch", type=int, default=2000, help="Objects per load (part 3).")
    arguments.add_argument("--concurrency", type=int, default=8)
    arguments.add_argument(
        "--build-db",
        type=Path,
        default=None,
        help="Only measure the build, on a copy of this backfilled database (e.g. "
        "WORKDIR/backfill-105000/nrr.duckdb left by an earlier run with --workdir).",
    )
    arguments.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="With --build-db: also build with the code and sql/ of this source tree (e.g. "
        "`git archive COMMIT | tar -x -C DIR`), one after the other.",
    )
    arguments.add_argument(
        "--baseline-db",
        type=Path,
        default=None,
        help="With --baseline: the baseline builds on a copy of this file instead (the same "
        "account as the baseline code landed it).",
    )
    arguments.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="With --build-db: build this many times with each tree, alternating.",
    )
    arguments.add_argument(
        "--load-only", action="store_true", help="Only measure the load rate (part 3)."
    )
    args = arguments.parse_args(argv)
    if args.quick:
        args.customers = min(args.customers, 400)
        args.small = min(args.small, 100)
        args.load_customers = min(args.load_customers, 200)

    print(common.header("build time, peak memory and load rate"), flush=True)
    with tempfile.TemporaryDirectory(prefix="nrr-bench-") as scratch:
        workdir = args.workdir or Path(scratch)
        if args.build_db:
            return build_only(args, workdir)
        if args.load_only:
            loads = measure_loads(args, workdir)
            params = {"load_customers": args.load_customers, "batch": args.batch}
            path = common.record("build_and_memory", params, {"loads": loads}, args.results)
            print(f"\nrecorded in {path}")
            return {"loads": loads}
        backfills = []
        for customers in (args.small, args.customers):
            result = backfill(customers, workdir, args.concurrency)
            backfills.append(result)
            print(
                f"  backfill of {customers:,} customers ({result['counts']['invoices']:,} "
                f"invoices): {result['seconds']} s, peak RSS {result['peak_rss_mib']} MiB "
                f"({result['peak_rss_fetching_mib']} MiB while fetching)",
                flush=True,
            )
        large = backfills[-1]

        built, build_rss, command = measure_build(large["db"], large["config"], workdir)

        loads = measure_loads(args, workdir)

    rows = [
        [
            f"backfill {b['customers']:,} customers",
            b["counts"]["invoices"],
            sum(b["counts"].values()),
            b["requests"],
            b["seconds"],
            b["peak_rss_fetching_mib"],
            b["peak_rss_mib"],
            b["rows_per_second"],
        ]
        for b in backfills
    ]
    print()
    print(
        common.table(
            [
                "run",
                "invoices",
                "rows landed",
                "requests",
                "wall s",
                "peak RSS fetching MiB",
                "peak RSS MiB (with build)",
                "rows/s",
            ],
            rows,
        )
    )
    print()
    summary = [
        ["build (SQL models only)", f"{built['seconds']:.2f} s", f"{build_rss:.0f} MiB"],
        [
            "nrr-sync build (copy, build, publish)",
            f"{command.seconds:.2f} s",
            f"{command.peak_rss_mib:.0f} MiB",
        ],
    ]
    for how, load in loads.items():
        summary.append(
            [
                f"load {how}, batches of {args.batch:,} ({args.load_customers:,} customers)",
                f"{load['objects_per_second']:,} objects/s ({load['rows_per_second']:,} rows/s)",
                f"{load['peak_rss_mib']} MiB",
            ]
        )
    print(common.table(["measure", "value", "peak RSS"], summary))
    slowest = sorted((built.get("models") or {}).items(), key=lambda kv: -kv[1])[:4]
    print(f"\nslowest models (ms): {slowest}")

    results = {
        "backfills": [{k: v for k, v in b.items() if k not in ("config", "db")} for b in backfills],
        "build_seconds": round(built["seconds"], 2),
        "build_models_ms": built.get("models"),
        "build_rows": built.get("rows"),
        "build_peak_rss_mib": round(build_rss),
        "build_command_seconds": round(command.seconds, 2),
        "build_command_peak_rss_mib": round(command.peak_rss_mib),
        "loads": loads,
    }
    params = {
        "customers": args.customers,
        "small": args.small,
        "load_customers": args.load_customers,
        "batch": args.batch,
        "concurrency": args.concurrency,
        "quick": args.quick,
    }
    path = common.record("build_and_memory", params, results, args.results)
    print(f"\nrecorded in {path}")
    return results


if __name__ == "__main__":
    main()
