# mcpgw runtime, vendored into every generated gateway. DO NOT EDIT the copy in dist/: its digest is checked at start.
"""The core's HTTP face: `/mcp`, `/sse` + `/messages/`, `/healthz`, `/metrics`, behind the guard.

The front (front.py) runs it once it is loaded; the sessions the front opened
before are adopted here, under their own ids, so their clients never notice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import anyio
import mcp_types as types
from mcp.server.sse import SseServerTransport
from mcp.server.streamable_http import GET_STREAM_KEY, StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp_types.methods import serialize_server_result
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcpgw_runtime.fastpath import FastPath
from mcpgw_runtime.front import EarlySession
from mcpgw_runtime.guard import Guard, refuse
from mcpgw_runtime.metrics import METRICS_CONTENT_TYPE
from mcpgw_runtime.server import Gateway

log = logging.getLogger("mcpgw")


class GuardMiddleware:
    """Pure ASGI so streaming responses (SSE) pass through untouched."""

    def __init__(self, app: ASGIApp, guard: Guard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self.guard.refusal(dict(scope["headers"]))
        if refusal is None:
            await self.app(scope, receive, send)
        else:
            await refuse(scope, send, refusal)


ADOPTING: ContextVar[str | None] = ContextVar("mcpgw_adopting", default=None)
"""Set while a session the front opened is replayed into the SDK: the id its new session must get."""


class AdoptingManager(StreamableHTTPSessionManager):
    """The SDK's session manager, except that an adopted session keeps the id the front gave it.

    `_admit_session` is the SDK's one place that names a new session; the id is
    changed there, before the session is served (tests/test_sdk_adapter.py
    checks that the method and the fields it touches still exist).
    """

    def _admit_session(self, requestor: Any) -> StreamableHTTPServerTransport | None:
        transport = super()._admit_session(requestor)
        wanted = ADOPTING.get()
        if transport is None or wanted is None:
            return transport
        given = transport.mcp_session_id
        assert given is not None
        self._server_instances[wanted] = self._server_instances.pop(given)
        if given in self._session_owners:
            self._session_owners[wanted] = self._session_owners.pop(given)
        transport.mcp_session_id = wanted
        return transport


_INITIALIZED = b'{"jsonrpc":"2.0","method":"notifications/initialized"}'


async def _replay(app: ASGIApp, headers: list[tuple[bytes, bytes]], body: bytes) -> int:
    """POST `body` to `/mcp` of `app` as if a client had; the response is read to its end and dropped."""
    kept = [(k, v) for k, v in headers if k.lower() != b"content-length"]
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/mcp",
        "raw_path": b"/mcp",
        "root_path": "",
        "query_string": b"",
        "headers": [*kept, (b"content-length", b"%d" % len(body))],
        "client": ("127.0.0.1", 0),
        "server": ("127.0.0.1", 0),
        "state": {},
    }
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]
    done = anyio.Event()
    status = 0

    async def receive() -> Message:
        if pending:
            return pending.pop()
        await done.wait()  # a streaming response listens for the client leaving; it leaves once the answer is in
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            done.set()

    await app(scope, receive, send)
    done.set()
    return status


@dataclass(eq=False)
class LoadedCore:
    """The loaded core as the front sees it (front.Core): the app, its lifetime, session adoption."""

    app: ASGIApp
    gateway: Gateway
    manager: StreamableHTTPSessionManager
    init_options: Any
    _stop: tuple[asyncio.AbstractEventLoop, anyio.CancelScope] | None = None
    _go: anyio.Event | None = None

    @contextlib.asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        """The session manager, and the backends once `start_backends` is called, until the context ends."""
        async with anyio.create_task_group() as tg:
            backends_scope = anyio.CancelScope()  # only the backends: sessions live on to send the errors
            self._stop = (asyncio.get_running_loop(), backends_scope)
            go = self._go = anyio.Event()

            async def run_backends() -> None:
                with backends_scope:
                    await go.wait()
                    await self.gateway.run_backends()

            await tg.start(self.gateway.rounds.run)  # a 2026-07-28 call may come before the backends start
            tg.start_soon(run_backends)
            async with self.manager.run():
                try:
                    yield
                finally:
                    tg.cancel_scope.cancel()

    def start_backends(self) -> None:
        if self._go is not None:
            self._go.set()

    def stop_backends(self) -> None:
        """Called from the signal handler: mark every backend stopping, cancel them on the loop."""
        for backend in self.gateway.backends.values():
            backend.stopping = True
        if self._stop is not None:
            loop, scope = self._stop
            loop.call_soon_threadsafe(scope.cancel)

    async def adopt(self, sid: bytes, session: EarlySession) -> None:
        """Open the SDK's session for one the front opened: same id, the client's own initialize replayed."""
        headers = [(k, v) for k, v in session.headers if k.lower() not in (b"mcp-session-id", b"mcp-protocol-version")]
        token = ADOPTING.set(sid.decode("latin-1"))
        try:
            status = await _replay(self.app, headers, session.initialize)
        finally:
            ADOPTING.reset(token)
        if status != 200:
            raise RuntimeError(f"the replayed initialize got HTTP {status}")
        if session.initialized:
            headers += [(b"mcp-session-id", sid), (b"mcp-protocol-version", session.version.encode())]
            status = await _replay(self.app, headers, _INITIALIZED)
            if status != 202:
                raise RuntimeError(f"the replayed notifications/initialized got HTTP {status}")
        log.debug("session %s: adopted from the front", sid.decode("latin-1"))

    def listening(self, sid: bytes) -> bool:
        """Whether the session's SDK transport has its GET stream (tests/test_sdk_adapter.py checks the names)."""
        transport = self.manager._server_instances.get(sid.decode("latin-1"))
        return transport is not None and GET_STREAM_KEY in transport._request_streams

    def initialize_result(self, version: str) -> dict[str, Any]:
        """What the SDK's server puts on the wire for `initialize` at this handshake-era version.

        Built as its runner builds it (`_handle_initialize`, then the per-version sieve), so
        the front's own answer can be checked against it at every start.
        """
        opts = self.init_options
        result = types.InitializeResult(
            protocol_version=version,
            capabilities=opts.capabilities,
            server_info=types.Implementation(
                name=opts.server_name,
                title=opts.title,
                description=opts.description,
                version=opts.server_version,
                website_url=opts.website_url,
                icons=opts.icons,
            ),
            instructions=opts.instructions,
        )
        dumped = result.model_dump(by_alias=True, mode="json", exclude_none=True)
        return serialize_server_result("initialize", version, dumped)


def build_core(gateway: Gateway, guard: Guard, *, transports: Sequence[str], stateless: bool) -> LoadedCore:
    """Routes for the requested transports, the guard, the fast path; `Core.run` starts the backends."""
    server = gateway.build_server()
    init_options = gateway.initialization_options(server)
    manager = AdoptingManager(app=server, stateless=stateless, max_request_body_size=gateway.spec.max_body_bytes)
    sse = SseServerTransport("/messages/", max_request_body_size=gateway.spec.max_body_bytes)

    async def handle_sse(request: Request) -> Response:
        async with sse.connect_sse(request.scope, request.receive, request._send) as (read, write):
            await server.run(read, write, init_options)
        return Response()

    async def healthz(request: Request) -> Response:
        return Response(json.dumps(gateway.health(), sort_keys=True), media_type="application/json")

    fast: list[FastPath] = []

    async def metrics(request: Request) -> Response:
        page = gateway.metrics()
        if fast:
            page += (
                "# HELP mcpgw_fast_path_requests_total POST /mcp requests answered by the fast path (fastpath.py).\n"
                "# TYPE mcpgw_fast_path_requests_total counter\n"
                f"mcpgw_fast_path_requests_total {fast[0].served}\n"
            )
        return Response(page, media_type=METRICS_CONTENT_TYPE)

    routes: list[Route | Mount] = [Route("/healthz", healthz), Route("/metrics", metrics)]
    if "http" in transports:
        routes.append(Route("/mcp", StreamableHTTPASGIApp(manager)))
    if "sse" in transports:
        routes += [Route("/sse", handle_sse, methods=["GET"]), Mount("/messages/", app=sse.handle_post_message)]
    app: ASGIApp = GuardMiddleware(Starlette(routes=routes), guard)
    if "http" in transports:
        fast.append(FastPath(app, gateway, guard.allows, stateless=stateless, max_body=gateway.spec.max_body_bytes))
        app = fast[0]
    return LoadedCore(app, gateway, manager, init_options)
