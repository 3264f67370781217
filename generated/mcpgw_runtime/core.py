# mcpgw runtime, vendored into every generated gateway. DO NOT EDIT the copy in dist/: its digest is checked at start.
"""The part of the runtime that needs the `mcp` SDK, imported as one module.

The front (cli, front, front_backends: no SDK) imports this in a worker thread the
first time something needs the SDK, or at start with `--eager-core` and under
stdio; until then the process never pays for the SDK's import or memory.
"""

from __future__ import annotations

from mcpgw_runtime.gateway_server import Gateway
from mcpgw_runtime.http import LoadedCore, build_core
from mcpgw_runtime.stdio import run_stdio

__all__ = ["Gateway", "LoadedCore", "build_core", "run_stdio"]
