"""The `mcp` SDK's own client as a second load driver: what agents built on the SDK run.

Why: the raw client (`clients.py`) measures what the server costs and little else, but the figure
agents see is the one the SDK's client gets: `ClientSession` over `stdio_client`,
`streamable_http_client` or `sse_client`, handshake era (`initialize`), no capabilities declared.
That client validates every message with pydantic, keeps output schemas to check structured
results, runs each POST in a task of its own, opens a GET stream after `initialize` and deletes its
session at the end. Its own cost is part of every figure taken with it; the report shows both
drivers side by side so the two can be told apart.

`SdkSession.call` speaks the few methods the benchmark drives (`tools/list`, `tools/call`,
`ping`) through the SDK's typed API and hands back only what the harness reads.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import mcp_types as types
from mcp import ClientSession, StdioServerParameters
from mcp.client.sse import sse_client
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from mcpbench import procfs
from mcpbench.clients import CALL_TIMEOUT, Endpoint
from mcpbench.wire import JSON


class SdkSession:
    """An initialized SDK `ClientSession`; `pid` is the server process it spawned (stdio), else None."""

    def __init__(self, client: ClientSession, pid: int | None) -> None:
        self.client = client
        self.pid = pid

    async def call(self, method: str, params: JSON | None = None) -> JSON:
        params = params or {}
        if method == "tools/call":
            result = await self.client.call_tool(str(params["name"]), params.get("arguments") or {})
            if result.is_error:
                return {"isError": True, "content": [c.model_dump(mode="json") for c in result.content]}
            return {"isError": False}
        if method == "tools/list":
            cursor = params.get("cursor")
            page = types.PaginatedRequestParams(cursor=cursor) if cursor else None
            listed = await self.client.list_tools(params=page)
            return {"tools": [{"name": t.name} for t in listed.tools], "nextCursor": listed.next_cursor}
        if method == "ping":
            await self.client.send_ping()
            return {}
        raise NotImplementedError(f"the SDK driver does not drive {method}")


def _server_params(endpoint: Endpoint) -> StdioServerParameters:
    env: dict[str, Any] | None = {**os.environ, **endpoint.env} if endpoint.env else dict(os.environ)
    return StdioServerParameters(
        command=endpoint.command[0], args=list(endpoint.command[1:]), env=env, cwd=endpoint.cwd
    )


@contextlib.asynccontextmanager
async def open_sdk_session(endpoint: Endpoint) -> AsyncIterator[SdkSession]:
    """An SDK client session, initialized; for stdio the server lives exactly as long as the session."""
    async with contextlib.AsyncExitStack() as stack:
        pid: int | None = None
        if endpoint.kind == "stdio":
            errlog = stack.enter_context(open(os.devnull, "w"))  # a TextIO for stdio_client
            before = set(procfs.descendants(os.getpid()))
            read, write = await stack.enter_async_context(stdio_client(_server_params(endpoint), errlog=errlog))
            spawned = sorted(set(procfs.descendants(os.getpid())) - before)
            pid = spawned[0] if spawned else None
        elif endpoint.kind == "http":
            client_http = httpx2.AsyncClient(timeout=CALL_TIMEOUT, headers=dict(endpoint.headers))
            http = await stack.enter_async_context(client_http)
            read, write = await stack.enter_async_context(streamable_http_client(endpoint.url, http_client=http))
        else:
            read, write = await stack.enter_async_context(
                sse_client(endpoint.url, timeout=CALL_TIMEOUT, sse_read_timeout=CALL_TIMEOUT)
            )
        client = await stack.enter_async_context(ClientSession(read, write))
        await client.initialize()
        yield SdkSession(client, pid)
