"""The peers' own venvs under `.cache/bench/venvs/`, installed by the benchmark with pinned versions.

Each venv is built from a lock file in `bench/peers/` (a full `pip freeze`) and rebuilt only when
that file changes. mcp-proxy 0.13 needs mcp<2, so it can never share the project's venv.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = BENCH_DIR.parent
CACHE_DIR = REPO_ROOT / ".cache" / "bench"
LOCKS = BENCH_DIR / "peers"


def venv_python(name: str) -> Path:
    return CACHE_DIR / "venvs" / name / "bin" / "python"


def venv_bin(name: str, script: str) -> Path:
    return CACHE_DIR / "venvs" / name / "bin" / script


def ensure_venv(name: str, *, log: bool = True) -> Path:
    """The venv `name` built from `bench/peers/<name>.txt`; created or refreshed when needed."""
    lock = LOCKS / f"{name}.txt"
    root = CACHE_DIR / "venvs" / name
    stamp = root / ".bench-lock-sha256"
    wanted = hashlib.sha256(lock.read_bytes()).hexdigest()
    if stamp.is_file() and stamp.read_text().strip() == wanted and venv_python(name).is_file():
        return root
    if log:
        print(f"installing {lock.relative_to(REPO_ROOT)} into {root.relative_to(REPO_ROOT)} ...", file=sys.stderr)
    shutil.rmtree(root, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True)
    subprocess.run(
        [str(venv_python(name)), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(lock)],
        check=True,
    )
    stamp.write_text(wanted + "\n")
    return root
