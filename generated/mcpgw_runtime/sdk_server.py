# mcpgw runtime, vendored into every generated gateway. DO NOT EDIT the copy in dist/: its digest is checked at start.
"""The SDK's lowlevel `Server` for the gateway: a handler per method, so every capability is advertised.

The handlers shape the gateway's raw results into the SDK's models, which own
the 2026-07-28 envelope fields; the hot handshake-era methods skip them through
`Gateway.middleware`. Also the sealing of input-required rounds' requestState.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import NotificationOptions, Server
from mcp.server.models import InitializationOptions
from mcp.server.request_state import RequestStateBoundary, RequestStateSecurity

from mcpgw_runtime.spec import GatewaySpec

if TYPE_CHECKING:
    from mcpgw_runtime.gateway_server import Gateway


LIST_CHANGES = NotificationOptions(prompts_changed=True, tools_changed=True, resources_changed=True)
"""Pins can change the tool and prompt lists at run time, backends their resources; clients are told."""


class _AnnouncingServer(Server[Any]):
    """A lowlevel server that advertises `listChanged` whoever asks for its options.

    The SDK's Streamable HTTP session manager builds them with no arguments, so
    `/mcp` clients were told the lists never change while the gateway sent
    `list_changed` notifications all the same.
    """

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        return super().create_initialization_options(
            notification_options or LIST_CHANGES, experimental_capabilities, extensions
        )


def build_server(gateway: Gateway) -> Server[Any]:
    """The lowlevel server; handlers exist for every method so capabilities are advertised."""

    async def list_tools(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        return types.ListToolsResult.model_validate(gateway.list_result("tools/list"))

    async def call_tool(
        ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult | types.InputRequiredResult:
        raw = await gateway.interactive(ctx, params, gateway.call_tool)
        return raw if isinstance(raw, types.InputRequiredResult) else types.CallToolResult.model_validate(raw)

    async def list_prompts(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListPromptsResult:
        return types.ListPromptsResult.model_validate(gateway.list_result("prompts/list"))

    async def get_prompt(
        ctx: ServerRequestContext[Any, Any], params: types.GetPromptRequestParams
    ) -> types.GetPromptResult | types.InputRequiredResult:
        raw = await gateway.interactive(ctx, params, gateway.get_prompt)
        return raw if isinstance(raw, types.InputRequiredResult) else types.GetPromptResult.model_validate(raw)

    async def list_resources(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListResourcesResult:
        page = await gateway.list_resources(params.cursor if params else None)
        return types.ListResourcesResult.model_validate(page)

    async def list_templates(
        ctx: Any, params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        return types.ListResourceTemplatesResult.model_validate(gateway.templates_result)

    async def read_resource(
        ctx: ServerRequestContext[Any, Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult | types.InputRequiredResult:
        raw = await gateway.interactive(ctx, params, gateway.read_resource)
        return raw if isinstance(raw, types.InputRequiredResult) else types.ReadResourceResult.model_validate(raw)

    async def complete(ctx: Any, params: types.CompleteRequestParams) -> types.CompleteResult:
        raw = await gateway.complete(params.model_dump(by_alias=True, exclude_none=True))
        return types.CompleteResult.model_validate(raw)

    server: Server[Any] = _AnnouncingServer(
        gateway.spec.name,
        version=gateway.spec.version,
        instructions=gateway.spec.instructions,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_prompts=list_prompts,
        on_get_prompt=get_prompt,
        on_list_resources=list_resources,
        on_list_resource_templates=list_templates,
        on_read_resource=read_resource,
        on_completion=complete,
    )
    server.add_request_handler("resources/subscribe", types.SubscribeRequestParams, gateway.subscribe)
    server.add_request_handler("resources/unsubscribe", types.UnsubscribeRequestParams, gateway.unsubscribe)
    # Registered directly: the constructor keyword warns that logging is deprecated in 2026-07-28.
    server.add_request_handler("logging/setLevel", types.SetLevelRequestParams, gateway.set_level)
    server.middleware.insert(0, gateway.middleware)
    # Innermost: seals the requestState of input-required rounds (rounds.py) and checks it on retries.
    security = RequestStateSecurity.ephemeral(ttl=state_ttl(gateway.spec))
    server.middleware.append(RequestStateBoundary(security, default_audience=gateway.spec.name))
    return server


def state_ttl(spec: GatewaySpec) -> float:
    """How long a sealed requestState is accepted: past the longest wait for a client's retry."""
    timeouts = [t for b in spec.backends for t in (b.timeout, *b.tool_timeouts.values())]
    return max([600.0, *(t + 60.0 for t in timeouts)])
