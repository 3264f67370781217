"""The benchmark's backend: an MCP server on the `mcp` SDK with trivial, deterministic tools.

Tools: `echo` (returns its `text`), `big` (returns a fixed 256 KB text) and, with `--tools N`,
filler tools up to N in all so a listing has a realistic size (each has a description and a
two-field input schema). The same file serves stdio (default), Streamable HTTP with SSE
responses (`--transport http`) and Streamable HTTP with JSON responses (`--transport http-json`),
so every target in the benchmark forwards to the same server code.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from mcp.server.mcpserver import MCPServer

BIG_RESULT_BYTES = 256 * 1024
_BIG_TEXT = ("0123456789abcdef" * (BIG_RESULT_BYTES // 16))[:BIG_RESULT_BYTES]


def echo(text: str) -> str:
    """Return `text` unchanged."""
    return text


def big() -> str:
    """Return a 256 KB text result."""
    return _BIG_TEXT


def _filler(index: int) -> Callable[[str, int], str]:
    def filler(query: str, limit: int = 10) -> str:
        return f"{index}:{query}:{limit}"

    filler.__name__ = f"tool_{index:02d}"
    filler.__doc__ = f"Filler tool number {index}: looks up `query` and returns at most `limit` rows."
    return filler


def build_server(tool_count: int) -> MCPServer:
    server = MCPServer("bench-echo")
    server.add_tool(echo)
    server.add_tool(big)
    for index in range(2, max(tool_count, 2)):
        server.add_tool(_filler(index))
    return server


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--transport", choices=["stdio", "http", "http-json"], default="stdio")
    parser.add_argument("--tools", type=int, default=2, help="total number of tools (at least echo and big)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    server = build_server(args.tools)
    if args.transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host=args.host, port=args.port, json_response=args.transport == "http-json")


if __name__ == "__main__":
    main()
