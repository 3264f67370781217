"""`mcpgw init`, `mcpgw serve`, `--help` and `--version`, run as a user runs them."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import typer
from mcpgw import __version__
from mcpgw.cli import app
from mcpgw.resources import schema_path
from mcpgw.serve import exit_code
from mcpgw.starter import built_in

from tests import peers

pytestmark = pytest.mark.timeout(180)


def mcpgw(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcpgw", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
        timeout=150,
        check=False,
    )


def test_init_writes_a_config_that_validates_with_a_resolvable_schema(tmp_path: Path) -> None:
    proc = mcpgw("init", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    config = json.loads((tmp_path / "config.json").read_text())
    schema = (tmp_path / config["$schema"]).resolve()  # what an editor resolves, relative to the file
    assert schema == schema_path("config.schema.json").resolve()
    assert config["bash"] == {
        "type": "stdio",
        "command": "python",
        "args": ["servers/bash_server.py"],
        "description": "Built-in: run bash commands (Linux, macOS, WSL).",
    }
    assert (tmp_path / "servers" / "bash_server.py").is_file()
    assert mcpgw("validate", "config.json", cwd=tmp_path).returncode == 0


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    (tmp_path / "mine.json").write_text("{}\n")
    proc = mcpgw("init", "mine.json", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == "error: mine.json exists; pass --force to overwrite it\n"
    assert (tmp_path / "mine.json").read_text() == "{}\n"
    assert not (tmp_path / "servers").exists()
    proc = mcpgw("init", "mine.json", "--force", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "bash" in json.loads((tmp_path / "mine.json").read_text())


def test_init_picks_the_builtin_server_of_the_os() -> None:
    assert built_in("linux").script == "bash_server.py"
    assert built_in("darwin").backend == "bash"
    assert built_in("win32").script == "powershell_server.py"


def test_serve_builds_runs_and_stops_on_sigterm(tmp_path: Path) -> None:
    assert mcpgw("init", cwd=tmp_path).returncode == 0
    port = peers.free_port()
    err = tmp_path / "serve.err"
    with err.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mcpgw", "serve", "config.json", "--port", str(port), "--log-dir", "gw-logs"],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            peers.wait_for_port("127.0.0.1", port, 90)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as response:
                    health = json.loads(response.read())
                if health["backends"]["bash"]["state"] == "ready":
                    break
                time.sleep(0.2)
            assert health["backends"]["bash"]["state"] == "ready", health
            built = re.search(r"wrote (\S+)/gateway\.py", err.read_text())
            assert built, err.read_text()
            folder = Path(built.group(1))
            assert folder.is_dir() and folder.name.startswith("mcpgw-serve-")
            proc.send_signal(signal.SIGTERM)  # to mcpgw only: it must pass the signal on
            # uvicorn shuts down cleanly, then re-raises SIGTERM on itself: a shell sees 143 from the gateway
            # run directly, and the same from `mcpgw serve`
            assert proc.wait(timeout=30) in (0, 128 + signal.SIGTERM)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert not folder.exists(), "the temporary build folder is removed"
    logs = list((tmp_path / "gw-logs").iterdir())
    assert len(logs) == 1 and re.fullmatch(r"mcpgw_\d{8}_\d{6}_INFO\.log", logs[0].name)
    with pytest.raises(OSError):
        peers.wait_for_port("127.0.0.1", port, 0.5)


def test_serve_exits_with_the_gateways_exit_code(tmp_path: Path) -> None:
    assert mcpgw("init", cwd=tmp_path).returncode == 0
    env_without_token = {k: v for k, v in os.environ.items() if k != "MCPGW_TOKEN"}
    proc = subprocess.run(
        [sys.executable, "-m", "mcpgw", "serve", "config.json", "--host", "0.0.0.0", "--port", str(peers.free_port())],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env_without_token,
        timeout=150,
        check=False,
    )
    assert proc.returncode == 2
    assert "refusing to bind 0.0.0.0 without authentication" in proc.stderr


def test_exit_code_of_a_signalled_child() -> None:
    assert exit_code(0) == 0
    assert exit_code(3) == 3
    assert exit_code(-signal.SIGTERM) == 128 + signal.SIGTERM


def test_version(tmp_path: Path) -> None:
    proc = mcpgw("--version", cwd=tmp_path)
    assert (proc.returncode, proc.stdout) == (0, f"mcpgw {__version__}\n")


def _commands() -> dict[str, Any]:
    """typer's own command objects (typer vendors click); only `.help`, `.params` and `.opts` are read."""
    group: Any = typer.main.get_command(app)
    return dict(group.commands)


def test_help_lists_every_command_with_its_summary(tmp_path: Path) -> None:
    proc = mcpgw("--help", cwd=tmp_path)
    assert proc.returncode == 0
    assert "Exit codes: 0 clean, 1 stale output or drift, 2 bad input, 3 a backend could not be reached." in proc.stdout
    commands = _commands()
    assert {"build", "check", "init", "schema", "serve", "validate"} <= set(commands)
    for name, command in commands.items():
        summary = (command.help or "").splitlines()[0]
        assert summary, f"{name} has no help"
        assert re.search(rf"│ {name}\s+{re.escape(summary[:60])}", proc.stdout), name


@pytest.mark.parametrize("name", sorted(_commands()))
def test_every_option_of_every_command_is_in_its_help(name: str, tmp_path: Path) -> None:
    proc = mcpgw(name, "--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for param in _commands()[name].params:
        if param.param_type_name == "option":
            assert param.help, f"{name} {param.opts} has no help text"
            for opt in param.opts:
                assert re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", proc.stdout), f"{name}: {opt} missing"
        else:
            assert param.name and param.name in proc.stdout.lower(), f"{name}: argument {param.name} missing"
