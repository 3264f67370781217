# mcpgw runtime, vendored into every generated gateway. DO NOT EDIT the copy in dist/: its digest is checked at start.
"""A per-backend cap on concurrent requests, with a bounded FIFO queue behind it.

    request ─▶ slot free and nobody queued? ─yes─▶ run (active += 1)
                     │ no
                     ▼
               queue full? ─yes─▶ MCPError BACKEND_BUSY naming the backend
                     │ no
                     ▼
               wait in FIFO order, at most the request's timeout ─▶ run
                                         └─ timed out ─▶ MCPError REQUEST_TIMEOUT

`release` hands a freed slot straight to the oldest waiter, so a burst never
overtakes the queue. The fast path is one comparison and one increment.
"""

from __future__ import annotations

from collections import deque

import anyio
import mcp_types as types
from mcp.shared.exceptions import MCPError

BACKEND_BUSY = -32003
"""JSON-RPC error code for "the backend's concurrency cap and queue are both full"."""


class Limiter:
    """At most `limit` requests at once; at most `queue_limit` more waiting for a slot."""

    __slots__ = ("_waiters", "active", "limit", "name", "queue_limit", "rejected")

    def __init__(self, name: str, limit: int, queue_limit: int) -> None:
        self.name = name
        self.limit = max(1, limit)
        self.queue_limit = max(0, queue_limit)
        self.active = 0
        self.rejected = 0
        self._waiters: deque[anyio.Event] = deque()

    @property
    def queued(self) -> int:
        return len(self._waiters)

    @property
    def saturated(self) -> bool:
        """Every slot busy and the queue full: the next request is rejected."""
        return self.active >= self.limit and len(self._waiters) >= self.queue_limit

    async def acquire(self, timeout: float) -> None:
        """Take a slot, waiting in line up to `timeout` seconds; raise MCPError when refused."""
        if self.active < self.limit and not self._waiters:
            self.active += 1
            return
        if len(self._waiters) >= self.queue_limit:
            self.rejected += 1
            raise MCPError(
                BACKEND_BUSY,
                f"backend {self.name!r} is saturated: {self.active} requests in flight and "
                f"{len(self._waiters)} queued (max_concurrency {self.limit}, max_queue {self.queue_limit}); "
                "try again later",
            )
        event = anyio.Event()
        self._waiters.append(event)
        try:
            with anyio.move_on_after(timeout):
                await event.wait()
        except BaseException:  # cancelled while waiting, or just after being handed a slot
            self._leave(event)
            raise
        if not event.is_set():
            self._leave(event)
            raise MCPError(
                types.REQUEST_TIMEOUT, f"backend {self.name!r}: no free slot within {timeout:g}s (queued behind others)"
            )

    def _leave(self, event: anyio.Event) -> None:
        if event.is_set():
            self.release()  # a slot was handed to us; pass it on
        else:
            self._waiters.remove(event)

    def release(self) -> None:
        """Free a slot: hand it to the oldest waiter, if any."""
        if self._waiters:
            self._waiters.popleft().set()
        else:
            self.active -= 1
