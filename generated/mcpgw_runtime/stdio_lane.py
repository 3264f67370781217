# mcpgw runtime, vendored into every generated gateway. DO NOT EDIT the copy in dist/: its digest is checked at start.
"""A stdio backend's process under the SDK's dispatcher, with a lane for the hot requests beside it.

The process and its reader are pipes.py's (shared with the SDK-free front);
here the SDK's client session gets its streams over them (`posix_stdio`), and
`StdioLane` writes requests straight to the pipe, skipping the dispatcher's
model round trips (bench/README.md).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, Self, TextIO

import anyio
import mcp_types as types
from mcp.shared.exceptions import MCPError
from mcp.shared.message import SessionMessage

from mcpgw_runtime.front_backends import default_environment
from mcpgw_runtime.pipes import Pipe, PipeClosed, Resolved, answer_tail
from mcpgw_runtime.relay import BackendRelay
from mcpgw_runtime.spec import JSON

if TYPE_CHECKING:
    from mcpgw_runtime.connect import WatchedDispatcher

log = logging.getLogger("mcpgw")


class Wire(dict[str, Any]):
    """A backend's result as a dict that remembers the bytes it came in.

    `tail` is the backend's answer from just after its id to the end:
    `,"result":{...}}`, a view into the line as read, not a copy. The HTTP fast
    path answers with its own head (`{"jsonrpc":"2.0","id":<client's id>`) and
    this tail, so a large result crosses the gateway without being encoded or
    copied again.
    """

    __slots__ = ("tail",)

    def __init__(self, value: dict[str, Any], tail: memoryview) -> None:
        super().__init__(value)
        self.tail = tail


class StdioLane:
    """Requests written straight to a stdio backend's pipe (`Pipe.request`), beside the dispatcher.

    Why: the dispatcher costs a model build and dump, two memory-stream hops and a
    pydantic validation per message (bench/README.md). The lane writes one encoded
    line and the pipe's reader resolves it by id; everything else on the pipe
    (notifications, the backend's own requests, the dispatcher's answers) still
    goes to the dispatcher. Requests that carry a progress token stay on the
    dispatcher, which maps progress to the caller.
    """

    def __init__(self, pipe: Pipe) -> None:
        self.pipe = pipe
        self.dispatcher: WatchedDispatcher | None = None
        """Its relay gets the backend's log entries straight from the reader, in order with the answers."""

    async def request(self, method: str, params: Mapping[str, Any] | None, timeout: float) -> JSON:
        try:
            reply, line = await self.pipe.request(method, params, timeout)
        except PipeClosed:
            raise MCPError(types.CONNECTION_CLOSED, "Connection closed") from None
        except TimeoutError:
            raise MCPError(types.REQUEST_TIMEOUT, f"Timed out after {timeout:g}s") from None
        error = reply.get("error")
        if error is not None:
            raise MCPError.from_error_data(types.ErrorData.model_validate(error))
        result = reply.get("result")
        if not isinstance(result, dict):
            raise MCPError(types.INTERNAL_ERROR, f"backend answered {method} without a result object")
        tail = answer_tail(line, reply["id"])
        return Wire(result, tail) if tail is not None else result

    def relay(self) -> BackendRelay | None:
        return self.dispatcher.relay if self.dispatcher is not None else None


async def _deliver_log(lane: StdioLane, message: JSON) -> None:
    relay = lane.relay()
    if relay is not None:
        try:
            await relay.on_notify("notifications/message", message.get("params"))
        except Exception:  # a client that went away must not stop the backend's reader
            log.debug("backend log entry not delivered", exc_info=True)


@contextlib.asynccontextmanager
async def posix_stdio(
    command: list[str],
    resolved: Resolved,
    errlog: TextIO,
    pids: list[int] | None = None,
    running: Pipe | None = None,
) -> AsyncIterator[tuple[tuple[Any, Any], StdioLane]]:
    """A stdio backend in its own process group (`Pipe`), as the SDK's `stdio_client`, with a tighter stop.

    `running`: a pipe the front started, taken over as it is (no second process).
    When the child dies (or closes stdout) the read stream ends at once, so the
    dispatcher fails every in-flight request with CONNECTION_CLOSED. On exit:
    close stdin, wait `STDIN_GRACE`, then `stop_process_group` (SIGTERM, SIGKILL
    after `STOP_GRACE`): at most about 3.5 s even for a child that ignores SIGTERM.
    A line that is not JSON-RPC reaches the dispatcher as an exception value,
    which it logs and skips; the backend keeps serving. Log entries go to the
    relay from the reader itself, not through the dispatcher, which hands
    notifications to tasks of their own: the entries a backend logs just before
    its answer must reach the client before that answer.
    """
    pipe = running if running is not None else await Pipe.spawn(command, resolved.cwd, _environment(resolved), errlog)
    if pids is not None:
        pids.append(pipe.pid)
    lane = StdioLane(pipe)
    read_writer, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](0)

    async def sink(line: bytes, value: Any) -> None:
        if isinstance(value, ValueError):
            message: SessionMessage | Exception = value
        elif type(value) is dict and value.get("method") == "notifications/message" and "id" not in value:
            if lane.relay() is not None:
                await _deliver_log(lane, value)
                return
            message = _session_message(value)
        else:
            message = _session_message(value)
        with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
            await read_writer.send(message)

    async def end_with_the_pipe() -> None:
        await pipe.closed.wait()
        await read_writer.aclose()

    write_stream = _PipeWriteStream(pipe, read_writer)
    async with anyio.create_task_group() as tg:
        tg.start_soon(end_with_the_pipe)
        pipe.attach(sink)
        try:
            yield (read_stream, write_stream), lane
        finally:
            with anyio.CancelScope(shield=True):
                await pipe.stop()
                for stream in (read_stream, read_writer):
                    with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                        await stream.aclose()
            tg.cancel_scope.cancel()


def _environment(resolved: Resolved) -> dict[str, str]:
    return default_environment() | resolved.env


def _session_message(value: Any) -> SessionMessage | Exception:
    try:
        return SessionMessage(types.jsonrpc_message_adapter.validate_python(value, by_name=False))
    except ValueError as exc:
        return exc


class _PipeWriteStream:
    """The dispatcher's write stream: each message written to the pipe within its own `send`.

    Why not a writer task behind a memory stream (as the SDK's `stdio_client` has): the
    lane writes to the same pipe directly, so a message handed to a writer task could
    reach the wire after a lane request sent later. That put `tools/list` ahead of
    `notifications/initialized`, and a server that registers tools when it is
    initialized (server-everything) then listed fewer of them. One writer, in call order.
    """

    def __init__(self, pipe: Pipe, read_writer: anyio.abc.ObjectSendStream[SessionMessage | Exception]) -> None:
        self._pipe = pipe
        self._read_writer = read_writer
        self._closed = False

    async def send(self, item: SessionMessage, /) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        data = item.message.model_dump_json(by_alias=True, exclude_unset=True).encode() + b"\n"
        try:
            await self._pipe.send(data)
        except PipeClosed as exc:
            # The child stopped reading: end the session rather than hang; the dispatcher
            # turns this into CONNECTION_CLOSED for the caller.
            await self._read_writer.aclose()
            raise anyio.BrokenResourceError from exc

    async def aclose(self) -> None:
        self._closed = True  # the pipe itself is closed by `posix_stdio`, after the dispatcher is done

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
