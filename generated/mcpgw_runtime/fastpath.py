# mcpgw runtime, vendored into every generated gateway. DO NOT EDIT the copy in dist/: its digest is checked at start.
"""The hot path of `POST /mcp`: handshake-era tool calls and list requests answered in one JSON response.

Why: the SDK's Streamable HTTP server answers each POST with a one-event SSE
stream built from memory streams, task groups and its request pipeline, which
costs more CPU than the backend's own work (bench/README.md). A compiled
gateway knows its routes, so for the requests that dominate traffic it does
less: parse the body once, route by the embedded table, and answer with the
backend's result bytes around the client's id.

A request takes this path only when nothing could be lost by answering with
plain JSON (the Streamable HTTP spec lets the server choose):

- a single JSON-RPC request for `tools/call`, `tools/list` or `prompts/list`;
- on a session this gateway opened (or `--stateless`) in a handshake-era
  protocol version (2026-07-28 results carry envelope fields the SDK owns);
- no progress token (progress needs a stream);
- not a tool of a `session: per-client` backend (its connection belongs to the SDK's session);
- a client that declared none of the capabilities a backend could ask for in
  the middle of a call (sampling, elicitation, roots): there is nobody to ask.

Everything else goes to the SDK with its body replayed, byte for byte.
Nothing meant for the client is lost here either: a log entry the backend
sends during the call turns the answer into an SSE stream (`front.Reply`), as the
SDK would have answered, and a client's `notifications/cancelled` for a
request in flight here, or its disconnect, cancels the backend call.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from typing import Any, cast

import mcp_types as types
import pydantic_core
from mcp.server.connection import Connection as UpstreamConnection
from mcp.server.connection import allowed_log_levels
from mcp.shared.exceptions import MCPError
from mcp_types import DEFAULT_NEGOTIATED_VERSION
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcpgw_runtime import exchange
from mcpgw_runtime.front import (
    CLIENT_REQUEST_CAPABILITIES,
    HANDSHAKE_BYTES,
    SESSION_HEADER,
    VERSION_HEADER,
    Reply,
    disconnected,
    id_key,
    is_request_id,
    parse_json,
    read_body,
    replay_body,
    without_progress,
)
from mcpgw_runtime.gateway_server import Gateway
from mcpgw_runtime.guard import record_refusal
from mcpgw_runtime.metrics import SERVED_WITHOUT_SDK
from mcpgw_runtime.profiles import PROFILE
from mcpgw_runtime.relay import ORIGIN, Origin, UpstreamHub
from mcpgw_runtime.spec import JSON
from mcpgw_runtime.stdio_lane import Wire

log = logging.getLogger("mcpgw")

FAST_METHODS = frozenset({"tools/call", "tools/list", "prompts/list"})
MAX_SESSIONS = 10_000
"""Sessions remembered for the fast path; the oldest is forgotten first (it then takes the SDK path)."""


class FastPath:
    """ASGI app in front of the whole HTTP app; only `POST`/`DELETE /mcp` are looked at.

    `guard_ok` is the same Host/Origin/token check the guard middleware applies:
    a request that fails it goes on to the guard, which refuses it.
    """

    def __init__(
        self,
        app: ASGIApp,
        gateway: Gateway,
        guard_ok: Callable[[dict[bytes, bytes]], bool],
        *,
        stateless: bool,
        max_body: int,
    ) -> None:
        self.app = app
        self.gateway = gateway
        self.guard_ok = guard_ok
        self.stateless = stateless
        self.max_body = max_body
        self.sessions: collections.OrderedDict[bytes, bool] = collections.OrderedDict()
        """Session id → whether its client may take the fast path."""
        self.inflight: dict[tuple[bytes, object], asyncio.Future[Any]] = {}
        self._lists: dict[tuple[str, str, object], tuple[object, bytes]] = {}
        """(method, profile, the caller's permissions with a policy) → (the list answered, its encoded tail)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/mcp" or scope["method"] not in ("POST", "DELETE"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if not self.guard_ok(headers):
            await self.app(scope, receive, send)
            return
        sid = headers.get(SESSION_HEADER)
        if scope["method"] == "DELETE":
            if sid is not None:
                self.sessions.pop(sid, None)
            await self.app(scope, receive, send)
            return
        body, complete = await read_body(receive, self.max_body)
        if not complete:  # too large: the SDK answers 413
            record_refusal(scope, 413, "body over max_body_bytes")
            await self.app(scope, replay_body(body, receive), send)
            return
        message = parse_json(body)
        if isinstance(message, dict) and self._eligible(message, headers, sid):
            SERVED_WITHOUT_SDK.count += 1  # with the front's, in /metrics (the tests read it to tell the paths apart)
            await self._answer(message, sid or b"", receive, send)
            return
        await self._pass(scope, receive, send, body, message, sid)

    def _eligible(self, message: dict[str, Any], headers: dict[bytes, bytes], sid: bytes | None) -> bool:
        if message.get("method") not in FAST_METHODS or not is_request_id(message.get("id")):
            return False
        version = headers.get(VERSION_HEADER)
        plain = (
            (version is None or version in HANDSHAKE_BYTES)
            and b"application/json" in headers.get(b"accept", b"")
            and headers.get(b"content-type", b"").startswith(b"application/json")
            and without_progress(message.get("params"))
        )
        if not plain:
            return False
        if message["method"] == "tools/call":  # `session: per-client` backends need the SDK's session
            name = self.gateway.called(message.get("params") or {})
            if name is None or self.gateway.per_client(name):
                return False
        if self.stateless:
            return sid is None
        return sid is not None and self.sessions.get(sid, False)

    async def _pass(
        self, scope: Scope, receive: Receive, send: Send, body: bytes, message: Any, sid: bytes | None
    ) -> None:
        """Hand the request to the SDK; learn new sessions from initialize and forget the ones it forgot."""
        if sid is None and isinstance(message, dict) and message.get("method") == "initialize":
            params = message.get("params")
            capabilities = params.get("capabilities") if isinstance(params, dict) else None
            declared = capabilities if isinstance(capabilities, dict) else {}
            fast = not any(declared.get(c) is not None for c in CLIENT_REQUEST_CAPABILITIES)
            await self.app(scope, replay_body(body, receive), self._learn(send, fast))
            return
        if sid is not None and isinstance(message, dict) and message.get("method") == "notifications/cancelled":
            self._cancel(sid, message.get("params"))
        await self.app(scope, replay_body(body, receive), self._forget_on_404(send, sid) if sid else send)

    def _learn(self, send: Send, fast: bool) -> Send:
        async def learning(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 200:
                for key, value in message.get("headers", ()):
                    if key.lower() == SESSION_HEADER:
                        self.sessions[bytes(value)] = fast
                        while len(self.sessions) > MAX_SESSIONS:
                            self.sessions.popitem(last=False)
            await send(message)

        return learning

    def _forget_on_404(self, send: Send, sid: bytes) -> Send:
        async def forgetting(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 404:
                self.sessions.pop(sid, None)
            await send(message)

        return forgetting

    def _cancel(self, sid: bytes, params: Any) -> None:
        if isinstance(params, dict):
            call = self.inflight.get((sid, id_key(params.get("requestId"))))
            if call is not None:
                call.cancel()

    async def _answer(self, message: dict[str, Any], sid: bytes, receive: Receive, send: Send) -> None:
        rid = message["id"]
        method = message["method"]
        reply = FastReply(send, sid)
        tail: bytes | memoryview = b""
        try:
            if method == "tools/call":
                call = self._call(message.get("params") or {}, sid, rid, receive, reply)
                if exchange.ACTIVE:  # recorded before it is answered, as the front's relays do (exchange.py)
                    seen = exchange.begin(method, message.get("params"), rid, sid, "tcp")
                    tail = await seen.awaiting(call)
                    seen.ok(exchange.result_bytes(tail))
                else:
                    tail = await call
            else:
                tail = self._listing(method)
            body = b'{"jsonrpc":"2.0","id":' + pydantic_core.to_json(rid)  # the backend's bytes follow: `tail`
        except MCPError as exc:
            body = _error(rid, exc.error)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the server is stopping this request, not the client
            # The client cancelled (or left); it ignores any answer, but the HTTP exchange needs one.
            body = _error(rid, types.ErrorData(code=types.INVALID_REQUEST, message="Request cancelled"))
        except Exception:
            log.exception("fast path: %s failed", method)
            body = _error(rid, types.ErrorData(code=types.INTERNAL_ERROR, message="Internal error"))
        await reply.finish(body, tail)

    def _connection(self, sid: bytes) -> Any:
        connection = self.gateway.hub.by_session(sid.decode("latin-1")) if sid else None
        return connection if connection is not None else _Sessionless(DEFAULT_NEGOTIATED_VERSION)

    async def _call_as(self, origin: FastOrigin, params: dict[str, Any]) -> JSON:
        """The call, in its own task's context: what the backend sends back during it comes here."""
        ORIGIN.set(cast(Origin, origin))
        return await self.gateway.call_tool(params)

    def _listing(self, method: str) -> bytes:
        """The list answer's tail (`,"result":...}`), encoded once per change of the table."""
        result = self.gateway.list_result(method)
        policy = self.gateway.profiles.policy  # with one, each permission set has its own answer (policy.py)
        key = (method, PROFILE.get(), None if policy is None else policy.permissions())
        cached = self._lists.get(key)
        if cached is None or cached[0] is not result:
            cached = (result, b',"result":' + pydantic_core.to_json(result) + b"}")
            self._lists[key] = cached
        return cached[1]

    async def _call(
        self, params: dict[str, Any], sid: bytes, rid: object, receive: Receive, reply: FastReply
    ) -> bytes | memoryview:
        """Run the call in its own task, so a disconnect or a cancellation can stop it (and the backend's)."""
        meta = params.get("_meta")
        origin = FastOrigin(self._connection(sid), reply, meta, rid)
        call = asyncio.ensure_future(self._call_as(origin, params))
        key = (sid, id_key(rid))
        self.inflight[key] = call
        watcher = asyncio.ensure_future(disconnected(receive))
        watcher.add_done_callback(lambda w: call.cancel() if not w.cancelled() and w.result() else None)
        try:
            result = await call
        finally:
            watcher.cancel()
            if self.inflight.get(key) is call:
                del self.inflight[key]
        if isinstance(result, Wire):
            return result.tail
        return b',"result":' + pydantic_core.to_json(result) + b"}"


class FastOrigin:
    """What the relay needs to know of a fast-path request (the members of relay.Origin it reads).

    The SDK builds no request context here, so this stands in for one: the session's
    upstream connection (from the hub, for log levels and identity), the request's
    `_meta`, and `FastReply` as the back-channel. It can carry notifications (a backend's
    log entries for this call) but not requests: a client on the fast path declared
    none of the capabilities a backend could ask for.
    """

    __slots__ = ("channel", "connection", "meta", "request_id")

    ask = None
    live = True

    def __init__(self, connection: Any, channel: FastReply, meta: Any, request_id: object) -> None:
        self.connection = connection
        self.channel = channel
        self.meta = meta if isinstance(meta, dict) else None
        self.request_id = request_id

    @property
    def ctx(self) -> FastOrigin:
        return self  # debug logging reads `origin.ctx.request_id`

    @property
    def has_session(self) -> bool:
        return getattr(self.connection, "session_id", None) is not None

    async def progress(self, progress: float, total: float | None, message: str | None) -> None:
        return  # never asked: a request with a progress token does not take the fast path

    def attach(self, ctx: Any) -> None:
        raise RuntimeError("a fast-path request has no input-required rounds (2026-07-28 takes the SDK path)")

    def allows_log(self, level: str, hub: UpstreamHub | None) -> bool:
        version = getattr(self.connection, "protocol_version", None) or DEFAULT_NEGOTIATED_VERSION
        if level not in allowed_log_levels(version, self.meta):
            return False
        return (
            hub is None or not isinstance(self.connection, UpstreamConnection) or hub.wants_log(self.connection, level)
        )


class _Sessionless:
    """The connection of a `--stateless` request: nothing outlives it."""

    __slots__ = ("protocol_version",)
    session_id = None

    def __init__(self, protocol_version: str) -> None:
        self.protocol_version = protocol_version


class FastReply(Reply):
    """The answer of a fast-path request, as the relay's back-channel: notifications only."""

    can_send_request = False

    async def send_raw_request(self, method: str, params: Any, opts: Any = None) -> dict[str, Any]:
        raise MCPError(types.INVALID_REQUEST, f"mcpgw cannot relay {method}: the client declared no such capability")


def _error(rid: object, error: types.ErrorData) -> bytes:
    payload = {"jsonrpc": "2.0", "id": rid, "error": error.model_dump(mode="json", exclude_none=True)}
    return pydantic_core.to_json(payload)
