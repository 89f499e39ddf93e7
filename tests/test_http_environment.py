"""What nrr-sync takes from the environment for its HTTP requests: an HTTP(S) proxy, as
every client does, and not a ``.netrc`` login, which ``requests`` would otherwise send
in place of the configured key (docs/operations.md, "Proxies and .netrc")."""

from __future__ import annotations

import pytest
import requests
import sync_helpers
from hostile_proxy import HostileProxy
from sync_helpers import write_config

SINCE = "2023-01"


def _no_proxy_settings(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def test_a_netrc_login_does_not_replace_the_configured_key(tmp_path, sandbox_factory, monkeypatch):
    sandbox = sandbox_factory(customers=6, seed=71)
    _no_proxy_settings(monkeypatch)
    netrc = tmp_path / "netrc"
    netrc.write_text("default login sk_test_someone_elses_key password x\n")
    monkeypatch.setenv("NETRC", str(netrc))
    # Positive control: a plain requests session sends the .netrc login instead of the key.
    customers = f"{sandbox.url}/v1/customers"
    bearer = {"Authorization": f"Bearer {sandbox.api_key}"}
    assert requests.get(customers, headers=bearer, timeout=10).status_code == 401
    monkeypatch.delenv("NETRC")
    assert requests.get(customers, headers=bearer, timeout=10).status_code == 200
    monkeypatch.setenv("NETRC", str(netrc))

    config = write_config(tmp_path)
    result = sync_helpers.cli(config, ["backfill", "--since", SINCE], sandbox)
    assert result.exit_code == 0, result.output
    landed = sync_helpers.query(tmp_path / "nrr.duckdb", "SELECT count(*) FROM stripe.customers")
    assert landed == [(len(sync_helpers.world_ids(sandbox.world, "customers")),)]


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "ALL_PROXY"])
def test_a_proxy_named_in_the_environment_carries_every_request(
    tmp_path, sandbox_factory, monkeypatch, variable
):
    sandbox = sandbox_factory(customers=6, seed=72)
    _no_proxy_settings(monkeypatch)
    # Asked `GET http://<sandbox>/v1/...` as a forward proxy is, it answers from the sandbox
    proxy = HostileProxy(sandbox.url)
    try:
        monkeypatch.setenv(variable, proxy.url)
        config = write_config(tmp_path)
        before = sandbox.stats()["requests"]
        result = sync_helpers.cli(config, ["backfill", "--since", SINCE], sandbox)
        assert result.exit_code == 0, result.output
        requests_made = sandbox.stats()["requests"] - before
        assert requests_made > 5
        assert len(proxy.seen) == requests_made

        # NO_PROXY naming the host: straight to it, the proxy sees nothing more
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        forwarded = len(proxy.seen)
        result = sync_helpers.cli(config, ["sync"], sandbox)
        assert result.exit_code == 0, result.output
        assert len(proxy.seen) == forwarded
    finally:
        proxy.close()
