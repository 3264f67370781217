# mcpgw runtime, vendored into every generated gateway. DO NOT EDIT the copy in dist/: its digest is checked at start.
"""Everything the runtime takes from the `mcp` SDK's private internals, and only here.

The rest of the runtime uses the SDK's public API. What it cannot do that way sits in
this module, as small functions with a public shape, so that an SDK upgrade that moves
one of these internals breaks this file, and tests/test_sdk_adapter.py, which runs each
assumption against the installed SDK and names this module when one fails.

Private names touched, and why no public API serves:

* `ServerSession._connection` (`upstream_channels`): the upstream client's `Connection`,
  the identity of a session (log levels, subscriptions, per-client backends, whose
  `exit_stack` closes them) and its standalone channel (`connection.outbound`).
  `ServerSession` exposes only some of its fields (`client_params`, `protocol_version`),
  never the object itself.
* `ServerSession._request_outbound` (`upstream_channels`): the request's `DispatchContext`,
  its raw back-channel. The gateway relays a backend's request or notification to the
  client as the raw JSON the backend sent; the public `send_request` and
  `send_notification` take typed models, so each relayed message would be validated and
  serialized again. (Progress goes through the public `report_progress`.)
* `StreamableHTTPSessionManager._admit_session` (`AdoptingManager`): the one place the
  manager names a new session. A session the front opened before the core was loaded is
  handed to the SDK under the id its client already holds; the manager takes no id from
  outside, so the override renames the session it just admitted.
* `StreamableHTTPSessionManager._server_instances` and `._session_owners`
  (`AdoptingManager`, `has_get_stream`): the manager's tables of sessions by id, and of the
  credential that opened each; renaming a session moves its entries, and a session's
  transport is found there by id. The manager has no public lookup.
* `StreamableHTTPSessionManager._server_instances` and `._session_owners` (`end_session`):
  the gateway's session table (session_table.py) decides when a session ends (evicted to
  admit a new client, expired when idle); the manager can only end one on a client's
  DELETE or its own idle timer, which the gateway turns off (it would also reap a session
  whose calls all take the fast path, which its transport never sees). The session is
  taken out of both tables, as the manager's own `_discard_session` does, and its
  transport ended through the public `terminate`, as a DELETE does.
* `StreamableHTTPServerTransport._request_streams` (`has_get_stream`): the transport's
  open response streams by request id, the standalone GET stream under the public key
  `GET_STREAM_KEY`. Nothing public says whether a client holds that stream; the front
  waits for it before the core's backends start, so that a list change they announce
  reaches the client.

Starlette's `Request._send` is not needed: `/sse` is routed to a plain ASGI app
(`http.SseEndpoint`), which gets `send` from ASGI itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Coroutine, Iterator
from contextvars import ContextVar
from typing import Any

from mcp.server.connection import Connection
from mcp.server.session import ServerSession
from mcp.server.streamable_http import GET_STREAM_KEY, StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.dispatcher import DispatchContext


def upstream_channels(session: ServerSession) -> tuple[Connection, DispatchContext[Any]]:
    """The upstream client's connection and the request's raw back-channel (`ctx.session` of a handler)."""
    return session._connection, session._request_outbound


_ADMITTED_AS: ContextVar[str | None] = ContextVar("mcpgw_admitted_as", default=None)
"""Set while a session the front opened is replayed into the SDK: the id its new session must get."""


@contextlib.contextmanager
def admitted_as(session_id: str) -> Iterator[None]:
    """Within this block, the session `AdoptingManager` admits gets `session_id` instead of a fresh one."""
    token = _ADMITTED_AS.set(session_id)
    try:
        yield
    finally:
        _ADMITTED_AS.reset(token)


class AdoptingManager(StreamableHTTPSessionManager):
    """The SDK's session manager, except that an adopted session keeps the id the front gave it.

    The id is changed in `_admit_session`, before the session is served: its first
    answer already carries the id the client knows.
    """

    def _admit_session(self, requestor: Any) -> StreamableHTTPServerTransport | None:
        transport = super()._admit_session(requestor)
        wanted = _ADMITTED_AS.get()
        if transport is None or wanted is None:
            return transport
        given = transport.mcp_session_id
        assert given is not None
        self._server_instances[wanted] = self._server_instances.pop(given)
        if given in self._session_owners:
            self._session_owners[wanted] = self._session_owners.pop(given)
        transport.mcp_session_id = wanted
        return transport


def has_get_stream(manager: StreamableHTTPSessionManager, session_id: str) -> bool:
    """Whether the SDK serves the standalone GET stream of this session now."""
    transport = manager._server_instances.get(session_id)
    return transport is not None and GET_STREAM_KEY in transport._request_streams


def end_session(manager: StreamableHTTPSessionManager, session_id: str) -> Coroutine[Any, Any, None] | None:
    """Forget the session now (its id answers 404 from here on); the coroutine that ends its transport, or None.

    Ending the transport ends the session's message loop, and the SDK then unwinds its
    connection's `exit_stack`: its per-client backend connections close (sessions.py).
    """
    transport = manager._server_instances.pop(session_id, None)
    manager._session_owners.pop(session_id, None)
    if transport is None or transport.is_terminated:
        return None
    return transport.terminate()
