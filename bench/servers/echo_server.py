"""The benchmark's backend: an MCP server on the `mcp` SDK with trivial, deterministic tools.

Tools: `echo` (returns its `text`), `big` (returns a fixed 256 KB text), with `--tools 3` or more
`slow` (answers after `ms` milliseconds: the slow backends of the 64-session load) and, with
`--tools N`, filler tools up to N in all so a listing has a realistic size (each has a description
and a two-field input schema). One prompt (`greet`) and one resource (`bench://<name>/static`, `--name`
tells the backends of one gateway apart), so a session can use every method the gateway forwards.
The same file serves stdio (default), Streamable HTTP with SSE responses (`--transport http`) and
Streamable HTTP with JSON responses (`--transport http-json`), so every target in the benchmark
forwards to the same server code.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

import anyio
from mcp.server.mcpserver import MCPServer

BIG_RESULT_BYTES = 256 * 1024
_BIG_TEXT = ("0123456789abcdef" * (BIG_RESULT_BYTES // 16))[:BIG_RESULT_BYTES]


def echo(text: str) -> str:
    """Return `text` unchanged."""
    return text


def big() -> str:
    """Return a 256 KB text result."""
    return _BIG_TEXT


async def slow(ms: int = 100) -> str:
    """Answer after `ms` milliseconds."""
    await anyio.sleep(ms / 1000)
    return "slow"


def greet(name: str) -> str:
    """A one-message prompt."""
    return f"Say hello to {name}."


def static() -> str:
    """A fixed text resource."""
    return "static text"


def _filler(index: int) -> Callable[[str, int], str]:
    def filler(query: str, limit: int = 10) -> str:
        return f"{index}:{query}:{limit}"

    filler.__name__ = f"tool_{index:02d}"
    filler.__doc__ = f"Filler tool number {index}: looks up `query` and returns at most `limit` rows."
    return filler


def build_server(tool_count: int, name: str = "echo") -> MCPServer:
    server = MCPServer("bench-echo")
    server.add_tool(echo)
    server.add_tool(big)
    first_filler = 2
    if tool_count >= 3:
        server.add_tool(slow)
        first_filler = 3
    for index in range(first_filler, max(tool_count, 2)):
        server.add_tool(_filler(index))
    server.prompt()(greet)
    server.resource(f"bench://{name}/static", mime_type="text/plain")(static)
    return server


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--transport", choices=["stdio", "http", "http-json"], default="stdio")
    parser.add_argument("--tools", type=int, default=2, help="total number of tools (at least echo and big)")
    parser.add_argument("--name", default="echo", help="the backend's name in its resource's URI")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    server = build_server(args.tools, args.name)
    if args.transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host=args.host, port=args.port, json_response=args.transport == "http-json")


if __name__ == "__main__":
    main()
