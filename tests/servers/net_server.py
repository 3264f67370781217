"""An MCP server over Streamable HTTP (`/mcp`) or legacy SSE (`/sse`) that misbehaves on demand.

`python net_server.py --transport http|sse --port N [--listen-after FILE]` serves
on 127.0.0.1:N. With `--listen-after` (not empty) it binds only once FILE exists:
a server slow to listen, or one that never does. With `NET_TOKEN` set, every
request must carry `Authorization: Bearer $NET_TOKEN` (401 otherwise). The pid
goes to `NET_PIDFILE` when set.

Tools: `echo(text)`, `sleep(seconds)`, `pid()`, `env()` (the environment at
start, as JSON), and `drop()`, which sends a log notification on the call's
response stream (so the stream has begun) and then SIGKILLs its own process:
the response is cut mid-stream, as when a host dies.
"""

from __future__ import annotations

import argparse
import os
import signal
import time
import warnings
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import uvicorn
from fault_server import start_environment  # type: ignore[import-not-found,unused-ignore]  # the script's folder
from mcp.server.lowlevel import Server
from mcp.server.sse import SseServerTransport
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

TOOLS = [
    types.Tool(name="echo", description="Echo text.", input_schema={"type": "object", "properties": {"text": {}}}),
    types.Tool(name="sleep", description="Sleep.", input_schema={"type": "object", "properties": {"seconds": {}}}),
    types.Tool(name="pid", description="The server's pid.", input_schema={"type": "object"}),
    types.Tool(name="env", description="The environment at start.", input_schema={"type": "object"}),
    types.Tool(name="drop", description="Die mid-response.", input_schema={"type": "object"}),
]


def _text(value: object) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=str(value))])


async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
    args = params.arguments or {}
    if params.name == "echo":
        return _text(args.get("text", ""))
    if params.name == "sleep":
        await anyio.sleep(float(args.get("seconds", 1)))
        return _text("slept")
    if params.name == "drop":
        with warnings.catch_warnings():  # the logging capability is deprecated in 2026-07-28; still sent here
            warnings.simplefilter("ignore")
            await ctx.session.send_log_message("info", "dropping", related_request_id=ctx.request_id)
        await anyio.sleep(0.2)  # let the notification reach the wire before the host "dies"
        os.kill(os.getpid(), signal.SIGKILL)
    if params.name == "env":
        return _text(start_environment())
    return _text(os.getpid())


async def list_tools(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
    return types.ListToolsResult(tools=TOOLS)


class RequireToken:
    """401 for any request without `Authorization: Bearer <token>`."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and dict(scope["headers"]).get(b"authorization") != self.expected:
            await Response("unauthorized", status_code=401)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def build_app(transport: str) -> Starlette:
    server = Server("net", version="1.0.0", on_list_tools=list_tools, on_call_tool=call_tool)
    if transport == "http":
        return server.streamable_http_app()
    sse = SseServerTransport("/messages/")

    async def handle_sse(request: Request) -> Response:
        async with sse.connect_sse(request.scope, request.receive, request._send) as (read, write):
            await server.run(read, write, server.create_initialization_options())
        return Response()

    routes = [Route("/sse", handle_sse, methods=["GET"]), Mount("/messages/", app=sse.handle_post_message)]
    return Starlette(routes=routes)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--transport", choices=["http", "sse"], required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--listen-after", default="")
    args = parser.parse_args()
    pidfile = os.environ.get("NET_PIDFILE")
    if pidfile:
        Path(pidfile).write_text(str(os.getpid()))
    while args.listen_after and not Path(args.listen_after).exists():
        time.sleep(0.05)
    app: ASGIApp = build_app(args.transport)
    token = os.environ.get("NET_TOKEN")
    if token:
        app = RequireToken(app, token)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
