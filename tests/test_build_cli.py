"""`mcpgw build` as a user runs it: real probes, secrets, exit codes, determinism, the installed wheel."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters

REPO = Path(__file__).resolve().parent.parent
BASH_SERVER = REPO / "servers" / "bash_server.py"
SECRET = "s3cr3t-value-that-must-never-be-written"

pytestmark = pytest.mark.timeout(180)


def mcpgw(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcpgw", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {}), "COLUMNS": "200"},
        timeout=150,
        check=False,
    )


def _secret_config(tmp: Path) -> Path:
    config = {
        "bash": {
            "type": "stdio",
            "command": "python",
            "args": [str(BASH_SERVER), "--env", "FROM_ARGS=${MCPGW_TEST_SECRET}"],
            "env": {"FROM_ENV": "${MCPGW_TEST_SECRET}", "WITH_DEFAULT": "${MCPGW_TEST_UNSET:-fallback}"},
        }
    }
    path = tmp / "config.json"
    path.write_text(json.dumps(config))
    return path


def test_secret_from_the_environment_never_lands_in_output(tmp_path: Path) -> None:
    _secret_config(tmp_path)
    proc = mcpgw("build", "config.json", "-o", "dist", cwd=tmp_path, env={"MCPGW_TEST_SECRET": SECRET})
    assert proc.returncode == 0, proc.stderr
    for file in (p for p in (tmp_path / "dist").rglob("*") if p.is_file()):
        text = file.read_text()
        assert SECRET not in text, f"secret leaked into {file.name}"
    gateway = (tmp_path / "dist" / "gateway.py").read_text()
    assert "${MCPGW_TEST_SECRET}" in gateway and "${MCPGW_TEST_UNSET:-fallback}" in gateway
    assert SECRET not in proc.stderr + proc.stdout

    # ...while the running gateway does expand it for the backend it starts.
    async def check() -> str:
        params = StdioServerParameters(
            command=sys.executable,
            args=[str(tmp_path / "dist" / "gateway.py"), "--transport", "stdio"],
            env={**os.environ, "MCPGW_TEST_SECRET": SECRET},
        )
        async with Client(params, mode="legacy") as client:
            result = await client.call_tool("bash__bash", {"command": 'echo "$FROM_ENV|$FROM_ARGS|$WITH_DEFAULT"'})
            assert result.structured_content is not None
            return str(result.structured_content["stdout"])

    assert anyio.run(check) == f"{SECRET}|{SECRET}|fallback\n"


def test_unset_variable_is_named_with_its_backend(tmp_path: Path) -> None:
    _secret_config(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "MCPGW_TEST_SECRET"}
    proc = subprocess.run(
        [sys.executable, "-m", "mcpgw", "build", "config.json", "-o", "dist"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 3
    assert "environment variable MCPGW_TEST_SECRET is not set (needed by backend 'bash')" in proc.stderr
    assert not (tmp_path / "dist").exists()


def test_unreachable_backend_exits_3_names_it_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(
        json.dumps(
            {
                "mcpServers": {
                    "bash": {"command": "python", "args": [str(BASH_SERVER)]},
                    "ghost": {"command": "definitely-not-a-real-mcp-server"},
                    "crashes": {
                        "command": "python",
                        "args": ["-c", "import sys; print('boom', file=sys.stderr); sys.exit(7)"],
                    },
                    "nobody": {"url": "http://127.0.0.1:9/mcp", "startup_timeout": 1},
                }
            }
        )
    )
    proc = mcpgw("build", "config.json", "-o", "dist", cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr
    assert "backend 'ghost'" in proc.stderr
    assert "backend 'crashes'" in proc.stderr and "| boom" in proc.stderr
    assert "backend 'nobody': nothing listening at 127.0.0.1:9" in proc.stderr
    assert "3 backends unreachable; nothing was written" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "dist").exists()


def test_build_is_byte_identical_across_hash_seeds(tmp_path: Path) -> None:
    case = REPO / "tests" / "cases" / "mcpservers-rules"
    outputs = []
    for seed in ("0", "1", "4242"):
        work = tmp_path / seed
        work.mkdir()
        shutil.copy(case / "config.json", work)
        (work / "dist").mkdir()
        shutil.copy(case / "snapshot.json", work / "dist")
        proc = mcpgw("build", "config.json", "-o", "dist", "--frozen", cwd=work, env={"PYTHONHASHSEED": seed})
        assert proc.returncode == 0, proc.stderr
        dist = work / "dist"
        outputs.append({f.relative_to(dist): f.read_bytes() for f in sorted(dist.rglob("*")) if f.is_file()})
    assert outputs[0] == outputs[1] == outputs[2]


def test_check_without_snapshot_is_bad_input(tmp_path: Path) -> None:
    shutil.copy(REPO / "config.json", tmp_path)
    proc = mcpgw("build", "config.json", "-o", "dist", "--check", cwd=tmp_path)
    assert proc.returncode == 2
    assert "no snapshot to build from" in proc.stderr
    assert not (tmp_path / "dist").exists()


def test_validate_and_schema_commands(tmp_path: Path) -> None:
    ok = mcpgw("validate", str(REPO / "config.json"), cwd=tmp_path)
    assert ok.returncode == 0 and "ok (2 enabled backends)" in ok.stderr
    bad = mcpgw(
        "validate",
        str(REPO / "tests" / "cases" / "bad-config" / "config.json"),
        "--error-format",
        "github",
        cwd=tmp_path,
    )
    assert bad.returncode == 2
    assert bad.stderr.startswith("::error file=")
    schema = mcpgw("schema", cwd=tmp_path)
    assert json.loads(schema.stdout)["$schema"].endswith("2020-12/schema")
    version = mcpgw("--version", cwd=tmp_path)
    assert version.stdout.startswith("mcpgw ")


def test_repo_generated_folder_is_current() -> None:
    """`generated/` is the committed build of the repo's own config.json."""
    proc = mcpgw("build", "config.json", "-o", "generated", "--check", cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_installed_wheel_builds_a_gateway(tmp_path: Path) -> None:
    """Templates and schemas ship as package data: a wheel in a fresh venv builds a gateway."""
    dist = tmp_path / "wheel"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(REPO)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    wheel = next(dist.glob("mcpgw-*.whl"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", str(wheel)], check=True, capture_output=True, timeout=400)
    work = tmp_path / "work"
    shutil.copytree(REPO / "tests" / "cases" / "mcpservers-rules", work)
    (work / "dist").mkdir()
    shutil.move(work / "snapshot.json", work / "dist" / "snapshot.json")
    proc = subprocess.run(
        [str(env_dir / "bin" / "mcpgw"), "build", "config.json", "-o", "dist", "--frozen"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert (work / "dist" / "gateway.py").read_text() == (work / "expected" / "gateway.py").read_text()
    schema = subprocess.run([str(env_dir / "bin" / "mcpgw"), "schema"], capture_output=True, text=True, check=True)
    assert "mcpServers" in schema.stdout


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_gateway_runs_in_a_venv_with_only_its_requirements(tmp_path: Path) -> None:
    """generated/gateway.py with nothing but generated/requirements.txt installed serves over stdio."""
    env_dir = tmp_path / "runtime-venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    requirements = REPO / "generated" / "requirements.txt"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "-r", str(requirements)], check=True, timeout=500)
    listed = subprocess.run([str(py), "-m", "pip", "list"], capture_output=True, text=True, check=True).stdout
    assert "mcpgw" not in listed and "Jinja2" not in listed and "typer" not in listed

    async def check() -> str:
        params = StdioServerParameters(
            command=str(py), args=[str(REPO / "generated" / "gateway.py"), "--transport", "stdio"]
        )
        async with Client(params, mode="legacy") as client:
            result = await client.call_tool("bash__bash", {"command": "echo runtime-only"})
            assert result.structured_content is not None
            return str(result.structured_content["stdout"])

    assert anyio.run(check) == "runtime-only\n"
