"""Each assumption `templates/mcpgw_runtime/sdk_internals.py` makes about the SDK's private internals.

The runtime takes what the `mcp` SDK does not offer publicly from one module, sdk_internals.py.
These tests run each of its functions against the installed SDK (its own server runner, its
session manager, a real GET stream) and fail loudly, naming that module, when an upgrade
renames an attribute or changes what it holds; a scan of the runtime keeps private reads out
of every other module.
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcpgw_runtime.relay import Origin
from mcpgw_runtime.sdk_internals import AdoptingManager, admitted_as, has_get_stream, upstream_channels
from starlette.types import Message

ADAPTER = "templates/mcpgw_runtime/sdk_internals.py"
CHANGED = f"the mcp SDK changed ServerSession's internals: update upstream_channels in {ADAPTER} (and its docstring)"


def _server(seen: dict[str, Any]) -> Server[Any]:
    async def list_tools(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[types.Tool(name="probe", input_schema={"type": "object"})])

    async def call_tool(ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams) -> Any:
        try:
            connection, channel = upstream_channels(ctx.session)
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
def test_upstream_channels_reads_the_connection_and_the_request_channel(mode: str) -> None:
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
    """`AdoptingManager` renames a new SDK session in `_admit_session`, moving `_server_instances` (private)."""
    renamed = (
        "the mcp SDK changed StreamableHTTPSessionManager._admit_session or ._server_instances: "
        f"update AdoptingManager in {ADAPTER}"
    )

    async def main() -> None:
        manager = AdoptingManager(app=Server("adopt-probe"))
        plain = manager._admit_session(None)
        assert plain is not None and plain.mcp_session_id in manager._server_instances, renamed
        with admitted_as("front-made-id"):
            adopted = manager._admit_session(None)
        assert adopted is not None and adopted.mcp_session_id == "front-made-id", renamed
        assert manager._server_instances.get("front-made-id") is adopted, renamed
        assert set(manager._server_instances) == {plain.mcp_session_id, "front-made-id"}, renamed
        assert manager._admit_session(None) not in (None, adopted), "admitted_as must end with its block"

    anyio.run(main)


def test_an_adopted_session_keeps_its_owner() -> None:
    """A session opened with a credential keeps it under its new id (`_session_owners`, private)."""
    moved = f"the mcp SDK changed StreamableHTTPSessionManager._session_owners: update AdoptingManager in {ADAPTER}"

    async def main() -> None:
        manager = AdoptingManager(app=Server("owner-probe"))
        requestor: Any = object()
        with admitted_as("owned-id"):
            adopted = manager._admit_session(requestor)
        assert adopted is not None, moved
        assert manager._session_owners == {"owned-id": requestor}, moved

    anyio.run(main)


def test_a_sessions_get_stream_is_where_the_core_looks_for_it() -> None:
    """`has_get_stream` reads the SDK transport's `_request_streams[GET_STREAM_KEY]` (private).

    The front waits on it (through `http.LoadedCore.listening`) before the core's backends
    start, so that a list change they announce reaches a GET stream the front held; here a
    real GET through the SDK's session manager must make it true, and the client leaving
    must make it false.
    """
    from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
    from mcpgw_runtime.http import LoadedCore, _replay

    moved = f"the mcp SDK changed where a session's GET stream lives: update has_get_stream in {ADAPTER}"
    sid = "listen-probe-session"
    init = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init}).encode()
    posted = [(b"accept", b"application/json, text/event-stream"), (b"content-type", b"application/json")]

    async def main() -> None:
        manager = AdoptingManager(app=Server("listen-probe"))
        app = StreamableHTTPASGIApp(manager)
        core = LoadedCore(app=app, gateway=None, manager=manager, init_options=None)  # type: ignore[arg-type]
        async with manager.run():
            with admitted_as(sid):  # the session gets this id, as an adopted one does
                assert await _replay(app, posted, body) == 200
            assert not has_get_stream(manager, sid) and not core.listening(sid.encode()), moved
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
                try:
                    with anyio.fail_after(5):
                        while not has_get_stream(manager, sid):
                            await anyio.sleep(0.01)
                except TimeoutError:
                    pytest.fail(moved)
                assert core.listening(sid.encode())
                assert sent and sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200, sent
                left.set()
            assert has_get_stream(manager, sid) is False, moved

    anyio.run(main)


def test_the_sse_endpoint_gets_asgis_own_send() -> None:
    """`GET /sse` is routed to a plain ASGI app (`http.SseEndpoint`): starlette's private `Request._send` is not read.

    Starlette routes an endpoint that is an object, not a function, as ASGI; the SDK's SSE
    transport must then answer on that `send` with its stream and the `endpoint` event.
    """
    from mcp.server.sse import SseServerTransport
    from mcpgw_runtime.http import SseEndpoint
    from starlette.applications import Starlette
    from starlette.routing import Route

    server: Server[Any] = Server("sse-probe")
    sse = SseServerTransport("/messages/")
    app = Starlette(
        routes=[Route("/sse", SseEndpoint(sse, server, server.create_initialization_options(), max_streams=10))]
    )
    sent: list[Message] = []
    announced = anyio.Event()

    async def receive() -> Message:
        await announced.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)
        if b"event: endpoint" in message.get("body", b""):
            announced.set()

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/sse",
        "raw_path": b"/sse",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1"), (b"accept", b"text/event-stream")],
        "client": ("127.0.0.1", 0),
        "server": ("127.0.0.1", 0),
    }

    async def main() -> None:
        with anyio.fail_after(5):
            await app(scope, receive, send)

    anyio.run(main)
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200, sent
    assert announced.is_set(), sent


def test_end_session_forgets_the_session_and_closes_its_connection() -> None:
    """`end_session` takes a session out of `_server_instances`/`_session_owners` (private) and terminates it.

    The gateway's session table ends sessions this way (evicted, expired): the id must answer
    404 at once, and the session's loop must end, so that its connection's `exit_stack` (where
    its per-client backend connections hang) is unwound.
    """
    from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
    from mcpgw_runtime.http import _replay
    from mcpgw_runtime.sdk_internals import end_session

    moved = f"the mcp SDK changed how a session ends: update end_session in {ADAPTER}"
    sid = "end-probe-session"
    closed = anyio.Event()

    async def call_tool(ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams) -> Any:
        connection, _ = upstream_channels(ctx.session)
        connection.exit_stack.callback(closed.set)
        return types.CallToolResult(content=[types.TextContent(text="ok")])

    init = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}
    posted = [(b"accept", b"application/json, text/event-stream"), (b"content-type", b"application/json")]
    in_session = [*posted, (b"mcp-session-id", sid.encode()), (b"mcp-protocol-version", b"2025-06-18")]

    def body(message: dict[str, Any]) -> bytes:
        return json.dumps({"jsonrpc": "2.0", **message}).encode()

    async def main() -> None:
        manager = AdoptingManager(app=Server("end-probe", on_call_tool=call_tool))
        app = StreamableHTTPASGIApp(manager)
        async with manager.run():
            with admitted_as(sid):
                assert await _replay(app, posted, body({"id": 1, "method": "initialize", "params": init})) == 200
            assert await _replay(app, in_session, body({"method": "notifications/initialized"})) == 202
            call = {"id": 2, "method": "tools/call", "params": {"name": "x", "arguments": {}}}
            assert await _replay(app, in_session, body(call)) == 200
            ending = end_session(manager, sid)
            assert sid not in manager._server_instances and ending is not None, moved
            await ending
            with anyio.fail_after(5):
                await closed.wait()
            assert await _replay(app, in_session, body({"id": 3, "method": "tools/list"})) == 404, moved
            assert end_session(manager, sid) is None  # ended already: nothing more to do

    anyio.run(main)


def test_the_managers_own_cap_and_idle_timer_are_off_in_the_core() -> None:
    """`build_core` gives the SDK's manager no session cap and no idle timer: the session table decides both.

    Public constructor arguments, but what they mean is the assumption: None must admit past the
    SDK's default cap, and leave a session's transport without an idle scope (it never expires).
    """
    from mcp.server.streamable_http_manager import DEFAULT_MAX_SESSIONS
    from mcpgw_runtime.gateway_server import Gateway
    from mcpgw_runtime.guard import Guard
    from mcpgw_runtime.http import build_core
    from mcpgw_runtime.spec import GatewaySpec

    spec = GatewaySpec("g", "1", "t", ".", (), (), {}, (), {}, (), {}, {}, {})
    gateway = Gateway(spec, Path("."))
    guard = Guard.for_bind("127.0.0.1", 9000, [], [], None)
    core = build_core(gateway, guard, transports=["http"], stateless=False)
    manager = core.manager
    assert manager.max_sessions is None and manager.session_idle_timeout is None

    async def main() -> None:
        admitted = [manager._admit_session(None) for _ in range(DEFAULT_MAX_SESSIONS + 1)]
        assert all(t is not None for t in admitted), "the SDK's manager refused a session below no cap"
        transport = admitted[-1]
        assert transport is not None
        async with transport.connect():
            assert transport.idle_scope is None, "a session of the core's manager would expire on the SDK's timer"

    anyio.run(main)


def test_the_watched_dispatcher_overrides_the_public_run() -> None:
    """connect.WatchedDispatcher overrides `JSONRPCDispatcher.run`: public, but its signature is provisional."""
    import inspect

    from mcp.shared.jsonrpc_dispatcher import JSONRPCDispatcher
    from mcpgw_runtime.connect import WatchedDispatcher

    ours = inspect.signature(WatchedDispatcher.run)
    theirs = inspect.signature(JSONRPCDispatcher.run)
    assert [(p.name, p.kind) for p in ours.parameters.values()] == [
        (p.name, p.kind) for p in theirs.parameters.values()
    ], f"the mcp SDK changed JSONRPCDispatcher.run{theirs}: update connect.WatchedDispatcher.run"


PUBLIC_UNDERSCORE = frozenset({"os._exit"})
"""Underscored names that are documented public API."""


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _self_attr(node: ast.AST) -> str | None:
    """`x` of `self.x`, else None."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
        return node.attr
    return None


def _inherited_privates(cls: ast.ClassDef) -> list[str]:
    """In a subclass of an SDK class: private methods it defines and `self._x` it reads but never sets itself."""
    own = {item.name for item in cls.body if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)}
    found = [f"line {cls.lineno}: {cls.name}.{name} overrides a private method" for name in own if _is_private(name)]
    for node in ast.walk(cls):
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            own.update(a for a in map(_self_attr, targets) if a is not None)
    for node in ast.walk(cls):
        attr = _self_attr(node)
        if isinstance(node, ast.Attribute) and attr is not None and _is_private(attr) and attr not in own:
            found.append(f"line {node.lineno}: {cls.name} reads the inherited self.{attr}")
    return found


def _third_party(module: str) -> bool:
    """The SDK, starlette, uvicorn and the like: neither the standard library nor the runtime itself."""
    root = module.split(".", maxsplit=1)[0]
    return root != "mcpgw_runtime" and root not in sys.stdlib_module_names


def _imports(tree: ast.Module) -> tuple[set[str], list[str]]:
    """The names a module binds to third-party packages, and its imports of private modules or names."""
    imported: set[str] = set()
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module is not None:
            if _third_party(node.module):
                imported.update(alias.asname or alias.name for alias in node.names)
            if any(map(_is_private, [*node.module.split("."), *(alias.name for alias in node.names)])):
                found.append(f"line {node.lineno}: from {node.module} import ...")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if _third_party(alias.name):
                    imported.add(alias.asname or alias.name.split(".")[0])
                if any(map(_is_private, alias.name.split("."))):
                    found.append(f"line {node.lineno}: import {alias.name}")
    return imported, found


def _private_uses(path: Path) -> list[str]:
    """What a runtime module takes from private internals of the SDK (or any other package it imports)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported, found = _imports(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _is_private(node.attr) and _self_attr(node) is None:
            if ast.unparse(node) not in PUBLIC_UNDERSCORE:
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "setattr"):
            name = node.args[1] if len(node.args) > 1 else None
            if isinstance(name, ast.Constant) and isinstance(name.value, str) and _is_private(name.value):
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.ClassDef):
            if any(ast.unparse(base).split(".")[0].split("[")[0] in imported for base in node.bases):
                found += _inherited_privates(node)
    return [f"{path.name} {use}" for use in dict.fromkeys(found)]


def test_only_the_adapter_touches_private_internals() -> None:
    """No runtime module but sdk_internals.py reads a private attribute or overrides a private method."""
    runtime = Path(__file__).parent.parent / "templates" / "mcpgw_runtime"
    modules = [path for path in sorted(runtime.glob("*.py")) if path.name != "sdk_internals.py"]
    found = [use for path in modules for use in _private_uses(path)]
    assert not found, f"private SDK/starlette internals outside {ADAPTER} (move them there, with a test here): {found}"
    assert _private_uses(runtime / "sdk_internals.py"), "the scan no longer sees the adapter's own private reads"
