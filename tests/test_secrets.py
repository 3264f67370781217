"""Secrets and environment: what a backend process receives, and where a `${VAR}` value may never appear.

Real build, real gateway, real backends: stdio `envdump` and `broken`
(tests/servers/fault_server.py), `web`, a local Streamable HTTP server the
gateway starts, and `remote`, an HTTP server that answers only with the bearer
token from the config's `headers`. Secrets reach them through `env`, `args` and
`headers` as `${VAR}` references.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import DEFAULT_INHERITED_ENV_VARS

from tests import peers
from tests.peers import ServedGateway, call, with_client
from tests.test_faults import FAULT_SERVER
from tests.test_faults_net import NET_SERVER, net_server

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

SECRETS = {
    name: f"{name.lower().replace('_', '-')}-{secrets.token_hex(8)}"
    for name in ("MCPGW_TEST_SECRET_ENV", "MCPGW_TEST_SECRET_ARG", "MCPGW_TEST_SECRET_HEADER")
}
UNPASSED = {"MCPGW_TEST_SECRET_UNPASSED": f"unpassed-{secrets.token_hex(8)}"}
"""Set where the gateway runs, referenced by no backend: must reach no child."""


def secrets_config() -> dict[str, Any]:
    passed = {
        "PLAIN": "plain-value",
        "SECRET": "${MCPGW_TEST_SECRET_ENV}",
        "DEFAULTED": "${MCPGW_TEST_UNSET:-fallback}",
    }
    return {
        "envdump": {
            "command": "python",
            "args": [str(FAULT_SERVER), "--api-key=${MCPGW_TEST_SECRET_ARG}"],
            "env": passed,
        },
        "broken": {
            "command": "python",
            "args": [str(FAULT_SERVER), "--api-key=${MCPGW_TEST_SECRET_ARG}"],
            "env": {"FAULT_MODE": "${BROKEN_MODE:-ok}", "SECRET": "${MCPGW_TEST_SECRET_ENV}"},
            "startup_timeout": 5,
        },
        "web": {
            "url": "http://127.0.0.1:${WEB_PORT}/mcp",
            "command": "python",
            "args": [str(NET_SERVER), "--transport", "http", "--port", "${WEB_PORT}"],
            "env": passed,
        },
        "remote": {
            "url": "http://127.0.0.1:${REMOTE_PORT}/mcp",
            "headers": {"Authorization": "Bearer ${MCPGW_TEST_SECRET_HEADER}"},
            "startup_timeout": 3,
        },
        "gateway": {"name": "secrets"},
    }


def _leaks(text: str) -> list[str]:
    return [name for name, value in {**SECRETS, **UNPASSED}.items() if value in text]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    """The gateway built while `remote` (on the yielded port) demands the header secret; the build's output checked."""
    root = tmp_path_factory.mktemp("secrets")
    remote_port = peers.free_port()
    with net_server("http", remote_port, root / "remote.pid", NET_TOKEN=SECRETS["MCPGW_TEST_SECRET_HEADER"]):
        env = {**SECRETS, "WEB_PORT": str(peers.free_port()), "REMOTE_PORT": str(remote_port)}
        build = peers.run_build(root, secrets_config(), env=env)
    assert build.returncode == 0, build.stderr
    assert not _leaks(build.stdout + build.stderr), "the build printed a secret"
    yield root / "dist" / "gateway.py", remote_port


def _serve(gateway: Path, root: Path, remote_port: int, **extra: str) -> ServedGateway:
    root.mkdir()
    env = {**SECRETS, **UNPASSED, "WEB_PORT": str(peers.free_port()), "REMOTE_PORT": str(remote_port), **extra}
    return peers.serve_gateway(gateway, root, env=env, ready=("envdump", "web", "remote"))


def test_children_get_the_sdk_default_environment_plus_exactly_what_the_config_passes(
    built: tuple[Path, int], tmp_path: Path
) -> None:
    gateway, remote_port = built
    expected = {k: os.environ[k] for k in DEFAULT_INHERITED_ENV_VARS if not os.environ.get(k, "()").startswith("()")}
    expected |= {"PLAIN": "plain-value", "SECRET": SECRETS["MCPGW_TEST_SECRET_ENV"], "DEFAULTED": "fallback"}
    with net_server("http", remote_port, tmp_path / "remote.pid", NET_TOKEN=SECRETS["MCPGW_TEST_SECRET_HEADER"]):
        gw = _serve(gateway, tmp_path / "run", remote_port)
        try:

            async def body(c: Client) -> list[str]:
                return [(await call(c, name))[0] for name in ("envdump__env", "web__env", "remote__pid")]

            stdio_env, local_env, remote_pid = with_client(gw, body)
        finally:
            peers.kill_process_group(gw.proc)
    assert json.loads(stdio_env) == expected, (
        "stdio child: the SDK's default subset plus the config's env, nothing else"
    )
    assert json.loads(local_env) == expected, "local HTTP server: the same"
    assert remote_pid.isdigit(), f"the header secret was expanded and sent at run time: {remote_pid}"


def test_secrets_stay_out_of_output_files_logs_stderr_health_and_errors(
    built: tuple[Path, int], tmp_path: Path
) -> None:
    """`broken` fails to start (a secret in its args and env), `remote` (a secret in its header) becomes unreachable."""
    gateway, remote_port = built
    root = tmp_path / "run"
    gw: ServedGateway | None = None
    try:
        with net_server("http", remote_port, tmp_path / "remote.pid", NET_TOKEN=SECRETS["MCPGW_TEST_SECRET_HEADER"]):
            gw = _serve(gateway, root, remote_port, BROKEN_MODE="exit")
            assert with_client(gw, lambda c: call(c, "remote__echo", {"text": "authorized"}))[0] == "authorized"

        async def body(c: Client) -> list[str]:
            with anyio.fail_after(30):  # hang guard: each waits at most its startup_timeout
                calls = [("broken__echo", {"text": "x"}), ("remote__echo", {"text": "x"}), ("web__echo", {"text": "y"})]
                return [(await call(c, name, args))[0] for name, args in calls]

        broken, remote, web = with_client(gw, body)
        assert broken.startswith("error ") and "backend 'broken'" in broken, broken
        assert remote.startswith("error ") and "backend 'remote'" in remote, remote
        assert web == "y"
        seen = {"broken error": broken, "remote error": remote}
        seen["healthz"] = gw.get("/healthz")[1]
        seen["metrics"] = gw.get("/metrics")[1]
        gw.proc.send_signal(signal.SIGTERM)
        gw.proc.wait(timeout=10)
    finally:
        if gw is not None:
            peers.kill_process_group(gw.proc)
    files = [p for p in [*gateway.parent.iterdir(), *root.iterdir()] if p.is_file()]
    assert any(p.name.startswith("mcpgw_") and p.suffix == ".log" for p in files), "a log file was written"
    for path in files:
        seen[str(path)] = path.read_text(errors="replace")
    leaked = {where: _leaks(text) for where, text in seen.items() if _leaks(text)}
    assert not leaked, leaked


def test_secrets_in_urls_and_commands_stay_out_of_errors_health_and_logs(tmp_path: Path) -> None:
    """A key in an SSE backend's URL query (the server then refuses it: 401), a secret path as a command."""
    url_key = f"url-key-{secrets.token_hex(8)}"
    bad_command = f"/nonexistent/cmd-{secrets.token_hex(8)}"
    port = peers.free_port()
    config: dict[str, Any] = {
        "keyed": {
            "type": "sse",
            "url": f"http://127.0.0.1:{port}/sse?key=${{MCPGW_TEST_URL_KEY}}",
            "startup_timeout": 3,
        },
        "argv": {"command": "${MCPGW_TEST_CMD}", "args": [str(FAULT_SERVER)], "startup_timeout": 3},
        "gateway": {"name": "redact"},
    }
    env = {"MCPGW_TEST_URL_KEY": url_key, "MCPGW_TEST_CMD": sys.executable}
    with net_server("sse", port, tmp_path / "keyed.pid"):
        build = peers.run_build(tmp_path, config, env=env)
    assert build.returncode == 0, build.stderr
    run_env = {**env, "MCPGW_TEST_CMD": bad_command}
    root = tmp_path / "run"
    root.mkdir()
    with net_server("sse", port, tmp_path / "keyed.pid", NET_TOKEN="not-the-key"):
        gw = peers.serve_gateway(tmp_path / "dist" / "gateway.py", root, env=run_env)
        try:

            async def body(c: Client) -> list[str]:
                with anyio.fail_after(30):
                    return [(await call(c, name, {"text": "x"}))[0] for name in ("keyed__echo", "argv__echo")]

            keyed, argv = with_client(gw, body)
            seen = {"keyed error": keyed, "argv error": argv, "healthz": gw.get("/healthz")[1]}
        finally:
            peers.kill_process_group(gw.proc)
    assert "backend 'keyed'" in keyed and "backend 'argv'" in argv, (keyed, argv)
    assert "${MCPGW_TEST_CMD}" in argv, argv  # what failed is named by its reference
    seen |= {str(p): p.read_text(errors="replace") for p in root.iterdir() if p.is_file()}
    leaked = [where for where, text in seen.items() if url_key in text or bad_command in text]
    assert not leaked, {where: seen[where][-2000:] for where in leaked}
