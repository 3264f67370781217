# mcpgw runtime, vendored into every generated gateway. DO NOT EDIT the copy in dist/: its digest is checked at start.
"""One client request as the audit log and tracing see it: begun where the gateway takes it, finished just
before its answer is sent, with the backend call made for it noted on the way.

Why one object for both: they need the same facts (caller, profile, method, name, backend,
outcome, duration) at the same two points of the one forwarding path, whichever half of the
gateway serves the request:

    a client's request (`AUDITED`)                          begin ─▶ Exchange, in EXCHANGE
      front, no SDK       relays.Relays.answer                          │
      core, fast path     fastpath.FastPath._answer                     │
      core, SDK           gateway_server.Gateway.middleware             │ (/mcp, /sse, stdio)
                                                                        ▼
    the backend call      stdio_forwarding.Forwarder.request ─▶ Exchange.via: backend, backend name,
                          backends.Backend.request                  the child span, traceparent passed on
                                                                        ▼
    the answer, before it is sent                           ok / failed / cancelled ─▶ audit.AuditLog.write
                                                                                       and the span ends

A request the front hands to the core (`dropped`) is recorded once, where it is answered.
With neither the audit log nor tracing configured, `ACTIVE` is False and nothing here runs:
each hook costs one test of a module attribute per request and one context variable read
per backend call.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any, TypeVar

import pydantic_core

from mcpgw_runtime.caller import CALLER
from mcpgw_runtime.forwarding import INTERNAL_ERROR, INVALID_PARAMS, POLICY_DENIED, REQUEST_TIMEOUT
from mcpgw_runtime.profiles import PROFILE

if TYPE_CHECKING:
    from mcpgw_runtime.audit import AuditLog
    from mcpgw_runtime.tracing import Tracing

T = TypeVar("T")

AUDITED = frozenset(
    {
        "tools/call",
        "prompts/get",
        "resources/read",
        "completion/complete",
        "resources/list",
        "resources/subscribe",
        "resources/unsubscribe",
        "logging/setLevel",
    }
)
"""The requests that reach backends: each gets one record and one span, whether it was forwarded, refused before
(an unknown tool, a denial) or answered by the gateway itself (a search profile's search tool)."""

DENIED_CODES = frozenset({POLICY_DENIED})
"""Error codes that mean a policy refused the call (outcome "denied")."""

ACTIVE = False
"""Whether anything observes requests (`configure`); False: the hooks do nothing."""
AUDIT: AuditLog | None = None
ARGUMENTS = False
"""Whether records carry the arguments themselves, not only their digest (`gateway.audit.arguments`)."""
TRACING: Tracing | None = None

EXCHANGE: ContextVar[Exchange | None] = ContextVar("mcpgw_exchange", default=None)
"""The client request being served, for the backend call made under it."""
TRACEPARENT: ContextVar[tuple[str, str | None] | None] = ContextVar("mcpgw_traceparent", default=None)
"""The HTTP request's `traceparent` and `tracestate` headers (tracing.TraceHeaders sets it, only with tracing)."""
OUTGOING: ContextVar[Mapping[str, str] | None] = ContextVar("mcpgw_outgoing", default=None)
"""The trace context of the backend call in progress, as HTTP headers for an HTTP or SSE backend (connect.py)."""


def configure(audit: AuditLog | None, arguments: bool, tracing: Tracing | None) -> None:
    """Turn the hooks on for this process (cli.py, once, before serving)."""
    global ACTIVE, AUDIT, ARGUMENTS, TRACING  # noqa: PLW0603 -- the process's one setting, read on the hot path
    AUDIT, ARGUMENTS, TRACING = audit, arguments, tracing
    ACTIVE = audit is not None or tracing is not None


def begin(method: str, params: object, rid: object, session: bytes | str | None, transport: str) -> Exchange:
    """A client's request starts being served here (call only with `ACTIVE`); set as EXCHANGE for what it calls.

    `transport` is "tcp" (HTTP) or "pipe" (stdio), as OpenTelemetry's `network.transport`.
    """
    exchange = Exchange(method, params if isinstance(params, dict) else {}, rid, session, transport)
    exchange.token = EXCHANGE.set(exchange)
    return exchange


def canonical(value: object) -> bytes:
    """JSON with sorted keys, no whitespace, UTF-8: what `args_sha256` digests."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def arguments_of(method: str, params: Mapping[str, Any]) -> object:
    """What a request's arguments are: `arguments` of a tools/call or prompts/get ({} without), else the params
    without `_meta`."""
    if method in ("tools/call", "prompts/get"):
        arguments = params.get("arguments")
        return {} if arguments is None else arguments
    return {k: v for k, v in params.items() if k != "_meta"}


def utc(seconds: float) -> str:
    """`2025-01-31T14:25:01.123Z`."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int(seconds * 1000) % 1000:03d}Z"


def error_code(exc: BaseException) -> int:
    """The JSON-RPC code a request's exception is answered with (`Refused`, the SDK's `MCPError`, validation)."""
    code = getattr(exc, "code", None)
    if type(code) is int:
        return code
    return INVALID_PARAMS if type(exc).__name__ == "ValidationError" else INTERNAL_ERROR


def outcome_of(code: int) -> str:
    if code == REQUEST_TIMEOUT:
        return "timeout"
    return "denied" if code in DENIED_CODES else "error"


class Exchange:
    """One client request being served; see the module's docstring."""

    __slots__ = (
        "backend",
        "backend_name",
        "method",
        "params",
        "perf",
        "request_id",
        "session",
        "span",
        "started",
        "token",
        "tool_error",
        "transport",
    )

    def __init__(
        self, method: str, params: Mapping[str, Any], rid: object, session: bytes | str | None, transport: str
    ) -> None:
        self.method = method
        self.params = params
        self.request_id = rid
        self.session = session.decode("latin-1") if isinstance(session, bytes) else session or None
        self.transport = transport
        self.started = time.time()
        self.perf = time.perf_counter()
        self.backend: str | None = None
        self.backend_name: str | None = None
        self.tool_error = False
        self.token: Token[Exchange | None] | None = None
        self.span: Any = TRACING.server_span(self) if TRACING is not None else None

    @property
    def name(self) -> str | None:
        """The exposed tool or prompt the request names (a completion's prompt); None for others."""
        name = self.params.get("name")
        if self.method == "completion/complete":
            ref = self.params.get("ref")
            name = ref.get("name") if isinstance(ref, dict) else None
        return name if isinstance(name, str) else None

    @property
    def uri(self) -> str | None:
        """The resource URI the request names (a completion's resource reference); None for others."""
        uri = self.params.get("uri")
        if self.method == "completion/complete":
            ref = self.params.get("ref")
            uri = ref.get("uri") if isinstance(ref, dict) else None
        return uri if isinstance(uri, str) else None

    async def via(
        self,
        backend: str,
        method: str,
        params: Mapping[str, Any] | None,
        tool: str | None,
        send: Callable[[Mapping[str, Any] | None], Awaitable[T]],
    ) -> T:
        """The backend call made for this request: noted, traced (the child span, its traceparent passed on)."""
        self.backend = backend
        if tool is not None:
            self.backend_name = tool
        elif method == "prompts/get" and params is not None and isinstance(params.get("name"), str):
            self.backend_name = params["name"]
        if TRACING is not None and self.span is not None:
            result = await TRACING.backend_call(self, backend, method, params, send)
        else:
            result = await send(params)
        answered = getattr(result, "result", result)  # the front's `Answer`, or the core's result
        if method == "tools/call" and isinstance(answered, dict) and answered.get("isError") is True:
            self.tool_error = True
        return result

    # -- the end: exactly one of these, before the answer is sent ----------------------------

    async def awaiting(self, call: Awaitable[T]) -> T:
        """`call`'s result; an error or a cancellation it ends with is recorded (`failed`, `cancelled`) first."""
        try:
            return await call
        except asyncio.CancelledError:
            self.cancelled()
            raise
        except Exception as exc:
            self.failed(exc)
            raise

    def ok(self, response_bytes: int | None) -> None:
        """Answered with a result of `response_bytes` bytes (as sent, or as compact JSON)."""
        self._finish("ok", None, None, response_bytes)

    def failed(self, exc: BaseException) -> None:
        """Answered with an error: the gateway's, a backend's, a policy's."""
        code = error_code(exc)
        self._finish(outcome_of(code), code, str(getattr(exc, "message", exc)), None)

    def cancelled(self) -> None:
        """The client cancelled it or went away, or the gateway is stopping."""
        self._finish("cancelled", None, None, None)

    def dropped(self) -> None:
        """Not answered here after all: the front hands it to the core, which records it where it answers it."""
        if self.token is not None:
            EXCHANGE.reset(self.token)
            self.token = None
        if self.span is not None and TRACING is not None:
            TRACING.discard(self.span)

    def _finish(self, outcome: str, code: int | None, message: str | None, response_bytes: int | None) -> None:
        duration = time.perf_counter() - self.perf
        if self.token is not None:
            try:
                EXCHANGE.reset(self.token)
            except ValueError:  # finished in another context than it began (a cancelled task's): nothing to undo
                pass
            self.token = None
        trace_id = None
        if self.span is not None and TRACING is not None:
            trace_id = TRACING.end_server(self, outcome, code, message)
        if AUDIT is not None:
            AUDIT.write(self.record(outcome, code, duration, response_bytes, trace_id))

    def record(
        self, outcome: str, code: int | None, duration: float, response_bytes: int | None, trace_id: str | None
    ) -> bytes:
        """The audit record, one JSON line (docs/observability.md lists its fields)."""
        caller = CALLER.get()
        arguments = arguments_of(self.method, self.params)
        record: dict[str, Any] = {
            "time": utc(self.started),
            "request_id": self.request_id,
            "session": self.session,
            "caller": None
            if caller is None
            else {"kind": caller.kind, "subject": caller.subject, "client_id": caller.client_id},
            "profile": PROFILE.get(),
            "method": self.method,
            "name": self.name,
            "uri": self.uri,
            "backend": self.backend,
            "backend_name": self.backend_name,
            "outcome": outcome,
            "error_code": code,
            "tool_error": self.tool_error,
            "duration_ms": round(duration * 1000, 3),
            "request_bytes": len(pydantic_core.to_json(self.params)) if self.params else 0,
            "response_bytes": response_bytes,
            "args_sha256": hashlib.sha256(canonical(arguments)).hexdigest(),
        }
        if ARGUMENTS:
            record["arguments"] = arguments
        if trace_id is not None:
            record["trace_id"] = trace_id
        return pydantic_core.to_json(record) + b"\n"


def result_bytes(tail: bytes | memoryview) -> int:
    """The size of the result in an answer's tail (`,"result":...}`), as sent."""
    return max(len(tail) - len(b',"result":') - 1, 0)
