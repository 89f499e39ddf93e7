"""Commands as the user can type them here: hints and next steps that work as printed.

A newcomer who installed into ``.venv`` without activating it has no ``nrr-sync`` or
``python`` with duckdb on PATH; ``.venv/bin/nrr-sync`` works. A name on PATH that is this
very program is printed bare.
"""

from __future__ import annotations

import os
import shutil
import sys
from importlib import metadata
from pathlib import Path


def program(name: str) -> str:
    """How to run ``name`` from this installation's bin directory (``nrr-sync``, ``pip``)."""
    candidate = Path(sys.executable).parent / name
    if not candidate.exists():
        return name
    return _as_typed(candidate, name)


def python() -> str:
    """How to run the Python that has nrr-sync (and duckdb) installed."""
    return _as_typed(Path(sys.executable), "python")


def _as_typed(path: Path, name: str) -> str:
    on_path = shutil.which(name)
    if on_path and Path(on_path).absolute() == path.absolute():
        return name
    absolute = path.absolute()
    if absolute.is_relative_to(Path.cwd()):
        return os.path.relpath(absolute)
    return str(absolute)


def extra_requirement(extra: str, fallback: str) -> str:
    """The requirement an extra of nrr-sync adds (``plotly>=5.20`` for ``html``)."""
    try:
        requires = metadata.requires("nrr-sync") or []
    except metadata.PackageNotFoundError:
        return fallback
    for requirement in requires:
        spec, _, marker = requirement.partition(";")
        if f'extra == "{extra}"' in marker.replace("'", '"'):
            return spec.strip().replace(" ", "")
    return fallback


def html_install_hint() -> str:
    """Installs plotly into this very environment, from a checkout or not."""
    plotly = extra_requirement("html", "plotly")
    return (
        f"{python()} -m pip install '{plotly}'  "
        "(the [html] extra; in a checkout: pip install -e '.[html]')"
    )
