"""A small MCP server with one tool, ``bash``, that runs a command line in bash.

Why: the gateway needs a real, dependency-light backend (only ``mcp``) whose calls can be slow, noisy,
failing and killable, over every transport: stdio by default, ``--transport sse`` (``/sse``) and
``--transport http`` (``/mcp``). Each call runs ``bash -c`` in a new session; a timeout or a cancelled
call SIGTERMs the whole process group, then SIGKILLs it. Output is read as it arrives and capped per
stream. Background jobs that outlive bash are left running, but cannot hold the call open.

The opt-in allow/deny lists (``--allow``/``--deny``, ``MCPGW_BASH_ALLOW``/``MCPGW_BASH_DENY``)
guard against mistakes, such as an agent reaching for ``rm``. They are NOT a sandbox. The check
reads the command line conservatively and refuses what it cannot parse, but it cannot see commands
hidden in variables, ``eval``, ``bash -c '...'``, scripts, functions or aliases. For isolation, use
a container or VM.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, TypedDict

import anyio
from anyio.abc import ByteReceiveStream, Process
from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field

logger = logging.getLogger("bash_server")
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]

KILL_GRACE = 2.0  # seconds between SIGTERM and SIGKILL of a command's process group
DRAIN_GRACE = 1.0  # seconds background jobs may keep bash's pipes open after bash itself has exited
DESCRIPTION = (
    "Run a command line with `bash -c` and return its exit code, stdout and stderr. Output over the server's"
    " cap is cut with a marker; on timeout the command's whole process tree is killed."
)
NO_BASH = "bash is not available on this platform (no `bash` on PATH); this server cannot run commands"

# Command-line check. Operators are split off by shlex; a word starting a segment is a command name
# unless it is a reserved word, an assignment or a redirection target.
_PUNCTUATION = ";&|()<>\n"
_SUBSTITUTION = "$__substitution__"  # stands in for $(...), `...`, <(...) and >(...) once their bodies are taken out
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\[[^]]*\])?\+?=")
_BACKQUOTED = re.compile(r"(?:[^`\\]|\\.)*`", re.DOTALL)
_OPTION_VALUE = re.compile(r"-.*|\d[\d.]*[smhd]?")
_RESERVED = frozenset("! { } if then else elif fi do done while until coproc".split())
_NOT_A_COMMAND = frozenset("for select case esac in function ]] ))".split())
_WRAPPERS = frozenset("builtin command doas env exec nice nohup stdbuf sudo time timeout xargs".split())

_RUNNING: set[int] = set()  # process groups of the commands in flight, killed if the server is terminated


class BashOutput(TypedDict):
    """Structured result of one command."""

    exit_code: int | None  # bash's exit status (128+N if killed by signal N); null when it timed out
    stdout: str
    stderr: str
    timed_out: bool
    truncated: bool  # stdout or stderr went over --max-output and was cut


@dataclass(frozen=True)
class Config:
    bash: str | None
    cwd: Path
    env: dict[str, str]
    timeout: float
    max_timeout: float
    max_output: int
    allow: frozenset[str]
    deny: frozenset[str]


@dataclass
class Capture:
    """The first ``limit`` bytes of a stream, plus a count of the bytes dropped after them."""

    limit: int
    data: bytearray = field(default_factory=bytearray)
    omitted: int = 0

    def add(self, chunk: bytes) -> None:
        kept = chunk[: max(self.limit - len(self.data), 0)]
        self.data += kept
        self.omitted += len(chunk) - len(kept)

    def text(self) -> str:
        text = self.data.decode("utf-8", errors="replace")
        if self.omitted:
            text += f"\n[... output truncated: {self.omitted} bytes omitted ...]"
        return text


def _matching_paren(text: str, start: int) -> int:
    """Index of the ``)`` closing the ``(`` at ``start``, skipping quoted and escaped characters."""
    depth, quote, i = 0, "", start
    while i < len(text):
        char = text[i]
        if char == "\\" and quote != "'":
            i += 2
            continue
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "()":
            depth += 1 if char == "(" else -1
            if depth == 0:
                return i
        i += 1
    raise ValueError("unbalanced parentheses")


def _closing_backtick(text: str, start: int) -> int:
    if (match := _BACKQUOTED.match(text, start + 1)) is None:
        raise ValueError("unbalanced backquotes")
    return match.end() - 1


def _take_substitutions(text: str) -> tuple[str, list[str]]:
    """Replace each command/process substitution with a placeholder word and drop comments.

    Returns the rewritten text and the substitution bodies, which hold command lines of their own.
    """
    out: list[str] = []
    bodies: list[str] = []
    quote, i = "", 0
    while i < len(text):
        char = text[i]
        if quote == "'":
            quote = "" if char == "'" else quote
        elif char == "\\":
            out.append(text[i : i + 2])
            i += 2
            continue
        elif char == "#" and not quote and (i == 0 or text[i - 1] in f" \t{_PUNCTUATION}"):
            i = len(text) if (newline := text.find("\n", i)) < 0 else newline
            continue
        elif char == "`" or text.startswith("$(", i) or (not quote and text.startswith(("<(", ">("), i)):
            end = _closing_backtick(text, i) if char == "`" else _matching_paren(text, i + 1)
            body = text[i + 1 : end] if char == "`" else text[i + 2 : end]
            if text.startswith("$((", i):  # arithmetic: not a command, but may contain substitutions
                bodies += _take_substitutions(body)[1]
            else:
                bodies.append(body)
            out.append(_SUBSTITUTION)
            i = end + 1
            continue
        elif char in "'\"":
            quote = "" if quote == char else (quote or char)
        out.append(char)
        i += 1
    return "".join(out), bodies


def _names_in_simple_command(words: list[str]) -> list[str]:
    """The command name of one simple command, plus the command a wrapper (``sudo``, ``xargs``...) runs."""
    start = 0
    while start < len(words) and (words[start] in _RESERVED or _ASSIGNMENT.match(words[start])):
        start += 1
    if start == len(words) or words[start] in _NOT_A_COMMAND:
        return []
    name = words[start].rsplit("/", 1)[-1] or words[start]
    if name not in _WRAPPERS:
        return [name]
    rest = words[start + 1 :]
    target = next((i for i, word in enumerate(rest) if not _OPTION_VALUE.fullmatch(word)), len(rest))
    return [name, *_names_in_simple_command(rest[target:])]


def _top_level_names(text: str) -> list[str]:
    """Command names of the segments of ``text`` split on ``;``, ``&&``, ``||``, ``|``, ``&``, newlines..."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=_PUNCTUATION)
    lexer.whitespace, lexer.whitespace_split, lexer.commenters = " \t\r", True, ""
    names: list[str] = []
    words: list[str] = []
    skip_target = False
    for token in lexer:
        if token and all(char in _PUNCTUATION for char in token):
            if any(char in ";|()\n" for char in token) or not token.strip("&"):
                names += _names_in_simple_command(words)
                words = []
            skip_target = "<" in token or ">" in token
            if skip_target and words and words[-1].isdigit():  # `2>&1`: the digits name a file descriptor
                words.pop()
        elif skip_target:
            skip_target = False
        else:
            words.append(token)
    return names + _names_in_simple_command(words)


def command_names(command: str) -> list[str]:
    """Every simple-command name in ``command``, including inside substitutions (raises ValueError)."""
    text, bodies = _take_substitutions(command)
    names = _top_level_names(text)
    for body in bodies:
        names += command_names(body)
    return names


def refusal(command: str, allow: frozenset[str], deny: frozenset[str]) -> str | None:
    """Why ``command`` must not run under the allow/deny lists, or None if it may."""
    if not allow and not deny:
        return None
    try:
        names = command_names(command)
    except ValueError as exc:
        return f"refused: cannot parse the command line to check it against the allow/deny lists ({exc})"
    for name in names:
        shown = "a command substitution used as a command name" if name == _SUBSTITUTION else f"`{name}`"
        if name in deny:
            return f"refused: {shown} is on the deny list; nothing was run"
        if allow and name not in allow:
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


async def kill_tree(process: Process) -> None:
    """SIGTERM the command's process group; SIGKILL whatever is still there ``KILL_GRACE`` seconds later."""
    if sys.platform == "win32":  # no process groups to signal: kill what we can
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
    """Read both pipes until bash has exited and they are closed (or ``DRAIN_GRACE`` has passed)."""
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(_pump, process.stdout, stdout)
        tasks.start_soon(_pump, process.stderr, stderr)
        await process.wait()
        tasks.cancel_scope.deadline = min(tasks.cancel_scope.deadline, anyio.current_time() + DRAIN_GRACE)


async def execute(config: Config, bash: str, command: str, cwd: Path, timeout: float) -> BashOutput:
    """Run ``command`` to completion or timeout; the process group is killed on timeout or cancellation."""
    stdout, stderr = Capture(config.max_output), Capture(config.max_output)
    process = await anyio.open_process(
        [bash, "-c", command], stdin=subprocess.DEVNULL, cwd=cwd, env=config.env, start_new_session=True
    )
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
    return BashOutput(
        exit_code=None if timed_out or code is None else (128 - code if code < 0 else code),
        stdout=stdout.text(),
        stderr=stderr.text(),
        timed_out=timed_out,
        truncated=bool(stdout.omitted or stderr.omitted),
    )


def _error(text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)


def summary(output: BashOutput, timeout: float) -> str:
    """The result as text a person (or a model) reads at a glance."""
    if output["timed_out"]:
        lines = [f"timed out after {timeout:g}s; the command's process group was killed"]
    else:
        lines = [f"exit code {output['exit_code']}"]
    for stream in ("stdout", "stderr"):
        if output[stream]:
            lines += [f"--- {stream} ---", output[stream].rstrip("\n")]
    if not output["stdout"] and not output["stderr"]:
        lines.append("(no output)")
    return "\n".join(lines)


async def run_tool(config: Config, command: str, cwd: str | None, timeout: float | None) -> CallToolResult:
    if config.bash is None:
        return _error(NO_BASH)
    reason = refusal(command, config.allow, config.deny)
    if reason is not None:
        return _error(reason)
    workdir = config.cwd / cwd if cwd else config.cwd
    if not workdir.is_dir():
        return _error(f"working directory does not exist or is not a directory: {workdir}")
    limit = min(timeout if timeout is not None else config.timeout, config.max_timeout)
    try:
        output = await execute(config, config.bash, command, workdir, limit)
    except OSError as exc:
        return _error(f"could not start bash: {exc}")
    return CallToolResult(
        content=[TextContent(type="text", text=summary(output, limit))],
        structured_content=dict(output),
        is_error=output["timed_out"] or output["exit_code"] != 0,
    )


def build_server(config: Config, log_level: LogLevel = "WARNING") -> MCPServer[Any]:
    server: MCPServer[Any] = MCPServer("bash", log_level=log_level)

    @server.tool(
        name="bash",
        title="Run a bash command",
        description=DESCRIPTION,
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=True
        ),
    )
    async def bash(
        command: Annotated[str, Field(description="The command line, run with `bash -c`.")],
        cwd: Annotated[str | None, Field(description="Working directory (default: the server's).")] = None,
        timeout: Annotated[
            float | None, Field(gt=0, description="Seconds before the command is killed (capped by the server).")
        ] = None,
    ) -> Annotated[CallToolResult, BashOutput]:
        return await run_tool(config, command, cwd, timeout)

    return server


def _kill_running_and_exit(signum: int, _frame: object) -> None:
    """On SIGTERM/SIGHUP, take the commands in flight (each in its own session) down with the server."""
    for pgid in list(_RUNNING):
        _signal_group(pgid, signal.SIGKILL)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _names(values: Sequence[str], env_var: str) -> frozenset[str]:
    listed = [*values, *os.environ.get(env_var, "").split(",")]
    return frozenset(name.strip().rsplit("/", 1)[-1] for name in listed if name.strip())


def _env_pair(value: str) -> tuple[str, str]:
    key, sep, val = value.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {value!r}")
    return key, val


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="MCP server with one tool that runs bash commands.")
    parser.add_argument("--transport", choices=["stdio", "sse", "http"], default="stdio")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--cwd", type=Path, default=Path.cwd(), help="default working directory")
    parser.add_argument("--env", type=_env_pair, action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--timeout", type=float, default=60.0, help="default timeout in seconds")
    parser.add_argument("--max-timeout", type=float, default=600.0, help="cap on a call's timeout")
    parser.add_argument("--max-output", type=int, default=1024 * 1024, metavar="BYTES", help="cap per stream")
    parser.add_argument("--allow", action="append", default=[], metavar="NAME", help="only these commands")
    parser.add_argument("--deny", action="append", default=[], metavar="NAME", help="never these commands")
    parser.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)
    if args.timeout <= 0 or args.max_timeout <= 0 or args.max_output < 0:
        parser.error("--timeout and --max-timeout must be positive, --max-output not negative")
    return args


def make_config(args: argparse.Namespace) -> Config:
    return Config(
        bash=shutil.which("bash"),
        cwd=args.cwd.resolve(),
        env={**os.environ, **dict(args.env)},
        timeout=args.timeout,
        max_timeout=args.max_timeout,
        max_output=args.max_output,
        allow=_names(args.allow, "MCPGW_BASH_ALLOW"),
        deny=_names(args.deny, "MCPGW_BASH_DENY"),
    )


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr, format="bash_server %(levelname)s: %(message)s")
    config = make_config(args)
    if config.bash is None:
        logger.warning(NO_BASH)
    server = build_server(config, args.log_level)
    if sys.platform != "win32":
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, _kill_running_and_exit)
    if args.transport == "stdio":
        server.run("stdio")
    elif args.transport == "sse":
        server.run("sse", host=args.host, port=args.port)
    else:
        server.run("streamable-http", host=args.host, port=args.port)


if __name__ == "__main__":
    main()
