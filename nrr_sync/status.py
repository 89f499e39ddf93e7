"""``nrr-sync status``: the job's health from the published file and the run record, as
text or JSON, with an exit code monitoring can alert on."""

from __future__ import annotations

import json
import time

import typer

from .config import Config
from .errors import ConfigError
from .status_data import collect, health_problems
from .status_json import status_document
from .status_text import print_status


def status(config: Config, output_format: str = "text") -> int:
    """Print the job's health; 1 when the data is stale, never synced, a backfill is
    unfinished, the report is empty, or the last run failed (the same in both forms)."""
    if output_format not in ("text", "json"):
        raise ConfigError(f"--format must be text or json, not {output_format!r}.")
    now = time.time()
    found = collect(config)
    problems = health_problems(found, now)
    if output_format == "json":
        typer.echo(json.dumps(status_document(found, problems, now), indent=2))
    else:
        print_status(found, problems, now)
    return 1 if problems else 0
