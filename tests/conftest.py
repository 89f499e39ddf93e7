import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT.parent / "shared" / "stripe" / "fixtures3.json"
LOCAL_FIXTURES = Path(__file__).parent / "data" / "stripe_fixtures3.json"


@pytest.fixture(scope="session")
def stripe_fixtures() -> dict:
    """Stripe's own example objects (shapes only), keyed by object name."""
    path = FIXTURES if FIXTURES.exists() else LOCAL_FIXTURES
    return json.loads(path.read_text())["resources"]


SANDBOX_SERVER_KNOBS = {
    "latency_ms",
    "rate_limit",
    "endpoint_rate_limit",
    "fault_rate",
    "drop_rate",
}


@pytest.fixture
def sandbox_factory():
    """Start Stripe sandbox servers; all are stopped when the test ends.

    ``sandbox_factory(customers=40, seed=3, latency_ms=5)`` generates a world from
    SandboxOptions (generation keywords) and serves it with the server knobs;
    ``sandbox_factory(world=my_world)`` serves a given world. Returns a RunningSandbox
    (``.url``, ``.api_key``, ``.world``, ``.stats()``, ``.advance(seconds)``).
    """
    from nrr_sync.sandbox.server import start

    running = []

    def factory(world=None, **kwargs):
        knobs = {name: kwargs.pop(name) for name in list(kwargs) if name in SANDBOX_SERVER_KNOBS}
        options = None
        if world is None:
            from nrr_sync.sandbox.generator import SandboxOptions

            options = SandboxOptions(**kwargs)
        sandbox = start(options, world=world, **knobs)
        running.append(sandbox)
        return sandbox

    yield factory
    for sandbox in running:
        sandbox.stop()
