"""An MCP server (the `mcp` SDK's MCPServer) that tells what trace context reached it, for tests/test_tracing.py.

Tool `context()`: JSON with the request's raw `_meta` and, over HTTP, its `traceparent` and
`tracestate` headers (null on stdio). Serves stdio (default) or Streamable HTTP
(`--transport http --port N`).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from mcp.server.mcpserver import Context, MCPServer


def build_server() -> MCPServer:
    server = MCPServer("trace")

    @server.tool()
    def context(ctx: Context[Any, Any]) -> str:
        """What trace context this request carried: its `_meta`, and its HTTP headers if any."""
        params = ctx.request_context.params or {}
        headers = ctx.headers or {}
        seen = {
            "meta": params.get("_meta"),
            "traceparent": headers.get("traceparent"),
            "tracestate": headers.get("tracestate"),
        }
        return json.dumps(seen, sort_keys=True)

    return server


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    server = build_server()
    if args.transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
