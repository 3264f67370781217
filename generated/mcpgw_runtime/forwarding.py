# mcpgw runtime, vendored into every generated gateway. DO NOT EDIT the copy in dist/: its digest is checked at start.
"""What every forwarded request needs, whichever half of the gateway serves it.

The front (no SDK: front.py, front_backends.py) and the core (the SDK: backends.py,
gateway_server.py, sessions.py) both forward requests to backends. What a request
needs on the way is decided here, once, without the SDK:

    client request ──▶ route (the tables) ──▶ timeout_for ──▶ Limiter.acquire
                                                             │ refused: Refused(BACKEND_BUSY)
                                                             ▼
                         backend ◀── forward on the pipe (front) or the SDK session (core)
                                                             │ timed out / closed: Refused
                                                             ▼
                         CallStats (metrics.py) ◀── answer or error, counted once

The JSON-RPC codes and the texts of the gateway's own errors, the health
entry of a backend and the check of its live lists against the pins are
here too, so the two halves answer, count and report alike. The core turns a
`Refused` into the SDK's `MCPError` at its edge (`Refused.error`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from mcpgw_runtime.pins import KINDS, Pinned, Verdict, verify
from mcpgw_runtime.pipes import all_pages
from mcpgw_runtime.spec import JSON, BackendSpec

CONNECTION_CLOSED = -32000
REQUEST_TIMEOUT = -32001
BACKEND_UNAVAILABLE = -32002
BACKEND_BUSY = -32003
"""The backend's concurrency cap and its queue are both full."""
POLICY_DENIED = -32010
"""`gateway.policy` denies the caller this tool, prompt or resource (policy.py); data: rule, kind, name."""
RATE_LIMITED = -32011
"""A `gateway.limits.rate` bucket is empty (limits.py); data: retryAfter (seconds), rule, tool."""
RESULT_TOO_LARGE = -32012
"""A result over its `gateway.limits.max_result_bytes` cap, with action "refuse" (limits.py); data: bytes, cap."""
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
"""JSON-RPC error codes; those below -32000 are the SDK's (`mcp_types`; a test keeps them equal)."""

CLIENT_ERRORS = frozenset({INVALID_PARAMS, METHOD_NOT_FOUND, INVALID_REQUEST})
"""Codes that say the client asked wrongly, not that the gateway or a backend failed (logged at INFO)."""


class Refused(Exception):
    """The gateway's own JSON-RPC error for a request: not forwarded, or forwarded and lost."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    @property
    def error(self) -> JSON:
        error: JSON = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


def timed_out(backend: str, timeout: float) -> Refused:
    return Refused(REQUEST_TIMEOUT, f"backend {backend!r} did not answer within {timeout:g}s")


def connection_lost(backend: str, *, stopping: bool) -> Refused:
    if stopping:
        return Refused(BACKEND_UNAVAILABLE, f"gateway is shutting down: call to backend {backend!r} abandoned")
    return Refused(BACKEND_UNAVAILABLE, f"backend {backend!r} closed the connection")


def shutting_down(backend: str) -> Refused:
    return Refused(BACKEND_UNAVAILABLE, f"gateway is shutting down: backend {backend!r} takes no more calls")


def unavailable(backend: str, state: str, error: str | None) -> Refused:
    detail = f": {error}" if error else ""
    return Refused(BACKEND_UNAVAILABLE, f"backend {backend!r} is not available ({state}){detail}")


def unknown(kind: str, name: object) -> Refused:
    return Refused(INVALID_PARAMS, f"unknown {kind}: {name!r}")


def no_result(method: str) -> Refused:
    return Refused(INTERNAL_ERROR, f"backend answered {method} without a result object")


def timeout_for(spec: BackendSpec, tool: str | None) -> float:
    """Seconds a request to this backend may take: the tool's own `tool_timeouts` entry, else `timeout`.

    `tool` is the backend's original name of the tool called (None for any other method).
    """
    if tool is None:
        return spec.timeout
    return spec.tool_timeouts.get(tool, spec.timeout)


class Limiter:
    """At most `limit` requests at once; at most `queue_limit` more waiting for a slot, in FIFO order.

        request ─▶ slot free and nobody queued? ─yes─▶ run (active += 1)
                         │ no
                         ▼
                   queue full? ─yes─▶ Refused(BACKEND_BUSY) naming the backend
                         │ no
                         ▼
                   wait in line, at most the request's timeout ─▶ run
                                         └─ timed out ─▶ Refused(REQUEST_TIMEOUT)

    `release` hands a freed slot straight to the oldest waiter, so a burst never
    overtakes the queue. One limiter per backend for the process's life: the
    front's, then the core's when it takes the backend over, so the counts carry on.
    """

    __slots__ = ("_waiters", "active", "limit", "name", "queue_limit", "rejected")

    def __init__(self, name: str, limit: int, queue_limit: int) -> None:
        self.name = name
        self.limit = max(1, limit)
        self.queue_limit = max(0, queue_limit)
        self.active = 0
        self.rejected = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def queued(self) -> int:
        return len(self._waiters)

    @property
    def saturated(self) -> bool:
        """Every slot busy and the queue full: the next request is rejected."""
        return self.active >= self.limit and len(self._waiters) >= self.queue_limit

    async def acquire(self, timeout: float) -> None:
        """Take a slot, waiting in line up to `timeout` seconds; `Refused` when there is none."""
        if self.active < self.limit and not self._waiters:
            self.active += 1
            return
        if len(self._waiters) >= self.queue_limit:
            self.rejected += 1
            raise Refused(
                BACKEND_BUSY,
                f"backend {self.name!r} is saturated: {self.active} requests in flight and "
                f"{len(self._waiters)} queued (max_concurrency {self.limit}, max_queue {self.queue_limit}); "
                "try again later",
            )
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(turn)
        try:
            await asyncio.wait((turn,), timeout=timeout)
        except BaseException:  # cancelled while waiting, or just after being handed a slot
            self._leave(turn)
            raise
        if not turn.done():
            self._leave(turn)
            raise Refused(
                REQUEST_TIMEOUT, f"backend {self.name!r}: no free slot within {timeout:g}s (queued behind others)"
            )

    def _leave(self, turn: asyncio.Future[None]) -> None:
        if turn.done():
            self.release()  # a slot was handed to us; pass it on
        else:
            self._waiters.remove(turn)

    def release(self) -> None:
        """Free a slot: hand it to the oldest waiter, if any."""
        if self._waiters:
            self._waiters.popleft().set_result(None)
        else:
            self.active -= 1


def health_entry(
    spec: BackendSpec,
    *,
    state: str = "starting",
    error: str | None = None,
    restarts: int = 0,
    pin: JSON | None = None,
    pid: int | None = None,
    limiter: Limiter | None = None,
) -> JSON:
    """One backend in `/healthz`: the same fields whichever half of the gateway answers."""
    return {
        "state": state,
        "error": error,
        "restarts": restarts,
        "transport": spec.type,
        "pin": pin if pin is not None else {"policy": spec.pin, "status": "pending", "held": {}, "changes": []},
        "pid": pid,
        "in_flight": limiter.active if limiter is not None else 0,
        "queued": limiter.queued if limiter is not None else 0,
    }


LISTS: Mapping[str, tuple[str, str, str]] = {
    "tool": ("tools", "tools/list", "tools"),
    "prompt": ("prompts", "prompts/list", "prompts"),
}
"""Per pinned kind: the capability that offers it, the method that lists it, the key of the items."""

Fetch = Callable[[str, Mapping[str, Any] | None], Awaitable[JSON]]
"""One request to the backend: method and params → the result object."""


async def live_verdicts(
    spec: BackendSpec,
    kinds: Iterable[str],
    offers: Callable[[str], bool],
    fetch: Fetch,
    pinned: Mapping[str, Mapping[str, Pinned]],
    separator: str,
    failure: type[Exception],
) -> dict[str, Verdict]:
    """List what the backend offers of each kind (every page) and check it against the pins.

    `offers(capability)` says whether the backend's `initialize` advertised it; a kind it
    does not offer is checked as an empty list. `failure` is raised for a page without
    a result.
    """
    verdicts: dict[str, Verdict] = {}
    for kind in sorted(set(kinds) & set(KINDS)):
        capability, method, key = LISTS[kind]
        live: list[JSON] = []
        if offers(capability):
            live = await all_pages(_bound(fetch, method), method, key, failure)
        verdicts[kind] = verify(spec, kind, live, pinned[kind], separator)
    return verdicts


def _bound(fetch: Fetch, method: str) -> Callable[[Mapping[str, Any] | None], Awaitable[JSON]]:
    async def page(params: Mapping[str, Any] | None) -> JSON:
        return await fetch(method, params)

    return page
