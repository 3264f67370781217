"""README.md's commands and client snippets are the ones the tests run.

The README is read here, not copied: the quick start's two commands, and the
table under "Point a client at it", whose cells hold each client's config
snippet (JSON) or command line. The MCP Inspector's snippets are run by
tests/test_inspector.py (its CLI over stdio with the `--` form and against a
running gateway's /mcp and /sse; its web UI must pre-fill what the CLI ran).
The other clients have no CLI to run here, so their JSON snippets are parsed
and must point at exactly the command or URL the Inspector proved works.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"

ABS_PYTHON = "/abs/.venv/bin/python"
ABS_GATEWAY = "/abs/dist/gateway.py"
ORIGIN = "http://127.0.0.1:9000"
"""Where the README's HTTP snippets reach the gateway: its default host and port."""
INSPECTOR = ["npx", "@modelcontextprotocol/inspector"]
CLIENTS_SECTION = "Point a client at it"

SETUP_AND_SERVE = (
    "python3 -m venv .venv && .venv/bin/pip install -q -e . mcp-server-time && "
    ".venv/bin/mcpgw build config.json -o dist && .venv/bin/python dist/gateway.py --port 9000"
)
RUN_ALL_TESTS = "bash .ci/run"


def readme() -> str:
    return README.read_text(encoding="utf-8")


def section(title: str, text: str | None = None) -> str:
    """The body of the heading `title` (any level), up to the next heading of that level or above."""
    lines = (readme() if text is None else text).splitlines(keepends=True)
    body: list[str] = []
    level = 0
    in_fence = False
    for line in lines:
        if line.startswith("```"):
            in_fence = not in_fence
        heading = None if in_fence else re.match(r"(#+) (.*)", line.rstrip("\n"))
        if level and heading and len(heading.group(1)) <= level:
            break
        if level:
            body.append(line)
        elif heading and heading.group(2) == title:
            level = len(heading.group(1))
    assert level, f"README.md has no section {title!r}"
    return "".join(body)


def fenced(text: str, info: str) -> list[str]:
    """The bodies of the fenced blocks opened with "```info"."""
    return [m.group(1) for m in re.finditer(rf"^```{re.escape(info)}\n(.*?)^```$", text, re.M | re.S)]


def client_rows() -> dict[str, tuple[list[str], list[str]]]:
    """The clients' table: client name -> (the code spans of its HTTP cell, of its stdio cell)."""
    rows: dict[str, tuple[list[str], list[str]]] = {}
    for line in section(CLIENTS_SECTION).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("| **") else []
        if len(cells) == 3:
            name = re.match(r"\*\*(.+?)\*\*", cells[0])
            assert name, line
            rows[name.group(1)] = (re.findall(r"`([^`]+)`", cells[1]), re.findall(r"`([^`]+)`", cells[2]))
    return rows


def inspector_snippets() -> list[list[str]]:
    """Every Inspector command line in the clients' section, as argv after `npx @modelcontextprotocol/inspector`."""
    spans = re.findall(r"`([^`]+)`", section(CLIENTS_SECTION))
    commands = [shlex.split(s) for s in spans if s.startswith(" ".join(INSPECTOR) + " ")]
    return [argv[len(INSPECTOR) :] for argv in commands]


def as_cli(argv: list[str]) -> list[str]:
    """A web-UI snippet as the README says to run it in the CLI: `--cli --method tools/list` in front."""
    return argv if argv[:1] == ["--cli"] else ["--cli", "--method", "tools/list", *argv]


def stdio_command(argv: list[str]) -> list[str] | None:
    """The server command an Inspector snippet spawns: what follows its `--`; None for a URL snippet."""
    return argv[argv.index("--") + 1 :] if "--" in argv else None


def snippet_url(argv: list[str]) -> str | None:
    urls = [a for a in argv if a.startswith("http")]
    assert len(urls) <= 1, argv
    return urls[0] if urls else None


def localize(argv: list[str], *, python: str, gateway: str, origin: str) -> list[str]:
    """A snippet's argv with the README's placeholders replaced by a real interpreter, gateway and address."""
    placed = [{ABS_PYTHON: python, ABS_GATEWAY: gateway}.get(a, a) for a in argv]
    return [origin + a[len(ORIGIN) :] if a.startswith(ORIGIN + "/") else a for a in placed]


def readme_stdio_command() -> list[str]:
    """The gateway command the Inspector's stdio snippets spawn (all of them spawn the same one)."""
    commands = {tuple(c) for argv in inspector_snippets() if (c := stdio_command(argv)) is not None}
    assert len(commands) == 1, commands
    return list(commands.pop())


def readme_urls() -> set[str]:
    """The gateway URLs the Inspector's HTTP snippets reach."""
    return {u for argv in inspector_snippets() if (u := snippet_url(argv)) is not None}


# ---- tests -----------------------------------------------------------------------------------------


def test_quick_start_is_one_command_to_serve_and_one_to_test() -> None:
    quick = section("Quick start")
    blocks = [b.strip() for b in fenced(quick, "bash")]
    assert blocks == [SETUP_AND_SERVE, RUN_ALL_TESTS]
    assert all(b.count("\n") == 0 for b in blocks)


def anchors(markdown: str) -> set[str]:
    """GitHub's anchors for the headings of a markdown text (lowercased, punctuation dropped, spaces to "-")."""
    found = set()
    in_fence = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_fence = not in_fence
        elif not in_fence and (heading := re.match(r"#+ (.*)", line)):
            found.add(re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-"))
    return found


def test_links_of_readme_and_docs_resolve() -> None:
    """Every relative link of README.md and docs/*.md names a file that exists, and a heading there."""
    for page in [README, *sorted((REPO / "docs").glob("*.md"))]:
        text = page.read_text(encoding="utf-8")
        for target, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]*))?\)", text):
            if target.startswith(("http://", "https://")):
                continue
            linked = (page.parent / target).resolve() if target else page
            assert linked.exists(), f"{page.name} links to {target}, which does not exist"
            if anchor and linked.suffix == ".md":
                assert anchor in anchors(linked.read_text(encoding="utf-8")), f"{page.name}: {target}#{anchor}"


def test_inspector_snippets_hand_transport_stdio_to_the_gateway() -> None:
    """Without `--`, the Inspector takes `--transport stdio` as its own option and spawns an HTTP gateway."""
    snippets = inspector_snippets()
    for argv in snippets:
        assert (stdio_command(argv) is None) != (snippet_url(argv) is None), f"neither a URL nor `-- command`: {argv}"
    stdio = [argv for argv in snippets if stdio_command(argv) is not None]
    assert stdio, "no Inspector stdio snippet"
    for argv in stdio:
        before = argv[: argv.index("--")]
        assert "--transport" not in before and ABS_GATEWAY not in before, argv
    assert readme_stdio_command() == [ABS_PYTHON, ABS_GATEWAY, "--transport", "stdio"]
    assert readme_urls() == {f"{ORIGIN}/mcp", f"{ORIGIN}/sse"}
    assert any(argv[:1] == ["--cli"] for argv in snippets), "the README shows the CLI form too"
    assert all(len(as_cli(argv)) >= 3 and as_cli(argv)[:1] == ["--cli"] for argv in snippets)


def _server(config: dict[str, Any], client: str) -> dict[str, Any]:
    """The one server entry of a client's JSON snippet, checked for the client's top-level key."""
    key = "servers" if client == "VS Code" else "mcpServers"
    assert list(config) == [key], f"{client}: expected {{{key!r}: ...}}, got {config}"
    servers = config[key]
    assert isinstance(servers, dict) and len(servers) == 1, config
    entry = next(iter(servers.values()))
    assert isinstance(entry, dict)
    return entry


EXPECTED_TYPE = {
    # client -> what its "type" must be for (stdio, Streamable HTTP, SSE); None: the client infers it
    "Claude Desktop": (None, None, None),
    "Cursor": (None, None, None),
    "VS Code": ("stdio", "http", "sse"),
    "Cline": (None, "streamableHttp", "sse"),
}


def test_json_snippets_point_at_the_command_and_urls_the_inspector_runs() -> None:
    rows = client_rows()
    assert set(rows) == {*EXPECTED_TYPE, "MCP Inspector"}
    command, urls = readme_stdio_command(), readme_urls()
    for client, kinds in EXPECTED_TYPE.items():
        http_cell, stdio_cell = rows[client]
        for form, spans in (("HTTP", http_cell), ("stdio", stdio_cell)):
            snippets = [json.loads(s) for s in spans if s.startswith("{")]
            assert snippets, f"{client}: no JSON snippet in its {form} cell"
            for config in snippets:
                entry = _server(config, client)
                if form == "stdio":
                    assert [entry["command"], *entry["args"]] == command, f"{client}: {entry}"
                    assert entry.get("type") == kinds[0], f"{client}: {entry}"
                elif "url" in entry:
                    assert entry["url"] in urls, f"{client}: {entry}"
                    wanted = kinds[1] if entry["url"].endswith("/mcp") else kinds[2]
                    assert entry.get("type") == wanted, f"{client}: {entry}"
                else:  # a client that only spawns commands: mcp-remote bridges stdio to the HTTP URL
                    assert entry["command"] == "npx" and entry["args"][:2] == ["-y", "mcp-remote"], entry
                    assert entry["args"][2:] == [f"{ORIGIN}/mcp"], entry
