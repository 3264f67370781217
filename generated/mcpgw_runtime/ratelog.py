# mcpgw runtime, vendored into every generated gateway. DO NOT EDIT the copy in dist/: its digest is checked at start.
"""Log lines about refusals at a bounded rate: the first at once, then a count per interval.

A client that is turned away (a wrong token, a foreign Host, a saturated backend)
can send thousands of requests a second. One line each would fill the log file
(and rotate away everything else in it) with the same line, and writing them costs
more than refusing. So a kind of refusal is logged at once the first time, then its
repeats within `interval` are only counted, and one line says how many there were:
"N more 'backend x saturated' refusals in the last 10s". A flood that goes on gets one
such line per interval; after a quiet interval the next refusal is logged at once again.

The count is written by a timer on the running event loop, so it appears even if the
flood stops; without a loop (or if the timer is late) the next refusal writes it.
Kinds are few and fixed by the caller (an HTTP status, a backend's name), never taken
from what a client sent, so the table stays small. Nothing here imports the SDK.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mcpgw_runtime.forwarding import Limiter

REFUSAL_LOG_INTERVAL = 10.0
"""Seconds over which repeats of one kind of refusal are counted into one line."""


class _Window:
    __slots__ = ("count", "level", "started", "timer")

    def __init__(self, level: int, started: float, timer: asyncio.TimerHandle | None) -> None:
        self.level = level
        self.started = started
        self.timer = timer
        self.count = 0


class RateLog:
    """One logger's refusal lines, at most one per kind per `interval` after the first."""

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = REFUSAL_LOG_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.interval = interval
        self.clock = clock
        self._windows: dict[str, _Window] = {}

    def log(self, kind: str, level: int, msg: str, *args: object) -> None:
        """Log `msg % args` if `kind` was quiet for the last interval; otherwise count it for the summary."""
        now = self.clock()
        window = self._windows.get(kind)
        if window is not None and now - window.started >= self.interval:  # its timer did not run (no loop)
            self._close(kind)
            window = self._windows.get(kind)
        if window is not None:
            window.count += 1
        elif self.logger.isEnabledFor(level):
            self.logger.log(level, msg, *args)
            self._open(kind, level, now)

    def warning(self, kind: str, msg: str, *args: object) -> None:
        self.log(kind, logging.WARNING, msg, *args)

    def flush(self) -> None:
        """Write every pending count now (at shutdown, or in tests)."""
        for kind in list(self._windows):
            window = self._windows.pop(kind)
            if window.timer is not None:
                window.timer.cancel()
            self._summary(kind, window)

    def _open(self, kind: str, level: int, now: float) -> None:
        try:
            timer = asyncio.get_running_loop().call_later(self.interval, self._close, kind)
        except RuntimeError:
            timer = None
        self._windows[kind] = _Window(level, now, timer)

    def _close(self, kind: str) -> None:
        """End `kind`'s interval: with repeats, say how many and count on; without, the next is logged at once."""
        window = self._windows.pop(kind, None)
        if window is None:
            return
        if window.timer is not None:
            window.timer.cancel()
        if window.count:
            self._summary(kind, window)
            self._open(kind, window.level, self.clock())

    def _summary(self, kind: str, window: _Window) -> None:
        if window.count:
            seconds = round(self.clock() - window.started, 1)
            self.logger.log(window.level, "%d more '%s' refusals in the last %gs", window.count, kind, seconds)


REFUSALS = RateLog(logging.getLogger("mcpgw"))
"""The gateway's refusal lines: the guard's (401, 403, 421), a too-large body's (413), a saturated backend's."""


def log_saturated(limiter: Limiter) -> None:
    """A saturated backend refused a call (`BACKEND_BUSY`): both halves log it so, at `REFUSALS`' rate."""
    REFUSALS.warning(
        f"backend {limiter.name} saturated",
        "backend %s is saturated: refusing calls (max_concurrency %d, max_queue %d)",
        limiter.name, limiter.limit, limiter.queue_limit,
    )  # fmt: skip
