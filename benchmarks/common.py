"""Shared by the benchmarks: the sandbox and nrr-sync as separate processes, measuring, recording.

Every benchmark starts the Stripe sandbox with ``nrr-sync sandbox serve`` in its own
process and runs ``nrr-sync`` as a child process, as a user would, so the two never share
a GIL and the child's peak memory (``wait4`` rusage, VmHWM) is the job's alone. Results are
printed as a table and appended as one JSON line to ``benchmarks/results/<name>.jsonl``
together with the machine, the versions and the date.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import resource
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "benchmarks" / "results"
NRR_SYNC = [sys.executable, "-c", "from nrr_sync.cli import app; app()"]
SANDBOX_KEY_ENV = "NRR_BENCH_STRIPE_KEY"
NO_LIMIT = 100_000  # requests per second: "unlimited" budgets for runs without rate limits


# Machine and versions --------------------------------------------------------------------


def machine() -> dict:
    memory_kb = 0
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory_kb = int(line.split()[1])
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kb / 2**20, 1),
        "cpu": cpu,
        "os": f"{platform.system()} {platform.release()}",
    }


def versions() -> dict:
    import duckdb
    import stripe

    import nrr_sync

    commit = ""
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    return {
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "stripe": stripe.VERSION,
        "nrr_sync": nrr_sync.__version__,
        "stripe_api": nrr_sync.STRIPE_API_VERSION,
        "commit": commit,
    }


# The sandbox in its own process ---------------------------------------------------------


@dataclass
class SandboxProcess:
    """``nrr-sync sandbox serve`` running in a child process."""

    process: subprocess.Popen
    url: str
    api_key: str
    generation_seconds: float
    options: dict = field(default_factory=dict)

    def admin(self, method: str, path: str, **fields) -> dict:
        data = None
        if method == "POST":
            data = "&".join(f"{k}={v}" for k, v in fields.items()).encode()
        request = urllib.request.Request(f"{self.url}/_sandbox/{path}", data=data, method=method)
        with urllib.request.urlopen(request, timeout=600) as response:
            return json.loads(response.read())

    def stats(self) -> dict:
        return self.admin("GET", "stats")

    def reset_stats(self) -> dict:
        return self.admin("POST", "stats/reset")

    def advance(self, days: float) -> dict:
        return self.admin("POST", "advance", days=days)

    def set_knobs(self, **knobs) -> dict:
        return self.admin("POST", "faults", **knobs)

    def peak_rss_mib(self) -> float:
        return vm_hwm_mib(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> SandboxProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_sandbox(
    *,
    customers: int,
    seed: int = 7,
    start: str = "2023-01",
    now: str = "2026-01-15T00:00:00Z",
    accounts: int = 1,
    latency_ms: float = 0,
    rate_limit: int = 0,
    endpoint_rate_limit: int = 0,
    timeout: float = 1800,
    same_second: int = 0,
) -> SandboxProcess:
    """The sandbox in a child process; with ``same_second``, that many more customers whose
    subscriptions renew in one second (same_second_sandbox.py)."""
    options = {
        "customers": customers,
        "seed": seed,
        "start": start,
        "now": now,
        "accounts": accounts,
        "latency-ms": latency_ms,
        "rate-limit": rate_limit,
        "endpoint-rate-limit": endpoint_rate_limit,
    }
    args = [*NRR_SYNC, "sandbox", "serve", "--port", "0"]
    if same_second:
        script = Path(__file__).with_name("same_second_sandbox.py")
        args = [sys.executable, str(script), "--same-second", str(same_second), "--port", "0"]
    for name, value in options.items():
        args += [f"--{name}", str(value)]
    started = time.monotonic()
    process = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    url = key = None
    deadline = started + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        if match := re.search(r"listening on (http://\S+)", line):
            url = match.group(1)
        if match := re.search(r"API key: (\S+)", line):
            key = match.group(1)
        if url and key:
            break
    if not (url and key):
        process.kill()
        rest = process.stdout.read() if process.stdout else ""
        raise RuntimeError(f"the sandbox did not start: {rest[-2000:]}")
    # Keep draining its output so the pipe never fills.
    import threading

    threading.Thread(target=process.stdout.read, daemon=True).start()
    return SandboxProcess(process, url, key, time.monotonic() - started, options)


# nrr-sync in a child process ------------------------------------------------------------


def write_config(directory: Path, **stripe_settings) -> Path:
    """A config for ``directory/nrr.duckdb``; ``stripe_settings`` go into the stripe section."""
    directory.mkdir(parents=True, exist_ok=True)
    retry = stripe_settings.pop("retry", {"max_attempts": 10, "max_wait_seconds": 5})
    config = {
        "stripe": {"api_key_env": SANDBOX_KEY_ENV, "retry": retry, **stripe_settings},
        "database": {"path": str(directory / "nrr.duckdb"), "lock_timeout_seconds": 5},
        "reporting": {"fx_rates": {"eur": 1.1, "gbp": 1.3, "jpy": 0.0067}},
    }
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@dataclass
class RunResult:
    args: list[str]
    exit_code: int
    seconds: float
    peak_rss_mib: float
    cpu_seconds: float
    stderr: str
    started_at: float  # wall clock (unix seconds) when the process was started
    # (seconds since start, RSS MiB, the sandbox's request count) every SAMPLE_SECONDS
    samples: list[tuple[float, float, int]] = field(default_factory=list)

    def peak_rss_while_fetching_mib(self) -> float:
        """Peak RSS up to the last sample in which the sandbox still received requests
        (the fetch phase; the build follows it in the same process)."""
        last = 0
        for i in range(1, len(self.samples)):
            if self.samples[i][2] > self.samples[i - 1][2]:
                last = i
        return max((rss for _, rss, _ in self.samples[: last + 1]), default=0.0)


SAMPLE_SECONDS = 0.25


# What a backfill imports: the command line, then its engine (where an older tree has one).
WARM_UP = (
    "import nrr_sync.cli, duckdb, pyarrow, requests, stripe\n"
    "try:\n    import nrr_sync.jobs.backfill\nexcept ImportError:\n    pass"
)


def warm_up(code: Path | None = None) -> None:
    """Import what a backfill loads once, so the first timed run does not pay for reading
    it from disk: after a pause this machine took 1.5-4 s for imports that take 0.4 s,
    and only the first run of a benchmark paid it. ``code``: as in ``run_nrr_sync``."""
    subprocess.run(
        [sys.executable, "-c", WARM_UP],
        cwd=str(code) if code is not None else None,
        check=True,
    )


def run_nrr_sync(
    config: Path,
    args: list[str],
    sandbox: SandboxProcess | None,
    *,
    sample: bool = False,
    code: Path | None = None,
) -> RunResult:
    """Run ``nrr-sync --config CONFIG ARGS`` to the end; wall time, peak RSS, CPU time.

    With ``sample``, RSS and the sandbox's request count are recorded over time. With
    ``code``, nrr-sync is imported from that source tree (e.g. a git worktree of an
    older commit) instead of the installed one.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("NRR_SYNC_")}
    if code is not None:
        env["PYTHONPATH"] = str(code)
    if sandbox is not None:
        env[SANDBOX_KEY_ENV] = sandbox.api_key
        env["NRR_SYNC_STRIPE_API_BASE"] = sandbox.url
    log_path = config.parent / f"nrr-sync-{args[0]}-{time.time_ns()}.log"
    with open(log_path, "w+") as log:
        started_at = time.time()
        started = time.monotonic()
        process = subprocess.Popen(
            [*NRR_SYNC, "--config", str(config), *args],
            env=env,
            # `python -c` imports from the working directory first.
            cwd=str(code) if code is not None else None,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        samples: list[tuple[float, float, int]] = []
        ended = threading.Event()
        if sample and sandbox is not None:

            def sampler() -> None:
                # Never process.poll(): it would reap the child before wait4 reads its
                # rusage (wait4 then fails with "No child processes").
                while not ended.is_set():
                    rss = vm_rss_mib(process.pid)
                    with contextlib.suppress(OSError, ValueError):
                        requests = sandbox.stats()["requests"]
                        if rss:  # 0: the process has ended, a zombie has no memory
                            samples.append((time.monotonic() - started, rss, requests))
                    time.sleep(SAMPLE_SECONDS)

            threading.Thread(target=sampler, daemon=True).start()
        _, status, usage = os.wait4(process.pid, 0)
        ended.set()
        seconds = time.monotonic() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        output = log.read()
    return RunResult(
        args=args,
        exit_code=process.returncode,
        seconds=seconds,
        peak_rss_mib=usage.ru_maxrss / 1024,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        stderr=output,
        started_at=started_at,
        samples=samples,
    )


def check(result: RunResult) -> RunResult:
    if result.exit_code != 0:
        raise SystemExit(
            f"nrr-sync {' '.join(result.args)} failed with exit {result.exit_code}:\n"
            + result.stderr[-3000:]
        )
    return result


def vm_hwm_mib(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def vm_rss_mib(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def self_peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# The landed database ----------------------------------------------------------------------

LIST_ENDPOINTS = {
    "customers": "/v1/customers",
    "products": "/v1/products",
    "prices": "/v1/prices",
    "subscriptions": "/v1/subscriptions",
    "invoices": "/v1/invoices",
}
PAGE_SIZE = 100
EMBEDDED = 10  # Stripe embeds the first 10 invoice lines and subscription items


def pages_needed(db_path: Path) -> dict[str, int]:
    """The fewest list requests that fetch what landed, by endpoint template.

    ceil(objects / 100) per list endpoint, plus the extra pages of invoice lines and
    subscription items past the embedded first 10 (pages of 100 after the 10th).
    """
    import duckdb

    con = duckdb.connect(str(db_path), read_only=True)
    try:
        pages = {}
        landed = _stripe_tables(con)  # an older tree (--baseline) did not land them all
        for kind, endpoint in LIST_ENDPOINTS.items():
            if kind not in landed:
                continue
            where = "WHERE NOT coalesce(deleted, false)" if kind in ("customers",) else ""
            (count,) = con.execute(f"SELECT count(*) FROM stripe.{kind} {where}").fetchone()
            pages[endpoint] = -(-count // PAGE_SIZE)
        (pages["/v1/invoices/{id}/lines"],) = con.execute(
            f"SELECT coalesce(sum(ceil((n - {EMBEDDED}) / {PAGE_SIZE})), 0)::BIGINT FROM "
            "(SELECT count(*) AS n FROM stripe.invoice_lines GROUP BY account_id, invoice_id) "
            f"WHERE n > {EMBEDDED}"
        ).fetchone()
        (pages["/v1/subscription_items"],) = con.execute(
            f"SELECT coalesce(sum(ceil((n - {EMBEDDED}) / {PAGE_SIZE})), 0)::BIGINT FROM "
            "(SELECT count(*) AS n FROM stripe.subscription_items "
            f"GROUP BY account_id, subscription_id) WHERE n > {EMBEDDED}"
        ).fetchone()
        return pages
    finally:
        con.close()


def _stripe_tables(con) -> set[str]:
    return {
        name
        for (name,) in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'stripe'"
        ).fetchall()
    }


def landed_counts(db_path: Path) -> dict[str, int]:
    import duckdb

    from nrr_sync import kinds

    con = duckdb.connect(str(db_path), read_only=True)
    try:
        landed = _stripe_tables(con)  # an older tree (--baseline) did not land them all
        return {
            kind: con.execute(f"SELECT count(*) FROM stripe.{kind}").fetchone()[0]
            for kind in kinds.TABLES
            if kind in landed
        }
    finally:
        con.close()


def last_run(db_path: Path, command: str = "backfill") -> dict:
    """The latest ``command`` run recorded in meta.sync_runs."""
    import duckdb

    con = duckdb.connect(str(db_path), read_only=True)
    try:
        row = con.execute(
            "SELECT command, outcome, requests, retries, rate_limited, objects::VARCHAR, "
            "epoch(finished_at) - epoch(started_at) FROM meta.sync_runs WHERE command = ? "
            "ORDER BY started_at DESC LIMIT 1",
            [command],
        ).fetchone()
    finally:
        con.close()
    keys = ("command", "outcome", "requests", "retries", "rate_limited", "objects", "seconds")
    run = dict(zip(keys, row, strict=True))
    run["objects"] = json.loads(run["objects"] or "{}")
    return run


# Output -----------------------------------------------------------------------------------


def parser(description: str) -> argparse.ArgumentParser:
    arguments = argparse.ArgumentParser(description=description)
    arguments.add_argument(
        "--quick", action="store_true", help="Tiny sizes: a smoke run in seconds."
    )
    arguments.add_argument(
        "--results",
        type=Path,
        default=None,
        help="JSON-lines file to append the result to (default benchmarks/results/<name>.jsonl).",
    )
    arguments.add_argument(
        "--workdir", type=Path, default=None, help="Where databases go (default: a temp dir)."
    )
    return arguments


def table(headers: list[str], rows: list[list]) -> str:
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    lines = [
        "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)),
        "  ".join("-" * w for w in widths),
    ]
    for row in cells:
        lines.append(
            "  ".join(
                c.rjust(w) if _numeric(c) else c.ljust(w) for c, w in zip(row, widths, strict=True)
            )
        )
    return "\n".join(lines)


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _numeric(text: str) -> bool:
    return bool(re.fullmatch(r"[-+]?[\d,]+(\.\d+)?[x%]?", text))


def record(name: str, params: dict, results: dict, path: Path | None = None) -> Path:
    """Append one result line (with machine, versions, date, the command) and return the file."""
    path = path or RESULTS_DIR / f"{name}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    line = {
        "benchmark": name,
        "date": datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": "python " + " ".join([_relative(sys.argv[0]), *sys.argv[1:]]),
        "machine": machine(),
        "versions": dict(_STARTED_WITH) or versions(),
        "params": params,
        "results": results,
    }
    with open(path, "a") as stream:
        stream.write(json.dumps(line, default=str) + "\n")
    return path


_STARTED_WITH: dict = {}


def header(name: str) -> str:
    """The first line a benchmark prints; it also fixes the versions recorded at the end,
    so a long run is recorded with the code it started with."""
    m, v = machine(), versions()
    _STARTED_WITH.update(v)
    return (
        f"{name} — {datetime.now(tz=UTC):%Y-%m-%d %H:%M} UTC; {m['cores']} cores, "
        f"{m['memory_gib']} GiB, {m['cpu']}; python {v['python']}, duckdb {v['duckdb']}, "
        f"stripe {v['stripe']}, nrr-sync {v['nrr_sync']} ({v['commit']})"
    )


def _relative(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return path
