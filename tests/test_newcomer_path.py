"""A newcomer's path, run as printed: the README's commands (install aside) and the
commands the demo prints next. Each runs in a shell, in a fresh directory where
``.venv`` is this test run's virtual environment, as after the quick start's install."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def checkout_like(tmp_path: Path) -> Path:
    """A directory with ``.venv`` (this interpreter's environment) and the checkout's
    example config, as the quick start leaves a clone."""
    home = tmp_path / "clone"
    home.mkdir()
    os.symlink(Path(sys.prefix), home / ".venv")
    shutil.copy(ROOT / "config.example.yaml", home)
    return home


def shell(command: str, cwd: Path, env: dict | None = None, timeout: float = 180):
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("NRR_SYNC_")
    }
    # As after the quick start: the virtual environment is not activated.
    venv_bin = str(Path(sys.prefix) / "bin")
    path = [part for part in environment.get("PATH", "").split(os.pathsep) if part != venv_bin]
    environment["PATH"] = os.pathsep.join(path)
    environment.update(env or {})
    return subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def indented_blocks(text: str) -> list[str]:
    """The README's indented code blocks (shell commands), one string each."""
    blocks, current = [], []
    for line in text.splitlines():
        if line.startswith("    ") and line.strip():
            current.append(line[4:])
        elif current and line.strip():
            blocks.append("\n".join(current))
            current = []
    return blocks


def quick_start_demo_command() -> str:
    install_and_demo = next(b for b in indented_blocks(README) if "nrr-sync demo" in b)
    return install_and_demo.split("&&")[-1].strip()  # the install is aside


def printed_next_steps(out: str) -> list[str]:
    """The commands the demo prints to try next (indented lines naming a program)."""
    commands = []
    for line in out.splitlines():
        if not line.startswith("  ") or line.startswith("   "):
            continue
        command = line.strip()
        if re.match(r"(NRR_SYNC_DATABASE=\S+ )?(\S*/)?(nrr-sync|python3?|duckdb) ", command):
            commands.append(command)
    return commands


@pytest.mark.slow
def test_the_quick_start_and_every_next_step_the_demo_prints_work_as_printed(tmp_path):
    home = checkout_like(tmp_path)
    demo = quick_start_demo_command()
    assert demo == ".venv/bin/nrr-sync demo"
    done = shell(demo, home)
    assert done.returncode == 0, done.stderr

    commands = printed_next_steps(done.stdout)
    assert len(commands) >= 6, done.stdout
    # Nothing on PATH is assumed: the environment is not activated (its bin is not on PATH).
    assert any(re.match(r"\S+/bin/python3? -c ", c) for c in commands), commands
    assert all("/bin/nrr-sync " in c for c in commands if "nrr-sync " in c), commands
    ran = 0
    for command in commands:
        if command.startswith("duckdb ") and shutil.which("duckdb") is None:
            assert "https://duckdb.org/docs/installation" in done.stdout
            continue
        if " backfill " in command or command.endswith(" sync"):
            continue  # needs the user's own key: the README test runs these
            continue
        step = shell(command, home)
        assert step.returncode == 0, (command, step.stderr)
        ran += 1
    assert ran >= 5
    assert (home / "mrr.csv").read_text().startswith("month,")
    assert "Account" in done.stdout.split("restricted key")[1].split("2.")[0]
    assert ".lock" in done.stdout and ".runs.json" in done.stdout


def readme_sql_statements() -> list[str]:
    block = README.split("```sql", 1)[1].split("```", 1)[0]
    return [statement.strip() for statement in block.split(";") if statement.strip()]


@pytest.mark.slow
def test_the_readme_path_with_a_stripe_account_works_as_printed(tmp_path, sandbox_factory):
    """Steps 2-6, the SQL, the Python line and the cron line, against the sandbox standing
    in for Stripe (NRR_SYNC_STRIPE_API_BASE, the documented override), the environment
    activated (install aside)."""
    sandbox = sandbox_factory(customers=30, latency_ms=1)
    home = checkout_like(tmp_path)
    env = {
        "PATH": f"{Path(sys.prefix) / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "STRIPE_API_KEY": sandbox.api_key,
        "NRR_SYNC_STRIPE_API_BASE": sandbox.url,
    }
    steps = [
        "cp config.example.yaml config.yaml",
        "nrr-sync backfill --since 2023-01",
        "nrr-sync sync",
        "nrr-sync report",
        "nrr-sync report --html report.html",
        "nrr-sync status",
    ]
    for step in steps:
        assert f"`{step}`" in README or f"    {step}\n" in README, step
        if step.startswith("nrr-sync backfill"):  # "… and edit it": the account's currencies
            config = yaml.safe_load((home / "config.yaml").read_text())
            config["reporting"]["fx_rates"] = {"eur": 1.1, "gbp": 1.3, "jpy": 0.0067}
            (home / "config.yaml").write_text(yaml.safe_dump(config))
        done = shell(step, home, env)
        assert done.returncode == 0, (step, done.stdout, done.stderr)
    assert (home / "report.html").stat().st_size > 100_000

    with duckdb.connect(str(home / "nrr.duckdb"), read_only=True) as con:
        for statement in readme_sql_statements():
            con.execute(statement).fetchall()
    python_line = re.search(r"From Python: `([^`]+)`", README).group(1)
    done = shell(f"python -c '{python_line}'", home, env)
    assert done.returncode == 0, done.stderr

    cron = next(line for line in README.splitlines() if "* * *" in line and "--quiet" in line)
    command = cron.split("* * *", 1)[1].strip().replace("/srv/nrr", str(home))
    (home / "stripe.env").write_text(f"export STRIPE_API_KEY={sandbox.api_key}\n")
    cron_env = {"NRR_SYNC_STRIPE_API_BASE": sandbox.url}
    done = shell(command, home, cron_env)
    assert done.returncode == 0, (command, (home / "sync.log").read_text())
    log = (home / "sync.log").read_text().splitlines()
    assert len(log) == 1 and " INFO sync ok in " in log[0]  # the one summary line


SAMPLE = re.compile(r"<!-- sample: (?P<args>[^>]+) -->\n```\n(?P<text>.*?)```", re.DOTALL)


def test_the_report_samples_in_the_docs_are_what_the_demo_prints_today(tmp_path, monkeypatch):
    """docs/report.md's samples come from the demo account; NRR_SYNC_WRITE_DOCS=1 rewrites
    them, and otherwise they must match, so they cannot drift."""
    from typer.testing import CliRunner

    from nrr_sync.cli import app

    for name in [n for n in os.environ if n.startswith("NRR_SYNC_") and n != "NRR_SYNC_WRITE_DOCS"]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    database = tmp_path / "nrr-demo.duckdb"
    assert CliRunner().invoke(app, ["--quiet", "demo", "--db", str(database)]).exit_code == 0
    monkeypatch.setenv("NRR_SYNC_DATABASE", str(database))
    path = ROOT / "docs" / "report.md"
    text = path.read_text()
    samples = list(SAMPLE.finditer(text))
    assert samples
    for sample in samples:
        result = CliRunner().invoke(app, sample["args"].split())
        assert result.exit_code == 0, result.output
        if os.environ.get("NRR_SYNC_WRITE_DOCS"):
            text = text.replace(
                sample.group(0), sample.group(0).replace(sample["text"], result.stdout)
            )
        else:
            assert sample["text"] == result.stdout, f"docs/report.md: {sample['args']}"
    if os.environ.get("NRR_SYNC_WRITE_DOCS"):
        path.write_text(text)
