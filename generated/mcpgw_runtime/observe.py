# mcpgw runtime, vendored into every generated gateway. DO NOT EDIT the copy in dist/: its digest is checked at start.
"""Backend state changes as events, for the console and anything else that watches.

`Backend.state` is an `ObservedState`: every assignment that changes the value
calls each function in `STATE_LISTENERS` with a `StateChange`. The backend code
keeps assigning a plain string; it needs no knowledge of who listens.
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, overload

log = logging.getLogger("mcpgw")


@dataclass(frozen=True, slots=True)
class StateChange:
    """One transition of one backend; `old` is None for the initial state."""

    backend: str
    old: str | None
    new: str
    error: str | None = None
    server: str | None = None
    """The backend's `serverInfo.name` once connected."""
    pin: Any = None
    """The backend's pin status (the `pin` entry of `/healthz`), when it has one."""


StateListener = Callable[[StateChange], None]

STATE_LISTENERS: list[StateListener] = []
"""Called synchronously on every change; a listener that raises is logged and skipped."""

OBSERVED: weakref.WeakSet[Any] = weakref.WeakSet()
"""Every object with an `ObservedState`, from its first value on: whose log lines the console may recognise."""


def _server_name(owner: Any) -> str | None:
    server = getattr(owner, "server", None)  # a backend the front runs (front_backends.py) says it itself
    if isinstance(server, str):
        return server
    init = getattr(getattr(owner, "connection", None), "init", None)
    name = getattr(getattr(init, "server_info", None), "name", None)
    return name if isinstance(name, str) else None


class ObservedState:
    """A data descriptor for a string attribute whose changes are announced."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = f"_observed_{name}"

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> ObservedState: ...

    @overload
    def __get__(self, instance: object, owner: type | None = None) -> str: ...

    def __get__(self, instance: object | None, owner: type | None = None) -> ObservedState | str:
        if instance is None:
            return self
        value: str = instance.__dict__[self.slot]
        return value

    def __set__(self, instance: object, value: str) -> None:
        old: str | None = instance.__dict__.get(self.slot)
        instance.__dict__[self.slot] = value
        if old is None:
            with contextlib.suppress(TypeError):  # not weakly referable: nothing to recognise it by
                OBSERVED.add(instance)
        if old == value or not STATE_LISTENERS:
            return
        change = StateChange(
            backend=str(getattr(instance, "name", "?")),
            old=old,
            new=value,
            error=None if value == "ready" else getattr(instance, "error", None),
            server=_server_name(instance) if value == "ready" else None,
            pin=getattr(instance, "pin", None),
        )
        for listener in STATE_LISTENERS.copy():  # a listener may remove itself
            try:
                listener(change)
            except Exception:
                log.exception("state listener failed on %s", change)
