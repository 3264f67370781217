# mcpgw runtime, vendored into every generated gateway. DO NOT EDIT the copy in dist/: its digest is checked at start.
"""A supervised backend in the core: connect (connect.py), keep connected, forward with limits and counters.

What a forwarded request needs (its timeout, the backend's concurrency cap and
queue, the texts and codes of the gateway's own errors, the health entry) comes
from forwarding.py, shared with the SDK-free front; this module adds the SDK
connection's life cycle and turns the layer's refusals into `MCPError`.
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from mcp.client.session import IncomingMessage
from mcp.shared.exceptions import MCPError

from mcpgw_runtime.connect import LIST_CHANGED, BackendError, Connection, open_backend
from mcpgw_runtime.envsubst import redact, secret_values
from mcpgw_runtime.exchange import EXCHANGE
from mcpgw_runtime.forwarding import (
    BACKEND_BUSY,
    BACKEND_UNAVAILABLE,
    CLIENT_ERRORS,
    CONNECTION_CLOSED,
    REQUEST_TIMEOUT,
    Limiter,
    Refused,
    connection_lost,
    health_entry,
    shutting_down,
    timed_out,
    timeout_for,
    unavailable,
)
from mcpgw_runtime.front_backends import Takeover
from mcpgw_runtime.metrics import CallStats
from mcpgw_runtime.observe import ObservedState
from mcpgw_runtime.ratelog import log_saturated
from mcpgw_runtime.relay import ORIGIN, BackendRelay
from mcpgw_runtime.spec import JSON, BackendSpec

log = logging.getLogger("mcpgw")

PerClientHook = Callable[[str, Mapping[str, Any] | None], AbstractAsyncContextManager[Connection | None]]
"""(method, params) → the calling client's own connection while a request uses it, or None (sessions.py)."""

__all__ = ["BACKEND_UNAVAILABLE", "Backend", "BackendError", "Backoff", "Connection", "describe_failure"]


FIRST_BACKOFF = 0.5
"""Seconds before the first retry of a connection that failed; doubles per failure up to a limit."""


@dataclass
class Backoff:
    """Exponential backoff with jitter, shared by the backend's connection and its per-client ones."""

    limit: float
    delay: float = FIRST_BACKOFF

    def next_wait(self) -> float:
        """Seconds to wait now (0.5 to 1.5 times the delay, so restarts do not line up); then double."""
        wait = self.delay * (0.5 + random.random())
        self.delay = min(self.delay * 2, self.limit)
        return wait


def describe_failure(raised: BaseException, name: str, secrets: Mapping[str, str]) -> str:
    """Why a connection to backend `name` failed, redacted and naming it; a bug's traceback goes to debug."""
    exc = _leaf(raised)  # task groups in the transport wrap what went wrong
    if isinstance(exc, BackendError | MCPError | OSError):
        message = str(exc)
    else:  # a transport bug must not take the gateway down
        message = f"{type(exc).__name__}: {exc}"
        log.debug("backend %s: %s", name, redact("".join(traceback.format_exception(raised)), secrets))
    if not message.startswith("backend "):
        message = f"backend {name!r}: {message}"
    return redact(message, secrets)


class Backend:
    """A supervised backend: connects in the background, reconnects with backoff.

    States (in `/healthz`, `/metrics` and the console):

        starting ──▶ ready ◀──▶ degraded          connected: calls are forwarded
           │           │           │
           ▼           ▼           ▼
         failed ◀─ restarting ◀────┘              not connected: calls wait up to
           └──────────▶ (retry with backoff)     startup_timeout, then fail

    `degraded` = connected but not fully trusted or not keeping up: its pins
    could not be verified, or its queue is full and calls are being rejected
    (back to `ready` once the queue drains). `failed` = never connected since
    the last start attempt; `restarting` = was connected, connection lost.
    Callers never hang: `request` waits for readiness up to `startup_timeout`,
    then fails with an MCP error that names the backend; in-flight calls fail at
    once when the connection drops. `verify` (the gateway's pin check) runs
    before the backend counts as ready, and again whenever it announces that
    its tools or prompts changed.
    """

    state = ObservedState()  # every change reaches observe.STATE_LISTENERS (the console)

    def __init__(
        self,
        spec: BackendSpec,
        base_dir: Path,
        client_version: str,
        max_backoff: float = 30.0,
        *,
        running: Takeover | None = None,
    ) -> None:
        self.spec = spec
        self.client_version = client_version
        self.base_dir = base_dir
        self.max_backoff = max_backoff
        self.state = "starting"
        self.error: str | None = None
        self.restarts = running.restarts if running is not None else 0
        self.connection: Connection | None = None
        self._ready = anyio.Event()
        self._stop = anyio.Event()
        self.verify: Callable[[Backend, Connection, frozenset[str], float], Awaitable[None]] | None = None
        """The gateway's pin check of a connection: the kinds to list, and how long each list may take."""
        self.pin: JSON = {"policy": spec.pin, "status": "pending", "held": {}, "changes": []}
        self._changed: set[str] = set()
        self._dirty = anyio.Event()
        self.relay = BackendRelay(spec.name)
        self.stats = running.stats if running is not None else CallStats()
        self._running = running if running is not None and running.pipe is not None else None
        """`--lazy-core`: the process the front started, taken over on the first connect."""
        limiter = running.limiter if running is not None else None
        self.limiter = limiter or Limiter(spec.name, spec.max_concurrency, spec.max_queue)
        """Shared with the front while it ran this backend (forwarding.Limiter), so the counts carry on."""
        self.pids: list[int] = []
        self.secrets = secret_values(spec.texts())
        """Expanded `${VAR}` values of this backend's spec, kept out of every error and log line."""
        self.stopping = False
        """Set at gateway shutdown: no new calls; in-flight ones fail with a shutdown error."""
        """Processes this backend started (stdio child or local server), newest last."""
        self.per_client: PerClientHook | None = None
        """`session: per-client`: the caller's own connection, for the block (sessions.py); None: the shared one."""

    @property
    def in_flight(self) -> int:
        return self.limiter.active

    @property
    def queued(self) -> int:
        return self.limiter.queued

    @property
    def rejected(self) -> int:
        return self.limiter.rejected

    @property
    def name(self) -> str:
        return self.spec.name

    async def run(self) -> None:
        """Keep the backend connected until the task is cancelled."""
        backoff = Backoff(self.max_backoff)
        while True:
            running, self._running = self._running, None
            try:
                async with open_backend(
                    self.spec,
                    self.base_dir,
                    client_version=self.client_version,
                    message_handler=self._on_message,
                    pids=self.pids,
                    running=running,
                    relay=self.relay if running is not None and running.forwarded else None,
                ) as conn:
                    if self.verify is not None:  # still starting: bounded as the handshake was
                        await self.verify(self, conn, frozenset(LIST_CHANGED.values()), self.spec.startup_timeout)
                    self.connection, self.error = conn, None
                    self.state = "degraded" if self.pin.get("status") == "unverified" else "ready"
                    self._ready.set()
                    backoff = Backoff(self.max_backoff)
                    log.info("backend %s ready (%s)", self.name, conn.init.server_info.name)
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(self._reverify, conn)
                        await conn.dispatcher.closed.wait()
                        tg.cancel_scope.cancel()
                    log.warning("backend %s: connection closed", self.name)
            except Exception as raised:  # noqa: BLE001 -- logged below, redacted; the supervisor must go on
                self.error = describe_failure(raised, self.name, self.secrets)
                log.error("%s", self.error)
            self.connection = None
            self._ready = anyio.Event()
            del self.pids[:-1]
            self.state = "failed" if self.state in ("starting", "failed") else "restarting"
            self.restarts += 1
            await anyio.sleep(backoff.next_wait())

    async def _on_message(self, message: IncomingMessage) -> None:
        """Runs inside the connection's read loop: only note the change, never await the backend here."""
        kind = LIST_CHANGED.get(type(message))
        if kind is not None:
            self._changed.add(kind)
            self._dirty.set()

    async def _reverify(self, conn: Connection) -> None:
        while True:
            await self._dirty.wait()
            self._dirty = anyio.Event()
            kinds, self._changed = frozenset(self._changed), set()
            if self.verify is not None and kinds:
                log.info("backend %s: %s list changed; re-verifying pins", self.name, "/".join(sorted(kinds)))
                await self.verify(self, conn, kinds, self.spec.timeout)
                if self.state in ("ready", "degraded"):
                    self.state = "degraded" if self.pin.get("status") == "unverified" else "ready"

    async def connected(self) -> Connection:
        """The live connection, waiting up to `startup_timeout` for one (not at all while `failed`)."""
        if self.stopping:
            raise _sdk_error(shutting_down(self.name))
        conn = self.connection
        if conn is None and not (self.state == "failed" and self.error):  # a crash loop answers at once
            with anyio.move_on_after(self.spec.startup_timeout):
                await self._ready.wait()
            conn = self.connection
        if conn is None:
            raise _sdk_error(unavailable(self.name, self.state, self.error))
        conn.dispatcher.relay = self.relay  # from the first forwarded request on, after every reconnect
        return conn

    async def request(self, method: str, params: Mapping[str, Any] | None, tool: str | None = None) -> JSON:
        """Forward one request (`_request`), noted by the client request it serves, if observed (exchange.py)."""
        seen = EXCHANGE.get()
        if seen is None:
            return await self._request(method, params, tool)
        return await seen.via(self.name, method, params, tool, lambda p: self._request(method, p, tool))

    async def _request(self, method: str, params: Mapping[str, Any] | None, tool: str | None) -> JSON:
        """Forward one request and return the backend's raw result; counted in `/metrics`."""
        series = self.stats.get(method, tool)
        started = time.perf_counter()
        rid = _next_rid() if log.isEnabledFor(logging.INFO) else 0
        if rid and log.isEnabledFor(logging.DEBUG):
            origin = ORIGIN.get()
            upstream = origin.ctx.request_id if origin is not None else None
            log.debug(
                "rid=%s backend=%s method=%s tool=%s upstream_id=%s params=%s",
                rid, self.name, method, tool or "-", upstream, _truncated(params),
            )  # fmt: skip
        try:
            result = await self._forward(method, params, tool)
        except MCPError as raised:
            exc = raised
            if self.secrets:
                message = redact(raised.error.message, self.secrets)
                if message != raised.error.message:
                    exc = MCPError(raised.error.code, message, raised.error.data)
            elapsed = time.perf_counter() - started
            series.observe(elapsed)
            series.errors += 1
            code = exc.error.code
            if code == REQUEST_TIMEOUT:
                series.timeouts += 1
            if rid and not (code == BACKEND_BUSY and self.limiter.saturated):  # the limiter's: see `log_saturated`
                level = logging.INFO if code in CLIENT_ERRORS else logging.WARNING
                log.log(
                    level, "rid=%s backend=%s method=%s tool=%s error=%d ms=%.1f msg=%s",
                    rid, self.name, method, tool or "-", code, elapsed * 1000, exc.error.message,
                )  # fmt: skip
            if exc is not raised:
                raise exc from None
            raise
        elapsed = time.perf_counter() - started
        series.observe(elapsed)
        if result.get("isError") is True:
            series.tool_errors += 1
        if rid and log.isEnabledFor(logging.DEBUG):
            log.debug("rid=%s backend=%s ok ms=%.1f", rid, self.name, elapsed * 1000)
        return result

    async def _forward(self, method: str, params: Mapping[str, Any] | None, tool: str | None) -> JSON:
        if self.per_client is None:
            return await self._send(await self.connected(), method, params, tool)
        # A client's own connection counts as in use until the answer: it is never closed for room under a call.
        async with self.per_client(method, params) as own:
            return await self._send(own if own is not None else await self.connected(), method, params, tool)

    async def _send(self, conn: Connection, method: str, params: Mapping[str, Any] | None, tool: str | None) -> JSON:
        timeout = timeout_for(self.spec, tool)
        limiter = self.limiter
        try:
            await limiter.acquire(timeout)
        except Refused as refused:
            if limiter.saturated and self.state == "ready":
                self.state = "degraded"
            if refused.code == BACKEND_BUSY:
                log_saturated(limiter)
            raise _sdk_error(refused) from None
        try:
            return await conn.request(method, params, timeout)
        except MCPError as exc:
            if exc.error.code == CONNECTION_CLOSED or conn.dispatcher.closed.is_set():
                raise _sdk_error(connection_lost(self.name, stopping=self.stopping)) from exc
            if exc.error.code == REQUEST_TIMEOUT:
                raise _sdk_error(timed_out(self.name, timeout)) from exc
            raise
        finally:
            limiter.release()
            if limiter.queued == 0 and self.state == "degraded" and self.pin.get("status") != "unverified":
                self.state = "ready"

    def health(self) -> JSON:
        pid = self.pids[-1] if self.pids and self.connection is not None else None
        return health_entry(
            self.spec,
            state=self.state,
            error=self.error,
            restarts=self.restarts,
            pin=self.pin,
            pid=pid,
            limiter=self.limiter,
        )


def _leaf(exc: BaseException) -> BaseException:
    """The one exception inside nested single-member exception groups, else `exc` itself."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


_next_rid = itertools.count(1).__next__
"""`rid=N` in log lines: one forwarded request, unique within this gateway process (0: not logging)."""


def _truncated(params: Mapping[str, Any] | None, limit: int = 2000) -> str:
    """Params for a debug line (the only level where tool arguments appear), cut to `limit` characters."""
    text = json.dumps(params, default=str, ensure_ascii=False)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


def _sdk_error(refused: Refused) -> MCPError:
    """The forwarding layer's refusal as the SDK's error, which its server turns into the JSON-RPC answer."""
    return MCPError(refused.code, refused.message, refused.data)
