"""servers/bash_server.py, run as a real subprocess and driven through the SDK client over every transport."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.sse import sse_client
from mcp.types import CallToolResult, TextContent

from tests import peers

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

SCRIPT = peers.REPO_ROOT / "servers" / "bash_server.py"
MIB = 1024 * 1024


def stdio_client(*args: str, env: dict[str, str] | None = None) -> Client:
    """A client that launches the bash server over stdio with ``args``."""
    return Client(StdioServerParameters(command=sys.executable, args=[str(SCRIPT), *args], env=env), mode="legacy")


def run(check: Callable[[Client], Awaitable[None]], client: Client) -> None:
    """Run ``check`` against ``client`` (entered) on an anyio event loop, from a sync test."""

    async def main() -> None:
        async with client:
            await check(client)

    anyio.run(main)


def text(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


def structured(result: CallToolResult) -> dict[str, Any]:
    assert result.structured_content is not None, text(result)
    return dict(result.structured_content)


def pgrep(pattern: str) -> list[int]:
    """Pids of the processes whose command line contains ``pattern`` (regex, as ``pgrep -f``)."""
    if shutil.which("pgrep") is None:
        pytest.fail("pgrep is needed to check that killed process trees are gone")
    found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True, check=False)
    return [int(pid) for pid in found.stdout.split()]


@contextlib.contextmanager
def reaped(pattern: str) -> Iterator[None]:
    """Kill (by pid) whatever still matches ``pattern`` when the block ends, so a failing test leaks nothing."""
    try:
        yield
    finally:
        for pid in pgrep(pattern):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def unique_sleep() -> str:
    """A ``sleep`` duration nobody else uses, so ``pgrep -f`` finds exactly our processes."""
    return f"30.{random.randrange(10**8, 10**9)}"


def test_lists_the_tool_with_title_annotations_and_output_schema() -> None:
    async def check(client: Client) -> None:
        assert client.server_info is not None
        assert client.server_info.name == "bash"
        [tool] = (await client.list_tools()).tools
        assert tool.name == "bash"
        assert tool.title == "Run a bash command"
        assert tool.annotations is not None
        assert tool.annotations.read_only_hint is False
        assert tool.annotations.destructive_hint is True
        assert tool.annotations.idempotent_hint is False
        assert tool.annotations.open_world_hint is True
        assert set(tool.input_schema["properties"]) == {"command", "cwd", "timeout"}
        assert tool.input_schema["required"] == ["command"]
        assert tool.output_schema is not None
        assert set(tool.output_schema["properties"]) == {"exit_code", "stdout", "stderr", "timed_out", "truncated"}
        assert set(tool.output_schema["required"]) == set(tool.output_schema["properties"])

    run(check, stdio_client())


def test_runs_commands_in_bash() -> None:
    async def check(client: Client) -> None:
        echoed = await client.call_tool("bash", {"command": "echo hi"})
        assert not echoed.is_error
        assert structured(echoed) == {
            "exit_code": 0,
            "stdout": "hi\n",
            "stderr": "",
            "timed_out": False,
            "truncated": False,
        }
        assert "exit code 0" in text(echoed)
        assert "hi" in text(echoed)

        bash_only = await client.call_tool("bash", {"command": "[[ 1 == 1 ]] && echo bash; echo ${BASH_VERSION:+yes}"})
        assert not bash_only.is_error
        assert structured(bash_only)["stdout"] == "bash\nyes\n"

    run(check, stdio_client())


def test_non_zero_exit_is_an_error_with_the_exit_code() -> None:
    async def check(client: Client) -> None:
        result = await client.call_tool("bash", {"command": "echo out; echo oops >&2; exit 3"})
        assert result.is_error
        assert structured(result) == {
            "exit_code": 3,
            "stdout": "out\n",
            "stderr": "oops\n",
            "timed_out": False,
            "truncated": False,
        }
        assert "exit code 3" in text(result)
        assert "oops" in text(result)

    run(check, stdio_client())


def test_timeout_kills_a_tree_that_ignores_sigterm() -> None:
    duration = unique_sleep()
    pattern = f"sleep {duration}"
    seen_running: list[int] = []

    async def watch() -> None:
        await anyio.sleep(0.5)
        seen_running.extend(pgrep(pattern))

    async def check(client: Client) -> None:
        started = time.monotonic()
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(watch)
            command = f"trap '' TERM; sleep {duration} & sleep {duration}"
            result = await client.call_tool("bash", {"command": command, "timeout": 1})
        elapsed = time.monotonic() - started
        assert result.is_error
        assert structured(result)["timed_out"] is True
        assert structured(result)["exit_code"] is None
        assert "timed out" in text(result)
        assert 1 <= elapsed < 8, elapsed

    with reaped(pattern):
        run(check, stdio_client())
        assert len(seen_running) >= 3, "bash and both sleeps should have been running"  # the tree really existed
        assert pgrep(pattern) == []


def test_call_timeout_is_capped_by_max_timeout() -> None:
    duration = unique_sleep()

    async def check(client: Client) -> None:
        started = time.monotonic()
        result = await client.call_tool("bash", {"command": f"sleep {duration}", "timeout": 50})
        assert structured(result)["timed_out"] is True
        assert time.monotonic() - started < 8

    with reaped(f"sleep {duration}"):
        run(check, stdio_client("--timeout", "100", "--max-timeout", "1"))
        assert pgrep(f"sleep {duration}") == []


def test_cancelled_call_kills_the_tree() -> None:
    duration = unique_sleep()
    pattern = f"sleep {duration}"

    async def check(client: Client) -> None:
        with anyio.move_on_after(1):
            await client.call_tool("bash", {"command": f"trap '' TERM; sleep {duration} & sleep {duration}"})
        assert pgrep(pattern), "the command should have been running when the call was cancelled"
        with anyio.fail_after(10):
            while pgrep(pattern):
                await anyio.sleep(0.1)
        still_serving = await client.call_tool("bash", {"command": "echo alive"})
        assert structured(still_serving)["stdout"] == "alive\n"

    with reaped(pattern):
        run(check, stdio_client())


def test_large_output_is_capped_with_a_marker() -> None:
    async def check(client: Client) -> None:
        result = await client.call_tool("bash", {"command": "head -c 10000000 /dev/zero | tr '\\0' a; echo done >&2"})
        assert not result.is_error
        output = structured(result)
        assert output["truncated"] is True
        assert output["stdout"] == "a" * MIB + f"\n[... output truncated: {10_000_000 - MIB} bytes omitted ...]"
        assert output["stderr"] == "done\n"

    run(check, stdio_client())


def test_max_output_caps_each_stream() -> None:
    async def check(client: Client) -> None:
        result = await client.call_tool("bash", {"command": "echo 0123456789; echo abcdefghij >&2"})
        output = structured(result)
        assert output["stdout"] == "01234\n[... output truncated: 6 bytes omitted ...]"
        assert output["stderr"] == "abcde\n[... output truncated: 6 bytes omitted ...]"
        assert output["truncated"] is True

    run(check, stdio_client("--max-output", "5"))


def test_deny_list_refuses_without_running_anything(tmp_path: Path) -> None:
    victim = tmp_path / "foo"
    victim.write_text("keep me")

    async def check(client: Client) -> None:
        for command in ("rm -f foo", "echo x; rm -f foo", "echo $(rm -f foo)", "ls | xargs rm", "/bin/rm foo"):
            result = await client.call_tool("bash", {"command": command})
            assert result.is_error, command
            assert "`rm`" in text(result), command
            assert "deny" in text(result), command
            assert result.structured_content is None, command
        assert victim.exists()
        allowed = await client.call_tool("bash", {"command": "echo fine"})
        assert structured(allowed)["stdout"] == "fine\n"

    run(check, stdio_client("--deny", "rm", "--cwd", str(tmp_path)))


def test_allow_list_refuses_anything_not_listed() -> None:
    async def check(client: Client) -> None:
        allowed = await client.call_tool("bash", {"command": "echo ok && true"})
        assert not allowed.is_error
        assert structured(allowed)["stdout"] == "ok\n"
        for command, name in (("ls", "`ls`"), ("echo ok; id", "`id`"), ("echo `whoami`", "`whoami`")):
            refused = await client.call_tool("bash", {"command": command})
            assert refused.is_error, command
            assert name in text(refused), command
            assert "allow" in text(refused), command
        dynamic = await client.call_tool("bash", {"command": "$(echo ls)"})
        assert dynamic.is_error

    run(check, stdio_client("--allow", "echo", env={"MCPGW_BASH_ALLOW": "true"}))


def test_cwd_option_and_per_call_cwd(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    root = tmp_path.resolve()

    async def check(client: Client) -> None:
        default = await client.call_tool("bash", {"command": "pwd -P"})
        assert structured(default)["stdout"] == f"{root}\n"
        relative = await client.call_tool("bash", {"command": "pwd -P", "cwd": "sub"})
        assert structured(relative)["stdout"] == f"{root / 'sub'}\n"
        missing = await client.call_tool("bash", {"command": "pwd", "cwd": str(root / "missing")})
        assert missing.is_error
        assert "does not exist" in text(missing)
        assert "missing" in text(missing)

    run(check, stdio_client("--cwd", str(tmp_path)))


def test_environment_is_inherited_plus_env_options() -> None:
    async def check(client: Client) -> None:
        result = await client.call_tool("bash", {"command": 'echo "$INHERITED $EXTRA"'})
        assert structured(result)["stdout"] == "from-parent a=b\n"

    run(check, stdio_client("--env", "EXTRA=a=b", env={"INHERITED": "from-parent"}))


def test_without_bash_the_server_still_answers() -> None:
    async def check(client: Client) -> None:
        [tool] = (await client.list_tools()).tools
        assert tool.name == "bash"
        result = await client.call_tool("bash", {"command": "echo hi"})
        assert result.is_error
        assert "bash is not available on this platform" in text(result)

    with tempfile.TemporaryDirectory() as empty:
        run(check, stdio_client(env={"PATH": empty}))


@contextlib.contextmanager
def serve_http(transport: Literal["sse", "http"]) -> Iterator[str]:
    """Run the server over HTTP on a free port; yield its endpoint URL. The process is always killed."""
    path = "/sse" if transport == "sse" else "/mcp"
    for attempt in range(3):  # the free port can be taken before the server binds it: retry on a new one
        port = peers.free_port()
        with tempfile.TemporaryFile() as log:
            process = subprocess.Popen(
                [sys.executable, str(SCRIPT), "--transport", transport, "--port", str(port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                try:
                    peers.wait_for_port(peers.LOCALHOST, port, process=process)
                except peers.PeerExitedError:
                    if attempt < 2:
                        continue
                    log.seek(0)
                    raise RuntimeError(log.read().decode(errors="replace")) from None
                yield f"http://{peers.LOCALHOST}:{port}{path}"
                return
            finally:
                peers.kill_process_group(process)
    raise AssertionError("unreachable")


async def echo_over(client: Client) -> None:
    [tool] = (await client.list_tools()).tools
    assert tool.name == "bash"
    result = await client.call_tool("bash", {"command": "echo over-http"})
    assert not result.is_error
    assert structured(result)["stdout"] == "over-http\n"


def test_serves_streamable_http() -> None:
    with serve_http("http") as url:
        run(echo_over, Client(url, mode="legacy"))


def test_serves_sse() -> None:
    with serve_http("sse") as url:
        run(echo_over, Client(sse_client(url), mode="legacy"))
