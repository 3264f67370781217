"""Other clients' config files build as they are, into the same gateway as the equivalent config.json.

Each test writes a client's file and the seed-shape config.json it means, in
the same folder (so the config's folder, embedded in the gateway, is the same),
builds both frozen from one snapshot, and compares gateway.py byte for byte
with only the config file's name masked (it is in the header, by design).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SNAPSHOT = REPO / "tests" / "cases" / "mcpservers-rules" / "snapshot.json"
"""Offers of two backends: `files` (stdio) and `github` (http)."""

pytestmark = pytest.mark.timeout(180)

FILES = {
    "type": "stdio",
    "command": "npx",
    "args": ["-y", "@example/files-server", "${HOME}/shared"],
    "env": {"FILES_API_KEY": "${FILES_API_KEY}"},
}
GITHUB = {"type": "http", "url": "https://api.example.test/mcp", "headers": {"Authorization": "Bearer ${GITHUB_TOKEN}"}}


def _build(folder: Path, config: str, out: str) -> subprocess.CompletedProcess[str]:
    (folder / out).mkdir(exist_ok=True)
    shutil.copy(SNAPSHOT, folder / out / "snapshot.json")
    return subprocess.run(
        [sys.executable, "-m", "mcpgw", "build", config, "-o", out, "--frozen"],
        cwd=folder,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
        timeout=150,
        check=False,
    )


def _same_gateway(folder: Path, client_file: str, client: object, equivalent: dict[str, object]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / client_file).write_text(json.dumps(client, indent=2))
    (folder / "config.json").write_text(json.dumps(equivalent, indent=2))
    for config, out in ((client_file, "out-client"), ("config.json", "out-config")):
        proc = _build(folder, config, out)
        assert proc.returncode == 0, f"{config}: {proc.stderr}"
    client_gateway = (folder / "out-client" / "gateway.py").read_text().replace(client_file, "CONFIG")
    config_gateway = (folder / "out-config" / "gateway.py").read_text().replace("config.json", "CONFIG")
    assert client_gateway == config_gateway
    assert "BackendSpec(" in client_gateway


def test_claude_desktop_config(tmp_path: Path) -> None:
    """claude_desktop_config.json: stdio servers under "mcpServers", no "type"."""
    client = {"mcpServers": {"files": {k: v for k, v in FILES.items() if k != "type"}}}
    _same_gateway(tmp_path, "claude_desktop_config.json", client, {"files": FILES})


def test_claude_desktop_settings_beside_mcpservers_are_ignored_with_a_warning(tmp_path: Path) -> None:
    """A real claude_desktop_config.json also holds the app's own settings; they are not ours, nor errors."""
    files = {k: v for k, v in FILES.items() if k != "type"}
    client = {"globalShortcut": "Ctrl+Space", "mcpServers": {"files": files}, "preferences": {"menuBarEnabled": True}}
    _same_gateway(tmp_path, "claude_desktop_config.json", client, {"files": FILES})
    proc = _build(tmp_path, "claude_desktop_config.json", "out-client")
    assert "warning: ignored 'globalShortcut': a client setting, not an mcpgw one" in proc.stderr
    assert "warning: ignored 'preferences'" in proc.stderr
    # a near miss of one of our keys is still the error it probably is
    (tmp_path / "typo.json").write_text(json.dumps({"mcpServers": {"files": files}, "gatway": {"port": 1}}))
    typo = _build(tmp_path, "typo.json", "out-typo")
    assert typo.returncode == 2 and 'unknown field "gatway" (did you mean "gateway"?)' in typo.stderr


def test_cursor_mcp_json(tmp_path: Path) -> None:
    """.cursor/mcp.json: "type" optional, "url" alone means Streamable HTTP, ${env:NAME} references."""
    client = {
        "mcpServers": {
            "files": {**FILES, "env": {"FILES_API_KEY": "${env:FILES_API_KEY}"}},
            "github": {"url": GITHUB["url"], "headers": {"Authorization": "Bearer ${env:GITHUB_TOKEN}"}},
        }
    }
    _same_gateway(tmp_path / ".cursor", "mcp.json", client, {"files": FILES, "github": GITHUB})


def test_vscode_mcp_json(tmp_path: Path) -> None:
    """.vscode/mcp.json: "servers", "inputs" (ignored when unreferenced), type stdio|http, ${env:NAME}."""
    client = {
        "inputs": [{"type": "promptString", "id": "unused-key", "description": "Not referenced", "password": True}],
        "servers": {
            "files": {**FILES, "env": {"FILES_API_KEY": "${env:FILES_API_KEY}"}},
            "github": {**GITHUB, "headers": {"Authorization": "Bearer ${env:GITHUB_TOKEN}"}},
        },
    }
    _same_gateway(tmp_path / ".vscode", "mcp.json", client, {"files": FILES, "github": GITHUB})


def test_vscode_input_reference_is_a_located_error(tmp_path: Path) -> None:
    folder = tmp_path / ".vscode"
    folder.mkdir()
    client = {
        "inputs": [{"type": "promptString", "id": "files-key", "password": True}],
        "servers": {"files": {**FILES, "env": {"FILES_API_KEY": "${input:files-key}"}}},
    }
    (folder / "mcp.json").write_text(json.dumps(client, indent=2))
    proc = _build(folder, "mcp.json", "out")
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[0] == (
        "mcp.json:19:26: /servers/files/env/FILES_API_KEY: ${input:files-key} is prompted for by the editor, "
        "but a gateway runs unattended: write ${env:FILES_KEY} (VS Code reads it too) and set FILES_KEY "
        "in the gateway's environment"
    )


def test_editor_variables_and_vscode_only_fields_are_errors(tmp_path: Path) -> None:
    client = {"servers": {"s": {"type": "stdio", "command": "${workspaceFolder}/run", "envFile": ".env"}}}
    (tmp_path / "mcp.json").write_text(json.dumps(client))
    proc = _build(tmp_path, "mcp.json", "out")
    assert proc.returncode == 2
    assert "/servers/s/command: ${workspaceFolder} is an editor variable, unknown to a gateway" in proc.stderr
    assert '/servers/s/envFile: unknown field "envFile" (not read by mcpgw: list the variables in "env"' in proc.stderr
