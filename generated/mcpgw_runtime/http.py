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
from dataclasses import dataclass, field
from typing import Any

import anyio
import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.server.models import InitializationOptions
from mcp.server.sse import SseServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp_types.methods import serialize_server_result
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcpgw_runtime.auth import render_auth_metrics
from mcpgw_runtime.caller import CALLER
from mcpgw_runtime.fastpath import FastPath
from mcpgw_runtime.front import EarlySession, with_profiles
from mcpgw_runtime.gateway_server import Gateway
from mcpgw_runtime.guard import Guard, refuse
from mcpgw_runtime.httplimits import SSE_STREAMS, refuse_stream, render_http_limits
from mcpgw_runtime.limits import render_limits_metrics
from mcpgw_runtime.metrics import METRICS_CONTENT_TYPE, render_guard_refusals, render_served_without_sdk
from mcpgw_runtime.policy import render_policy_metrics
from mcpgw_runtime.profiles import DEFAULT, PROFILE
from mcpgw_runtime.sdk_internals import AdoptingManager, admitted_as, end_session, has_get_stream
from mcpgw_runtime.session_table import SessionTable, render_session_metrics

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


class SseEndpoint:
    """`GET /sse` as a plain ASGI app: the SDK's SSE transport writes the whole response itself.

    An object, not a function, so starlette routes to it without wrapping it in a
    `Request`: the transport needs ASGI's own `send`, which a `Request` keeps private.
    """

    def __init__(
        self,
        sse: SseServerTransport,
        server: Server[Any],
        init_options: InitializationOptions,
        max_streams: int,
        profile: str = DEFAULT,
    ) -> None:
        self.sse = sse
        self.server = server
        self.init_options = init_options
        self.max_streams = max_streams
        """`max_sse_streams`: a stream held by a client that never reads it costs a connection and a session,
        so one stream more gets 503 with Retry-After (httplimits.py counts them for `/metrics`)."""
        self.profile = profile
        """The profile this path serves (`/sse` or `/sse/<name>`); its session's handlers run under it."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not SSE_STREAMS.take(self.max_streams):
            await refuse_stream(send, self.max_streams)
            return
        token = PROFILE.set(self.profile)  # what the session's own task sends (its messages' handlers: InProfile)
        try:
            async with self.sse.connect_sse(scope, receive, send) as (read, write):
                await self.server.run(read, write, self.init_options)
        finally:
            PROFILE.reset(token)
            SSE_STREAMS.release()


class InProfile:
    """An ASGI app served in one profile: `/messages/<name>/`, where a `/sse/<name>` session's client posts.

    The SDK runs a message's handler in the context of the request that posted it (its
    dispatcher carries the sender's context variables over), so the profile is set here.
    """

    def __init__(self, app: ASGIApp, profile: str) -> None:
        self.app = app
        self.profile = profile

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = PROFILE.set(self.profile)
        try:
            await self.app(scope, receive, send)
        finally:
            PROFILE.reset(token)


class AsCaller:
    """An ASGI app whose requests carry the caller (caller.CALLER) as the SDK's `scope["user"]`.

    The SDK's legacy SSE transport binds a session to the user that opened it: a message posted
    to it by another caller is answered 404, as one to an unknown session (the session table does
    the same for Streamable HTTP). Without a caller (no token checked) nothing is set.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        caller = CALLER.get()
        if caller is not None and scope["type"] == "http":
            from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
            from mcp.server.auth.provider import AccessToken

            token = AccessToken(
                token="",
                client_id=caller.client_id or caller.kind,
                scopes=[],
                subject=f"{caller.kind}:{caller.subject}",
            )
            scope = {**scope, "user": AuthenticatedUser(token)}
        await self.app(scope, receive, send)


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
    fast: FastPath | None = None
    _ending: set[asyncio.Future[None]] = field(default_factory=set)

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
        """Open the SDK's session for one the front opened: same id, the client's own initialize replayed.

        The log level and subscriptions the session set with the front go to the hub.
        """
        headers = [(k, v) for k, v in session.headers if k.lower() not in (b"mcp-session-id", b"mcp-protocol-version")]
        PROFILE.set(session.profile)  # the replayed requests are the session's: served in its profile
        with admitted_as(sid.decode("latin-1")):
            status = await _replay(self.app, headers, session.initialize)
        if status != 200:
            raise RuntimeError(f"the replayed initialize got HTTP {status}")
        if session.initialized:
            headers += [(b"mcp-session-id", sid), (b"mcp-protocol-version", session.version.encode())]
            status = await _replay(self.app, headers, _INITIALIZED)
            if status != 202:
                raise RuntimeError(f"the replayed notifications/initialized got HTTP {status}")
        connection = self.gateway.hub.by_session(sid.decode("latin-1"))  # seen by the replayed initialize
        if connection is not None:
            self.gateway.hub.carry_over(connection, session.level, session.subscriptions)
        elif session.level is not None or session.subscriptions:  # the session itself still works
            log.warning("session %s: its log level and subscriptions were lost at adoption", sid.decode("latin-1"))
        log.debug("session %s: adopted from the front", sid.decode("latin-1"))

    def end_session(self, sid: bytes) -> None:
        """End an SDK session the session table evicted or expired: its id answers 404 at once."""
        if self.fast is not None:
            self.fast.sessions.pop(sid, None)  # else the fast path would go on answering it
        ending = end_session(self.manager, sid.decode("latin-1"))
        if ending is not None:
            task = asyncio.ensure_future(ending)
            self._ending.add(task)
            task.add_done_callback(self._ending.discard)

    def listening(self, sid: bytes) -> bool:
        """Whether the session's SDK transport has its GET stream."""
        return has_get_stream(self.manager, sid.decode("latin-1"))

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


def build_core(
    gateway: Gateway,
    guard: Guard,
    *,
    transports: Sequence[str],
    stateless: bool,
    sessions: SessionTable | None = None,
) -> LoadedCore:
    """Routes for the requested transports, the guard, the fast path; `Core.run` starts the backends.

    `sessions` is the front's session table: it caps and expires the SDK's sessions too, so
    the manager gets neither its own cap nor its own idle timer (session_table.py).
    """
    server = gateway.build_server()
    init_options = gateway.initialization_options(server)
    manager = AdoptingManager(
        app=server,
        stateless=stateless,
        max_request_body_size=gateway.spec.max_body_bytes,
        max_sessions=None,
        session_idle_timeout=None,
    )
    sse = SseServerTransport("/messages/", max_request_body_size=gateway.spec.max_body_bytes)

    async def healthz(request: Request) -> Response:
        health = with_profiles(gateway.spec, gateway.health())
        return Response(json.dumps(health, sort_keys=True), media_type="application/json")

    async def metrics(request: Request) -> Response:
        page = gateway.metrics() + render_served_without_sdk() + render_guard_refusals()
        page += render_session_metrics(sessions, gateway.sessions)
        page += render_http_limits() + render_auth_metrics() + render_policy_metrics() + render_limits_metrics()
        return Response(page, media_type=METRICS_CONTENT_TYPE)

    routes: list[Route | Mount] = [Route("/healthz", healthz), Route("/metrics", metrics)]
    if "http" in transports:
        routes.append(Route("/mcp", StreamableHTTPASGIApp(manager)))
    if "sse" in transports:
        for name in gateway.spec.profiles:  # each its own transport: a session is unknown on another's endpoint
            posts = f"/messages/{name}/"  # before /messages/, which would take it
            own = SseServerTransport(posts, max_request_body_size=gateway.spec.max_body_bytes)
            endpoint = AsCaller(SseEndpoint(own, server, init_options, gateway.spec.max_sse_streams, name))
            messages = InProfile(AsCaller(own.handle_post_message), name)
            routes += [Route(f"/sse/{name}", endpoint, methods=["GET"]), Mount(posts, app=messages)]
        sse_app = AsCaller(SseEndpoint(sse, server, init_options, gateway.spec.max_sse_streams))
        routes += [Route("/sse", sse_app, methods=["GET"]), Mount("/messages/", app=AsCaller(sse.handle_post_message))]
    app: ASGIApp = GuardMiddleware(Starlette(routes=routes), guard)
    fast = None
    if "http" in transports:
        app = fast = FastPath(app, gateway, guard.allows, stateless=stateless, max_body=gateway.spec.max_body_bytes)
    return LoadedCore(app, gateway, manager, init_options, fast=fast)
