"""`python -m mcpgw`, the same as the `mcpgw` console script."""

from __future__ import annotations

from mcpgw.cli import main

main()
