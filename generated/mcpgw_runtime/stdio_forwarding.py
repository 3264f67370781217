# mcpgw runtime, vendored into every generated gateway. DO NOT EDIT the copy in dist/: its digest is checked at start.
"""Requests the front forwards on the pipes of the backends it runs, and what comes back for them.

Why apart from front_backends.py (which starts, checks and hands over the processes): this is
the front's counterpart of the core's `Backend.request` and relay (backends.py, relay.py),
and must do what they do, without the SDK:

    Relays (relays.py) ──▶ Forwarder.request ──▶ Limiter.acquire ──▶ Pipe.request (the lane)
                               │ progressToken → one of PROGRESS_TOKENS        │
                               │ CallStats per method (and tool)                ▼
    client's stream ◀── Reply.notify ◀── deliver ◀──── progress, log entries of the backend
    GET streams ◀── Listeners ◀─────────── deliver ◀──── log entries outside a request, resources/updated
    backend ◀── deliver (`_unasked`) ◀──────────────── its own requests, none of ours in flight

Errors are forwarding's (`Refused`, in the core's words); a request the front cannot
forward (the backend not ready, handed to the core) gets None, and the core serves it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import pydantic_core

from mcpgw_runtime.envsubst import redact
from mcpgw_runtime.exchange import EXCHANGE
from mcpgw_runtime.forwarding import (
    BACKEND_BUSY,
    INTERNAL_ERROR,
    INVALID_REQUEST,
    REQUEST_TIMEOUT,
    Refused,
    connection_lost,
    no_result,
    shutting_down,
    timed_out,
    timeout_for,
)
from mcpgw_runtime.pipes import LANE_FIRST_ID, PipeClosed, answer_tail
from mcpgw_runtime.ratelog import log_saturated
from mcpgw_runtime.spec import JSON

if TYPE_CHECKING:
    from mcpgw_runtime.front_backends import FrontBackend, FrontBackends

log = logging.getLogger("mcpgw")

PROGRESS_TOKENS = itertools.count(LANE_FIRST_ID * 2).__next__
"""Progress tokens the front sends backends in place of its clients' own: unique in the gateway, so two
clients' tokens never collide on a backend, and never a request id of the core's dispatcher (which
uses its own request ids as tokens and counts up from 0) nor of a lane."""


@dataclass(slots=True)
class Answer:
    """A backend's result to a forwarded request: the object, and the bytes after its id as they came."""

    result: JSON
    tail: memoryview | bytes


def _answer(method: str, reply: JSON, line: bytes, secrets: Mapping[str, str]) -> Answer:
    """A backend's answer; `Refused` with its (redacted) error, as the core relays it."""
    error = reply.get("error")
    if isinstance(error, dict):
        code = error.get("code")
        message = redact(str(error.get("message", "")), secrets)
        raise Refused(code if type(code) is int else INTERNAL_ERROR, message, error.get("data"))
    result = reply.get("result")
    if not isinstance(result, dict):
        raise no_result(method)
    tail = answer_tail(line, reply["id"])
    return Answer(result, tail if tail is not None else b',"result":' + pydantic_core.to_json(result) + b"}")


class Channel(Protocol):
    """Where a log entry or progress the backend sends during a forwarded request goes (jsonrpc_http.Reply)."""

    @property
    def session(self) -> bytes:
        """The client's session id; empty for a request of no session (each its own client)."""
        ...

    async def notify(self, method: str, params: Any) -> None: ...


class Listeners(Protocol):
    """Who hears what a backend sends outside any request, before the core (early_sessions.EarlySessions)."""

    def log_entry(self, params: object) -> None: ...

    def resource_updated(self, params: object) -> None: ...


def origin(calls: list[Channel | None]) -> Channel | None:
    """The latest request in flight, when every request in flight is of one session (relay.BackendRelay.origin).

    A request of no client (None) or of no session counts as another client.
    """
    if not calls or calls[-1] is None:
        return None
    latest = calls[-1]
    if len(calls) > 1 and (not latest.session or any(c is None or c.session != latest.session for c in calls)):
        return None
    return latest


class Forwarder:
    """The front's requests to its backends (`FrontBackends.backends`), as the core's Backend makes them."""

    def __init__(self, early: FrontBackends) -> None:
        self.early = early

    async def request(
        self, name: str, method: str, params: Mapping[str, Any] | None, channel: Channel | None, tool: str | None = None
    ) -> Answer | None:
        """Forward one request to backend `name` (`_request`), noted by the client request it serves, if observed."""
        seen = EXCHANGE.get()
        if seen is None:
            return await self._request(name, method, params, channel, tool)
        return await seen.via(name, method, params, tool, lambda p: self._request(name, method, p, channel, tool))

    async def _request(
        self, name: str, method: str, params: Mapping[str, Any] | None, channel: Channel | None, tool: str | None
    ) -> Answer | None:
        """Forward one request to backend `name`, as the core's `Backend.request` does; None: the core must.

        Bounded by the backend's `Limiter` (queued, or refused when its queue is full) and by
        `timeout_for(tool)`; counted in its CallStats per method (and tool); a backend error,
        a timeout or a lost connection is `Refused` in the core's words. A `_meta.progressToken`
        is replaced by one of `PROGRESS_TOKENS` and the backend's progress goes to `channel`.
        """
        backend = self.early.backends[name]
        if not await self._serving(backend):
            return None
        pipe = backend.pipe
        assert pipe is not None
        backend.forwarded = True
        timeout = timeout_for(backend.spec, tool)
        series = backend.stats.get(method, tool)
        started = time.perf_counter()
        token: int | None = None
        try:
            await backend.limiter.acquire(timeout)
            try:
                if channel is not None and params is not None:
                    params, token = self._own_token(backend, params, channel)
                backend.calls.append(channel)
                try:
                    reply, line = await pipe.request(method, params, timeout)
                finally:
                    backend.calls.remove(channel)
            except TimeoutError:
                raise timed_out(name, timeout) from None
            except PipeClosed:
                raise connection_lost(name, stopping=self.early.stopping) from None
            finally:
                backend.limiter.release()
                if token is not None:
                    del backend.progress[token]
            answer = _answer(method, reply, line, backend.secrets)
        except Refused as refused:
            if refused.code == BACKEND_BUSY and backend.limiter.saturated:  # the limiter's, not the backend's own
                log_saturated(backend.limiter)
            series.observe(time.perf_counter() - started)
            series.errors += 1
            if refused.code == REQUEST_TIMEOUT:
                series.timeouts += 1
            raise
        series.observe(time.perf_counter() - started)
        if answer.result.get("isError") is True:
            series.tool_errors += 1
        return answer

    @staticmethod
    def _own_token(
        backend: FrontBackend, params: Mapping[str, Any], channel: Channel
    ) -> tuple[Mapping[str, Any], int | None]:
        """The params with the client's progress token replaced by a gateway-unique one (registered)."""
        meta = params.get("_meta")
        theirs = meta.get("progressToken") if isinstance(meta, dict) else None
        if not isinstance(theirs, str | int) or isinstance(theirs, bool):
            return params, None
        assert isinstance(meta, dict)
        token = PROGRESS_TOKENS()
        backend.progress[token] = (channel, theirs)
        return {**params, "_meta": {**meta, "progressToken": token}}, token

    async def _serving(self, backend: FrontBackend) -> bool:
        """Whether the front forwards to this backend now (waiting while it starts); False: the core must."""
        spec = backend.spec
        if backend.state == "starting":
            try:
                async with asyncio.timeout(spec.startup_timeout):
                    await backend.ready.wait()
            except TimeoutError:
                return False
        if self.early.stopping:
            raise shutting_down(spec.name)
        return backend.state == "ready" and not (backend.handed or backend.drifted) and backend.pipe is not None

    async def deliver(self, backend: FrontBackend, value: Any) -> bool:
        """Progress, log entries and resource updates, to whom they concern, as the core's relay delivers them.

        Progress names its request by the token the front sent (`PROGRESS_TOKENS`); it goes to
        that request's stream with the client's own token, in the shape the SDK sends
        (`report_progress`). Progress for no request in flight is dropped, as the SDK does.

        A log entry during requests of one session goes to the latest (the channel applies the
        session's level); with requests of several clients in flight, handing it to the wrong
        one would leak it, so it stays in the gateway's own log. With none in flight it goes to
        every session whose level admits it, and `resources/updated` to the sessions subscribed
        to its URI, on their GET streams (`Listeners`). Once the backend is handed to the core,
        those two wait for it (held on the pipe): the core's hub, which has the sessions' levels
        and subscriptions by then, delivers them, each once.

        A request of the backend's own while none of the front's is in flight is answered as
        the core's relay answers it (`_unasked`). Anything else waits for the core.
        """
        if type(value) is not dict:
            return False
        method, params = value.get("method"), value.get("params")
        if "id" in value:
            return isinstance(method, str) and not backend.calls and self._unasked(backend, value["id"], method)
        if method == "notifications/progress":
            await self._progress(backend, params)
            return True
        if method == "notifications/resources/updated" and not backend.handed:
            self.early.listeners.resource_updated(params)
            return True
        if method == "notifications/message":
            return await self._log_entry(backend, params)
        return False

    async def _log_entry(self, backend: FrontBackend, params: Any) -> bool:
        channel = origin(backend.calls)
        if channel is not None:
            await channel.notify("notifications/message", params)
        elif backend.calls:
            log.debug("backend %s: log entry of unknown origin not relayed: %s", backend.spec.name, params)
        elif backend.handed:
            return False
        else:
            self.early.listeners.log_entry(params)
        return True

    @staticmethod
    async def _progress(backend: FrontBackend, params: Any) -> None:
        token = params.get("progressToken") if type(params) is dict else None
        caller = backend.progress.get(token) if type(token) is int else None
        progress = params.get("progress") if type(params) is dict else None
        if caller is None or not isinstance(progress, int | float) or isinstance(progress, bool):
            log.debug("backend %s: progress of no request in flight dropped: %s", backend.spec.name, params)
            return
        assert type(params) is dict
        relayed: JSON = {"progressToken": caller[1], "progress": progress}
        relayed.update({k: params[k] for k in ("total", "message") if params.get(k) is not None})
        await caller[0].notify("notifications/progress", relayed)

    @staticmethod
    def _unasked(backend: FrontBackend, rid: object, method: str) -> bool:
        """Answer a backend's request that no client's request caused, as the core's dispatcher would.

        `ping` gets its empty result. A request for a client (sampling, elicitation, roots) gets the
        core's error: before the first forwarded request the SDK session's own callback answers
        (backends._not_relayed), after it the relay (relay.BackendRelay.on_request), which cannot
        tell the client. The answer is written at once, not awaited: this runs in the pipe's reader.
        """
        pipe = backend.pipe
        if pipe is None or type(rid) not in (int, str):
            return False
        answer: JSON = {"jsonrpc": "2.0", "id": rid}
        if method == "ping":
            answer["result"] = {}
        elif not backend.forwarded:
            answer["error"] = {"code": INVALID_REQUEST, "message": "mcpgw: no client to relay this request to"}
        else:
            why = f"mcpgw cannot tell which client {method} is for: no client request is in flight on it"
            answer["error"] = {"code": INVALID_REQUEST, "message": why}
        pipe.write_now(pydantic_core.to_json(answer) + b"\n")
        return True
