"""The HTTP face of the gateway: `/mcp`, `/sse` + `/messages/`, `/healthz`, `/metrics`, behind one guard.

The guard runs before any MCP code: Host (421), Origin (403) and, when a token
is configured, `Authorization: Bearer` (401, constant-time compare). It covers
every route, so health data is exactly as protected as the tools.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType

import anyio
from mcp.server.sse import SseServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from mcpgw_runtime.fastpath import FastPath
from mcpgw_runtime.metrics import METRICS_CONTENT_TYPE
from mcpgw_runtime.server import Gateway

log = logging.getLogger("mcpgw")

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


@dataclass(frozen=True, slots=True)
class Guard:
    """Who may talk to the gateway: allowed Host and Origin patterns and an optional token."""

    allowed_hosts: tuple[str, ...]
    allowed_origins: tuple[str, ...]
    token: str | None

    @classmethod
    def for_bind(cls, host: str, port: int, hosts: Sequence[str], origins: Sequence[str], token: str | None) -> Guard:
        """Loopback names are always allowed; the bind address too when it is not a wildcard."""
        names = list(LOOPBACK_HOSTS)
        if host not in ("0.0.0.0", "::", "") and host not in names:
            names.append(f"[{host}]" if ":" in host else host)
        allowed_hosts = tuple(dict.fromkeys([*names, *hosts]))
        allowed_origins = tuple(
            dict.fromkeys([*(f"http://{n}" for n in names), *(f"https://{n}" for n in names), *origins])
        )
        return cls(allowed_hosts, allowed_origins, token)

    def host_ok(self, host: str | None) -> bool:
        if not host:
            return False
        if host in self.allowed_hosts or "*" in self.allowed_hosts:
            return True
        bare = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return bare in self.allowed_hosts

    def origin_ok(self, origin: str | None) -> bool:
        if origin is None:
            return True  # non-browser clients send none; browsers always do
        if origin in self.allowed_origins or "*" in self.allowed_origins:
            return True
        scheme, _, rest = origin.partition("://")
        bare = rest.rsplit(":", 1)[0] if not rest.endswith("]") else rest
        return f"{scheme}://{bare}" in self.allowed_origins

    def allows(self, headers: Mapping[bytes, bytes]) -> bool:
        """All three checks on raw ASGI headers (for the fast path, which runs before the middleware)."""

        def header(name: bytes) -> str | None:
            value = headers.get(name)
            return value.decode("latin-1") if value is not None else None

        return (
            self.host_ok(header(b"host"))
            and self.origin_ok(header(b"origin"))
            and self.token_ok(header(b"authorization"))
        )

    def token_ok(self, authorization: str | None) -> bool:
        if self.token is None:
            return True
        if not authorization or not authorization.lower().startswith("bearer "):
            return False
        return hmac.compare_digest(authorization[7:].strip().encode(), self.token.encode())


class GuardMiddleware:
    """Pure ASGI so streaming responses (SSE) pass through untouched."""

    def __init__(self, app: ASGIApp, guard: Guard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        if not self.guard.host_ok(headers.get("host")):
            response = Response("Invalid Host header", status_code=421)
        elif not self.guard.origin_ok(headers.get("origin")):
            response = Response("Invalid Origin header", status_code=403)
        elif not self.guard.token_ok(headers.get("authorization")):
            response = Response(
                "Missing or invalid bearer token", status_code=401, headers={"WWW-Authenticate": "Bearer"}
            )
        else:
            await self.app(scope, receive, send)
            return
        log.warning("refused %s %s: HTTP %d", scope.get("method"), scope.get("path"), response.status_code)
        await response(scope, receive, send)


def build_app(gateway: Gateway, guard: Guard, *, transports: Sequence[str], stateless: bool) -> HttpApp:
    """Routes for the requested transports, a lifespan that runs the backends, the guard, the fast path."""
    server = gateway.build_server()
    init_options = gateway.initialization_options(server)
    manager = StreamableHTTPSessionManager(
        app=server, stateless=stateless, max_request_body_size=gateway.spec.max_body_bytes
    )
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

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            tg = await stack.enter_async_context(anyio.create_task_group())
            loop = asyncio.get_running_loop()
            backends_scope = anyio.CancelScope()  # only the backends: sessions live on to send the errors

            async def run_backends() -> None:
                with backends_scope:
                    await gateway.run_backends()

            def stop() -> None:
                for backend in gateway.backends.values():
                    backend.stopping = True
                backends_scope.cancel()

            app.state.stop_backends = lambda: loop.call_soon_threadsafe(stop)
            tg.start_soon(run_backends)
            await stack.enter_async_context(manager.run())
            try:
                yield
            finally:
                tg.cancel_scope.cancel()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.add_middleware(GuardMiddleware, guard=guard)
    if "http" not in transports:
        return app
    fast.append(FastPath(app, gateway, guard.allows, stateless=stateless, max_body=gateway.spec.max_body_bytes))
    return fast[0]


HttpApp = Starlette | FastPath


SHUTDOWN_GRACE = 1
"""Seconds uvicorn waits for open connections after SIGINT/SIGTERM before cancelling them."""


def serve_http(app: HttpApp, *, host: str, port: int, log_level: str) -> None:
    """Run uvicorn; on SIGINT/SIGTERM stop the backends at once, in parallel with uvicorn's drain.

    Stopping a backend fails its in-flight calls with an MCP error ("gateway is
    shutting down") and stops its process group (stdin closed, SIGTERM, SIGKILL
    after `STOP_GRACE`), so the whole shutdown stays well under 5 seconds.
    """
    import uvicorn

    class _Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            super().handle_exit(sig, frame)
            stop = getattr(app.state, "stop_backends", None)
            if stop is not None:
                log.info("signal %d: shutting down; failing in-flight calls and stopping backends", sig)
                stop()

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        lifespan="on",
        timeout_graceful_shutdown=SHUTDOWN_GRACE,
        proxy_headers=False,  # nothing here reads the client address; it cost 8% of a call's CPU
    )
    _Server(config).run()
