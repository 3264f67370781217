"""The one place the runtime reads private SDK attributes (`relay.sdk_channels`) still works.

`ServerSession` has no public accessor for its upstream `Connection` or its request-scoped raw
back-channel; `relay.sdk_channels` reads `_connection` and `_request_outbound`. These tests run it
inside the SDK's own server runner (an in-process `Server`, handshake and 2026-07-28 modes) and
fail loudly, naming the adapter, when the SDK renames those attributes or changes what they are.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcpgw_runtime.relay import Origin, sdk_channels
from starlette.types import Message

CHANGED = "the mcp SDK changed ServerSession's internals: update relay.sdk_channels (and its docstring)"


def _server(seen: dict[str, Any]) -> Server[Any]:
    async def list_tools(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[types.Tool(name="probe", input_schema={"type": "object"})])

    async def call_tool(ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams) -> Any:
        try:
            connection, channel = sdk_channels(ctx)
        except AttributeError as exc:
            seen["error"] = repr(exc)
            raise
        seen["connection"], seen["channel"] = connection, channel
        seen["request_id"], seen["ctx_request_id"] = channel.request_id, ctx.request_id
        seen["origin"] = Origin(ctx)
        seen["has_session"] = seen["origin"].has_session  # while the request is open
        if channel.can_send_request:  # the raw back-channel of this request reaches the client
            seen["roots"] = await channel.send_raw_request("roots/list", None)
        return types.CallToolResult(content=[types.TextContent(text="ok")])

    return Server("adapter-probe", on_list_tools=list_tools, on_call_tool=call_tool)


async def _roots(context: Any) -> types.ListRootsResult:
    return types.ListRootsResult(roots=[types.Root(uri="file:///r")])


@pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")
@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
def test_sdk_channels_reads_the_connection_and_the_request_channel(mode: str) -> None:
    seen: dict[str, Any] = {}

    async def main() -> None:
        async with Client(_server(seen), mode=mode, list_roots_callback=_roots) as client:
            await client.call_tool("probe", {})

    anyio.run(main)
    assert "error" not in seen, f"{CHANGED}: {seen['error']}"
    connection, channel = seen["connection"], seen["channel"]
    assert isinstance(connection, Connection), CHANGED
    assert connection.protocol_version == ("2026-07-28" if mode != "legacy" else "2025-11-25"), CHANGED
    for name in ("exit_stack", "outbound", "session_id"):
        assert hasattr(connection, name), f"{CHANGED}: Connection.{name} is gone"
    for name in ("send_raw_request", "notify", "progress", "can_send_request", "transport"):
        assert hasattr(channel, name), f"{CHANGED}: the request channel has no {name}"
    assert seen["request_id"] == seen["ctx_request_id"], f"{CHANGED}: _request_outbound is not this request's"
    origin: Origin = seen["origin"]
    assert origin.connection is connection and origin.channel is channel
    if mode == "legacy":
        assert seen["roots"] == {"roots": [{"uri": "file:///r"}]}, CHANGED
        assert seen["has_session"]
    else:
        assert not channel.can_send_request and not seen["has_session"]


def test_adopting_manager_names_the_session_it_admits() -> None:
    """http.AdoptingManager renames a new SDK session in `_admit_session` (private): it must still be the one place."""
    from mcpgw_runtime.http import ADOPTING, AdoptingManager

    renamed = "SDK changed StreamableHTTPSessionManager._admit_session: update http.AdoptingManager"

    async def main() -> None:
        manager = AdoptingManager(app=Server("adopt-probe"))
        plain = manager._admit_session(None)
        assert plain is not None and plain.mcp_session_id in manager._server_instances, renamed
        token = ADOPTING.set("front-made-id")
        try:
            adopted = manager._admit_session(None)
        finally:
            ADOPTING.reset(token)
        assert adopted is not None and adopted.mcp_session_id == "front-made-id", renamed
        assert manager._server_instances.get("front-made-id") is adopted, renamed
        assert set(manager._server_instances) == {plain.mcp_session_id, "front-made-id"}, renamed

    anyio.run(main)


def test_a_sessions_get_stream_is_where_the_core_looks_for_it() -> None:
    """http.LoadedCore.listening reads the SDK transport's `_request_streams[GET_STREAM_KEY]` (private).

    The front waits on it before the core's backends start, so that a list change they
    announce reaches a GET stream the front held; here a real GET through the SDK's
    session manager must make it true, and the client leaving must make it false.
    """
    from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
    from mcpgw_runtime.http import ADOPTING, AdoptingManager, LoadedCore, _replay

    moved = "SDK changed where a session's GET stream lives: update http.LoadedCore.listening"
    sid = "listen-probe-session"
    init = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init}).encode()
    posted = [(b"accept", b"application/json, text/event-stream"), (b"content-type", b"application/json")]

    async def main() -> None:
        manager = AdoptingManager(app=Server("listen-probe"))
        app = StreamableHTTPASGIApp(manager)
        core = LoadedCore(app=app, gateway=None, manager=manager, init_options=None)  # type: ignore[arg-type]
        async with manager.run():
            token = ADOPTING.set(sid)  # the session gets this id, as an adopted one does
            try:
                assert await _replay(app, posted, body) == 200
            finally:
                ADOPTING.reset(token)
            assert not core.listening(sid.encode())
            left = anyio.Event()

            request: list[Message] = [{"type": "http.request", "body": b"", "more_body": False}]

            async def receive() -> Message:
                if request:
                    return request.pop()
                await left.wait()
                return {"type": "http.disconnect"}

            sent: list[Message] = []

            async def send(message: Message) -> None:
                sent.append(message)

            headers = [
                (b"accept", b"text/event-stream"),
                (b"mcp-session-id", sid.encode()),
                (b"mcp-protocol-version", b"2025-06-18"),
            ]
            scope = {
                "type": "http",
                "method": "GET",
                "path": "/mcp",
                "raw_path": b"/mcp",
                "query_string": b"",
                "headers": headers,
                "client": ("127.0.0.1", 0),
                "server": ("127.0.0.1", 0),
            }
            async with anyio.create_task_group() as tg:
                tg.start_soon(app, scope, receive, send)
                with anyio.fail_after(5):
                    while not core.listening(sid.encode()):
                        await anyio.sleep(0.01)
                assert sent and sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200, sent
                left.set()
            assert core.listening(sid.encode()) is False, moved

    anyio.run(main)
