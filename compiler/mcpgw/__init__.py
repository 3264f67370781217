"""mcpgw: compile a declarative config into a standalone, reviewable MCP gateway.

The pipeline, one module per step:

    load → validate → probe → snapshot → names → render → format → write
    check = probe → diff

Errors are values until the CLI turns them into exit codes:
0 clean, 1 drift or stale output, 2 bad input, 3 a backend could not be reached.
"""

from __future__ import annotations

__version__ = "0.2.0"
