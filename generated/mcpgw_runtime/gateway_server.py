# mcpgw runtime, vendored into every generated gateway. DO NOT EDIT the copy in dist/: its digest is checked at start.
"""The aggregate MCP server: answers lists from the embedded tables, routes the rest.

For handshake-era connections (up to 2025-11-25) `tools/list`, `prompts/list`
and `tools/call` take a fast path in front of the SDK's request pipeline: the
list answers are prebuilt, and a tool call only has its name rewritten before
the backend's raw result goes back unchanged (content, structuredContent,
isError, _meta), with no model validation either way. 2026-07-28 results carry
era envelope fields (resultType, cache hints) that the SDK's serializer owns, so
those requests and every other method run through the lowlevel `Server` handlers.
There a 2026-07-28 `tools/call`, `prompts/get` or `resources/read` whose backend asks
the client something answers with input-required rounds (rounds.py), their
`requestState` sealed by the SDK's `RequestStateBoundary` (innermost middleware).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pydantic_core
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.models import InitializationOptions
from mcp.shared.exceptions import MCPError
from mcp.shared.uri_template import UriTemplate
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from mcpgw_runtime import exchange
from mcpgw_runtime.backends import Backend
from mcpgw_runtime.exchange import AUDITED
from mcpgw_runtime.exposure import Exposure
from mcpgw_runtime.forwarding import Refused, timeout_for, unknown
from mcpgw_runtime.front_backends import Takeover, strip_meta
from mcpgw_runtime.limits import Limits
from mcpgw_runtime.listing import decode_cursor
from mcpgw_runtime.listing import encode_cursor as _encode_cursor
from mcpgw_runtime.metrics import render_metrics
from mcpgw_runtime.profiles import Profiles
from mcpgw_runtime.relay import ORIGIN, Origin, UpstreamHub
from mcpgw_runtime.rounds import Rounds
from mcpgw_runtime.sdk_server import build_server as build_sdk_server
from mcpgw_runtime.sessions import ClientSessions
from mcpgw_runtime.spec import JSON, GatewaySpec

log = logging.getLogger("mcpgw")


_decode_cursor = functools.partial(decode_cursor, error=MCPError)


class Gateway:
    """Routing state shared by every upstream connection."""

    def __init__(self, spec: GatewaySpec, base_dir: Path, running: Mapping[str, Takeover] | None = None) -> None:
        self.spec = spec
        running = running or {}
        self.backends = {
            b.name: Backend(b, base_dir, spec.generator, running=running.get(b.name)) for b in spec.backends
        }
        self.exposure = Exposure(spec, self.backends, self.hub)
        """What clients see right now: the embedded tables, then the pins' verdicts (exposure.py)."""
        self.profiles = Profiles(spec)
        """What the request's profile lists and may call (profiles.py); `/mcp` and `/sse` see everything.
        With `gateway.policy`, what the request's caller may use of it (policy.py)."""
        self.limits = Limits.of(spec.limits) if spec.limits is not None else None
        """Rate limits and result caps (limits.py), shared with the front."""
        for backend in self.backends.values():
            backend.verify = self.exposure.verify
        self._templates_result: JSON = {"resourceTemplates": [t for _, t in spec.resource_templates]}
        self._template_routes = [(UriTemplate.parse(t["uriTemplate"]), b) for b, t in spec.resource_templates]
        self._template_backends = {t["uriTemplate"]: b for b, t in spec.resource_templates}
        self._live_resources: dict[str, str] = {}
        self._fast = {
            "tools/list": self._fast_list_tools,
            "prompts/list": self._fast_list_prompts,
            "tools/call": self._fast_call_tool,
        }
        self.rounds = Rounds()
        """2026-07-28 calls waiting for the client's input (rounds.py)."""
        self.transport = "tcp"
        """How clients reach this gateway, as OpenTelemetry's `network.transport`: "tcp" (HTTP), "pipe" (stdio)."""
        self.sessions = {
            b.name: ClientSessions(b, self.hub, self.exposure.check_client, self.exposure.refused_on_client_session)
            for b in self.backends.values()
            if b.spec.session == "per-client"
        }
        """`session: per-client` backends: one connection per upstream session (sessions.py)."""

    async def run_backends(self) -> None:
        """Start every backend concurrently; each reconnects on its own. Cancelled at shutdown.

        `rounds.run` is not among them: it must run from the first request on, which with
        sessions to adopt (front.py) comes before the backends start.
        """
        async with anyio.create_task_group() as tg:
            for backend in self.backends.values():
                backend.relay.hub = self.hub
                tg.start_soon(backend.run)
            for sessions in self.sessions.values():
                tg.start_soon(sessions.run)

    def per_client(self, tool: str) -> bool:
        """Whether a call of this exposed tool must know its upstream session (`session: per-client`).

        A path that calls `call_tool` without setting `ORIGIN` (the HTTP fast path) must not take it.
        """
        return self.exposure.routes_to("tool", tool) in self.sessions

    def called(self, params: object) -> str | None:
        """The exposed tool a tools/call's params run, in the request's profile (a search profile's `call_tool`
        unwrapped); None when they name none."""
        return self.profiles.target(params)

    @functools.cached_property
    def hub(self) -> UpstreamHub:
        """The upstream clients, their log levels and resource subscriptions (see relay.py)."""
        return UpstreamHub()

    # -- routing -----------------------------------------------------------

    def _route(self, kind: str, name: str) -> tuple[Backend, str]:
        if not self.profiles.allows(kind, name):  # outside the request's profile: as if it did not exist
            refused = unknown(kind, name)
            raise MCPError(refused.code, refused.message)
        target = self.exposure.route(kind, name)
        self._permit(kind, name)
        return self.backends[target.backend], target.name

    def _permit(self, kind: str, name: str) -> None:
        """The policy's denial of the request's caller (policy.py), as the SDK's error."""
        if self.profiles.policy is not None:
            try:
                self.profiles.permit(kind, name)
            except Refused as refused:
                raise MCPError(refused.code, refused.message, refused.data) from None

    def list_result(self, method: str) -> JSON:
        """The current answer to `tools/list` or `prompts/list` in the request's profile (a new object whenever
        it changes)."""
        return self.profiles.listing(method, self.exposure.list_result(method))

    @property
    def templates_result(self) -> JSON:
        """The answer to `resources/templates/list` in the request's profile."""
        if self.profiles.current() is None and self.profiles.policy is None:
            return self._templates_result
        return {"resourceTemplates": self.profiles.templates(self.spec.resource_templates)}

    def _resource_backend(self, uri: str) -> Backend:
        name = self.spec.resources.get(uri) or self._live_resources.get(uri)
        if name is None:
            for template, backend in self._template_routes:
                if template.match(uri) is not None:
                    name = backend
                    break
        if name is None or not self.profiles.shows_resource(uri, name):
            raise MCPError(types.INVALID_PARAMS, f"no backend offers resource {uri!r}")
        self._permit("resource", uri)
        return self.backends[name]

    def _direct(self, params: Mapping[str, Any]) -> Mapping[str, Any]:
        """The call a search profile's `call_tool` names (profiles.py); other calls unchanged."""
        try:
            return self.profiles.direct(params)
        except ValueError as exc:
            raise MCPError(types.INVALID_PARAMS, str(exc)) from None

    async def call_tool(self, params: Mapping[str, Any]) -> JSON:
        found = self.profiles.search(params, self.exposure.list_result("tools/list"))
        if found is not None:  # a search profile's search tool: answered from its compiled index
            return found
        params = self._direct(params)
        name = params.get("name")
        if not isinstance(name, str):
            raise MCPError(types.INVALID_PARAMS, "tools/call needs a string 'name'")
        backend, original = self._route("tool", name)
        forwarded = strip_meta(params)
        forwarded["name"] = original
        if self.limits is None:
            return await backend.request("tools/call", forwarded, tool=original)
        try:
            self.limits.admit(name)
            return self.limits.cap(name, await backend.request("tools/call", forwarded, tool=original))
        except Refused as refused:
            raise MCPError(refused.code, refused.message, refused.data) from None

    async def get_prompt(self, params: Mapping[str, Any]) -> JSON:
        backend, original = self._route("prompt", str(params.get("name")))
        forwarded = strip_meta(params)
        forwarded["name"] = original
        return await backend.request("prompts/get", forwarded)

    async def read_resource(self, params: Mapping[str, Any]) -> JSON:
        return await self._resource_backend(str(params.get("uri"))).request("resources/read", strip_meta(params))

    async def list_resources(self, cursor: str | None) -> JSON:
        """One page of one backend at a time; the cursor remembers which backend and where."""
        order = [b for b in self.backends.values() if self._offers_resources(b) and self.profiles.shows_backend(b.name)]
        index, inner = _decode_cursor(cursor) if cursor else (0, None)
        while index < len(order):
            backend = order[index]
            try:
                page = await backend.request("resources/list", {"cursor": inner} if inner else None)
            except MCPError as exc:
                log.warning("resources/list skipped backend %s: %s", backend.name, exc.error.message)
                index, inner = index + 1, None
                continue
            resources = [
                r
                for r in page.get("resources") or []
                if isinstance(r, dict) and isinstance(r.get("uri"), str) and backend.spec.exposes_resource(r["uri"])
            ]
            for resource in resources:
                self._live_resources[resource["uri"]] = backend.name
            following = page.get("nextCursor")
            result: JSON = {"resources": self.profiles.resources(backend.name, resources)}
            if isinstance(following, str) and following:
                result["nextCursor"] = _encode_cursor(index, following)
            elif index + 1 < len(order):
                result["nextCursor"] = _encode_cursor(index + 1, None)
            return result
        return {"resources": []}

    def _offers_resources(self, backend: Backend) -> bool:
        conn = backend.connection
        if conn is None:
            return True  # unknown until connected: ask, and let the request wait or fail
        return conn.init.capabilities.resources is not None

    async def complete(self, params: Mapping[str, Any]) -> JSON:
        ref = params.get("ref")
        forwarded = strip_meta(params)
        if isinstance(ref, dict) and ref.get("type") == "ref/prompt":
            backend, original = self._route("prompt", str(ref.get("name")))
            forwarded["ref"] = {**ref, "name": original}
        elif isinstance(ref, dict) and ref.get("type") == "ref/resource":
            uri = str(ref.get("uri"))
            name = self._template_backends.get(uri)
            if name is not None and not self.profiles.shows_resource(uri, name):
                raise MCPError(types.INVALID_PARAMS, f"no backend offers resource {uri!r}")
            if name is not None:
                self._permit("resource", uri)
            backend = self.backends[name] if name else self._resource_backend(uri)
        else:
            raise MCPError(types.INVALID_PARAMS, "completion/complete needs a ref/prompt or ref/resource")
        return await backend.request("completion/complete", forwarded)

    # -- 2026-07-28: input-required rounds --------------------------------------

    async def interactive(
        self,
        ctx: ServerRequestContext[Any, Any],
        params: types.InputResponseRequestParams,
        forward: Callable[[Mapping[str, Any]], Awaitable[JSON]],
    ) -> JSON | types.InputRequiredResult:
        """`tools/call`, `prompts/get` or `resources/read` on the SDK path.

        Handshake-era clients are asked over the request's back-channel (relay.py); for a
        2026-07-28 client the call runs as an exchange whose backend requests become
        input-required rounds (rounds.py), and a retry carrying requestState resumes it.
        """
        forwarded = params.model_dump(by_alias=True, exclude_none=True, exclude={"input_responses", "request_state"})
        if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            return await forward(forwarded)
        if params.request_state is not None:
            responses = (ctx.params or {}).get("inputResponses")  # raw: relayed as the client sent them
            return await self.rounds.resume(
                ctx, params.request_state, responses if isinstance(responses, Mapping) else None
            )
        ttl = self._call_timeout(ctx.method, forwarded)  # also fails an unknown name before anything starts
        return await self.rounds.start(ctx, functools.partial(forward, forwarded), ttl)

    def _call_timeout(self, method: str, params: Mapping[str, Any]) -> float:
        if method == "resources/read":
            return self._resource_backend(str(params.get("uri"))).spec.timeout
        if method == "prompts/get":
            return self._route("prompt", str(params.get("name")))[0].spec.timeout
        if self.profiles.search(params, self.exposure.list_result("tools/list")) is not None:
            return max([b.spec.timeout for b in self.backends.values()], default=60.0)  # answered at once anyway
        backend, original = self._route("tool", str(self._direct(params).get("name")))
        return timeout_for(backend.spec, original)

    # -- fast path -----------------------------------------------------------

    async def _fast_list_tools(self, ctx: ServerRequestContext[Any, Any]) -> JSON:
        return self.list_result("tools/list")

    async def _fast_list_prompts(self, ctx: ServerRequestContext[Any, Any]) -> JSON:
        return self.list_result("prompts/list")

    async def _fast_call_tool(self, ctx: ServerRequestContext[Any, Any]) -> JSON:
        params = ctx.params
        if not isinstance(params, Mapping):
            raise MCPError(types.INVALID_PARAMS, "tools/call needs params")
        return await self.call_tool(params)

    async def middleware(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        """Serve the hot methods directly; hand everything else to the SDK pipeline."""
        origin = Origin(ctx)
        self.hub.seen(origin.connection)
        token = ORIGIN.set(origin if ctx.request_id is not None else None)  # what backends ask goes back here
        try:
            if exchange.ACTIVE and ctx.request_id is not None and ctx.method in AUDITED:
                sid = origin.connection.session_id
                seen = exchange.begin(ctx.method, ctx.params, ctx.request_id, sid, self.transport)
                result = await seen.awaiting(self._dispatch(ctx, call_next))  # recorded before it is answered
                seen.ok(_size(result))
                return result
            return await self._dispatch(ctx, call_next)
        finally:
            ORIGIN.reset(token)

    async def _dispatch(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        fast = self._fast.get(ctx.method)
        if fast is None or ctx.request_id is None or ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
            # 2026-07-28 results carry per-era envelope fields (resultType, cache hints)
            # that the SDK's serializer owns; let it shape them.
            return await call_next(ctx)
        return await fast(ctx)  # the runner copies it onto the wire; no second copy here

    # -- subscriptions and logging -------------------------------------------

    async def subscribe(self, ctx: ServerRequestContext[Any, Any], params: types.SubscribeRequestParams) -> JSON:
        """Forward to the backend that serves the URI; remember who wants its updates."""
        uri = str(params.uri)
        await self._resource_backend(uri).request("resources/subscribe", {"uri": uri})
        self.hub.subscribe(Origin(ctx).connection, uri)
        return {}

    async def unsubscribe(self, ctx: ServerRequestContext[Any, Any], params: types.UnsubscribeRequestParams) -> JSON:
        """The backend is unsubscribed when the last client subscribed to the URI is."""
        uri = str(params.uri)
        origin = Origin(ctx)
        backend = self._resource_backend(uri)
        last = self.hub.unsubscribe(origin.connection, uri)
        if last or (backend.name in self.sessions and origin.has_session):  # per-client: its own connection
            await backend.request("resources/unsubscribe", {"uri": uri})
        return {}

    async def set_level(self, ctx: ServerRequestContext[Any, Any], params: types.SetLevelRequestParams) -> JSON:
        """Each client hears its own level; backends are set to the most verbose level any client wants."""
        client = Origin(ctx).connection
        level = self.hub.set_level(client, params.level)
        token = ORIGIN.set(None)  # the shared connections; per-client ones are not opened just for this
        try:
            for backend in self.backends.values():
                conn = backend.connection
                if conn is not None and conn.init.capabilities.logging is not None:
                    try:
                        await backend.request("logging/setLevel", {"level": level})
                    except MCPError as exc:
                        log.warning("backend %s: logging/setLevel failed: %s", backend.name, exc.error.message)
        finally:
            ORIGIN.reset(token)
        for sessions in self.sessions.values():
            await sessions.set_level(client, params.level)  # the client's own connection, if open
        return {}

    def build_server(self) -> Server[Any]:
        return build_sdk_server(self)

    def initialization_options(self, server: Server[Any]) -> InitializationOptions:
        return server.create_initialization_options()

    def health(self) -> JSON:
        backends = {name: b.health() for name, b in sorted(self.backends.items())}
        for name, sessions in self.sessions.items():
            backends[name]["client_sessions"] = {"open": len(sessions), "pids": sessions.pids()}
        ready = all(b["state"] == "ready" for b in backends.values())
        return {"status": "ok" if ready else "degraded", "backends": backends}

    def metrics(self) -> str:
        """The `/metrics` page (Prometheus text): per-backend counters, latency, states, pin holds."""
        return render_metrics(
            self.backends.values(), self.exposure.held, self.exposure.refused, profiled=bool(self.spec.profiles)
        )


def _size(result: HandlerResult) -> int:
    """A result's size as compact JSON (the audit log's `response_bytes` on the SDK's path)."""
    if result is None:
        return 0
    if isinstance(result, dict):
        return len(pydantic_core.to_json(result))
    return len(result.model_dump_json(by_alias=True, exclude_none=True))
