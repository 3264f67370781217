"""Where the data files live, in a checkout and in an installed wheel.

The wheel carries `schemas/`, `servers/` and the templates inside the `mcpgw` package
(see pyproject's force-include); a checkout keeps them at the repo root.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_REPO_ROOT = _PACKAGE.parents[1]


def _first_existing(candidates: tuple[Path, ...], what: str) -> Path:
    for candidate in candidates:
        if candidate.exists():
            return candidate
    tried = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(f"mcpgw is installed without its {what} (looked in {tried})")


def schema_path(name: str) -> Path:
    """A JSON Schema shipped with mcpgw, e.g. `config.schema.json`."""
    return _first_existing((_PACKAGE / "schemas" / name, _REPO_ROOT / "schemas" / name), f"schema {name}")


def server_dir() -> Path:
    """The folder of the built-in server scripts (`bash_server.py`, ...) and their `_*.py` helpers."""
    return _first_existing((_PACKAGE / "servers", _REPO_ROOT / "servers"), "built-in servers")


def template_dir() -> Path:
    """The folder holding `gateway.py.jinja` and `requirements.txt.jinja`."""
    return _first_existing((_PACKAGE / "templates", _REPO_ROOT / "templates"), "templates")
