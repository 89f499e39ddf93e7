"""Shared by the sync tests: a config file, running the CLI, reading back what landed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import yaml
from typer.testing import CliRunner

from nrr_sync import kinds, landing

LANDING = kinds.TABLES
KEY_ENV = "STRIPE_API_KEY"


def write_config(tmp_path: Path, *, accounts=(), **sections) -> Path:
    """A config for tests: quick retries, short lock timeout, the DB in tmp_path."""
    config = {
        "stripe": {
            "accounts": list(accounts),
            "concurrency": 4,
            "retry": {"max_attempts": 6, "max_wait_seconds": 0.2},
        },
        "database": {"path": str(tmp_path / "nrr.duckdb"), "lock_timeout_seconds": 1},
        "reporting": {"fx_rates": {"eur": 1.1, "gbp": 1.3, "jpy": 0.0067}},
    }
    for section, values in sections.items():
        config.setdefault(section, {}).update(values)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def environment(sandbox=None, *, key: str | None = None, api_base: str | None = None) -> dict:
    env = {
        KEY_ENV: key if key is not None else sandbox.api_key,
        "NRR_SYNC_STRIPE_API_BASE": api_base or sandbox.url,
    }
    return env


def cli(config: Path, args: list[str], sandbox=None, **env_options):
    """Run ``nrr-sync --config CONFIG ARGS`` in this process; returns the click Result."""
    from nrr_sync.cli import app

    env = environment(sandbox, **env_options)
    old = {name: os.environ.get(name) for name in (*env, "NRR_SYNC_DATABASE", "NRR_SYNC_CONFIG")}
    os.environ.update(env)
    os.environ.pop("NRR_SYNC_DATABASE", None)
    os.environ.pop("NRR_SYNC_CONFIG", None)
    try:
        return CliRunner().invoke(app, ["--config", str(config), *args])
    finally:
        for name, value in old.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def cli_process(config: Path, args: list[str], sandbox=None, **env_options) -> subprocess.Popen:
    """Run the CLI in a separate process (to kill it, or to hold files from another pid)."""
    env = {**os.environ, **environment(sandbox, **env_options)}
    env.pop("NRR_SYNC_DATABASE", None)
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from nrr_sync.cli import app; app()",
            "--config",
            str(config),
            *args,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def snapshot(db_path: Path) -> dict[str, set[tuple]]:
    """Every landing row, every column but synced_at, as text: equal snapshots = same data."""
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        result = {}
        for kind in LANDING:
            columns = [c for c in landing.COLUMNS[kind] if c != "synced_at"]
            select = ", ".join(f"{c}::VARCHAR" for c in columns)
            result[kind] = set(con.execute(f"SELECT {select} FROM stripe.{kind}").fetchall())
        return result
    finally:
        con.close()


def landed_ids(db_path: Path, kind: str, where: str = "true") -> set[tuple[str, str]]:
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        return set(
            con.execute(f"SELECT account_id, id FROM stripe.{kind} WHERE {where}").fetchall()
        )
    finally:
        con.close()


def query(db_path: Path, sql: str, params=None) -> list[tuple]:
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def world_ids(world, kind: str, accounts=None) -> set[tuple[str, str]]:
    accounts = accounts or world.account_ids
    return {(account, obj["id"]) for account in accounts for obj in world.objects(account, kind)}
