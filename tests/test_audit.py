"""The audit log end to end: one record per forwarded request under concurrent load, nothing lost to a SIGKILL.

A generated gateway in front of the benchmark's echo server (bench/servers/echo_server.py, on the
`mcp` SDK), driven by the SDK's own client: 8 sessions at once, each with a mix of calls that
succeed, that the tool fails (isError), that name no tool, that the policy denies, that time out, a
prompt and a resource.
Served by each half of the gateway: the front's relays (the default with stdio backends), the
core (`--eager-core`: its fast path and the SDK's handlers) and stdio. The audit file rotates
during the load, so the records are counted across its rotated files.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcpgw_runtime.audit import AuditLog
from mcpgw_runtime.cli import audit_spec, parse_args
from mcpgw_runtime.spec import AuditSpec, GatewaySpec

from tests.peers import REPO_ROOT, ServedGateway, build_gateway, kill_process_group, serve_gateway

pytestmark = pytest.mark.e2e

ECHO_SERVER = REPO_ROOT / "bench" / "servers" / "echo_server.py"
SESSIONS = 8
CALLS = 12
"""Tool calls per session (besides one prompt and one resource)."""
TOKEN = "audit-test-token"
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def _config(audit: dict[str, Any]) -> dict[str, Any]:
    echo = {"command": sys.executable, "args": ["echo_server.py", "--tools", "3"], "tool_timeouts": {"slow": 0.3}}
    policy = {
        "rules": [
            {"name": "no-big", "deny": {"tools": ["echo__big"]}},
            {"name": "the-rest", "allow": {"tools": ["*"], "prompts": ["*"], "resources": ["*"]}},
        ]
    }
    return {
        "mcpServers": {"echo": echo},
        "gateway": {"audit": {"path": "audit/audit.jsonl", **audit}, "policy": policy},
    }


def digest(arguments: object) -> str:
    """sha256 of the canonical JSON of the arguments, as docs/observability.md defines `args_sha256`."""
    text = json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _plan(session: int) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """One session's tool calls: (tool, arguments, the record's expected fields)."""
    ok: dict[str, Any] = {"outcome": "ok", "error_code": None, "tool_error": False, "backend": "echo"}
    ok["backend_name"] = "echo"
    plan: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    for n in range(CALLS):
        tag = f"s{session}-c{n}"
        if n == CALLS - 2:
            denied: dict[str, Any] = {**ok, "outcome": "denied", "error_code": -32010, "backend": None}
            denied["backend_name"] = None
            plan.append(("echo__big", {"text": tag}, denied))
        elif n == CALLS - 1:
            expected = {**ok, "outcome": "timeout", "error_code": -32001, "backend_name": "slow"}
            plan.append(("echo__slow", {"ms": 3000 + session}, expected))
        elif n % 3 == 0:
            plan.append(("echo__echo", {"text": tag}, ok))
        elif n % 3 == 1:
            plan.append(("echo__echo", {"wrong": tag}, {**ok, "tool_error": True}))
        else:
            unknown: dict[str, Any] = {
                **ok,
                "outcome": "error",
                "error_code": -32602,
                "backend": None,
                "backend_name": None,
            }
            plan.append(("echo__nope", {"text": tag}, unknown))
    return plan


async def _run_session(c: Client, session: int) -> None:
    for tool, arguments, expected in _plan(session):
        try:
            result = await c.call_tool(tool, arguments)
        except MCPError as exc:
            assert exc.error.code == expected["error_code"], (tool, exc.error)
        else:
            assert result.is_error is expected["tool_error"], (tool, result)
    await c.get_prompt("echo__greet", {"name": f"s{session}"})
    await c.read_resource("bench://echo/static")


def _records(folder: Path) -> list[dict[str, Any]]:
    """Every record of the audit file and its rotated copies; each line whole."""
    records = []
    for path in sorted(folder.iterdir()):
        text = path.read_text()
        assert text == "" or text.endswith("\n"), f"{path.name} ends in the middle of a record"
        records += [json.loads(line) for line in text.splitlines()]
    return records


def _check(records: list[dict[str, Any]], *, http: bool) -> None:
    """Exactly one record per request made, with the fields each should have."""
    calls = [r for r in records if r["method"] == "tools/call"]
    expected = {(tool, digest(arguments)): fields for s in range(SESSIONS) for tool, arguments, fields in _plan(s)}
    assert sorted((r["name"], r["args_sha256"]) for r in calls) == sorted(expected), "one record per call"
    for r in records:
        assert TIME.fullmatch(r["time"]), r
        assert type(r["request_id"]) is int
        assert r["profile"] == "default"
        assert r["caller"] == ({"kind": "static", "subject": "static-token", "client_id": None} if http else None)
        assert r["duration_ms"] >= 0 and r["request_bytes"] > 0
        assert "arguments" not in r and "trace_id" not in r
    for r in calls:
        want = expected[(r["name"], r["args_sha256"])]
        got = {k: r[k] for k in want}
        assert got == want, r
        assert (r["response_bytes"] is None) is (r["outcome"] != "ok"), r
    if http:
        assert len({r["session"] for r in calls}) == SESSIONS
    else:
        assert {r["session"] for r in records} == {None}
    prompts = [r for r in records if r["method"] == "prompts/get"]
    assert sorted(r["args_sha256"] for r in prompts) == sorted(digest({"name": f"s{s}"}) for s in range(SESSIONS))
    assert {(r["name"], r["backend_name"], r["outcome"]) for r in prompts} == {("echo__greet", "greet", "ok")}
    reads = [r for r in records if r["method"] == "resources/read"]
    assert len(reads) == SESSIONS
    assert {(r["uri"], r["backend"], r["outcome"]) for r in reads} == {("bench://echo/static", "echo", "ok")}
    assert len(records) == SESSIONS * (CALLS + 2)


def _http_load(gw: ServedGateway) -> None:
    async def one(session: int) -> None:
        http = httpx2.AsyncClient(timeout=60, headers=gw.headers)
        async with http, Client(streamable_http_client(f"{gw.url}/mcp", http_client=http), mode="legacy") as c:
            await _run_session(c, session)

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for session in range(SESSIONS):
                tg.start_soon(one, session)

    anyio.run(main)


@pytest.mark.parametrize("mode", ["front", "core", "stdio"])
def test_one_record_per_request_under_concurrent_load(tmp_path: Path, mode: str) -> None:
    shutil.copy(ECHO_SERVER, tmp_path / "echo_server.py")
    gateway = build_gateway(tmp_path, _config({"max_bytes": 8192, "backups": 100}))
    folder = tmp_path / "audit"
    if mode == "stdio":
        params = StdioServerParameters(
            command=sys.executable, args=[str(gateway), "--transport", "stdio", "--log-dir", str(tmp_path)]
        )

        async def main() -> None:
            async with Client(stdio_client(params), mode="legacy") as c, anyio.create_task_group() as tg:
                for session in range(SESSIONS):  # one client: the plans run concurrently in its one session
                    tg.start_soon(_run_session, c, session)

        anyio.run(main)
    else:
        flags = ["--eager-core"] if mode == "core" else []
        headers = {"Authorization": f"Bearer {TOKEN}"}
        gw = serve_gateway(gateway, tmp_path, env={"MCPGW_TOKEN": TOKEN}, headers=headers, ready=["echo"], args=flags)
        try:
            _http_load(gw)
        finally:
            kill_process_group(gw.proc)
    assert len(list(folder.iterdir())) > 2, "the file rotated during the load"
    _check(_records(folder), http=mode != "stdio")


def test_sigkill_loses_no_answered_call(tmp_path: Path) -> None:
    """SIGKILL the gateway under load: the file holds whole lines only, and a record of every answered call."""
    shutil.copy(ECHO_SERVER, tmp_path / "echo_server.py")
    gateway = build_gateway(tmp_path, _config({"arguments": True}))
    gw = serve_gateway(gateway, tmp_path, ready=["echo"])
    sent: set[str] = set()
    answered: set[str] = set()

    async def client(session: int) -> None:
        async with Client(streamable_http_client(f"{gw.url}/mcp"), mode="legacy") as c:
            for n in range(10_000):
                tag = f"s{session}-c{n}"
                sent.add(tag)
                await c.call_tool("echo__echo", {"text": tag})
                answered.add(tag)

    async def main() -> None:
        with pytest.raises(BaseExceptionGroup):  # the clients' connections fail once the gateway is gone
            async with anyio.create_task_group() as tg:
                for session in range(SESSIONS):
                    tg.start_soon(client, session)
                while len(answered) < 200:
                    await anyio.sleep(0.01)
                os.kill(gw.proc.pid, signal.SIGKILL)
                with anyio.fail_after(30):  # every client notices the gateway is gone
                    while True:
                        await anyio.sleep(0.05)

    try:
        anyio.run(main)
    finally:
        kill_process_group(gw.proc)
    records = _records(tmp_path / "audit")
    recorded = {r["arguments"]["text"] for r in records}
    assert answered <= recorded <= sent
    assert len(recorded) == len(records), "one record per call"
    assert all(r["outcome"] == "ok" and r["args_sha256"] == digest(r["arguments"]) for r in records)


def test_rotation_keeps_whole_records_in_order(tmp_path: Path) -> None:
    """Rotation renames whole files: path.1 is the newest rotated one, the oldest beyond `backups` is dropped."""
    log = AuditLog(tmp_path / "a.jsonl", max_bytes=100, backups=2)
    for n in range(10):
        log.write(b'{"n":%d,"pad":"%s"}\n' % (n, b"x" * 15))  # 32 bytes: three records a file
    log.close()
    files = [tmp_path / "a.jsonl.2", tmp_path / "a.jsonl.1", tmp_path / "a.jsonl"]
    assert sorted(tmp_path.iterdir()) == sorted(files)
    numbers = [json.loads(line)["n"] for f in files for line in f.read_text().splitlines()]
    assert numbers == list(range(3, 10))  # 0-2 went with the dropped file
    assert (tmp_path / "a.jsonl").stat().st_mode & 0o777 == 0o600
    again = AuditLog(tmp_path / "a.jsonl", max_bytes=100, backups=0)  # appends to what is there, then starts anew
    again.write(b"{}\n")
    again.write(b"x" * 90 + b"\n")
    again.close()
    assert (tmp_path / "a.jsonl").read_bytes() == b"x" * 90 + b"\n"


def test_audit_flags_over_the_config() -> None:
    configured = AuditSpec(path="logs/team.jsonl", backups=3)
    parse = functools.partial(parse_args, argv=None)
    spec = GatewaySpec("g", "1", "0", ".", (), (), {}, (), {}, (), {}, {}, {}, audit=configured)
    plain = GatewaySpec("g", "1", "0", ".", (), (), {}, (), {}, (), {}, {}, {})
    assert audit_spec(plain, parse(plain, argv=[])) is None  # off by default
    assert audit_spec(plain, parse(plain, argv=["--audit"])) == AuditSpec()
    assert audit_spec(plain, parse(plain, argv=["--audit", "x.jsonl"])) == AuditSpec(path="x.jsonl")
    assert audit_spec(spec, parse(spec, argv=[])) == configured
    assert audit_spec(spec, parse(spec, argv=["--audit", "y.jsonl"])) == AuditSpec(path="y.jsonl", backups=3)
    assert audit_spec(spec, parse(spec, argv=["--no-audit"])) is None
