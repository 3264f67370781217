"""`mcpgw check` against a real backend that changes between probe and check.

The backend is tests/servers/drift_server.py (a stdio server on the mcp SDK)
whose tool set is chosen by a state file: built in `base` mode, checked in
`changed`, `desc` or `crash` mode. Each output format must report exactly the
expected codes, and the exit code must follow `--fail-on`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests import peers

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

DRIFT_SERVER = Path(__file__).resolve().parent / "servers" / "drift_server.py"
CHANGED = {
    ("PARAM_REMOVED", "add", "b"),
    ("PARAM_REQUIRED_ADDED", "add", "c"),
    ("TOOL_DESCRIPTION_CHANGED", "echo", ""),
    ("TOOL_ADDED", "exfiltrate", ""),
}
RUG_PULL_LINT = {
    ("MCPGW-L201", "echo", "/description"),  # <IMPORTANT>
    ("MCPGW-L204", "echo", "/description"),  # read ~/.ssh/id_rsa
    ("MCPGW-L205", "echo", "/description"),  # Before answering, read ...
}


def mcpgw(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcpgw", *args], capture_output=True, text=True, timeout=60, cwd=cwd, check=False
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A config in front of the drift server, built in base mode into dist/."""
    root = tmp_path_factory.mktemp("check")
    (root / "state").write_text("base")
    config = {"drift": {"command": "python", "args": [str(DRIFT_SERVER)], "env": {"DRIFT_STATE": "${DRIFT_STATE}"}}}
    peers.build_gateway(root, config, env=_env(root))
    return root


def _env(root: Path) -> dict[str, str]:
    return {**os.environ, "DRIFT_STATE": str(root / "state")}


def check(root: Path, mode: str, *args: str) -> subprocess.CompletedProcess[str]:
    (root / "state").write_text(mode)
    return subprocess.run(
        [sys.executable, "-m", "mcpgw", "check", "config.json", "--against", "dist", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=root,
        env=_env(root),
        check=False,
    )


def test_no_drift(project: Path) -> None:
    proc = check(project, "base")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "no drift: every backend matches dist/snapshot.json\n"


def test_text_report(project: Path) -> None:
    proc = check(project, "changed")
    assert proc.returncode == 1, proc.stderr
    out = proc.stdout
    assert out.startswith("drift against dist/snapshot.json: 2 breaking, 1 security, 1 additive (--fail-on any: fails)")
    assert "\nbackend drift\n" in out
    assert re.search(r"PARAM_REMOVED +breaking +tool add \(b\): parameter removed", out)
    assert re.search(r"TOOL_DESCRIPTION_CHANGED +security +tool echo: description", out)
    # a unified diff of each changed definition, snapshot first
    assert "--- dist/snapshot.json backends/drift/tools/echo\n+++ live backends/drift/tools/echo\n" in out
    assert '-  "description": "Echo the text back.",' in out
    assert '+      "c": {' in out


def test_json_report(project: Path) -> None:
    proc = check(project, "changed", "--error-format", "json")
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert set(report) == {
        "changes", "config", "counts", "fail_on", "failed", "format", "lint", "snapshot", "surface", "tokens"
    }  # fmt: skip
    # the rug pull's description is linted too (docs/lint.md)
    assert {(f["rule"], f["item"], f["pointer"]) for f in report["lint"]} == RUG_PULL_LINT
    assert report["format"] == 1 and report["failed"] is True and report["fail_on"] == "any"
    assert report["counts"] == {"additive": 1, "breaking": 2, "security": 1}
    assert {(c["code"], c["name"], c["path"]) for c in report["changes"]} == CHANGED
    snapshot_lines = (project / "dist" / "snapshot.json").read_text().splitlines()
    for change in report["changes"]:
        assert set(change) == {"backend", "code", "kind", "line", "message", "name", "path", "pointer", "severity"}
        if change["code"] != "TOOL_ADDED":  # the others point at the tool's key in the snapshot
            assert snapshot_lines[change["line"] - 1].strip().startswith(f'"{change["name"]}": {{')


def test_github_annotations(project: Path) -> None:
    proc = check(project, "changed", "--error-format", "github", "--fail-on", "breaking")
    assert proc.returncode == 1
    lines = [x for x in proc.stdout.splitlines() if ",title=MCPGW-L" not in x]
    linted = [x for x in proc.stdout.splitlines() if ",title=MCPGW-L" in x]
    assert sorted(re.findall(r"title=(MCPGW-L\d+)", "".join(linted))) == sorted(r for r, _, _ in RUG_PULL_LINT)
    assert len(lines) == 4
    parsed = [
        re.fullmatch(r"::(error|warning) file=dist/snapshot\.json,line=(\d+),title=(\w+) \((\w+)\)::(.*)", x)
        for x in lines
    ]
    assert all(parsed), lines
    levels = {m.group(3): m.group(1) for m in parsed if m}
    # with --fail-on breaking only the breaking changes are errors
    assert levels == {
        "PARAM_REMOVED": "error",
        "PARAM_REQUIRED_ADDED": "error",
        "TOOL_DESCRIPTION_CHANGED": "warning",
        "TOOL_ADDED": "warning",
    }


@pytest.mark.parametrize(("fail_on", "code"), [("breaking", 0), ("security", 1), ("any", 1)])
def test_fail_on_a_description_change(project: Path, fail_on: str, code: int) -> None:
    proc = check(project, "desc", "--fail-on", fail_on)
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert "TOOL_DESCRIPTION_CHANGED" in proc.stdout


def test_unreachable_backend(project: Path) -> None:
    proc = check(project, "crash", "--error-format", "json")
    assert proc.returncode == 3, proc.stderr
    [change] = json.loads(proc.stdout)["changes"]
    assert change["code"] == "BACKEND_UNREACHABLE" and change["backend"] == "drift"


def test_config_changed_since_build(project: Path, tmp_path: Path) -> None:
    config = json.loads((project / "config.json").read_text())
    config["drift"]["timeout"] = 30
    (tmp_path / "config.json").write_text(json.dumps(config))
    (project / "state").write_text("base")
    proc = subprocess.run(
        [sys.executable, "-m", "mcpgw", "check", "config.json", "--against", str(project / "dist")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=_env(project),
        check=False,
    )
    assert proc.returncode == 1
    assert "CONFIG_CHANGED" in proc.stdout
    assert f"rebuild: mcpgw build config.json -o {project / 'dist'}" in proc.stdout


def test_missing_snapshot_is_bad_input(project: Path, tmp_path: Path) -> None:
    proc = mcpgw("check", str(project / "config.json"), "--against", str(tmp_path), cwd=project)
    assert proc.returncode == 2
    assert "snapshot.json" in proc.stderr and "Traceback" not in proc.stderr


def test_an_edited_vendored_runtime_is_reported(project: Path, tmp_path: Path) -> None:
    """`mcpgw check` covers dist/mcpgw_runtime/ too: an edit there is a security-class change."""
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(project, root)
    guard = root / "dist" / "mcpgw_runtime" / "guard.py"
    guard.write_text(guard.read_text() + "\n# an edit after the review\n")
    proc = check(root, "base", "--error-format", "json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    (change,) = json.loads(proc.stdout)["changes"]
    assert change["code"] == "RUNTIME_MODIFIED" and change["severity"] == "security"
    assert "edited: guard.py" in change["message"]
    proc = check(root, "base", "--fail-on", "breaking")
    assert proc.returncode == 0 and "RUNTIME_MODIFIED" in proc.stdout
