"""The FastMCP peer: `fastmcp.server.create_proxy` over an `mcpServers` config, served over HTTP.

Runs in the fastmcp venv (`.cache/bench/venvs/fastmcp`), not the project's. This is the stock
proxy a FastMCP user writes (the same as `fastmcp run config.json`), with no tuning.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fastmcp.server import create_proxy  # type: ignore[import-not-found, unused-ignore]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("config", type=Path, help="a JSON file with an mcpServers object")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    proxy = create_proxy(json.loads(args.config.read_text()), name="bench-fastmcp")
    proxy.run(transport="http", host="127.0.0.1", port=args.port, path="/mcp", show_banner=False, log_level="warning")


if __name__ == "__main__":
    main()
