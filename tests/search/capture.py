"""Capture real tool definitions for the search-quality set (tests/search/tools.json).

The search index is measured against tools that nobody in this project wrote, so the set cannot be
tuned by editing descriptions. This script starts each server with the `mcp` SDK client, lists its
tools (every page) and writes them sorted, with the package name and version of each server.

It runs once, by hand; the fixture is committed so CI needs none of these servers:

    python tests/search/capture.py            # installs into .cache/search-capture, then captures
    python tests/search/capture.py --no-install

Servers that need an account get a placeholder credential: they list their tools without calling out.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRATCH = REPO_ROOT / ".cache" / "search-capture"
NPM_PREFIX = SCRATCH / "npm"
OUTPUT = Path(__file__).resolve().parent / "tools.json"
PLACEHOLDER = "placeholder-not-a-real-credential"


@dataclass(frozen=True)
class Server:
    """One server to capture: its registry, package, pinned version and how to start it."""

    name: str
    registry: str  # "npm" or "pypi"
    package: str
    version: str
    command: str  # npm: the bin name under node_modules/.bin; pypi: the console script in the venv
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    venv: str = "venv"  # pypi: the scratch venv it is installed into
    extra: tuple[str, ...] = ()  # pypi: further requirements for that venv


NPM = [
    Server("everything", "npm", "@modelcontextprotocol/server-everything", "2026.8.31", "mcp-server-everything"),
    Server(
        "filesystem", "npm", "@modelcontextprotocol/server-filesystem", "2026.8.31", "mcp-server-filesystem", ("{tmp}",)
    ),
    Server("memory", "npm", "@modelcontextprotocol/server-memory", "2026.8.31", "mcp-server-memory"),
    Server(
        "sequential-thinking",
        "npm",
        "@modelcontextprotocol/server-sequential-thinking",
        "2026.8.31",
        "mcp-server-sequential-thinking",
    ),
    Server(
        "github",
        "npm",
        "@modelcontextprotocol/server-github",
        "2025.4.8",
        "mcp-server-github",
        env={"GITHUB_PERSONAL_ACCESS_TOKEN": PLACEHOLDER},
    ),
    Server(
        "gitlab",
        "npm",
        "@modelcontextprotocol/server-gitlab",
        "2025.4.25",
        "mcp-server-gitlab",
        env={"GITLAB_PERSONAL_ACCESS_TOKEN": PLACEHOLDER},
    ),
    Server(
        "slack",
        "npm",
        "@modelcontextprotocol/server-slack",
        "2025.4.25",
        "mcp-server-slack",
        env={"SLACK_BOT_TOKEN": PLACEHOLDER, "SLACK_TEAM_ID": PLACEHOLDER},
    ),
    Server(
        "brave-search",
        "npm",
        "@modelcontextprotocol/server-brave-search",
        "0.6.2",
        "mcp-server-brave-search",
        env={"BRAVE_API_KEY": PLACEHOLDER},
    ),
    Server(
        "google-maps",
        "npm",
        "@modelcontextprotocol/server-google-maps",
        "0.6.2",
        "mcp-server-google-maps",
        env={"GOOGLE_MAPS_API_KEY": PLACEHOLDER},
    ),
    Server(
        "postgres",
        "npm",
        "@modelcontextprotocol/server-postgres",
        "0.6.2",
        "mcp-server-postgres",
        ("postgresql://127.0.0.1:1/none",),
    ),
    Server(
        "everart",
        "npm",
        "@modelcontextprotocol/server-everart",
        "0.6.2",
        "mcp-server-everart",
        env={"EVERART_API_KEY": PLACEHOLDER},
    ),
    Server(
        "aws-kb-retrieval",
        "npm",
        "@modelcontextprotocol/server-aws-kb-retrieval",
        "0.6.2",
        "mcp-server-aws-kb-retrieval",
        env={"AWS_ACCESS_KEY_ID": PLACEHOLDER, "AWS_SECRET_ACCESS_KEY": PLACEHOLDER, "AWS_REGION": "us-east-1"},
    ),
    Server("puppeteer", "npm", "@modelcontextprotocol/server-puppeteer", "2025.5.12", "mcp-server-puppeteer"),
    Server("playwright", "npm", "@playwright/mcp", "0.0.83", "playwright-mcp", ("--headless",)),
]
PYPI = [
    Server("git", "pypi", "mcp-server-git", "2026.10.19", "mcp-server-git", ("--repository", "{tmp}")),
    Server("fetch", "pypi", "mcp-server-fetch", "2026.10.24", "mcp-server-fetch"),
    Server("time", "pypi", "mcp-server-time", "2026.10.19", "mcp-server-time", ("--local-timezone", "UTC")),
    # Written for the 1.x SDK's decorator API, so it gets a venv of its own with that SDK.
    Server(
        "sqlite",
        "pypi",
        "mcp-server-sqlite",
        "2025.4.25",
        "mcp-server-sqlite",
        ("--db-path", "{tmp}/capture.db"),
        venv="venv-sqlite",
        extra=("mcp<2",),
    ),
]
SERVERS = NPM + PYPI


def install() -> None:
    """Install every server at its pinned version into the scratch prefix and venv (no browsers)."""
    NPM_PREFIX.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "PUPPETEER_SKIP_DOWNLOAD": "1",
        "PUPPETEER_SKIP_CHROMIUM_DOWNLOAD": "1",
        "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1",
    }
    npm_specs = [f"{s.package}@{s.version}" for s in NPM]
    npm = ["npm", "--no-audit", "--no-fund", "--loglevel=error"]
    subprocess.run(
        [*npm, "install", "--prefix", str(NPM_PREFIX), "--save-exact", *npm_specs],
        check=True,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    for venv_name in sorted({s.venv for s in PYPI}):
        venv = SCRATCH / venv_name
        if not (venv / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        wanted = [req for s in PYPI if s.venv == venv_name for req in (f"{s.package}=={s.version}", *s.extra)]
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", *wanted], check=True
        )


def params(server: Server, tmp: Path) -> StdioServerParameters:
    if server.registry == "npm":
        command = str(NPM_PREFIX / "node_modules" / ".bin" / server.command)
    else:
        command = str(SCRATCH / server.venv / "bin" / server.command)
    args = [a.replace("{tmp}", str(tmp)) for a in server.args]
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp), **server.env}
    return StdioServerParameters(command=command, args=args, env=env, cwd=str(tmp))


def installed_version(server: Server) -> str:
    """The version actually installed, so the fixture records what was listed, not what was asked for."""
    if server.registry == "npm":
        manifest = NPM_PREFIX / "node_modules" / server.package / "package.json"
        return str(json.loads(manifest.read_text())["version"])
    out = subprocess.run(
        [
            str(SCRATCH / server.venv / "bin" / "python"),
            "-c",
            f"import importlib.metadata as m; print(m.version({server.package!r}))",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


async def list_tools(server: Server, tmp: Path) -> list[dict[str, Any]]:
    tools: list[dict[str, Any]] = []
    async with Client(params(server, tmp), mode="legacy") as client:
        cursor: str | None = None
        while True:
            page = await client.list_tools(cursor=cursor)
            tools += [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in page.tools]
            cursor = page.next_cursor
            if not cursor:
                break
    return sorted(tools, key=lambda t: str(t["name"]))


async def capture() -> dict[str, Any]:
    servers = []
    for server in SERVERS:
        with tempfile.TemporaryDirectory(prefix="mcpgw-capture-") as tmp_name:
            tmp = Path(tmp_name)
            if server.name == "git":
                subprocess.run(["git", "init", "-q", str(tmp)], check=True)
            with anyio.fail_after(120):
                tools = await list_tools(server, tmp)
        version = installed_version(server)
        if version != server.version:
            raise SystemExit(f"{server.package}: installed {version}, pinned {server.version}")
        print(f"{server.name}: {len(tools)} tools ({server.package} {version})", file=sys.stderr)
        servers.append(
            {
                "server": server.name,
                "registry": server.registry,
                "package": server.package,
                "version": version,
                "tools": tools,
            }
        )
    return {"servers": sorted(servers, key=lambda s: str(s["server"]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-install", action="store_true", help="use what is already in .cache/search-capture")
    args = parser.parse_args()
    if not args.no_install:
        install()
    fixture = anyio.run(capture)
    OUTPUT.write_text(json.dumps(fixture, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    total = sum(len(s["tools"]) for s in fixture["servers"])
    print(
        f"wrote {OUTPUT.relative_to(REPO_ROOT)}: {total} tools from {len(fixture['servers'])} servers", file=sys.stderr
    )


if __name__ == "__main__":
    main()
