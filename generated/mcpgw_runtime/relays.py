# mcpgw runtime, vendored into every generated gateway. DO NOT EDIT the copy in dist/: its digest is checked at start.
"""The requests the front relays to the backends it runs, answered as the core answers them.

Why: with the core unloaded (`--lazy-core`) a gateway is about 55 MiB instead of
85-94; a client that only lists, calls, reads, gets prompts and completes, sets
its log level or subscribes to resources needs none of the SDK. Each method here
routes and reshapes its request exactly as the core's `Gateway` does
(gateway_server.py: `call_tool`, `get_prompt`, `read_resource`, `list_resources`,
`complete`, `set_level`, `subscribe`, `unsubscribe`) and forwards it through
`Forwarder.request` (stdio_forwarding.py: limits, timeouts, counters, progress):

    tools/call          tool_routes, renamed back          ─┐
    prompts/get         prompt_routes, renamed back          │
    resources/read      by URI (listing.ResourceRoutes)      │
    completion/complete by its ref (prompt, template, URI)   ├─▶ Forwarder.request ─▶ the backend's pipe
    resources/list      each backend offering resources,     │
                        one page each (listing's cursor)     │
    logging/setLevel    every backend with logging, at the   │
                        most verbose level any session set   │
    resources/(un)subscribe  by URI; unsubscribed when the ─┘
                        last session subscribed to it is

The session's level and subscriptions are kept with it (early_sessions.EarlySession)
until the core adopts it and its `UpstreamHub` takes them over.

`serve` returns None whenever the core could answer otherwise: params the SDK's models
would refuse or reshape, a name or URI the tables do not know while a backend is not
yet verified (its live lists decide then), a template this module cannot match as the
SDK does, a backend the front does not run. The front then loads the core, which
answers as it always has.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import pydantic_core

from mcpgw_runtime import exchange
from mcpgw_runtime.early_sessions import LOG_LEVELS, EarlySession, EarlySessions, wants_log
from mcpgw_runtime.exchange import result_bytes
from mcpgw_runtime.forwarding import INVALID_PARAMS, INVALID_REQUEST, Refused, unknown
from mcpgw_runtime.front_backends import FrontBackends, strip_meta
from mcpgw_runtime.jsonrpc_http import AsgiReceive, AsgiSend, Reply, disconnected, error_answer, id_key
from mcpgw_runtime.limits import Limits, result_size
from mcpgw_runtime.listing import ResourceRoutes, decode_cursor, encode_cursor, no_backend_offers
from mcpgw_runtime.profiles import Profiles
from mcpgw_runtime.search import SEARCH_TOOL
from mcpgw_runtime.spec import JSON, GatewaySpec, Target
from mcpgw_runtime.stdio_forwarding import Answer, Channel

log = logging.getLogger("mcpgw")

SESSION_METHODS = frozenset({"logging/setLevel", "resources/subscribe", "resources/unsubscribe"})
"""What a client asks for its session: served only on one the front opened (the state is kept with it)."""
RELAYED = frozenset({"tools/call", "prompts/get", "resources/read", "completion/complete", "resources/list"})
RELAYED |= SESSION_METHODS

EMPTY_RESULT = b',"result":{}}'


def _strings(value: object) -> bool:
    """A `dict[str, str]` as the SDK's models take it."""
    return isinstance(value, dict) and all(type(v) is str for v in value.values())


def _meta_ok(params: Mapping[str, Any]) -> bool:
    meta = params.get("_meta")
    return meta is None or isinstance(meta, dict)


def _with_meta(forwarded: JSON, params: Mapping[str, Any]) -> JSON:
    """`_meta` as the core forwards it: dropped when null, reserved envelope keys removed (`strip_meta`)."""
    if params.get("_meta") is not None:
        forwarded["_meta"] = params["_meta"]
    return strip_meta(forwarded)


class SessionReply(Reply):
    """A relayed request's answer; the backend's log entries reach it as `Origin.allows_log` lets them (relay.py)."""

    def __init__(self, send: AsgiSend, sid: bytes, session: EarlySession | None) -> None:
        super().__init__(send, sid)
        self._session = session

    async def notify(self, method: str, params: Any) -> None:
        if method == "notifications/message":
            level = params.get("level") if isinstance(params, dict) else None
            if not wants_log(level, self._session.level if self._session is not None else None):
                return
        await super().notify(method, params)


class Relays:
    """The front's side of every relayed method; `settled()` says the embedded tables are the truth."""

    def __init__(
        self,
        spec: GatewaySpec,
        backends: FrontBackends,
        sessions: EarlySessions,
        in_flight: dict[tuple[bytes, object], asyncio.Future[Any]],
        profiles: Profiles | None = None,
    ) -> None:
        self.spec = spec
        self.profiles = profiles or Profiles(spec)
        """What the request's profile may call and read (profiles.py): anything else is unknown."""
        self.backends = backends
        self.sessions = sessions
        self.forward = backends.forwarder.request
        templates = [(backend, str(t.get("uriTemplate"))) for backend, t in spec.resource_templates]
        self.resources = ResourceRoutes(dict(spec.resources), templates)
        self._tools: JSON = {"tools": list(spec.tools)}
        """The embedded tools/list, what a search profile's search finds in while no pin has drifted."""
        self.settled = backends.all_ready
        """Replaced by the front: also False once the core is loading (its verdicts then decide)."""
        self.in_flight = in_flight
        """Relayed requests in flight, by session and request id: what `notifications/cancelled` cancels."""
        self.limits = Limits.of(spec.limits) if spec.limits is not None else None
        """Rate limits and result caps (limits.py), shared with the core."""

    async def answer(
        self, method: str, params: object, rid: object, sid: bytes | None, receive: AsgiReceive, send: AsgiSend
    ) -> bool:
        """Relay one request and send its answer (or what the backend sends for it first, on a stream).

        False, with nothing sent, when the core must take it. While it runs, the client's
        `notifications/cancelled` (`cancel`) or going away cancels it, at the backend too.
        """
        session = self.sessions.open.get(sid) if sid is not None else None
        if method in SESSION_METHODS and session is None:
            return False  # no session to keep it with (`--stateless`): the core's
        reply = SessionReply(send, sid or b"", session)
        # Begun before the task: the task's context is a copy of this one, so its backend call finds the exchange.
        seen = exchange.begin(method, params, rid, sid, "tcp") if exchange.ACTIVE else None
        call = asyncio.ensure_future(self.serve(method, params, reply, session))
        key = (sid or b"", id_key(rid))
        self.in_flight[key] = call
        watcher = asyncio.ensure_future(disconnected(receive))
        watcher.add_done_callback(lambda w: call.cancel() if not w.cancelled() and w.result() else None)
        try:
            tail = await (call if seen is None else seen.awaiting(call))  # recorded before it is answered
        except Refused as refused:
            await reply.finish(error_answer(rid, refused.error))
            return True
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the server is stopping this request, not the client
            await reply.finish(error_answer(rid, {"code": INVALID_REQUEST, "message": "Request cancelled"}))
            return True
        finally:
            watcher.cancel()
            if self.in_flight.get(key) is call:
                del self.in_flight[key]
        if tail is None:
            if seen is not None:
                seen.dropped()
            return False
        if seen is not None:
            seen.ok(result_bytes(tail))
        await reply.finish(b'{"jsonrpc":"2.0","id":' + pydantic_core.to_json(rid), tail)
        return True

    def cancel(self, sid: bytes | None, request_id: object) -> bool:
        """The client cancelled one of its requests: True when it was one relayed here, now cancelled."""
        call = self.in_flight.get((sid or b"", id_key(request_id)))
        if call is not None:
            call.cancel()
        return call is not None

    async def serve(
        self, method: str, params: object, channel: Channel, session: EarlySession | None = None
    ) -> bytes | memoryview | None:
        """The answer's bytes after its id (`,"result":...}`), `Refused`, or None: the core must answer."""
        if params is not None and not isinstance(params, dict):
            return None
        params = params or {}
        if not _meta_ok(params):
            return None
        if method in SESSION_METHODS:
            return await self._for_session(method, params, channel, session)
        found: bytes | None = None
        if method == "tools/call":
            found = self._search(params)
            answer = await self._call_tool(params, channel) if found is None else None
        elif method == "prompts/get":
            answer = await self._get_prompt(params, channel)
        elif method == "resources/read":
            answer = await self._read_resource(params, channel)
        elif method == "completion/complete":
            answer = await self._complete(params, channel)
        elif method == "resources/list":
            page = await self._list_resources(params, channel)
            return None if page is None else b',"result":' + pydantic_core.to_json(page) + b"}"
        else:
            return None
        return found if answer is None else answer.tail

    def _route(self, kind: str, routes: Mapping[str, Target], name: str) -> Target | None:
        """Where an exposed name goes; `Refused` for an unknown one once the tables are the truth.

        A name outside the request's profile is unknown at once: the profile's tables are compiled.
        """
        if not self.profiles.allows(kind, name):
            raise unknown(kind, name)
        route = routes.get(name)
        if route is None and self.settled():
            raise unknown(kind, name)
        if route is not None:
            self.profiles.permit(kind, name)  # the policy's denial, naming its rule (policy.py)
        return route

    def _resource(self, uri: str) -> str | None:
        """The backend serving `uri` as the core's `_resource_backend` finds it; None: the core must say."""
        if not self.resources.decides(uri):
            return None
        name = self.resources.backend(uri)
        if name is None and self.settled():
            raise no_backend_offers(uri)
        if name is not None and not self.profiles.shows_resource(uri, name):
            raise no_backend_offers(uri)
        if name is not None:
            self.profiles.permit("resource", uri)
        return name

    def _search(self, params: Mapping[str, Any]) -> bytes | None:
        """A search profile's `search_tools` call, answered from its index over the embedded tables.

        None for any other call, and while a pin has drifted: the core's lists decide then.
        """
        if params.get("name") != SEARCH_TOOL or self.backends.drifted():
            return None
        found = self.profiles.search(params, self._tools)
        return None if found is None else b',"result":' + pydantic_core.to_json(found) + b"}"

    async def _call_tool(self, params: Mapping[str, Any], channel: Channel) -> Answer | None:
        try:
            params = self.profiles.direct(params)  # a search profile's `call_tool`: the call it names
        except ValueError as exc:
            raise Refused(INVALID_PARAMS, str(exc)) from None
        name = params.get("name")
        if not isinstance(name, str):
            raise Refused(INVALID_PARAMS, "tools/call needs a string 'name'")
        route = self._route("tool", self.spec.tool_routes, name)
        if route is None:
            return None
        if self.limits is not None:
            self.limits.admit(name)
        forwarded = strip_meta(params)
        forwarded["name"] = route.name
        answer = await self.forward(route.backend, "tools/call", forwarded, channel, tool=route.name)
        if answer is None or self.limits is None or not self.limits.capped(name):
            return answer
        result = self.limits.cap(name, answer.result, result_size(answer.tail))
        if result is answer.result:
            return answer
        return Answer(result, b',"result":' + pydantic_core.to_json(result) + b"}")

    async def _get_prompt(self, params: Mapping[str, Any], channel: Channel) -> Answer | None:
        name, arguments = params.get("name"), params.get("arguments")
        if type(name) is not str or not (arguments is None or _strings(arguments)):
            return None
        route = self._route("prompt", self.spec.prompt_routes, name)
        if route is None:
            return None
        forwarded: JSON = {"name": route.name}
        if arguments is not None:
            forwarded["arguments"] = arguments
        return await self.forward(route.backend, "prompts/get", _with_meta(forwarded, params), channel)

    async def _read_resource(self, params: Mapping[str, Any], channel: Channel) -> Answer | None:
        uri = params.get("uri")
        if type(uri) is not str:
            return None
        backend = self._resource(uri)
        if backend is None:
            return None
        return await self.forward(backend, "resources/read", _with_meta({"uri": uri}, params), channel)

    async def _complete(self, params: Mapping[str, Any], channel: Channel) -> Answer | None:
        ref, argument, context = params.get("ref"), params.get("argument"), params.get("context")
        if not isinstance(argument, dict) or type(argument.get("name")) is not str:
            return None
        if type(argument.get("value")) is not str or not isinstance(ref, dict):
            return None
        forwarded: JSON = {"argument": {"name": argument["name"], "value": argument["value"]}}
        if context is not None:
            arguments = context.get("arguments") if isinstance(context, dict) else False
            if not (arguments is None or _strings(arguments)):
                return None
            forwarded["context"] = {} if arguments is None else {"arguments": arguments}
        routed = self._completion_ref(ref)
        if routed is None:
            return None
        forwarded["ref"], backend = routed
        return await self.forward(backend, "completion/complete", _with_meta(forwarded, params), channel)

    def _completion_ref(self, ref: Mapping[str, Any]) -> tuple[JSON, str] | None:
        """The ref as the backend knows it, and the backend: a prompt by its route, a resource by template or URI."""
        if ref.get("type") == "ref/prompt" and type(ref.get("name")) is str:
            title = ref.get("title")
            if not (title is None or type(title) is str):
                return None
            route = self._route("prompt", self.spec.prompt_routes, ref["name"])
            if route is None:
                return None
            forwarded: JSON = {"type": "ref/prompt", "name": route.name}
            if title is not None:
                forwarded["title"] = title
            return forwarded, route.backend
        if ref.get("type") == "ref/resource" and type(ref.get("uri")) is str:
            uri = ref["uri"]
            backend = self.resources.by_template.get(uri)
            if backend is not None and not self.profiles.shows_resource(uri, backend):
                raise no_backend_offers(uri)
            if backend is not None:
                self.profiles.permit("resource", uri)
            backend = backend or self._resource(uri)
            return None if backend is None else ({"type": "ref/resource", "uri": uri}, backend)
        return None

    async def _for_session(
        self, method: str, params: Mapping[str, Any], channel: Channel, session: EarlySession | None
    ) -> bytes | None:
        if session is None or not self.settled():
            return None  # a core loading now adopts the session: the request is its
        if method == "logging/setLevel":
            return await self._set_level(params, session)
        return await self._subscription(method, params, channel, session)

    async def _set_level(self, params: Mapping[str, Any], session: EarlySession) -> bytes | None:
        """Each session hears its own level; backends are set to the most verbose level any session wants.

        As `Gateway.set_level`: the backends are asked in turn, for no client (what they log
        meanwhile is of unknown origin), and one that fails is only logged.
        """
        level = params.get("level")
        if type(level) is not str or level not in LOG_LEVELS:
            return None  # the SDK's validation error
        wanted = self.sessions.set_level(session, level)
        for backend in self.backends.backends.values():
            if (backend.init or {}).get("capabilities", {}).get("logging") is None:
                continue
            try:
                answer = await self.forward(backend.name, "logging/setLevel", {"level": wanted}, None)
            except Refused as exc:
                log.warning("backend %s: logging/setLevel failed: %s", backend.name, exc.message)
                continue
            if answer is None:
                return None  # handed to the core meanwhile: it sets them all again
        return EMPTY_RESULT

    async def _subscription(
        self, method: str, params: Mapping[str, Any], channel: Channel, session: EarlySession
    ) -> bytes | None:
        """`resources/subscribe` and `unsubscribe`, as `Gateway.subscribe` and `unsubscribe`.

        The subscription is recorded before the backend is asked (and taken back if it refuses),
        so that a core adopting the session meanwhile finds it.
        """
        uri = params.get("uri")
        if type(uri) is not str:
            return None
        backend = self._resource(uri)
        if backend is None:
            return None
        if method == "resources/unsubscribe":
            last = self.sessions.unsubscribe(session, uri)
            if last and await self.forward(backend, method, {"uri": uri}, channel) is None:
                return None
            return EMPTY_RESULT
        already = uri in session.subscriptions
        session.subscriptions.add(uri)
        answer: Answer | None = None
        try:
            answer = await self.forward(backend, method, {"uri": uri}, channel)
        finally:
            if answer is None and not already:  # refused, cancelled, or the core's to answer
                session.subscriptions.discard(uri)
        return None if answer is None else EMPTY_RESULT

    async def _list_resources(self, params: Mapping[str, Any], channel: Channel) -> JSON | None:
        """One page of one backend at a time, as the core's `list_resources` (the same cursor)."""
        cursor = params.get("cursor")
        if not (cursor is None or type(cursor) is str) or not self.settled():
            return None  # a backend still starting: the core asks it once connected
        running = self.backends.backends
        offering = [b for b in running.values() if (b.init or {}).get("capabilities", {}).get("resources") is not None]
        order = [b for b in offering if self.profiles.shows_backend(b.name)]
        index, inner = decode_cursor(cursor) if cursor else (0, None)
        while index < len(order):
            backend = order[index]
            try:
                answer = await self.forward(
                    backend.name, "resources/list", {"cursor": inner} if inner else None, channel
                )
            except Refused as exc:
                log.warning("resources/list skipped backend %s: %s", backend.name, exc.message)
                index, inner = index + 1, None
                continue
            if answer is None:
                return None
            page = answer.result
            resources = [
                r
                for r in page.get("resources") or []
                if isinstance(r, dict) and isinstance(r.get("uri"), str) and backend.spec.exposes_resource(r["uri"])
            ]
            for resource in resources:
                self.resources.live[resource["uri"]] = backend.name
            following = page.get("nextCursor")
            result: JSON = {"resources": self.profiles.resources(backend.name, resources)}
            if isinstance(following, str) and following:
                result["nextCursor"] = encode_cursor(index, following)
            elif index + 1 < len(order):
                result["nextCursor"] = encode_cursor(index + 1, None)
            return result
        return {"resources": []}
