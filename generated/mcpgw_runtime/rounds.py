# mcpgw runtime, vendored into every generated gateway. DO NOT EDIT the copy in dist/: its digest is checked at start.
"""2026-07-28 clients: a backend's requests to the client, relayed as input-required rounds.

A 2026-07-28 client cannot be sent a request. When a backend asks for sampling, elicitation
or roots during a `tools/call`, `prompts/get` or `resources/read` of such a client, the
gateway answers that call with an `InputRequiredResult` and keeps the backend call waiting:

    client ── tools/call ───────────────▶ Rounds.start: an Exchange runs the backend call in the
                                            background, with ORIGIN = its Origin (ask = Exchange.ask)
                                            backend ── sampling/createMessage ──▶ Exchange.ask (waits)
    client ◀─ InputRequiredResult {inputRequests: {"sampling-1": ...}, requestState: <exchange id>}
    client ── tools/call + inputResponses {"sampling-1": ...} + requestState ──▶ Rounds.resume
                                            the answer ──▶ backend, which finishes (or asks again)
    client ◀─ the backend's own result (or another InputRequiredResult)

`requestState` is the exchange's id, sealed by the SDK's `RequestStateBoundary` (AES-GCM under a
key of this process, bound to the method, the tool or prompt name or URI and the arguments), so a
client can neither read nor forge it. Between rounds the exchange waits at most `ttl` seconds
(the backend's timeout for that call) for the client to come back; then the backend call is
cancelled and the state is forgotten. A retry with state that is unknown here (expired, already
finished, or minted by another gateway process) gets an INVALID_PARAMS error that says so.
Progress and log entries of the backend call ride whichever round is open; between rounds there
is no stream to carry them, and they are dropped.
"""

from __future__ import annotations

import itertools
import logging
import math
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
import mcp_types as types
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.server.context import ServerRequestContext
from mcp.shared.exceptions import MCPError
from pydantic import TypeAdapter, ValidationError

from mcpgw_runtime.relay import ORIGIN, Origin
from mcpgw_runtime.spec import JSON

log = logging.getLogger("mcpgw")

INPUT_REQUEST: TypeAdapter[types.InputRequest] = TypeAdapter(types.InputRequest)
"""What may travel in `inputRequests`: sampling/createMessage, elicitation/create, roots/list."""

STATE_ERROR = {"reason": "invalid_request_state"}
"""`data` of the error a retry with unusable state gets, as the SDK's own boundary words it."""


@dataclass(slots=True)
class _Ask:
    """One request of the backend to the client, waiting for the client's answer."""

    request: types.InputRequest
    answered: anyio.Event = field(default_factory=anyio.Event)
    result: JSON | None = None


@dataclass(frozen=True, slots=True)
class _Outcome:
    """How the backend call ended: its raw result, or the error it failed with."""

    result: JSON | None
    error: MCPError | None


class Exchange:
    """One backend call of a 2026-07-28 client, across however many rounds it takes."""

    def __init__(self, origin: Origin, ttl: float) -> None:
        self.id = secrets.token_urlsafe(18)
        self.origin = origin
        self.ttl = ttl
        self.scope = anyio.CancelScope()
        """Around the backend call; its deadline is `ttl` after each round that leaves input pending."""
        self.asks: dict[str, _Ask] = {}
        self.busy = False
        """A round is being served: a second retry with the same state is refused."""
        self.collected = anyio.Event()
        self._keys = itertools.count(1)
        send, receive = anyio.create_memory_object_stream[str | _Outcome](math.inf)
        self._events: MemoryObjectSendStream[str | _Outcome] = send
        self._receive: MemoryObjectReceiveStream[str | _Outcome] = receive
        origin.ask = self.ask

    async def ask(self, method: str, params: Mapping[str, Any] | None) -> JSON:
        """The backend's request to the client (via the relay): wait for the client's answer in a later round."""
        try:
            request = INPUT_REQUEST.validate_python({"method": method, "params": params or {}})
        except ValidationError as exc:
            raise MCPError(
                types.INVALID_PARAMS,
                f"mcpgw cannot relay {method} to a 2026-07-28 client: not a valid input request "
                f"({exc.error_count()} validation error(s))",
            ) from exc
        key = f"{method.partition('/')[0]}-{next(self._keys)}"
        ask = _Ask(request)
        self.asks[key] = ask
        try:
            self._events.send_nowait(key)
            await ask.answered.wait()
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            ask.result = None
        finally:
            self.asks.pop(key, None)  # answered, or withdrawn by the backend (cancelled)
        if ask.result is None:
            raise MCPError(types.INVALID_REQUEST, f"mcpgw: the client's call ended before {method} was answered")
        return ask.result

    def deliver(self, responses: Mapping[str, Any] | None) -> None:
        """Hand the client's answers to the backend requests waiting for them; unknown keys are ignored."""
        for key, response in (responses or {}).items():
            ask = self.asks.get(key)
            if ask is not None and not ask.answered.is_set() and isinstance(response, Mapping):
                ask.result = dict(response)
                ask.answered.set()

    def finish(self, outcome: _Outcome) -> None:
        self._events.send_nowait(outcome)

    def close(self) -> None:
        """No more rounds: backend requests still waiting fail, a round still waiting ends."""
        self._events.close()
        for ask in self.asks.values():
            ask.answered.set()  # result None: the backend gets an error

    def pending(self) -> dict[str, types.InputRequest]:
        return {key: ask.request for key, ask in self.asks.items() if not ask.answered.is_set()}

    async def next(self) -> _Outcome | None:
        """Wait for the call's outcome or new input requests (None: requests are pending)."""
        if self.pending():
            return None  # the client left some unanswered: ask again at once
        while True:
            try:
                event = await self._receive.receive()
            except anyio.EndOfStream:
                raise _expired() from None
            if isinstance(event, _Outcome):
                return event
            if event in self.asks:
                break  # else withdrawn before anyone saw it
        await anyio.lowlevel.checkpoint()  # let requests the backend sent together arrive together
        while True:
            try:
                event = self._receive.receive_nowait()
            except (anyio.WouldBlock, anyio.EndOfStream):
                return None
            if isinstance(event, _Outcome):
                return event


def _expired() -> MCPError:
    return MCPError(
        types.INVALID_PARAMS,
        "mcpgw: unknown or expired requestState: the call it belongs to has finished, was cancelled, or was "
        "not retried in time; call again without requestState",
        data=STATE_ERROR,
    )


class Rounds:
    """Every exchange in progress, and the task group their backend calls run in."""

    def __init__(self) -> None:
        self._exchanges: dict[str, Exchange] = {}
        self._tg: anyio.abc.TaskGroup | None = None

    def __len__(self) -> int:
        return len(self._exchanges)

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Host the backend calls of exchanges until cancelled (gateway shutdown cancels them all)."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            task_status.started()
            try:
                await anyio.sleep_forever()
            finally:
                self._tg = None

    async def start(
        self, ctx: ServerRequestContext[Any, Any], call: Callable[[], Awaitable[JSON]], ttl: float
    ) -> JSON | types.InputRequiredResult:
        """The first round: start the backend call; its result, or what it asks the client first."""
        if self._tg is None:  # not serving (a unit test driving handlers directly): no rounds possible
            return await call()
        exchange = Exchange(Origin(ctx), ttl)
        self._exchanges[exchange.id] = exchange
        self._tg.start_soon(self._drive, exchange, call)
        return await self._round(exchange, ctx)

    async def resume(
        self, ctx: ServerRequestContext[Any, Any], state: str, responses: Mapping[str, Any] | None
    ) -> JSON | types.InputRequiredResult:
        """A retry: deliver the client's answers, then the result or the next input requests."""
        exchange = self._exchanges.get(state)
        if exchange is None:
            raise _expired()
        if exchange.busy:
            raise MCPError(types.INVALID_REQUEST, "mcpgw: this requestState is already being answered by another retry")
        exchange.deliver(responses)
        return await self._round(exchange, ctx)

    async def _round(self, exchange: Exchange, ctx: ServerRequestContext[Any, Any]) -> JSON | types.InputRequiredResult:
        exchange.busy = True
        exchange.origin.attach(ctx)  # progress and log entries now ride this round's stream
        exchange.scope.deadline = math.inf
        try:
            outcome = await exchange.next()
        except BaseException:
            exchange.scope.cancel()  # the client went away mid-round (or the gateway is stopping)
            raise
        finally:
            exchange.busy = False
            exchange.origin.live = False
        if outcome is not None:
            exchange.collected.set()
            if outcome.error is not None:
                raise outcome.error
            assert outcome.result is not None
            return outcome.result
        exchange.scope.deadline = anyio.current_time() + exchange.ttl
        return types.InputRequiredResult(input_requests=exchange.pending(), request_state=exchange.id)

    async def _drive(self, exchange: Exchange, call: Callable[[], Awaitable[JSON]]) -> None:
        """The backend call, in the background; then wait (bounded) until its outcome is collected."""
        token = ORIGIN.set(exchange.origin)
        try:
            with exchange.scope:
                try:
                    outcome = _Outcome(await call(), None)
                except MCPError as exc:
                    outcome = _Outcome(None, exc)
                except Exception as exc:  # a runtime bug must not take the task group down
                    log.exception("input-required exchange failed")
                    outcome = _Outcome(None, MCPError(types.INTERNAL_ERROR, f"mcpgw: {type(exc).__name__}: {exc}"))
                exchange.finish(outcome)
                await exchange.collected.wait()
            if exchange.scope.cancelled_caught and not exchange.collected.is_set():
                log.info("input-required call expired: no retry within %gs", exchange.ttl)
        finally:
            ORIGIN.reset(token)
            self._exchanges.pop(exchange.id, None)
            exchange.close()
