"""servers/cmd_server.py, powershell_server.py and wmi_server.py, plus all four built-ins behind a gateway.

This machine runs Linux: there is no cmd.exe, no Windows PowerShell, no WMI and no `pwsh`. So:
* each Windows server is run for real here, where it must start, list its tool and answer every call
  with "not available on this platform", printing nothing but protocol messages on stdout;
* how each one builds what Windows would run (the cmd.exe command line, the powershell.exe/pwsh argv,
  the WQL) is checked in-process against MOCKS (a fake spawner, a fake `wmi` module), said so at each test;
* the pwsh path runs end to end against a FAKE `pwsh` script put on PATH, which checks the argv it is
  given, decodes the script and runs it with bash, so timeouts, output caps and exit codes are real.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters

from tests import peers
from tests.test_bash_server import MIB, pgrep, reaped, run, structured, text, unique_sleep

SERVERS = peers.REPO_ROOT / "servers"
sys.path.insert(0, str(SERVERS))  # the servers import their sibling `_command` as a top-level module

import _command  # noqa: E402
import cmd_server  # noqa: E402
import powershell_server  # noqa: E402
import wmi_server  # noqa: E402

pytestmark = [pytest.mark.timeout(60)]

MARKER = "output truncated"


def client_for(script: str, *args: str, env: dict[str, str] | None = None) -> Client:
    params = StdioServerParameters(command=sys.executable, args=[str(SERVERS / script), *args], env=env)
    return Client(params, mode="legacy")


# ---- the Windows servers on Linux -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "tool_name", "arguments", "message"),
    [
        ("cmd_server.py", "cmd", {"command": "dir"}, "cmd is not available on this platform (linux)"),
        ("wmi_server.py", "query_wmi", {"wmi_class": "Win32_Process"}, "query_wmi is not available on this platform"),
        ("powershell_server.py", "powershell", {"command": "Get-Date"}, "powershell is not available on this platform"),
    ],
)
def test_windows_server_on_linux_lists_its_tool_and_answers_with_the_platform_error(
    script: str, tool_name: str, arguments: dict[str, Any], message: str
) -> None:
    async def check(client: Client) -> None:
        [tool] = (await client.list_tools()).tools
        assert tool.name == tool_name
        assert tool.title and tool.annotations is not None and tool.output_schema is not None
        result = await client.call_tool(tool_name, arguments)
        assert result.is_error
        assert message in text(result)
        assert result.structured_content is None

    with tempfile.TemporaryDirectory() as no_pwsh:  # PATH without pwsh, even on a machine that has it
        run(check, client_for(script, env={"PATH": f"{no_pwsh}:/usr/bin:/bin"}))


def test_command_tools_share_one_definition_shape() -> None:
    async def shape(script: str) -> dict[str, Any]:
        async with client_for(script) as client:
            [tool] = (await client.list_tools()).tools
            assert tool.annotations is not None
            return {
                "hints": tool.annotations.model_dump(exclude_none=True),
                "inputs": sorted(tool.input_schema["properties"]),
                "required": tool.input_schema["required"],
                "outputs": sorted(tool.output_schema["properties"]) if tool.output_schema else None,
            }

    async def main() -> None:
        bash, cmd, ps = [await shape(s) for s in ("bash_server.py", "cmd_server.py", "powershell_server.py")]
        assert bash == cmd == ps
        assert bash["outputs"] == ["exit_code", "stderr", "stdout", "timed_out", "truncated"]
        assert bash["hints"] == {
            "read_only_hint": False,
            "destructive_hint": True,
            "idempotent_hint": False,
            "open_world_hint": True,
        }

    anyio.run(main)


def test_wmi_tool_is_read_only_with_a_structured_filter() -> None:
    async def check(client: Client) -> None:
        [tool] = (await client.list_tools()).tools
        assert tool.annotations is not None
        assert tool.annotations.read_only_hint is True
        assert tool.annotations.destructive_hint is False
        assert tool.annotations.idempotent_hint is True
        assert set(tool.input_schema["properties"]) == {"wmi_class", "properties", "filter"}
        assert tool.input_schema["required"] == ["wmi_class"]
        assert tool.output_schema is not None
        assert set(tool.output_schema["properties"]) == {"wmi_class", "query", "rows", "count", "truncated"}
        # The filter is an object of scalars, not a string: there is no way to hand WQL text over.
        assert "object" in json.dumps(tool.input_schema["properties"]["filter"])

    run(check, client_for("wmi_server.py"))


def _rpc(method: str, params: dict[str, Any], ident: int | None) -> bytes:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params}
    if ident is not None:
        message["id"] = ident
    return (json.dumps(message) + "\n").encode()


@pytest.mark.parametrize(
    ("script", "call"),
    [
        ("cmd_server.py", {"name": "cmd", "arguments": {"command": "dir"}}),
        ("powershell_server.py", {"name": "powershell", "arguments": {"command": "Get-Date"}}),
        ("wmi_server.py", {"name": "query_wmi", "arguments": {"wmi_class": "Win32_BIOS"}}),
        ("bash_server.py", {"name": "bash", "arguments": {"command": "echo to-stdout; echo to-stderr >&2"}}),
    ],
)
def test_stdout_carries_only_protocol_messages(script: str, call: dict[str, Any]) -> None:
    """Raw stdio, no SDK in between: every line the server prints must be a JSON-RPC message."""
    requests = b"".join(
        [
            _rpc(
                "initialize",
                {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
                1,
            ),
            _rpc("notifications/initialized", {}, None),
            _rpc("tools/list", {}, 2),
            _rpc("tools/call", call, 3),
        ]
    )
    with tempfile.TemporaryDirectory() as no_pwsh:
        proc = subprocess.Popen(
            [sys.executable, str(SERVERS / script), "--log-level", "DEBUG"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PATH": f"{no_pwsh}:/usr/bin:/bin"},
        )
        try:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(requests)
            proc.stdin.flush()
            seen: dict[int, Any] = {}
            deadline = time.monotonic() + 30
            while 3 not in seen and time.monotonic() < deadline:
                line = proc.stdout.readline()
                assert line, "the server closed stdout before answering"
                message = json.loads(line)  # fails on anything that is not JSON
                assert message["jsonrpc"] == "2.0"
                if "id" in message:
                    seen[message["id"]] = message
            assert set(seen) == {1, 2, 3}
            assert "result" in seen[3], seen[3]
            assert seen[3]["result"]["isError"] is (script != "bash_server.py")
        finally:
            proc.kill()
            proc.communicate(timeout=10)


# ---- cmd: how Windows would run it (MOCK: Windows cannot run here) ---------------------------------


@pytest.mark.parametrize(
    ("line", "names"),
    [
        ("dir /w", ["dir"]),
        ("dir/w & echo.done", ["dir", "echo"]),
        ("@echo off && del /q x || rd /s /q y", ["echo", "del", "rd"]),
        (r"C:\Tools\RM.EXE -rf x", ["rm"]),
        (r'"C:\Program Files\Git\bin\git.exe" status | findstr M', ["git", "findstr"]),
        ("if exist x (del x) else (rmdir y)", ["if", "del", "rmdir"]),
        ('if /i "%A%"=="b" erase z', ["if", "erase"]),
        ("if %n% geq 3 del z", ["if", "del"]),
        ("for %i in (a b) do del %i", ["for", "del"]),
        ('call build.bat && start "title" /d C:\\ notepad.exe', ["call", "build", "start", "notepad"]),
        ('cmd /c "del a & rd b"', ["cmd", "del", "rd"]),
        (">log.txt echo hi 2>&1", ["echo"]),
        ("echo a ^& del b", ["echo"]),  # the caret escapes &: one echo command
        ("echo a & del b", ["echo", "del"]),
        ("%COMSPEC% /c del x", [_command.Dynamic("a %variable% used as a command name")]),
    ],
)
def test_cmd_command_names(line: str, names: list[str]) -> None:
    assert cmd_server.command_names(line) == names


@pytest.mark.parametrize("line", ["for /f %i in ('whoami') do echo %i", "if x echo y", "for %i in (a)", "if"])
def test_cmd_lines_that_cannot_be_checked_raise(line: str) -> None:
    with pytest.raises(ValueError):
        cmd_server.command_names(line)


def _settings(tmp_path: Path, **lists: frozenset[str]) -> _command.Settings:
    return _command.Settings(
        cwd=tmp_path,
        env={"A": "b"},
        timeout=5,
        max_timeout=10,
        max_output=100,
        allow=lists.get("allow", frozenset()),
        deny=lists.get("deny", frozenset()),
    )


def test_cmd_on_windows_hands_the_line_to_comspec_verbatim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """MOCK (no Windows here): sys.platform is faked to win32 and anyio.open_process is replaced by a recorder.

    The command line must reach anyio as one string (Python then runs `%ComSpec% /c "<line>"`), with no
    console window and a new process group, so quotes and `&` arrive exactly as typed.
    """
    seen: dict[str, Any] = {}

    async def fake_open_process(command: Any, **kwargs: Any) -> Any:
        seen.update(command=command, **kwargs)
        raise OSError("fake spawner: stops here")

    tool = cmd_server.cmd_tool(windows=True)
    monkeypatch.setattr(_command.sys, "platform", "win32")
    monkeypatch.setattr(_command.subprocess, "CREATE_NO_WINDOW", 0x08000000, raising=False)
    monkeypatch.setattr(_command.subprocess, "CREATE_NEW_PROCESS_GROUP", 0x00000200, raising=False)
    monkeypatch.setattr(_command.anyio, "open_process", fake_open_process)
    line = 'echo "a & b" & dir "C:\\Program Files"'
    result = anyio.run(_command.run_tool, tool, _settings(tmp_path), line, None, None)
    assert seen["command"] == line
    assert seen["creationflags"] == 0x08000000 | 0x00000200
    assert seen["cwd"] == tmp_path and seen["env"] == {"A": "b"}
    assert "start_new_session" not in seen
    assert result.is_error and "could not start cmd: fake spawner" in text(result)


def test_cmd_deny_list_refuses_before_spawning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """MOCK (no Windows here): the cmd tool is built as on Windows; any spawn attempt fails the test."""

    async def no_spawn(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a refused command must not be started")

    monkeypatch.setattr(_command, "execute", no_spawn)
    tool = cmd_server.cmd_tool(windows=True)
    settings = _settings(tmp_path, deny=frozenset({"del", "rd"}))
    for line in ("DEL /q x", "echo ok & rd /s y", r"C:\Windows\System32\del.exe x"):
        result = anyio.run(_command.run_tool, tool, settings, line, None, None)
        assert result.is_error and "on the deny list" in text(result), line
    allowed = _settings(tmp_path, allow=frozenset({"echo"}))
    refused = anyio.run(_command.run_tool, tool, allowed, "echo hi & %X%", None, None)
    assert "a %variable% used as a command name is not on the allow list" in text(refused)


def test_windows_tree_kill_uses_taskkill(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SystemRoot", r"C:\Windows")
    assert _command.taskkill_argv(4242) == [
        os.path.join(r"C:\Windows", "System32", "taskkill.exe"),
        "/T",
        "/F",
        "/PID",
        "4242",
    ]


def test_cmd_output_falls_back_to_the_oem_code_page() -> None:
    capture = _command.Capture(limit=100, fallback_encoding="cp850")
    capture.add("Verzeichnis von C:\\Benutzer\\Jürgen".encode("cp850"))
    assert capture.text() == "Verzeichnis von C:\\Benutzer\\Jürgen"
    utf8 = _command.Capture(limit=100, fallback_encoding="cp850")
    utf8.add("Jürgen".encode())
    assert utf8.text() == "Jürgen"


# ---- powershell: argv and names ----------------------------------------------------------------------


def test_powershell_argv_carries_the_script_encoded() -> None:
    script = 'Get-ChildItem \'C:\\x y\' | Where-Object { $_.Name -like "*`"*" }'
    argv = powershell_server.invocation(r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe", script)
    assert argv[:5] == [
        r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
        "-NoLogo",
        "-NoProfile",
        "-NonInteractive",
        "-EncodedCommand",
    ]
    assert len(argv) == 6
    assert base64.b64decode(argv[5]).decode("utf-16-le") == powershell_server.PREAMBLE + script


def _executable(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.write_text(body)
    path.chmod(0o755)
    return path


def test_powershell_interpreter_choice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """FAKE executables on PATH (no PowerShell here): powershell.exe wins on Windows, pwsh anywhere else."""
    windows_ps = _executable(tmp_path, "powershell.exe", "#!/bin/sh\n")
    pwsh = _executable(tmp_path, "pwsh", "#!/bin/sh\n")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert powershell_server.find_interpreter(None, windows=True) == str(windows_ps)
    assert powershell_server.find_interpreter(None, windows=False) == str(pwsh)
    assert powershell_server.find_interpreter(str(windows_ps), windows=False) == str(windows_ps)
    pwsh.unlink()
    assert powershell_server.find_interpreter(None, windows=False) is None
    assert powershell_server.find_interpreter("no-such-shell", windows=True) is None


@pytest.mark.parametrize(
    ("script", "names"),
    [
        (
            "Get-ChildItem | Where-Object { $_.Length -gt 1 } | Remove-Item",
            ["get-childitem", "where-object", "remove-item"],
        ),
        ("$x = Get-Date; rm $x", ["get-date", "rm"]),
        ('Write-Output "a $(Stop-Process 1) b"', ["write-output", "stop-process"]),
        ("& 'C:\\bin\\Tool.exe' -a; . .\\setup.ps1", ["tool", "setup"]),
        ("if (Test-Path x) { del x } else { echo 'rm' }", ["test-path", "del", "echo"]),
        ("foreach ($f in Get-ChildItem) { $f.Name }", ["get-childitem"]),
        ("@{ Name = 1; Value = Get-Date }", ["get-date"]),
        ("iex 'Remove-Item x'", ["iex", "remove-item"]),
        ("function Foo { Get-Date }; Foo # rm", ["get-date", "foo"]),
        ("<# del #> echo a=b; exit 3", ["echo"]),
        ("Get-Job & Remove-Item y", ["get-job", "remove-item"]),
    ],
)
def test_powershell_command_names(script: str, names: list[str]) -> None:
    assert powershell_server.command_names(script) == names


def test_powershell_names_it_cannot_read() -> None:
    assert powershell_server.command_names("& $cmd")[0].startswith("a command name computed at run time")
    assert powershell_server.command_names("iex $text")[1].startswith("a script built at run time")
    assert powershell_server.command_names("[IO.File]::Delete('x')", allow_listed=True) == ["a .NET static method call"]
    for broken in ("echo 'unterminated", "{ Get-Date", "Get-Date }", "<# open"):
        with pytest.raises(ValueError):
            powershell_server.command_names(broken)


# ---- powershell end to end, with a FAKE pwsh ---------------------------------------------------------

FAKE_PWSH = '''#!{python}
"""FAKE pwsh for tests: PowerShell is not installed on this machine.

Checks the argv the server must use, records it, decodes the script and runs it (without the preamble)
with bash, so what the server does with the process (timeouts, caps, exit codes) is real.
"""
import base64, json, os, sys

args = sys.argv[1:]
with open(os.environ["FAKE_PWSH_RECORD"], "a") as record:
    record.write(json.dumps(args) + "\\n")
if args[:4] != ["-NoLogo", "-NoProfile", "-NonInteractive", "-EncodedCommand"] or len(args) != 5:
    sys.exit(97)
script = base64.b64decode(args[4]).decode("utf-16-le")
preamble = {preamble!r}
if not script.startswith(preamble):
    sys.exit(98)
os.execv("/bin/bash", ["bash", "-c", script[len(preamble):]])
'''


@pytest.fixture
def fake_pwsh(tmp_path: Path) -> Iterator[tuple[dict[str, str], Path]]:
    """A FAKE `pwsh` on PATH; yields the environment for the server and the file recording each argv."""
    folder = tmp_path / "bin"
    folder.mkdir()
    _executable(folder, "pwsh", FAKE_PWSH.format(python=sys.executable, preamble=powershell_server.PREAMBLE))
    record = tmp_path / "argv.jsonl"
    record.touch()
    yield {"PATH": f"{folder}:{os.environ['PATH']}", "FAKE_PWSH_RECORD": str(record)}, record


def test_pwsh_runs_scripts_and_reports_exit_codes(fake_pwsh: tuple[dict[str, str], Path]) -> None:
    env, record = fake_pwsh

    async def check(client: Client) -> None:
        ok = await client.call_tool("powershell", {"command": "echo hello"})
        assert not ok.is_error
        assert structured(ok) == {
            "exit_code": 0,
            "stdout": "hello\n",
            "stderr": "",
            "timed_out": False,
            "truncated": False,
        }
        failed = await client.call_tool("powershell", {"command": "echo bad >&2; exit 4"})
        assert failed.is_error
        assert structured(failed)["exit_code"] == 4
        assert "exit code 4" in text(failed) and "bad" in text(failed)

    run(check, client_for("powershell_server.py", env=env))
    calls = [json.loads(line) for line in record.read_text().splitlines()]
    assert len(calls) == 2
    assert base64.b64decode(calls[0][4]).decode("utf-16-le") == powershell_server.PREAMBLE + "echo hello"


def test_pwsh_timeout_kills_a_tree_that_ignores_sigterm(fake_pwsh: tuple[dict[str, str], Path]) -> None:
    env, _ = fake_pwsh
    duration = unique_sleep()
    pattern = f"sleep {duration}"

    async def check(client: Client) -> None:
        started = time.monotonic()
        script = f"trap '' TERM; sleep {duration} & sleep {duration}"
        result = await client.call_tool("powershell", {"command": script, "timeout": 1})
        assert result.is_error
        assert structured(result)["timed_out"] is True and structured(result)["exit_code"] is None
        assert "timed out after 1s" in text(result)
        assert time.monotonic() - started < 8

    with reaped(pattern):
        run(check, client_for("powershell_server.py", env=env))
        assert pgrep(pattern) == []


def test_pwsh_output_is_capped(fake_pwsh: tuple[dict[str, str], Path]) -> None:
    env, _ = fake_pwsh

    async def check(client: Client) -> None:
        result = await client.call_tool("powershell", {"command": "head -c 10000000 /dev/zero | tr '\\0' b"})
        output = structured(result)
        assert output["truncated"] is True
        assert output["stdout"] == "b" * MIB + f"\n[... {MARKER}: {10_000_000 - MIB} bytes omitted ...]"

    run(check, client_for("powershell_server.py", env=env))


def test_pwsh_deny_list_matches_aliases_and_runs_nothing(fake_pwsh: tuple[dict[str, str], Path]) -> None:
    env, record = fake_pwsh

    async def check(client: Client) -> None:
        for script in ("Remove-Item foo", "rm foo", "echo x; DEL foo", "echo $(ri foo)", "iex 'Remove-Item foo'"):
            result = await client.call_tool("powershell", {"command": script})
            assert result.is_error, script
            assert "deny list" in text(result), script
        assert record.read_text() == "", "a refused script must not start the interpreter"
        allowed = await client.call_tool("powershell", {"command": "echo fine"})
        assert structured(allowed)["stdout"] == "fine\n"

    run(check, client_for("powershell_server.py", "--deny", "Remove-Item", env=env))


# ---- wmi: the WQL, and a FAKE wmi module (MOCK: no WMI here) ------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "wql"),
    [
        ({"wmi_class": "Win32_OperatingSystem"}, "SELECT * FROM Win32_OperatingSystem"),
        (
            {"wmi_class": "Win32_Process", "properties": ["Name", "ProcessId"], "where": {"Name": "explorer.exe"}},
            "SELECT Name, ProcessId FROM Win32_Process WHERE Name = 'explorer.exe'",
        ),
        (
            {"wmi_class": "Win32_Service", "where": {"Name": "O'Brien\\x", "Started": True, "ProcessId": 0}},
            "SELECT * FROM Win32_Service WHERE Name = 'O\\'Brien\\\\x' AND Started = TRUE AND ProcessId = 0",
        ),
        (
            {"wmi_class": "Win32_LogicalDisk", "where": {"VolumeName": None, "Size": 1.5}},
            "SELECT * FROM Win32_LogicalDisk WHERE VolumeName IS NULL AND Size = 1.5",
        ),
    ],
)
def test_wql_is_built_from_structured_input(arguments: dict[str, Any], wql: str) -> None:
    assert wmi_server.build_query(**arguments) == wql


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        ({"wmi_class": "Win32_Process WHERE 1=1"}, "wmi_class must be an identifier"),
        ({"wmi_class": "Win32_Process; DROP"}, "wmi_class must be an identifier"),
        ({"wmi_class": "1Process"}, "wmi_class must be an identifier"),
        ({"wmi_class": "W", "properties": ["Name, CommandLine"]}, "property must be an identifier"),
        ({"wmi_class": "W", "properties": ["*"]}, "property must be an identifier"),
        ({"wmi_class": "W", "where": {"Name = 'x' OR 1": 1}}, "filter property must be an identifier"),
        ({"wmi_class": "W", "where": {"Name": "a\nb"}}, "control characters"),
        ({"wmi_class": "W", "where": {"Size": float("nan")}}, "finite"),
        ({"wmi_class": "W", "where": {"Name": ["a"]}}, "strings, numbers, booleans or null"),
    ],
)
def test_wql_refuses_what_is_not_a_name_or_a_plain_value(arguments: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        wmi_server.build_query(**arguments)


class FakeWmiObject:
    def __init__(self, **values: Any) -> None:
        self.properties = dict.fromkeys(values)
        for name, value in values.items():
            setattr(self, name, value)


class FakeWmi:
    """MOCK of the `wmi` package (Windows only): records namespace and WQL, returns canned objects."""

    def __init__(self, rows: list[FakeWmiObject], delay: float = 0.0) -> None:
        self.rows, self.delay = rows, delay
        self.calls: list[tuple[str, str]] = []
        self.namespace = ""

    def WMI(self, namespace: str) -> FakeWmi:
        self.namespace = namespace
        return self

    def query(self, wql: str) -> list[FakeWmiObject]:
        self.calls.append((self.namespace, wql))
        if "Broken" in wql:
            raise RuntimeError("x_wmi: Unexpected COM Error")
        time.sleep(self.delay)
        return self.rows


def _wmi_settings(fake: FakeWmi, max_rows: int = 10, timeout: float = 5) -> wmi_server.WmiSettings:
    return wmi_server.WmiSettings(fake, None, "root\\cimv2", timeout, max_rows)


def test_query_wmi_with_a_fake_wmi_module() -> None:
    """MOCK (no WMI here): the tool's result from canned WMI objects, and the WQL it sent."""
    fake = FakeWmi(
        [FakeWmiObject(Name="a.exe", ProcessId=1, Args=("x", 2, Decimal("1.5"))), FakeWmiObject(Name="b", ProcessId=2)]
    )
    result = anyio.run(
        wmi_server.query_tool, _wmi_settings(fake, max_rows=1), "Win32_Process", ["Name", "ProcessId"], {"Name": "a"}
    )
    assert not result.is_error
    assert fake.calls == [("root\\cimv2", "SELECT Name, ProcessId FROM Win32_Process WHERE Name = 'a'")]
    assert structured(result) == {
        "wmi_class": "Win32_Process",
        "query": "SELECT Name, ProcessId FROM Win32_Process WHERE Name = 'a'",
        "rows": [{"Name": "a.exe", "ProcessId": 1}],
        "count": 1,
        "truncated": True,
    }
    everything = anyio.run(wmi_server.query_tool, _wmi_settings(fake), "Win32_Process", None, None)
    assert structured(everything)["rows"][0] == {"Args": ["x", 2, "1.5"], "Name": "a.exe", "ProcessId": 1}


def test_query_wmi_refuses_bad_names_without_querying() -> None:
    """MOCK (no WMI here)."""
    fake = FakeWmi([])
    result = anyio.run(wmi_server.query_tool, _wmi_settings(fake), "Win32_Process", ["Name FROM x --"], None)
    assert result.is_error and "refused: property must be an identifier" in text(result)
    assert fake.calls == []


def test_query_wmi_errors_and_timeouts_are_tool_errors() -> None:
    """MOCK (no WMI here): a COM error and a hung query both come back as isError results."""
    broken = anyio.run(wmi_server.query_tool, _wmi_settings(FakeWmi([])), "Broken", None, None)
    assert broken.is_error and "Unexpected COM Error" in text(broken)
    started = time.monotonic()
    slow = anyio.run(wmi_server.query_tool, _wmi_settings(FakeWmi([], delay=3), timeout=0.3), "Slow", None, None)
    assert slow.is_error and "timed out after 0.3s" in text(slow)
    assert time.monotonic() - started < 2


def test_wmi_needs_windows_and_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    module, why = wmi_server.load_wmi(windows=False)
    assert module is None and why is not None and "only on Windows" in why
    monkeypatch.setitem(sys.modules, "wmi", None)  # as if `pip install mcpgw[windows]` was skipped
    module, why = wmi_server.load_wmi(windows=True)
    assert module is None and why is not None and "`wmi` package is not installed" in why


def test_windows_extra_never_installs_on_linux() -> None:
    pyproject = (peers.REPO_ROOT / "pyproject.toml").read_text()
    assert "windows = [\"wmi>=1.5; sys_platform == 'win32'\"]" in pyproject


# ---- all four behind a generated gateway -------------------------------------------------------------


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """A gateway built (real probe) over the four built-ins; yields gateway.py and the fake pwsh's record."""
    work = tmp_path_factory.mktemp("builtins")
    folder = work / "bin"
    folder.mkdir()
    _executable(folder, "pwsh", FAKE_PWSH.format(python=sys.executable, preamble=powershell_server.PREAMBLE))
    record = work / "argv.jsonl"
    record.touch()
    config = {
        "mcpServers": {
            "bash": {"command": "python", "args": [str(SERVERS / "bash_server.py"), "--deny", "rm"]},
            "cmd": {"command": "python", "args": [str(SERVERS / "cmd_server.py")]},
            "ps": {
                "command": "python",
                "args": [str(SERVERS / "powershell_server.py")],
                "env": {"PATH": f"{folder}:${{PATH}}", "FAKE_PWSH_RECORD": str(record)},
            },
            "wmi": {"command": "python", "args": [str(SERVERS / "wmi_server.py")]},
        },
        "gateway": {"name": "builtins"},
    }
    yield peers.build_gateway(work, config), record


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_builtin_servers_through_a_gateway(gateway: tuple[Path, Path]) -> None:
    gateway_py, record = gateway
    duration = unique_sleep()
    pattern = f"sleep {duration}"
    params = StdioServerParameters(command=sys.executable, args=[str(gateway_py), "--transport", "stdio"])

    async def check(client: Client) -> None:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert set(tools) == {"bash__bash", "cmd__cmd", "ps__powershell", "wmi__query_wmi"}
        assert tools["wmi__query_wmi"].output_schema is not None

        started = time.monotonic()
        slow = await client.call_tool(
            "bash__bash", {"command": f"trap '' TERM; sleep {duration} & sleep {duration}", "timeout": 1}
        )
        assert slow.is_error and structured(slow)["timed_out"] is True
        assert time.monotonic() - started < 10

        big = await client.call_tool("bash__bash", {"command": "head -c 10000000 /dev/zero | tr '\\0' c"})
        assert structured(big)["truncated"] is True and MARKER in structured(big)["stdout"]
        assert len(structured(big)["stdout"]) < MIB + 100

        failing = await client.call_tool("bash__bash", {"command": "exit 7"})
        assert failing.is_error and structured(failing)["exit_code"] == 7

        denied = await client.call_tool("bash__bash", {"command": "rm -rf /tmp/nothing-here"})
        assert denied.is_error and "`rm` is on the deny list" in text(denied)

        ps = await client.call_tool("ps__powershell", {"command": "echo via-gateway; exit 2"})
        assert ps.is_error and structured(ps)["exit_code"] == 2 and structured(ps)["stdout"] == "via-gateway\n"

        for name, arguments in (("cmd__cmd", {"command": "dir"}), ("wmi__query_wmi", {"wmi_class": "Win32_BIOS"})):
            result = await client.call_tool(name, arguments)
            assert result.is_error and "not available on this platform" in text(result), name

    with reaped(pattern):
        run(check, Client(params, mode="legacy"))
        assert pgrep(pattern) == []
    assert "-EncodedCommand" in record.read_text(), "the gateway's ps backend should have run the fake pwsh"
