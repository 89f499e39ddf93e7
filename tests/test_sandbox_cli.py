"""``nrr-sync sandbox serve`` and ``nrr-sync sandbox truth`` from the command line."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import stripe
from typer.testing import CliRunner

from nrr_sync.cli import app

NRR_SYNC = [sys.executable, "-m", "nrr_sync.cli"]
SMALL = ["--customers", "12", "--seed", "3"]


def needs_generator():
    pytest.importorskip("nrr_sync.sandbox.generator")


def nrr_sync_command(*args: str) -> list[str]:
    script = Path(sys.executable).parent / "nrr-sync"
    return [str(script), *args] if script.exists() else [*NRR_SYNC, *args]


@pytest.mark.parametrize(
    "args, message",
    [
        (["serve", "--start", "2023-13"], "--start"),
        (["serve", "--fault-rate", "1.5"], "--fault-rate"),
        (["serve", "--port", "70000"], "--port"),
        (["serve", "--now", "yesterday"], "--now"),
        (["serve", "--now", "2020-01-01T00:00:00Z"], "before --start"),
        (["truth", "--fx", "eur=abc"], "--fx"),
        (["truth", "--customers", "0"], "--customers"),
        (["truth", "--format", "xml"], "--format"),
        (["truth", "--currency", "dollars"], "--currency"),
    ],
)
def test_bad_options_exit_2_with_a_message_naming_the_option(args, message):
    result = CliRunner().invoke(app, ["sandbox", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_serve_prints_the_url_answers_and_stops_on_sigterm(tmp_path):
    needs_generator()
    process = subprocess.Popen(
        nrr_sync_command("sandbox", "serve", "--port", "0", *SMALL),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NRR_SYNC_CONFIG": str(tmp_path / "absent.yaml")},
    )
    try:
        first_line = process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:\d+", first_line)
        assert match, first_line
        url = match.group(0)
        rest = "".join(process.stdout.readline() for _ in range(6))
        assert "sk_test_sandbox" in rest
        assert f"export NRR_SYNC_STRIPE_API_BASE={url}" in rest
        # the rates to paste into the config, or the build fails for the missing currencies
        assert "  fx_rates: {eur: 1.1, gbp: 1.3, jpy: 0.0067}" in rest
        client = stripe.StripeClient("sk_test_sandbox", base_addresses={"api": url})
        customers = list(client.v1.customers.list(params={"limit": 100}).auto_paging_iter())
        assert len(customers) == 12
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert "stopped" in process.stdout.read()
        with pytest.raises(requests.ConnectionError):
            requests.get(url + "/v1/account", timeout=2)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_serve_stops_on_ctrl_c(tmp_path):
    needs_generator()
    process = subprocess.Popen(
        nrr_sync_command("sandbox", "serve", "--port", "0", *SMALL),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert "listening on" in process.stdout.readline()
        time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_serve_on_a_busy_port_exits_2(tmp_path):
    needs_generator()
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(app, ["sandbox", "serve", "--port", str(port), *SMALL])
    assert result.exit_code == 2
    assert "--port" in result.output


def test_truth_is_deterministic_csv_with_cents(tmp_path):
    needs_generator()
    runner = CliRunner()
    first = runner.invoke(app, ["sandbox", "truth", *SMALL])
    second = runner.invoke(app, ["sandbox", "truth", *SMALL, "--output", str(tmp_path / "t.csv")])
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    assert (tmp_path / "t.csv").read_text() == first.stdout
    rows = list(csv.DictReader(io.StringIO(first.stdout)))
    assert rows and list(rows[0]) == ["account_id", "customer_id", "month", "mrr"]
    assert all(re.fullmatch(r"-?\d+\.\d{2}", row["mrr"]) for row in rows)
    assert all(re.fullmatch(r"\d{4}-\d{2}-01", row["month"]) for row in rows)
    other_seed = runner.invoke(app, ["sandbox", "truth", "--customers", "12", "--seed", "4"])
    assert other_seed.stdout != first.stdout


def test_truth_as_json_matches_the_csv(tmp_path):
    needs_generator()
    runner = CliRunner()
    as_csv = list(
        csv.DictReader(io.StringIO(runner.invoke(app, ["sandbox", "truth", *SMALL]).stdout))
    )
    as_json = json.loads(
        runner.invoke(app, ["sandbox", "truth", *SMALL, "--format", "json"]).stdout
    )
    assert len(as_json) == len(as_csv)
    for record, row in zip(as_json, as_csv, strict=True):
        assert record["customer_id"] == row["customer_id"]
        assert f"{record['mrr']:.2f}" == row["mrr"]
