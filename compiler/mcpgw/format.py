"""Format generated Python through ruff, in memory, with mcpgw's own pinned settings.

`--isolated` ignores any ruff config of the user's repo, so the same inputs
give the same bytes everywhere.
"""

from __future__ import annotations

import subprocess

from ruff.__main__ import find_ruff_bin

SETTINGS = ("--isolated", "--line-length", "120", "--target-version", "py311")


class FormatError(Exception):
    """ruff rejected the generated code: a bug in mcpgw's templates."""


def _ruff(args: list[str], text: str) -> str:
    proc = subprocess.run(
        [find_ruff_bin(), *args, *SETTINGS, "--stdin-filename", "gateway.py", "-"],
        input=text,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise FormatError(proc.stderr.strip() or proc.stdout.strip())
    return proc.stdout


def format_python(text: str) -> str:
    """Sort imports, drop unused ones, then format."""
    fixed = _ruff(["check", "--fix", "--select", "I,F401", "--exit-zero", "--quiet"], text)
    return _ruff(["format", "--quiet"], fixed)
