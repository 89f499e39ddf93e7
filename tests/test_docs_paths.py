"""What a newcomer reads leads somewhere: doc pointers in messages name sections that exist."""

from __future__ import annotations

import re
from pathlib import Path

from sync_helpers import cli, write_config

ROOT = Path(__file__).resolve().parent.parent
POINTER = re.compile(r"see ((?:README|docs/[a-z-]+)\.md|README), '([^']+)'")


def headings(path: Path) -> set[str]:
    return {line.lstrip("#").strip() for line in path.read_text().splitlines() if line[:1] == "#"}


def test_the_bad_key_message_points_to_a_section_that_exists(tmp_path, sandbox_factory):
    sandbox = sandbox_factory(customers=3, latency_ms=1)
    result = cli(write_config(tmp_path), ["backfill", "--since", "2025-01"], sandbox, key="sk_x")
    assert result.exit_code == 3
    pointer = POINTER.search(" ".join(result.stderr.split()))
    assert pointer, result.stderr
    document, section = pointer.groups()
    path = ROOT / (document if document.endswith(".md") else "README.md")
    assert path.exists()
    assert section in headings(path)


def test_docs_open_the_database_read_only():
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text()
        for command in re.findall(r"`duckdb [^`]*`", text):
            assert "-readonly" in command, (path.name, command)
        for call in re.findall(r"duckdb\.connect\([^)]*\)", text):
            assert "read_only=True" in call, (path.name, call)


def test_timestamps_reach_python_without_pytz(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['pytz'] = None\n"
        "import duckdb\n"
        "value = duckdb.sql(\"SELECT TIMESTAMPTZ '2024-01-01 00:00:00+00'\").fetchall()[0][0]\n"
        "assert value.tzinfo is not None and value.year == 2024\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for path in [ROOT / "README.md", ROOT / "docs" / "tables.md"]:
        assert "needs `pytz`" not in path.read_text()
