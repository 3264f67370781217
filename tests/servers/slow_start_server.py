"""An MCP server that is slow to answer `initialize` and `tools/list`, for the startup-timeout tests.

`python slow_start_server.py DELAY_FILE [--transport stdio|http|sse] [--port N] [--listen-after S]`
serves over stdio (the default), Streamable HTTP (`/mcp`) or legacy SSE (`/sse`)
on 127.0.0.1:N. Every `initialize` and every `tools/list` waits the number of
seconds written in DELAY_FILE (read on each request, so a test can build fast and
then serve slow) before it is answered: the delay is in the answers, an HTTP
server binds its port at once. Unless `--listen-after` asks it to wait S seconds
before it binds: a server slow to listen.

Tools: `echo(text)` and `sleep(seconds)`, which answer with no delay of their own
but for `sleep`'s.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import uvicorn
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.sse import SseServerTransport
from mcp.server.stdio import stdio_server
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

TOOLS = [
    types.Tool(name="echo", description="Echo text.", input_schema={"type": "object", "properties": {"text": {}}}),
    types.Tool(name="sleep", description="Sleep.", input_schema={"type": "object", "properties": {"seconds": {}}}),
]
SLOW_METHODS = frozenset({"initialize", "tools/list"})


class SlowStart:
    """Middleware: hold `initialize` and `tools/list` for the delay the file names."""

    def __init__(self, delay_file: Path) -> None:
        self.delay_file = delay_file

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method in SLOW_METHODS:
            await anyio.sleep(float(self.delay_file.read_text().strip() or 0))
        return await call_next(ctx)


async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
    args = params.arguments or {}
    if params.name == "sleep":
        await anyio.sleep(float(args.get("seconds", 1)))
        return types.CallToolResult(content=[types.TextContent(text="slept")])
    return types.CallToolResult(content=[types.TextContent(text=str(args.get("text", "")))])


async def list_tools(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
    return types.ListToolsResult(tools=TOOLS)


def build_server(delay_file: Path) -> Server[Any]:
    server: Server[Any] = Server("slow-start", version="1.0.0", on_list_tools=list_tools, on_call_tool=call_tool)
    server.middleware.append(SlowStart(delay_file))
    return server


def sse_app(server: Server[Any]) -> Starlette:
    sse = SseServerTransport("/messages/")

    async def handle_sse(request: Request) -> Response:
        async with sse.connect_sse(request.scope, request.receive, request._send) as (read, write):
            await server.run(read, write, server.create_initialization_options())
        return Response()

    routes = [Route("/sse", handle_sse, methods=["GET"]), Mount("/messages/", app=sse.handle_post_message)]
    return Starlette(routes=routes)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("delay_file", type=Path)
    parser.add_argument("--transport", choices=["stdio", "http", "sse"], default="stdio")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--listen-after", type=float, default=0.0)
    args = parser.parse_args()
    server = build_server(args.delay_file)
    if args.transport == "stdio":

        async def serve() -> None:
            async with stdio_server() as (read, write):
                await server.run(read, write, server.create_initialization_options())

        anyio.run(serve)
        return
    time.sleep(args.listen_after)
    app = server.streamable_http_app() if args.transport == "http" else sse_app(server)
    print(f"slow_start_server: {args.transport} on 127.0.0.1:{args.port}", file=sys.stderr)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
