"""The aggregate MCP server: answers lists from the embedded tables, routes the rest.

For handshake-era connections (up to 2025-11-25) `tools/list`, `prompts/list`
and `tools/call` take a fast path in front of the SDK's request pipeline: the
list answers are prebuilt, and a tool call only has its name rewritten before
the backend's raw result goes back unchanged (content, structuredContent,
isError, _meta), with no model validation either way. 2026-07-28 results carry
era envelope fields (resultType, cache hints) that the SDK's serializer owns, so
those requests and every other method run through the lowlevel `Server` handlers.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.lowlevel import NotificationOptions, Server
from mcp.server.models import InitializationOptions
from mcp.shared.exceptions import MCPError
from mcp.shared.uri_template import UriTemplate
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from mcpgw_runtime.backends import Backend
from mcpgw_runtime.spec import JSON, GatewaySpec, Target

log = logging.getLogger("mcpgw")

RESERVED_META_PREFIX = "io.modelcontextprotocol/"
"""Envelope keys of the upstream connection; they describe that hop, not the backend's."""


def _strip_meta(params: Mapping[str, Any]) -> dict[str, Any]:
    """Copy params, keeping only `_meta` entries that belong to the request itself."""
    out = dict(params)
    meta = out.get("_meta")
    if isinstance(meta, dict):
        kept = {k: v for k, v in meta.items() if not k.startswith(RESERVED_META_PREFIX)}
        if kept:
            out["_meta"] = kept
        else:
            del out["_meta"]
    return out


def _encode_cursor(index: int, inner: str | None) -> str:
    raw = json.dumps([index, inner], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_cursor(cursor: str) -> tuple[int, str | None]:
    try:
        index, inner = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError) as exc:
        raise MCPError(types.INVALID_PARAMS, "invalid cursor") from exc
    if not isinstance(index, int) or not (inner is None or isinstance(inner, str)):
        raise MCPError(types.INVALID_PARAMS, "invalid cursor")
    return index, inner


class Gateway:
    """Routing state shared by every upstream connection."""

    def __init__(self, spec: GatewaySpec, base_dir: Path) -> None:
        self.spec = spec
        self.backends = {b.name: Backend(b, base_dir, spec.generator) for b in spec.backends}
        self._tools_result: JSON = {"tools": list(spec.tools)}
        self._prompts_result: JSON = {"prompts": list(spec.prompts)}
        self._templates_result: JSON = {"resourceTemplates": [t for _, t in spec.resource_templates]}
        self._template_routes = [(UriTemplate.parse(t["uriTemplate"]), b) for b, t in spec.resource_templates]
        self._template_backends = {t["uriTemplate"]: b for b, t in spec.resource_templates}
        self._live_resources: dict[str, str] = {}
        self._fast = {
            "tools/list": self._fast_list_tools,
            "prompts/list": self._fast_list_prompts,
            "tools/call": self._fast_call_tool,
        }

    async def run_backends(self) -> None:
        """Start every backend concurrently; each reconnects on its own."""
        async with anyio.create_task_group() as tg:
            for backend in self.backends.values():
                tg.start_soon(backend.run)

    # -- routing -----------------------------------------------------------

    def _route(self, routes: Mapping[str, Target], name: str, kind: str) -> tuple[Backend, str]:
        route = routes.get(name)
        if route is None:
            raise MCPError(types.INVALID_PARAMS, f"unknown {kind}: {name!r}")
        return self.backends[route.backend], route.name

    def _resource_backend(self, uri: str) -> Backend:
        name = self.spec.resources.get(uri) or self._live_resources.get(uri)
        if name is None:
            for template, backend in self._template_routes:
                if template.match(uri) is not None:
                    name = backend
                    break
        if name is None:
            raise MCPError(types.INVALID_PARAMS, f"no backend offers resource {uri!r}")
        return self.backends[name]

    async def call_tool(self, params: Mapping[str, Any]) -> JSON:
        name = params.get("name")
        if not isinstance(name, str):
            raise MCPError(types.INVALID_PARAMS, "tools/call needs a string 'name'")
        backend, original = self._route(self.spec.tool_routes, name, "tool")
        forwarded = _strip_meta(params)
        forwarded["name"] = original
        return await backend.request("tools/call", forwarded, tool=original)

    async def get_prompt(self, params: Mapping[str, Any]) -> JSON:
        backend, original = self._route(self.spec.prompt_routes, str(params.get("name")), "prompt")
        forwarded = _strip_meta(params)
        forwarded["name"] = original
        return await backend.request("prompts/get", forwarded)

    async def read_resource(self, params: Mapping[str, Any]) -> JSON:
        return await self._resource_backend(str(params.get("uri"))).request("resources/read", _strip_meta(params))

    async def list_resources(self, cursor: str | None) -> JSON:
        """One page of one backend at a time; the cursor remembers which backend and where."""
        order = [b for b in self.backends.values() if self._offers_resources(b)]
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
            result: JSON = {"resources": resources}
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
        forwarded = _strip_meta(params)
        if isinstance(ref, dict) and ref.get("type") == "ref/prompt":
            backend, original = self._route(self.spec.prompt_routes, str(ref.get("name")), "prompt")
            forwarded["ref"] = {**ref, "name": original}
        elif isinstance(ref, dict) and ref.get("type") == "ref/resource":
            uri = str(ref.get("uri"))
            name = self._template_backends.get(uri)
            backend = self.backends[name] if name else self._resource_backend(uri)
        else:
            raise MCPError(types.INVALID_PARAMS, "completion/complete needs a ref/prompt or ref/resource")
        return await backend.request("completion/complete", forwarded)

    # -- fast path -----------------------------------------------------------

    async def _fast_list_tools(self, ctx: ServerRequestContext[Any, Any]) -> JSON:
        return self._tools_result

    async def _fast_list_prompts(self, ctx: ServerRequestContext[Any, Any]) -> JSON:
        return self._prompts_result

    async def _fast_call_tool(self, ctx: ServerRequestContext[Any, Any]) -> JSON:
        params = ctx.params
        if not isinstance(params, Mapping):
            raise MCPError(types.INVALID_PARAMS, "tools/call needs params")
        return await self.call_tool(params)

    async def middleware(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        """Serve the hot methods directly; hand everything else to the SDK pipeline."""
        fast = self._fast.get(ctx.method)
        if fast is None or ctx.request_id is None or ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
            # 2026-07-28 results carry per-era envelope fields (resultType, cache hints)
            # that the SDK's serializer owns; let it shape them.
            return await call_next(ctx)
        return await fast(ctx)  # the runner copies it onto the wire; no second copy here

    # -- SDK server ----------------------------------------------------------

    def build_server(self) -> Server[Any]:
        """The lowlevel server; handlers exist for every method so capabilities are advertised."""

        async def list_tools(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
            return types.ListToolsResult.model_validate(self._tools_result)

        async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
            raw = await self.call_tool(params.model_dump(by_alias=True, exclude_none=True))
            return types.CallToolResult.model_validate(raw)

        async def list_prompts(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListPromptsResult:
            return types.ListPromptsResult.model_validate(self._prompts_result)

        async def get_prompt(ctx: Any, params: types.GetPromptRequestParams) -> types.GetPromptResult:
            raw = await self.get_prompt(params.model_dump(by_alias=True, exclude_none=True))
            return types.GetPromptResult.model_validate(raw)

        async def list_resources(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListResourcesResult:
            page = await self.list_resources(params.cursor if params else None)
            return types.ListResourcesResult.model_validate(page)

        async def list_templates(
            ctx: Any, params: types.PaginatedRequestParams | None
        ) -> types.ListResourceTemplatesResult:
            return types.ListResourceTemplatesResult.model_validate(self._templates_result)

        async def read_resource(ctx: Any, params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
            raw = await self.read_resource(params.model_dump(by_alias=True, exclude_none=True))
            return types.ReadResourceResult.model_validate(raw)

        async def complete(ctx: Any, params: types.CompleteRequestParams) -> types.CompleteResult:
            raw = await self.complete(params.model_dump(by_alias=True, exclude_none=True))
            return types.CompleteResult.model_validate(raw)

        server: Server[Any] = Server(
            self.spec.name,
            version=self.spec.version,
            instructions=self.spec.instructions,
            on_list_tools=list_tools,
            on_call_tool=call_tool,
            on_list_prompts=list_prompts,
            on_get_prompt=get_prompt,
            on_list_resources=list_resources,
            on_list_resource_templates=list_templates,
            on_read_resource=read_resource,
            on_completion=complete,
        )
        server.middleware.insert(0, self.middleware)
        return server

    def initialization_options(self, server: Server[Any]) -> InitializationOptions:
        return server.create_initialization_options(NotificationOptions())

    def health(self) -> JSON:
        backends = {name: b.health() for name, b in sorted(self.backends.items())}
        ready = all(b["state"] == "ready" for b in backends.values())
        return {"status": "ok" if ready else "degraded", "backends": backends}
