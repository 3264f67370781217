"""Client targets: the rules table, the checks on real tool definitions, and that every suggested fix works.

The tool definitions are the real ones in tests/search/tools.json (captured from reference servers
nobody here wrote); a fix the check suggests is applied to the config and the check run again.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mcpgw.budgets import surface
from mcpgw.load import load
from mcpgw.names import Exposed, expose
from mcpgw.profiles import Profile, resolve_profiles
from mcpgw.snapshot import BackendOffer
from mcpgw.targets import BY_NAME, RULES, SERVER_NAME, Finding, check_targets, located, table_json

from tests import peers

REPO = Path(__file__).resolve().parent.parent
CAPTURED = json.loads((REPO / "tests" / "search" / "tools.json").read_text(encoding="utf-8"))["servers"]
TOOLS = {s["server"]: s["tools"] for s in CAPTURED}

JSON = dict[str, Any]


def offer(server: str) -> BackendOffer:
    return BackendOffer(
        server_info={"name": server},
        protocol_version="2025-11-25",
        capabilities={},
        instructions=None,
        tools=TOOLS[server],
    )


def setup(tmp: Path, document: JSON) -> tuple[Any, Exposed, list[Profile], Path]:
    """The config (loaded and validated as the build does), its exposed tables and its profiles."""
    path = tmp / "config.json"
    path.write_text(json.dumps(document, indent=2))
    loaded = load(path)
    assert loaded.config is not None, [d.format_text() for d in loaded.diagnostics]
    cfg = loaded.config
    exposed = expose(
        cfg, {name: offer(b.name if name not in ALIASES else ALIASES[name]) for name, b in cfg.backends.items()}
    )
    assert isinstance(exposed, Exposed), exposed
    profiles = resolve_profiles(cfg, exposed)
    assert profiles and isinstance(profiles[0], Profile), profiles
    return cfg, exposed, [p for p in profiles if isinstance(p, Profile)], path


ALIASES: dict[str, str] = {"github-enterprise-mirror": "github"}


def servers(*names: str, **fields: JSON) -> JSON:
    return {name: {"command": "unused", **fields.get(name, {})} for name in names}


def errors(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == "error"]


# ---- the table -------------------------------------------------------------------------------------


def test_the_table_has_the_clients_the_issue_names_each_with_a_source() -> None:
    assert {"cursor", "vscode", "openai", "claude-code", "gemini"} <= set(BY_NAME)
    assert len(BY_NAME) == len(RULES)
    for rule in RULES:
        assert rule.sources and all(url.startswith("https://") for url in rule.sources), rule.name
        assert rule.tool_cap is not None or rule.max_length is not None or rule.pattern is not None, rule.name
    assert BY_NAME["cursor"].tool_cap == 40
    assert BY_NAME["vscode"].tool_cap == 128 and BY_NAME["openai"].tool_cap == 128
    assert BY_NAME["claude-code"].seen_as("t") == "mcp__gateway__t"


def test_mcpgw_targets_prints_the_table() -> None:
    text = subprocess.run([sys.executable, "-m", "mcpgw", "targets"], capture_output=True, text=True, check=True).stdout
    for rule in RULES:
        assert f"{rule.name}  ({rule.label})" in text
        for url in rule.sources:
            assert url in text
    as_json = subprocess.run(
        [sys.executable, "-m", "mcpgw", "targets", "--json"], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(as_json) == table_json()


def test_the_prefix_server_name_is_the_one_the_readme_snippets_use() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    names = set(re.findall(r'\{"(?:mcpServers|servers)": \{"([^"]+)"', readme))
    assert names == {SERVER_NAME}


def test_docs_reproduce_every_row() -> None:
    doc = (REPO / "docs" / "targets.md").read_text(encoding="utf-8")
    for rule in RULES:
        assert f"`{rule.name}`" in doc
        for url in rule.sources:
            assert url in doc, (rule.name, url)


# ---- tool caps -------------------------------------------------------------------------------------

BIG = ("filesystem", "github", "playwright")  # 14 + 26 + 25 = 65 real tools


def test_a_default_profile_over_cursors_cap_fails_and_over_geminis_soft_cap_warns(tmp_path: Path) -> None:
    cfg, exposed, profiles, _ = setup(tmp_path, {"mcpServers": servers(*BIG)})
    assert len(profiles[0].listed) == 65
    found = check_targets(profiles, exposed, cfg, ["cursor", "openai", "vscode", "gemini"])
    caps = [f for f in found if "takes at most" in f.message or "may take only" in f.message]
    assert [(f.severity, "client 'cursor'" in f.message) for f in caps if f.severity == "error"] == [("error", True)]
    assert [f.severity for f in caps if "client 'gemini'" in f.message] == ["warning"]
    message = caps[0].message
    assert "lists 65 tools; Cursor takes at most 40 (https://" in message
    assert '"tools": {"exclude": [' in message and "split it by backend" in message
    assert caps[0].pointer == ""  # --target: no place in the config


def _suggested_json(message: str, start: str) -> JSON:
    """The JSON object a message suggests, starting at `start` (balanced braces)."""
    i = message.index(start)
    depth = 0
    for j, ch in enumerate(message[i:], i):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if ch == "}" and depth == 0:
            return dict(json.loads("{" + message[i : j + 1] + "}"))
    raise AssertionError(f"no balanced object after {start!r} in {message}")


def test_the_suggested_split_fits_the_cap(tmp_path: Path) -> None:
    base = {"mcpServers": servers(*BIG), "gateway": {"profiles": {"coding": {"clients": ["cursor"]}}}}
    cfg, exposed, profiles, _ = setup(tmp_path, base)
    [finding] = errors(check_targets(profiles, exposed, cfg))
    assert finding.pointer == "/gateway/profiles/coding/clients/0"
    split = _suggested_json(finding.message, '"gateway": {"profiles": ')["gateway"]["profiles"]
    assert len(split) >= 2
    parts = {name: {**rules, "clients": ["cursor"]} for name, rules in split.items()}
    cfg, exposed, profiles, _ = setup(tmp_path, {"mcpServers": servers(*BIG), "gateway": {"profiles": parts}})
    assert errors(check_targets(profiles, exposed, cfg)) == []
    covered = {str(t["name"]) for p in profiles[1:] for t in p.listed}
    assert covered == {str(t["name"]) for t in profiles[0].listed}


def test_the_suggested_exclude_fits_the_cap(tmp_path: Path) -> None:
    base = {"mcpServers": servers(*BIG), "gateway": {"profiles": {"coding": {"clients": ["cursor"]}}}}
    cfg, exposed, profiles, _ = setup(tmp_path, base)
    [finding] = errors(check_targets(profiles, exposed, cfg))
    fix = _suggested_json(finding.message, '"tools": {"exclude"')
    base["gateway"]["profiles"]["coding"].update(fix)
    cfg, exposed, profiles, _ = setup(tmp_path, base)
    assert len(profiles[1].listed) == 40
    assert errors(check_targets(profiles, exposed, cfg)) == []


def test_a_search_profile_is_sized_by_what_it_lists(tmp_path: Path) -> None:
    document = {
        "mcpServers": servers(*BIG),
        "gateway": {"profiles": {"find": {"mode": "search", "clients": ["cursor"]}}},
    }
    cfg, exposed, profiles, _ = setup(tmp_path, document)
    assert len(profiles[1].tools) == 65 and len(profiles[1].listed) == 2
    assert check_targets(profiles, exposed, cfg) == []


# ---- names -----------------------------------------------------------------------------------------


def test_claude_codes_prefix_counts_and_the_suggested_renames_fit(tmp_path: Path) -> None:
    document = {
        "mcpServers": servers("github-enterprise-mirror"),
        "gateway": {"profiles": {"gh": {"clients": ["claude-code"]}}},
    }
    cfg, exposed, profiles, _ = setup(tmp_path, document)
    found = check_targets(profiles, exposed, cfg)
    assert found and all(f.severity == "error" for f in found)
    long_names = {n for n in (str(t["name"]) for t in profiles[1].listed) if len("mcp__gateway__" + n) > 64}
    assert {re.search(r"tool '([^']+)'", f.message).group(1) for f in found} == long_names  # type: ignore[union-attr]
    sample = found[0].message
    assert "is 'mcp__gateway__github-enterprise-mirror__" in sample and "over its 64" in sample
    renames: JSON = {}
    for f in found:
        renames.update(_suggested_json(f.message, '"rename": ')["rename"])
    document["mcpServers"]["github-enterprise-mirror"]["tools"] = {"rename": renames}
    cfg, exposed, profiles, _ = setup(tmp_path, document)
    assert check_targets(profiles, exposed, cfg) == []


def test_cursor_counts_the_server_name_and_the_tool_name(tmp_path: Path) -> None:
    prefix = "p" * 40
    document = {"mcpServers": servers("time", time={"prefix": prefix})}
    cfg, exposed, profiles, _ = setup(tmp_path, document)
    found = check_targets(profiles, exposed, cfg, ["cursor"])
    # "gateway" (7) + prefix (40) + "__" + "get_current_time" (16) = 65 > 60; "convert_time" (12) = 61 > 60
    assert len(found) == 2 and all("with the server name 'gateway'" in f.message for f in found)
    assert "over its 60" in found[0].message


def test_a_separator_outside_the_grammar_is_fixed_by_the_separator(tmp_path: Path) -> None:
    document = {"mcpServers": servers("time"), "gateway": {"separator": "/"}}
    cfg, exposed, profiles, _ = setup(tmp_path, document)
    found = check_targets(profiles, exposed, cfg, ["openai"])
    assert len(found) == 2
    assert all("outside its name grammar" in f.message and '"separator": "_"' in f.message for f in found)
    document["gateway"]["separator"] = "_"
    cfg, exposed, profiles, _ = setup(tmp_path, document)
    assert check_targets(profiles, exposed, cfg, ["openai"]) == []


def test_an_unknown_client_is_a_located_config_error(tmp_path: Path) -> None:
    document = {"mcpServers": servers("time"), "gateway": {"profiles": {"t": {"clients": ["cursor", "kursor"]}}}}
    cfg, exposed, profiles, path = setup(tmp_path, document)
    [finding] = check_targets(profiles, exposed, cfg)
    assert finding.kind == "config" and finding.pointer == "/gateway/profiles/t/clients/1"
    [diagnostic] = located([finding], path)
    text = path.read_text().splitlines()
    assert '"kursor"' in text[diagnostic.line - 1]
    assert "unknown client 'kursor'; expected one of: claude-code" in diagnostic.format_text()


def test_the_surface_checks_targets_and_budgets_at_once(tmp_path: Path) -> None:
    document = {
        "mcpServers": servers(*BIG),
        "gateway": {"profiles": {"coding": {"clients": ["cursor"], "budget": {"max_tools": 30}}}},
    }
    cfg, exposed, _, _ = setup(tmp_path, document)
    found = surface(cfg, exposed, ["vscode"])
    assert not isinstance(found, list)
    assert sorted(f.kind for f in found.findings) == ["budget", "target"]


# ---- the build, end to end against a real server ---------------------------------------------------


def _time_config(prefix: str, **gateway: Any) -> JSON:
    command, args = peers.time_server_command()
    return {"mcpServers": {"time": {"command": command, "args": args, "prefix": prefix}}, "gateway": gateway}


def _build(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcpgw", "build", "config.json", "-o", "dist", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.e2e
@pytest.mark.timeout(180)
def test_build_target_fails_with_every_violation_then_passes_with_the_fix(tmp_path: Path) -> None:
    prefix = "time_zone_conversion_service_backends"  # 14 + 37 + 2 + 12 ("convert_time") = 65 > 64
    (tmp_path / "config.json").write_text(json.dumps(_time_config(prefix), indent=2))
    failed = _build(tmp_path, "--target", "claude-code", "--target", "openai")
    assert failed.returncode == 2, failed.stderr
    lines = [line for line in failed.stderr.splitlines() if "client 'claude-code'" in line]
    assert len(lines) == 2 and all(line.startswith("config.json:1:1: ") for line in lines)
    assert not (tmp_path / "dist").exists()
    assert "2 errors in the profiles' client targets and budgets; nothing was written" in failed.stderr
    renames: JSON = {}
    for line in lines:
        renames.update(_suggested_json(line, '"rename": ')["rename"])
    document = _time_config(prefix)
    document["mcpServers"]["time"]["tools"] = {"rename": renames}
    (tmp_path / "config.json").write_text(json.dumps(document, indent=2))
    passed = _build(tmp_path, "--target", "claude-code", "--target", "openai")
    assert passed.returncode == 0, passed.stderr
    assert "profile default: 2 tools, " in passed.stderr and "tokens (o200k_base)" in passed.stderr


def test_an_unknown_target_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"mcpServers": servers("time")}))
    proc = _build(tmp_path, "--target", "netscape")
    assert proc.returncode == 2
    assert "--target netscape: unknown client; expected one of: claude-code, claude-desktop, cursor" in proc.stderr
