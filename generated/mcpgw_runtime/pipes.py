# mcpgw runtime, vendored into every generated gateway. DO NOT EDIT the copy in dist/: its digest is checked at start.
"""A stdio backend's process and its pipes, without the SDK: lines out, lines in, answers matched by id.

Why in the front: a pipe outlives whoever reads it first. The core attaches
the SDK's dispatcher to it (backends.py), and a request can be written
straight to it and its answer matched by id (the lane), beside the
dispatcher. Only asyncio and pydantic_core are used, so the front can start
and hold a backend before the SDK has loaded.

One reader task reads the child's stdout. A line whose id is the lane's
resolves that request's future; every other line (notifications, the
backend's own requests, answers to the dispatcher) goes to the attached
`Sink`, in order. Lines that arrive before a sink is attached are held and
given to it first. Writes go to stdin in call order (`write` is synchronous;
only the wait for the buffer to drain is not).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TextIO

import pydantic_core

from mcpgw_runtime.envsubst import expand
from mcpgw_runtime.heap import LARGE_MESSAGE, keep_freed_memory
from mcpgw_runtime.spec import BackendSpec

LANE_FIRST_ID = 1 << 40
"""Request ids at or above this belong to the lane; the SDK's dispatcher counts up from 0."""

MAX_LINE_BYTES = 64 * 1024 * 1024
"""A stdio backend's message (one line) may be at most this long; longer lines are dropped."""

READ_BYTES = 64 * 1024
"""Bytes asked of the pipe per read (1 MiB reads measured slower, bench/README.md)."""

READ_LIMIT = 1024 * 1024
"""The stdout reader's limit: reading pauses only once twice this much is buffered.

Why: at asyncio's default (64 KiB, a pause past 128 KiB), reading paused and resumed
on every read of a large answer (two more system calls each time, seen with strace),
while the backend waited in the middle of its write. The line is kept whole in
memory anyway, up to `MAX_LINE_BYTES`.
"""

STDIN_GRACE = 0.5
"""Seconds a stdio backend gets to exit on its own after its stdin closes (the MCP shutdown sequence)."""

STOP_GRACE = 1.5
"""Seconds a backend's process group gets between SIGTERM and SIGKILL at shutdown or restart."""

PYTHON_ALIASES = frozenset({"python", "python3"})
"""`"command": "python"` means the interpreter that runs the gateway (spec section 2)."""


@dataclass(frozen=True, slots=True)
class Resolved:
    """A backend spec with `${VAR}` expanded and paths resolved, ready to launch."""

    command: list[str] | None
    env: dict[str, str]
    cwd: str
    url: str | None
    headers: dict[str, str]


def resolve(spec: BackendSpec, base_dir: Path, environ: Mapping[str, str] | None = None) -> Resolved:
    """Expand references and resolve `cwd` against the config's folder."""
    where = f"backend {spec.name!r}"

    def x(text: str) -> str:
        return expand(text, where, environ)

    command: list[str] | None = None
    if spec.command is not None:
        exe = x(spec.command)
        if exe in PYTHON_ALIASES:
            exe = sys.executable
        command = [exe, *(x(a) for a in spec.args)]
    cwd = base_dir if spec.cwd is None else base_dir / x(spec.cwd)
    return Resolved(
        command=command,
        env={k: x(v) for k, v in spec.env.items()},
        cwd=str(cwd),
        url=x(spec.url) if spec.url is not None else None,
        headers={k: x(v) for k, v in spec.headers.items()},
    )


def answer_tail(line: bytes, rid: int) -> memoryview | None:
    """The bytes after the id of a backend's answer, when the line has the usual layout."""
    head = b'{"jsonrpc":"2.0","id":%d' % rid
    if line.startswith(head) and line.startswith(b',"result":{', len(head)) and line.endswith(b"}}"):
        return memoryview(line)[len(head) :]
    return None


MAX_PAGES = 1000
"""A cursor that never ends is a broken backend, not a reason to hang."""


async def all_pages(
    fetch: Callable[[Mapping[str, Any] | None], Awaitable[Mapping[str, Any]]],
    method: str,
    key: str,
    error: type[Exception],
) -> list[dict[str, Any]]:
    """Every item of a paginated list (`fetch` returns one page's result), following `nextCursor` to the end."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        page = await fetch({"cursor": cursor} if cursor else None)
        items += [i for i in page.get(key) or [] if isinstance(i, dict)]
        cursor = page.get("nextCursor")
        if not cursor:
            return items
    raise error(f"{method} still returned a nextCursor after {MAX_PAGES} pages")


Sink = Callable[[bytes, Any], Awaitable[None]]
"""Gets each line that is not a lane answer, with its JSON value (a ValueError when it is not JSON)."""


class PipeClosed(Exception):
    """The backend's process ended, closed its stdout or stopped reading its stdin."""


class Pipe:
    """One running stdio backend: its process, a reader task, the lane."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdin is not None and process.stdout is not None
        self.process = process
        self.pid = process.pid
        self.closed = asyncio.Event()
        """Set once the reader has ended (EOF, the process gone) and every line was handed on."""
        self.screen: Callable[[bytes, Any], Awaitable[bool]] | None = None
        """Before a sink is attached: offered each line first; True when it took the line (the front's)."""
        self.on_held: Callable[[], None] | None = None
        """Called when a line is held for want of a sink (the front: "the core is needed")."""
        self._stdin = process.stdin
        self._stdout = process.stdout
        self._ids = itertools.count(LANE_FIRST_ID).__next__
        self._pending: dict[int, asyncio.Future[tuple[dict[str, Any], bytes]]] = {}
        self._sink: Sink | None = None
        self._held: list[tuple[bytes, Any]] = []
        self._replay: asyncio.Future[None] | None = None
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def spawn(cls, command: list[str], cwd: str, env: Mapping[str, str], errlog: TextIO) -> Pipe:
        """Start `command` in a process group of its own (so `stop` reaches its children too)."""
        process = await asyncio.create_subprocess_exec(
            *command,
            cwd=cwd,
            env=dict(env),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=errlog,
            start_new_session=True,
            limit=READ_LIMIT,
        )
        return cls(process)

    def attach(self, sink: Sink) -> None:
        """From now on, lines that are not lane answers go to `sink`; the held ones first, in order."""
        held, self._held = self._held, []

        async def replay() -> None:
            for line, value in held:
                await sink(line, value)
            self._sink = sink

        self._replay = asyncio.ensure_future(replay())

    # -- writing -----------------------------------------------------------

    async def send(self, data: bytes) -> None:
        """Write one message (a line, newline included); PipeClosed when the child stopped reading."""
        if self.closed.is_set():
            raise PipeClosed
        try:
            self._stdin.write(data)
            await self._stdin.drain()
        except (OSError, RuntimeError) as exc:  # RuntimeError: the transport is already closing
            raise PipeClosed from exc

    async def request(
        self, method: str, params: Mapping[str, Any] | None, timeout: float
    ) -> tuple[dict[str, Any], bytes]:
        """A request on the lane: the answer's JSON and its line as read.

        TimeoutError after `timeout` seconds, PipeClosed when the pipe ends first. A request
        that times out or is cancelled is cancelled at the backend too.
        """
        if self.closed.is_set():
            raise PipeClosed
        rid = self._ids()
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            message["params"] = params
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[dict[str, Any], bytes]] = loop.create_future()
        self._pending[rid] = future
        timer = loop.call_later(timeout, _expire, future)
        try:
            await self.send(pydantic_core.to_json(message) + b"\n")
            try:
                return await future
            except TimeoutError:
                self._cancel(rid, "timed out")
                raise
            except asyncio.CancelledError:
                self._cancel(rid, "cancelled by the client")
                raise
        finally:
            timer.cancel()
            self._pending.pop(rid, None)

    def _cancel(self, rid: int, reason: str) -> None:
        """`notifications/cancelled` for a lane request; written at once, never awaited (it may be cancelling)."""
        note = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": rid, "reason": reason}}
        self.write_now(pydantic_core.to_json(note) + b"\n")

    def write_now(self, data: bytes) -> None:
        """Write one message without waiting for the pipe to drain (from the reader, or while cancelling)."""
        if self.closed.is_set():
            return
        with contextlib.suppress(OSError, RuntimeError):
            self._stdin.write(data)

    # -- reading -----------------------------------------------------------

    async def _read(self) -> None:
        parts: list[bytes] = []  # the line so far, joined once its newline arrives
        size, skipping = 0, False
        try:
            while received := await self._stdout.read(READ_BYTES):
                chunk = received
                while (newline := chunk.find(b"\n")) >= 0:
                    parts.append(chunk[:newline])
                    line, chunk = b"".join(parts), chunk[newline + 1 :]
                    parts, size, was_skipping, skipping = [], 0, skipping, False
                    if len(line) >= LARGE_MESSAGE:
                        keep_freed_memory()
                    if line and not line.isspace() and not was_skipping:
                        await self._line(line.rstrip(b"\r"))
                if chunk and not skipping:
                    parts.append(chunk)
                    size += len(chunk)
                    if size > MAX_LINE_BYTES:  # never buffer an endless line: drop it up to its newline
                        parts, size, skipping = [], 0, True
                        await self._hand_on(b"", ValueError(f"stdout line over {MAX_LINE_BYTES} bytes dropped"))
        except (OSError, ConnectionError):
            pass
        finally:
            self.abandon()
            if self._replay is not None and not self._replay.done():
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._replay)
            self.closed.set()

    async def _line(self, line: bytes) -> None:
        try:
            try:
                value = pydantic_core.from_json(line)
            except ValueError:
                value = pydantic_core.from_json(line.decode(errors="replace"))  # as the SDK reads a bad byte
        except ValueError as exc:
            await self._hand_on(line, exc)
            return
        if type(value) is dict:
            rid = value.get("id")
            if type(rid) is int and rid >= LANE_FIRST_ID and "method" not in value:
                future = self._pending.get(rid)
                if future is not None and not future.done():
                    future.set_result((value, line))
                return
        await self._hand_on(line, value)

    async def _hand_on(self, line: bytes, value: Any) -> None:
        replay = self._replay
        if replay is not None and not replay.done():
            await asyncio.shield(replay)  # the held lines go first
        sink = self._sink
        if sink is not None:
            await sink(line, value)
            return
        if self.screen is not None and await self.screen(line, value):
            return
        self._held.append((line, value))
        if self.on_held is not None:
            self.on_held()

    # -- stopping ----------------------------------------------------------

    def abandon(self) -> None:
        """Fail every lane request in flight now (PipeClosed), before the process is stopped."""
        for future in self._pending.values():
            if not future.done():
                future.set_exception(PipeClosed())

    async def stop(self) -> None:
        """Close stdin, give the child `STDIN_GRACE` to exit, then stop its whole process group."""
        with contextlib.suppress(OSError, RuntimeError):
            self._stdin.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STDIN_GRACE
        while self.process.returncode is None and loop.time() < deadline:
            await asyncio.sleep(0.01)
        await stop_process_group(self.process)
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


class _Process(Protocol):
    """What stopping needs of a process (asyncio's and anyio's both have it)."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...


async def stop_process_group(process: _Process, grace: float = STOP_GRACE) -> None:
    """SIGTERM the whole process group, then SIGKILL whatever is left after `grace` seconds.

    The group, not only the leader: a child that ignores SIGTERM, or a grandchild
    the leader left behind, is still killed. Never waits more than about `2 * grace`.
    """
    _signal_group(process.pid, signal.SIGTERM)
    if not await _wait_group(process, grace):
        _signal_group(process.pid, signal.SIGKILL)
        await _wait_group(process, grace)


async def _wait_group(process: _Process, timeout: float) -> bool:
    """Poll until the leader is reaped and (POSIX) no member of its group is left."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while process.returncode is None or _group_alive(process.pid):
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(0.01)
    return True


def _group_alive(pgid: int) -> bool:
    if sys.platform == "win32":
        return False
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # zombies or foreign members: keep waiting, the deadline bounds it
    return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if sys.platform == "win32":
            os.kill(pid, sig)
        else:
            os.killpg(pid, sig)
