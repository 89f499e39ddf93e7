"""A Stripe-compatible, read-only HTTP server over a generated account history.

It answers the GET endpoints the sync uses the way Stripe does (list envelope, cursor
pagination newest first, ``created`` / ``status`` / ``customer`` / ``type`` filters,
``expand[]`` of price tiers, error envelope, Bearer auth, ``Stripe-Account``), and adds
what tests and benchmarks need: latency, rate limits answering 429, injected 500/503
and dropped connections, and admin endpoints under ``/_sandbox/`` to advance the
sandbox clock and read request statistics. Every response's ``Date`` header is the
sandbox clock (``World.now``), not wall time.

``Sandbox`` holds the world and its stores and moves the clock; its API answers are in
endpoints.py, its knobs, statistics and the fate of each request in traffic.py, and the
HTTP side in handler.py.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import gc
import random
import signal
import threading
from collections.abc import Callable

from .api_requests import LAZY_KINDS, OBJECT_NAMES, SANDBOX_API_KEY
from .endpoints import Endpoints
from .generator import no_cyclic_gc
from .handler import Handler, SandboxHTTPServer
from .store import AccountStore
from .traffic import Knobs, Traffic


@contextlib.contextmanager
def paused_cyclic_gc():
    """Millions of index tuples: the cyclic collector would rescan them while they are
    made. Once made, one full collection moves them (and the world's records, made with
    the collector paused too) to the oldest generation, about 1 s per million objects;
    otherwise the first requests would pay for it, twice."""
    with no_cyclic_gc():
        yield
    gc.collect()


def load_account(world, account_id: str) -> AccountStore:
    """Index one account's objects. A world that can list its records without rendering
    them (``index_entries`` / ``render``, as the generator's) has its big collections held
    lazily, rendered when asked for; any other world's objects are stored as bytes."""
    store = AccountStore(account_id)
    lazy = hasattr(world, "index_entries") and hasattr(world, "render")
    discount_objects = getattr(world, "discount_objects", None)
    if discount_objects is not None:  # what expand[]=discounts needs of lazily held invoices
        store.discounts.update(discount_objects(account_id))
    for kind in OBJECT_NAMES:
        if lazy and kind in LAZY_KINDS:
            render = functools.partial(world.render, account_id, kind)
            store.load_records(kind, world.index_entries(account_id, kind), render)
        else:
            store.load(kind, world.objects(account_id, kind))
    # Deleted before "now": a deleted customer still retrieves as deleted.
    deleted_ids = getattr(world, "deleted_ids", None)
    for kind in ("customers", "invoices") if deleted_ids else ():
        for object_id in deleted_ids(account_id, kind):
            store.collections[kind].tombstones.setdefault(object_id, None)
    return store


class Sandbox(Traffic, Endpoints):
    """The server's state: the world, its indexed objects, knobs and statistics."""

    def __init__(self, world, knobs: Knobs, seed: int = 7):
        self.world = world
        self.knobs = knobs
        self.lock = threading.Lock()  # guards the stores and the world
        self.stats_lock = threading.Lock()  # guards stats, rate windows, knobs, randomness
        self.random = random.Random(seed)
        self.response_number = 0
        self.windows: dict[str, collections.deque] = collections.defaultdict(collections.deque)
        self.in_flight = 0  # API requests being served now
        self.stores: dict[str, AccountStore] = {}
        with paused_cyclic_gc():
            for account_id in world.account_ids:
                self.stores[account_id] = load_account(world, account_id)
        self.reset_stats()

    # -- time ------------------------------------------------------------------------

    def advance(self, seconds: int) -> dict:
        """Move the sandbox clock: let the world live ``seconds`` more, store what changed."""
        summary: dict = collections.defaultdict(lambda: {"upserted": 0, "deleted": 0})
        with self.lock:
            before = self.world.now
            changes = self.world.advance(seconds)
            for account_id, kind, obj, object_id in changes:
                store = self.stores[account_id]
                if obj is None:
                    store.remove(kind, object_id)
                    summary[kind]["deleted"] += 1
                else:
                    store.put(kind, obj)
                    summary[kind]["upserted"] += 1
            for store in self.stores.values():  # records may have changed under them
                store.forget_rendered()
            now = self.world.now
        return {"from": before, "now": now, "seconds": now - before, "changes": dict(summary)}


class RunningSandbox:
    """A sandbox server serving in a background thread; a context manager."""

    api_key = SANDBOX_API_KEY

    def __init__(self, sandbox: Sandbox, httpd: SandboxHTTPServer):
        self.sandbox = sandbox
        self.world = sandbox.world
        self.httpd = httpd
        host, port = httpd.server_address[:2]
        self.host, self.port = host, port
        self.url = f"http://{host}:{port}"
        self.stopped = False
        self.thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="sandbox", daemon=True
        )
        self.thread.start()

    def stats(self) -> dict:
        return self.sandbox.stats()

    def reset_stats(self) -> None:
        self.sandbox.reset_stats()

    def advance(self, seconds: int) -> dict:
        return self.sandbox.advance(seconds)

    def set_knobs(self, **knobs) -> dict:
        return self.sandbox.set_knobs(**knobs)

    def serve_until_stopped(self, ready: Callable[[], None] = lambda: None) -> None:
        """Serve in the foreground until Ctrl-C or SIGTERM, then stop; ``ready`` runs
        once SIGTERM is caught (e.g. to print where the sandbox listens)."""
        stop = threading.Event()
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            ready()
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
            self.stop()

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        self.httpd.shutdown()
        self.httpd.server_close()
        self.httpd.close_connections()
        self.thread.join(timeout=5)

    def __enter__(self) -> RunningSandbox:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start(
    options=None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    latency_ms: float = 0,
    rate_limit: int = 0,
    endpoint_rate_limit: int = 0,
    fault_rate: float = 0.0,
    drop_rate: float = 0.0,
    world=None,
) -> RunningSandbox:
    """Generate the world of ``options`` (or serve the given ``world``) on host:port.

    ``port=0`` picks a free port; the URL is on the returned object.
    """
    if world is None:
        from .generator import SandboxOptions, generate

        world = generate(options if options is not None else SandboxOptions())
    knobs = Knobs(
        latency_ms=latency_ms,
        rate_limit=rate_limit,
        endpoint_rate_limit=endpoint_rate_limit,
        fault_rate=fault_rate,
        drop_rate=drop_rate,
    )
    sandbox = Sandbox(world, knobs, seed=getattr(options, "seed", 7))
    handler = type("BoundHandler", (Handler,), {"sandbox": sandbox})
    httpd = SandboxHTTPServer((host, port), handler)
    return RunningSandbox(sandbox, httpd)
