"""A backfill --restart that fails leaves its working copy; the next sync finishes that
backfill. Both the failure and the sync say so (a WARNING even under --quiet)."""

from __future__ import annotations

import hashlib

from hostile_proxy import Answer, HostileProxy
from sync_helpers import cli, cli_process, query, write_config


def test_a_failed_restart_says_the_next_sync_finishes_it(tmp_path, sandbox_factory):
    sandbox = sandbox_factory(customers=12, latency_ms=1)
    config = write_config(tmp_path, stripe={"retry": {"max_attempts": 2, "max_wait_seconds": 0}})
    db = tmp_path / "nrr.duckdb"
    assert cli(config, ["backfill", "--since", "2024-01"], sandbox).exit_code == 0
    published = hashlib.sha256(db.read_bytes()).hexdigest()

    proxy = HostileProxy(sandbox.url)
    try:
        proxy.on("/v1/invoices", lambda request: Answer(503, {}, b'{"error": {}}'))
        failed = cli(
            config, ["backfill", "--since", "2025-01", "--restart"], sandbox, api_base=proxy.url
        )
    finally:
        proxy.close()
    assert failed.exit_code == 4, failed.output
    assert "The unfinished backfill from 2025-01 is kept" in failed.stderr
    assert "the next `nrr-sync sync`" in failed.stderr
    assert hashlib.sha256(db.read_bytes()).hexdigest() == published

    process = cli_process(config, ["--quiet", "sync"], sandbox)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert "WARNING An unfinished backfill from 2025-01" in err
    assert query(db, "SELECT value FROM meta.sync_state WHERE key = 'report:since'") == [
        ("2025-01",)
    ]


def test_a_failed_sync_with_no_backfill_underway_adds_no_such_note(tmp_path, sandbox_factory):
    sandbox = sandbox_factory(customers=5, latency_ms=1)
    config = write_config(tmp_path)
    assert cli(config, ["backfill", "--since", "2025-01"], sandbox).exit_code == 0
    failed = cli(config, ["sync"], sandbox, key="sk_test_wrong")
    assert failed.exit_code == 3
    assert "unfinished backfill" not in failed.stderr
