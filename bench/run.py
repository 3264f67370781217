"""Run the benchmark: `.venv/bin/python bench/run.py [--quick] [--runs N] [--strict]` (see README)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mcpbench.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
