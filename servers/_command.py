"""What the built-in command servers (bash, cmd, powershell) share: run a command line, return the result.

Each server script supplies the shell-specific parts (a ``CommandTool``: how a command line becomes an
invocation, and how to read the command names out of it for the allow/deny lists); this module owns the
rest, so all three behave the same way:

* the process runs with stdin closed, in the configured working directory and environment, in a new
  session on POSIX (so its whole process group can be signalled) and without a console window on Windows;
* stdout and stderr are read as they arrive, each capped at ``--max-output`` bytes with a visible marker;
* on timeout or cancellation the whole tree is killed: SIGTERM to the process group, SIGKILL
  ``KILL_GRACE`` seconds later (POSIX), or ``taskkill /T /F`` (Windows);
* the result is structured content (``CommandOutput``) plus a short text, with ``isError`` set on a
  non-zero exit or a timeout. Refusals and "not available on this platform" are ``isError`` results
  with text only: clients show those to the user and the model alike.

The servers import this file as a sibling module: ``python servers/<name>.py`` puts ``servers/`` on
``sys.path``. Nothing here writes to stdout, which belongs to the MCP stdio transport.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, TypedDict

import anyio
from anyio.abc import ByteReceiveStream, Process
from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field

IS_WINDOWS = sys.platform == "win32"
KILL_GRACE = 2.0  # seconds between SIGTERM and SIGKILL of a command's process group
DRAIN_GRACE = 1.0  # seconds background jobs may keep the pipes open after the command itself has exited
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]

# An argv list, or (Windows cmd.exe only) a command line for Python's shell: `%ComSpec% /c "<line>"`.
Invocation = list[str] | str

_RUNNING: set[int] = set()  # process groups of the commands in flight, killed if the server is terminated


class CommandOutput(TypedDict):
    """Structured result of one command."""

    exit_code: int | None  # the exit status (128+N if killed by signal N on POSIX); null when it timed out
    stdout: str
    stderr: str
    timed_out: bool
    truncated: bool  # stdout or stderr went over --max-output and was cut


class Dynamic(str):
    """A command name that is not written out in the command line (``$(...)``, ``%VAR%``, ``& $cmd``...).

    Its value says what it is, for the refusal message; it never matches a listed name.
    """

    __slots__ = ()


@dataclass(frozen=True)
class Settings:
    """The server-wide options every command tool shares."""

    cwd: Path
    env: dict[str, str]
    timeout: float
    max_timeout: float
    max_output: int
    allow: frozenset[str]
    deny: frozenset[str]


@dataclass(frozen=True)
class CommandTool:
    """The shell-specific part of a command server."""

    name: str  # the tool's name, also the program named in messages
    unavailable: str | None  # why commands cannot run here, or None when they can
    invocation: Callable[[str], Invocation]  # command line -> what to start
    names: Callable[[str], list[str]]  # command line -> normalized command names (ValueError: cannot tell)
    aliases: Mapping[str, str] = field(default_factory=dict)  # name -> the name it stands for (PowerShell)
    fallback_encoding: str | None = None  # for output that is not UTF-8 (the OEM code page of cmd.exe)


@dataclass
class Capture:
    """The first ``limit`` bytes of a stream, plus a count of the bytes dropped after them."""

    limit: int
    fallback_encoding: str | None = None
    data: bytearray = field(default_factory=bytearray)
    omitted: int = 0

    def add(self, chunk: bytes) -> None:
        kept = chunk[: max(self.limit - len(self.data), 0)]
        self.data += kept
        self.omitted += len(chunk) - len(kept)

    def text(self) -> str:
        try:
            text = self.data.decode("utf-8", errors="strict" if self.fallback_encoding else "replace")
        except UnicodeDecodeError:
            text = self.data.decode(self.fallback_encoding or "utf-8", errors="replace")
        if self.omitted:
            text += f"\n[... output truncated: {self.omitted} bytes omitted ...]"
        return text


def refusal(
    command: str,
    tool: CommandTool,
    allow: frozenset[str],
    deny: frozenset[str],
) -> str | None:
    """Why ``command`` must not run under the allow/deny lists, or None if it may.

    A name matches a list when it, or what it is an alias of, is listed.
    """
    if not allow and not deny:
        return None
    try:
        names = tool.names(command)
    except ValueError as exc:
        return f"refused: cannot parse the command line to check it against the allow/deny lists ({exc})"
    for name in names:
        shown = str(name) if isinstance(name, Dynamic) else f"`{name}`"
        forms = {name} if isinstance(name, Dynamic) else {name, tool.aliases.get(name, name)}
        if forms & deny:
            return f"refused: {shown} is on the deny list; nothing was run"
        if allow and not forms & allow:
            return f"refused: {shown} is not on the allow list; nothing was run"
    return None


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def _group_gone(pgid: int) -> None:
    """Return once no process is left in the process group ``pgid``."""
    while True:
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return
        await anyio.sleep(0.05)


def taskkill_argv(pid: int) -> list[str]:
    """``taskkill`` that force-kills ``pid`` and every process it started (Windows)."""
    system_root = os.environ.get("SystemRoot", r"C:\Windows")
    return [os.path.join(system_root, "System32", "taskkill.exe"), "/T", "/F", "/PID", str(pid)]


async def kill_tree(process: Process) -> None:
    """Kill the command and everything it started, then reap it."""
    if IS_WINDOWS:
        with contextlib.suppress(OSError), anyio.move_on_after(KILL_GRACE * 5):
            await anyio.run_process(taskkill_argv(process.pid), check=False)
        with contextlib.suppress(ProcessLookupError, OSError):
            process.kill()
    else:
        _signal_group(process.pid, signal.SIGTERM)
        with anyio.move_on_after(KILL_GRACE):
            await _group_gone(process.pid)
        _signal_group(process.pid, signal.SIGKILL)
    await process.wait()


async def _pump(stream: ByteReceiveStream | None, sink: Capture) -> None:
    if stream is not None:
        with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
            async for chunk in stream:
                sink.add(chunk)


async def _collect(process: Process, stdout: Capture, stderr: Capture) -> None:
    """Read both pipes until the command has exited and they are closed (or ``DRAIN_GRACE`` has passed)."""
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(_pump, process.stdout, stdout)
        tasks.start_soon(_pump, process.stderr, stderr)
        await process.wait()
        tasks.cancel_scope.deadline = min(tasks.cancel_scope.deadline, anyio.current_time() + DRAIN_GRACE)


async def _open(invocation: Invocation, cwd: Path, env: Mapping[str, str]) -> Process:
    if sys.platform == "win32":
        flags = subprocess.CREATE_NO_WINDOW | subprocess.CREATE_NEW_PROCESS_GROUP
        return await anyio.open_process(invocation, stdin=subprocess.DEVNULL, cwd=cwd, env=env, creationflags=flags)
    if isinstance(invocation, str):
        raise OSError("a shell command line is only run on Windows")
    return await anyio.open_process(invocation, stdin=subprocess.DEVNULL, cwd=cwd, env=env, start_new_session=True)


async def execute(
    invocation: Invocation,
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    max_output: int,
    fallback_encoding: str | None = None,
) -> CommandOutput:
    """Run to completion or timeout; the process tree is killed on timeout or cancellation."""
    stdout, stderr = Capture(max_output, fallback_encoding), Capture(max_output, fallback_encoding)
    process = await _open(invocation, cwd, env)
    _RUNNING.add(process.pid)
    try:
        with anyio.move_on_after(timeout):
            await _collect(process, stdout, stderr)
        timed_out = process.returncode is None
    finally:
        with anyio.CancelScope(shield=True):
            if process.returncode is None:
                await kill_tree(process)
            await process.aclose()
        _RUNNING.discard(process.pid)
    code = process.returncode
    return CommandOutput(
        exit_code=None if timed_out or code is None else (128 - code if code < 0 else code),
        stdout=stdout.text(),
        stderr=stderr.text(),
        timed_out=timed_out,
        truncated=bool(stdout.omitted or stderr.omitted),
    )


def error_result(text: str) -> CallToolResult:
    """An ``isError`` result with text only (refusals, bad input, wrong platform)."""
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)


def summary(output: CommandOutput, timeout: float) -> str:
    """The result as text a person (or a model) reads at a glance."""
    if output["timed_out"]:
        lines = [f"timed out after {timeout:g}s; the command's process tree was killed"]
    else:
        lines = [f"exit code {output['exit_code']}"]
    for stream in ("stdout", "stderr"):
        if output[stream]:
            lines += [f"--- {stream} ---", output[stream].rstrip("\n")]
    if not output["stdout"] and not output["stderr"]:
        lines.append("(no output)")
    return "\n".join(lines)


async def run_tool(
    tool: CommandTool, settings: Settings, command: str, cwd: str | None, timeout: float | None
) -> CallToolResult:
    """One call of a command tool, from checks to result."""
    if tool.unavailable is not None:
        return error_result(tool.unavailable)
    reason = refusal(command, tool, settings.allow, settings.deny)
    if reason is not None:
        return error_result(reason)
    workdir = settings.cwd / cwd if cwd else settings.cwd
    if not workdir.is_dir():
        return error_result(f"working directory does not exist or is not a directory: {workdir}")
    limit = min(timeout if timeout is not None else settings.timeout, settings.max_timeout)
    try:
        output = await execute(
            tool.invocation(command),
            cwd=workdir,
            env=settings.env,
            timeout=limit,
            max_output=settings.max_output,
            fallback_encoding=tool.fallback_encoding,
        )
    except OSError as exc:
        return error_result(f"could not start {tool.name}: {exc}")
    return CallToolResult(
        content=[TextContent(type="text", text=summary(output, limit))],
        structured_content=dict(output),
        is_error=output["timed_out"] or output["exit_code"] != 0,
    )


COMMAND_ANNOTATIONS = ToolAnnotations(
    read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=True
)


def add_command_tool(
    server: MCPServer[Any],
    tool: CommandTool,
    settings: Settings,
    *,
    title: str,
    description: str,
    command_help: str,
    output: type[CommandOutput] = CommandOutput,
) -> None:
    """Register ``tool.name(command, cwd?, timeout?)`` on ``server``."""

    async def handler(command: str, cwd: str | None = None, timeout: float | None = None) -> CallToolResult:
        return await run_tool(tool, settings, command, cwd, timeout)

    handler.__name__ = tool.name  # the SDK names the arguments schema after the function
    handler.__annotations__ = {
        "command": Annotated[str, Field(description=command_help)],
        "cwd": Annotated[str | None, Field(description="Working directory (default: the server's).")],
        "timeout": Annotated[
            float | None, Field(gt=0, description="Seconds before the command is killed (capped by the server).")
        ],
        "return": Annotated[CallToolResult, output],
    }
    server.tool(name=tool.name, title=title, description=description, annotations=COMMAND_ANNOTATIONS)(handler)


def _kill_running_and_exit(signum: int, _frame: object) -> None:
    """On SIGTERM/SIGHUP, take the commands in flight (each in its own session) down with the server."""
    for pgid in list(_RUNNING):
        _signal_group(pgid, signal.SIGKILL)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def list_option(values: Sequence[str], env_var: str, normalize: Callable[[str], str]) -> frozenset[str]:
    """Names from repeated CLI options plus a comma-separated environment variable, normalized."""
    listed = [*values, *os.environ.get(env_var, "").split(",")]
    return frozenset(normalize(name.strip()) for name in listed if name.strip())


def _env_pair(value: str) -> tuple[str, str]:
    key, sep, val = value.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {value!r}")
    return key, val


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """Transport and logging options every built-in server takes."""
    parser.add_argument("--transport", choices=["stdio", "sse", "http"], default="stdio")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def parse_command_args(
    description: str,
    env_prefix: str,
    argv: Sequence[str] | None = None,
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.Namespace:
    """The command servers' CLI; ``env_prefix`` names the allow/deny variables (``MCPGW_BASH``...)."""
    parser = argparse.ArgumentParser(description=description)
    if extra is not None:
        extra(parser)
    add_server_arguments(parser)
    parser.add_argument("--cwd", type=Path, default=Path.cwd(), help="default working directory")
    parser.add_argument("--env", type=_env_pair, action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--timeout", type=float, default=60.0, help="default timeout in seconds")
    parser.add_argument("--max-timeout", type=float, default=600.0, help="cap on a call's timeout")
    parser.add_argument("--max-output", type=int, default=1024 * 1024, metavar="BYTES", help="cap per stream")
    parser.add_argument(
        "--allow", action="append", default=[], metavar="NAME", help=f"only these commands (+ {env_prefix}_ALLOW)"
    )
    parser.add_argument(
        "--deny", action="append", default=[], metavar="NAME", help=f"never these commands (+ {env_prefix}_DENY)"
    )
    args = parser.parse_args(argv)
    if args.timeout <= 0 or args.max_timeout <= 0 or args.max_output < 0:
        parser.error("--timeout and --max-timeout must be positive, --max-output not negative")
    args.env_prefix = env_prefix
    return args


def make_settings(args: argparse.Namespace, normalize: Callable[[str], str]) -> Settings:
    return Settings(
        cwd=args.cwd.resolve(),
        env={**os.environ, **dict(args.env)},
        timeout=args.timeout,
        max_timeout=args.max_timeout,
        max_output=args.max_output,
        allow=list_option(args.allow, f"{args.env_prefix}_ALLOW", normalize),
        deny=list_option(args.deny, f"{args.env_prefix}_DENY", normalize),
    )


def setup_logging(name: str, level: str) -> logging.Logger:
    """Log to stderr: stdout carries the protocol."""
    logging.basicConfig(level=level, stream=sys.stderr, format=f"{name} %(levelname)s: %(message)s")
    return logging.getLogger(name)


def serve(server: MCPServer[Any], args: argparse.Namespace) -> None:
    """Run ``server`` on the transport chosen on the command line, killing commands in flight on SIGTERM."""
    if not IS_WINDOWS:
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, _kill_running_and_exit)
    if args.transport == "stdio":
        server.run("stdio")
    elif args.transport == "sse":
        server.run("sse", host=args.host, port=args.port)
    else:
        server.run("streamable-http", host=args.host, port=args.port)
