# mcpgw runtime, vendored into every generated gateway. DO NOT EDIT the copy in dist/: its digest is checked at start.
"""Who sent the request being served: the `Caller` the auth gate established, as a context variable.

The gate (auth.py) puts the caller in the ASGI scope and sets `CALLER` in the request's
task; everything that serves the request reads it there, in either half of the gateway
(the SDK runs a message's handler in the context of the request that carried it, as
for `profiles.PROFILE`). None where no token is checked: loopback without a token,
`--no-auth`, stdio.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mcpgw_runtime.auth import Caller

CALLER: ContextVar[Caller | None] = ContextVar("mcpgw_caller", default=None)
"""The caller of the request being served; None where nothing was checked."""


def identity(caller: Caller | None) -> tuple[str, str, str | None] | None:
    """Who a caller is, not what its token lets it do: kind, subject and client (a new token with other scopes is
    the same caller). What a session is bound to (session_table.py) and per-caller rate limits count by (limits.py)."""
    return None if caller is None else (caller.kind, caller.subject, caller.client_id)
