"""The sandbox of `nrr-sync sandbox serve`, plus N subscriptions that renew in the same second.

An account that moved its customers from another biller, or sells one annual contract
date, has thousands of invoices created in one second each month. A time slice of one
second cannot be split, so those pages can only be read one after the other through the
cursor (docs/operations.md, "How the sync pulls"). `backfill_throughput.py --same-second N`
serves this world; it takes `nrr-sync sandbox serve`'s options and prints the same lines.

    python benchmarks/same_second_sandbox.py --same-second 3000 --customers 2000 --port 0
"""

from __future__ import annotations

import argparse

from nrr_sync.sandbox.generator import SandboxOptions, Scenario, generate
from nrr_sync.sandbox.server import start

PRICE = "pro_month_usd"


def same_second_customers(count: int, second: str) -> tuple[Scenario, ...]:
    """``count`` customers who subscribe monthly at ``second``: each month's renewals of
    all of them are invoices created in one second."""
    scenarios = []
    for number in range(count):
        customer = Scenario(second, name=f"Same second {number}")
        customer.subscribe(customer.created, [(PRICE, 1)])
        scenarios.append(customer)
    return tuple(scenarios)


def main() -> None:
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--same-second", type=int, required=True)
    arguments.add_argument("--customers", type=int, default=2000)
    arguments.add_argument("--seed", type=int, default=7)
    arguments.add_argument("--start", default="2024-01")
    arguments.add_argument("--now", default="2025-01-15T00:00:00Z")
    arguments.add_argument("--accounts", type=int, default=1)
    arguments.add_argument("--host", default="127.0.0.1")
    arguments.add_argument("--port", type=int, default=0)
    arguments.add_argument("--latency-ms", type=float, default=0)
    arguments.add_argument("--rate-limit", type=int, default=0)
    arguments.add_argument("--endpoint-rate-limit", type=int, default=0)
    args = arguments.parse_args()
    second = f"{args.start}-01T00:00:00Z"
    world = generate(
        SandboxOptions(
            customers=args.customers,
            seed=args.seed,
            start=args.start,
            now=args.now,
            accounts=args.accounts,
            scenarios=same_second_customers(args.same_second, second),
        )
    )
    sandbox = start(
        world=world,
        host=args.host,
        port=args.port,
        latency_ms=args.latency_ms,
        rate_limit=args.rate_limit,
        endpoint_rate_limit=args.endpoint_rate_limit,
    )

    def ready() -> None:
        print(f"Stripe sandbox listening on {sandbox.url}")
        print(f"API key: {sandbox.api_key}", flush=True)

    sandbox.serve_until_stopped(ready)


if __name__ == "__main__":
    main()
