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
