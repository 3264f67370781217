"""Token cost and budgets: each profile priced per backend, budgets that fail the build with a working fix,
tokens per tool in the snapshot, and `mcpgw check` reporting growth past a budget as drift.

Unit tests price the real tool definitions in tests/search/tools.json; the end-to-end tests build and
check over real servers (mcp-server-time, and tests/servers/drift_server.py for a backend that grows).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from mcpgw.budgets import check_budgets, profile_costs, report_json, report_text, summary_line, token_changes
from mcpgw.snapshot import build_snapshot
from mcpgw.tokens import tool_tokens
from mcpgw_runtime.spec import BackendSpec

from tests import peers
from tests.test_targets import _suggested_json, offer, servers, setup

REPO = Path(__file__).resolve().parent.parent
DRIFT_SERVER = REPO / "tests" / "servers" / "drift_server.py"
JSON = dict[str, Any]


def test_a_profile_is_priced_per_backend_from_its_exposed_definitions(tmp_path: Path) -> None:
    document = {
        "mcpServers": servers("git", "time", "fetch"),
        "gateway": {"profiles": {"vcs": {"backends": ["git"]}}},
    }
    _cfg, exposed, profiles, _ = setup(tmp_path, document)
    default, vcs = profile_costs(profiles, exposed)
    assert default.tools == 15 and vcs.tools == 12
    # what is counted is the definition clients get: renamed (prefixed), as tools/list sends it
    assert default.tokens == sum(tool_tokens(e.definition) for e in exposed.tools)
    per_backend = {b.name: (b.tools, b.tokens) for b in default.backends()}
    assert per_backend == {
        name: (n, sum(tool_tokens(e.definition) for e in exposed.tools if e.backend == name))
        for name, n in (("fetch", 1), ("git", 12), ("time", 2))
    }
    assert vcs.backends()[0].tokens == per_backend["git"][1]
    top = default.top(3)
    assert [t.tokens for t in top] == sorted((t.tokens for t in default.listed), reverse=True)[:3]
    assert summary_line(vcs) == f"profile vcs: 12 tools, {vcs.tokens} tokens (o200k_base)"
    assert summary_line(default).startswith(f"profile default: 15 tools, {default.tokens} tokens (o200k_base) [fetch: ")


def test_a_search_profile_lists_few_tokens_and_counts_what_it_can_call(tmp_path: Path) -> None:
    document = {"mcpServers": servers("github", "playwright"), "gateway": {"profiles": {"find": {"mode": "search"}}}}
    _cfg, exposed, profiles, _ = setup(tmp_path, document)
    default, find = profile_costs(profiles, exposed)
    assert find.tools == 2 and {t.backend for t in find.listed} == {""}
    assert find.callable_tools == default.tools == 51 and find.callable_tokens == default.tokens
    assert find.tokens < default.tokens / 10
    assert "searches 51 tools that would cost" in summary_line(find)


def test_over_max_tools_names_the_excludes_that_fit(tmp_path: Path) -> None:
    document: JSON = {"mcpServers": servers("git"), "gateway": {"profiles": {"vcs": {"budget": {"max_tools": 10}}}}}
    _cfg, exposed, profiles, _ = setup(tmp_path, document)
    [finding] = check_budgets(profile_costs(profiles, exposed), profiles, exposed)
    assert finding.kind == "budget" and finding.pointer == "/gateway/profiles/vcs/budget/max_tools"
    assert "lists 12 tools, over its budget of 10" in finding.message
    document["gateway"]["profiles"]["vcs"].update(_suggested_json(finding.message, '"tools": {"exclude"'))
    _cfg, exposed, profiles, _ = setup(tmp_path, document)
    assert check_budgets(profile_costs(profiles, exposed), profiles, exposed) == []


def test_over_max_tokens_names_the_biggest_tools_and_the_fewest_excludes(tmp_path: Path) -> None:
    document: JSON = {"mcpServers": servers("filesystem"), "gateway": {"profiles": {"fs": {}}}}
    _cfg, exposed, profiles, _ = setup(tmp_path, document)
    cost = profile_costs(profiles, exposed)[1]
    limit = cost.tokens - cost.top(1)[0].tokens // 2  # only the costliest tool has to go
    document["gateway"]["profiles"]["fs"]["budget"] = {"max_tokens": limit}
    _cfg, exposed, profiles, _ = setup(tmp_path, document)
    [finding] = check_budgets(profile_costs(profiles, exposed), profiles, exposed)
    assert finding.pointer == "/gateway/profiles/fs/budget/max_tokens"
    biggest = cost.top(5)
    assert (
        f"cost {cost.tokens} tokens (o200k_base), {cost.tokens - limit} over its budget of {limit}" in finding.message
    )
    assert "biggest: " + ", ".join(f"{t.name} ({t.tokens})" for t in biggest) in finding.message
    fix = _suggested_json(finding.message, '"tools": {"exclude"')
    assert fix["tools"]["exclude"] == [biggest[0].name]
    document["gateway"]["profiles"]["fs"].update(fix)
    _cfg, exposed, profiles, _ = setup(tmp_path, document)
    assert check_budgets(profile_costs(profiles, exposed), profiles, exposed) == []


def test_a_budget_below_any_tool_asks_for_a_bigger_budget(tmp_path: Path) -> None:
    document = {"mcpServers": servers("time"), "gateway": {"profiles": {"t": {"budget": {"max_tokens": 5}}}}}
    _cfg, exposed, profiles, _ = setup(tmp_path, document)
    [finding] = check_budgets(profile_costs(profiles, exposed), profiles, exposed)
    assert (
        "even its cheapest tool costs" in finding.message
        and "raise gateway.profiles.t.budget.max_tokens" in finding.message
    )


def test_the_report_shapes(tmp_path: Path) -> None:
    _cfg, exposed, profiles, _ = setup(tmp_path, {"mcpServers": servers("time", "fetch")})
    costs = profile_costs(profiles, exposed)
    text = report_text(costs, top=2)
    assert text.startswith("tokens: o200k_base over each listed tool's name, description, inputSchema and outputSchema")
    assert "  backend  tools   tokens\n  fetch        1" in text and "top 2 by tokens:" in text
    doc = report_json(costs, top=2)
    assert doc["encoding"] == "o200k_base" and doc["format"] == 1
    [default] = doc["profiles"]
    assert set(default) == {"backends", "budget", "callable", "mode", "name", "tokens", "tools", "top"}
    assert default["tokens"] == sum(b["tokens"] for b in default["backends"]) and len(default["top"]) == 2


def test_the_snapshot_records_tokens_per_tool_and_stays_valid() -> None:
    snapshot = build_snapshot({"git": offer("git")}, "sha256:" + "0" * 64)
    tools = snapshot["backends"]["git"]["tools"]
    assert len(tools) == 12
    for entry in tools.values():
        assert entry["tokens"] == tool_tokens(entry["definition"]) > 0
    schema = json.loads((REPO / "schemas" / "snapshot.schema.json").read_text())
    jsonschema.validate(snapshot, schema)


def test_token_changes_only_for_exposed_tools_and_from_definitions_when_unrecorded() -> None:
    before = build_snapshot({"time": offer("time")}, "sha256:" + "0" * 64)
    after = json.loads(json.dumps(before))
    tools = after["backends"]["time"]["tools"]
    tools["convert_time"]["definition"]["description"] += " Also handles daylight saving time."
    tools["convert_time"]["tokens"] = tool_tokens(tools["convert_time"]["definition"])
    del before["backends"]["time"]["tools"]["get_current_time"]["tokens"]  # an older snapshot
    spec = BackendSpec(name="time", type="stdio", command="x", prefix="time")
    [change] = token_changes(before, after, {"time": spec}, "__")
    old = before["backends"]["time"]["tools"]["convert_time"]
    assert (change.tool, change.before, change.after) == (
        "convert_time",
        old["tokens"],
        tools["convert_time"]["tokens"],
    )
    assert change.delta > 0
    hidden = BackendSpec(name="time", type="stdio", command="x", prefix="time", tool_exclude=("convert_time",))
    assert token_changes(before, after, {"time": hidden}, "__") == []


# ---- the CLI over real servers ---------------------------------------------------------------------


def _run(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcpgw", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.e2e
@pytest.mark.timeout(180)
def test_build_prints_costs_fails_over_budget_and_reports_json(tmp_path: Path) -> None:
    command, args = peers.time_server_command()
    document: JSON = {
        "mcpServers": {"time": {"command": command, "args": args}},
        "gateway": {
            "profiles": {"now": {"tools": {"include": ["time__get_current_time"]}, "budget": {"max_tools": 2}}}
        },
    }
    (tmp_path / "config.json").write_text(json.dumps(document))
    built = _run(tmp_path, "build", "config.json", "-o", "dist", "--report-format", "json")
    assert built.returncode == 0, built.stderr
    assert "profile default: 2 tools, " in built.stderr and "profile now: 1 tool, " in built.stderr
    report = json.loads(built.stdout)
    default, now = report["profiles"]
    assert (default["name"], default["tools"], now["name"], now["tools"]) == ("default", 2, "now", 1)
    assert now["budget"] == {"max_tokens": None, "max_tools": 2}
    snapshot = json.loads((tmp_path / "dist" / "snapshot.json").read_text())
    recorded = snapshot["backends"]["time"]["tools"]
    # the snapshot prices the backend's own definitions; the profiles price them as clients get them, prefixed
    assert all(t["tokens"] == tool_tokens(t["definition"]) for t in recorded.values())
    assert sum(tool_tokens({**t["definition"], "name": f"time__{n}"}) for n, t in recorded.items()) == default["tokens"]

    document["gateway"]["profiles"]["now"]["budget"] = {"max_tokens": now["tokens"] - 1}
    (tmp_path / "config.json").write_text(json.dumps(document))
    failed = _run(tmp_path, "build", "config.json", "-o", "dist", "--error-format", "json")
    assert failed.returncode == 2
    [diagnostic] = [json.loads(line) for line in failed.stderr.splitlines() if line.startswith("{")]
    assert diagnostic["pointer"] == "/gateway/profiles/now/budget/max_tokens" and diagnostic["line"] == 1
    assert "biggest: time__get_current_time (" in diagnostic["message"]


@pytest.fixture(scope="module")
def grown(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The drift server built in base mode (3 tools) under a budget of 3 tools and a Claude Code target."""
    root = tmp_path_factory.mktemp("budget-check")
    (root / "state").write_text("base")
    config = {
        "drift": {
            "command": sys.executable,
            "args": [str(DRIFT_SERVER)],
            "env": {"DRIFT_STATE": "${DRIFT_STATE}"},
            "prefix": "d" * 39,  # mcp__gateway__ + 39 + __ + "exfiltrate" = 65 > 64, the base tools fit
        },
        "gateway": {"profiles": {"all": {"clients": ["claude-code"], "budget": {"max_tools": 3}}}},
    }
    (root / "config.json").write_text(json.dumps(config))
    built = _run(root, "build", "config.json", "-o", "dist", env={"DRIFT_STATE": str(root / "state")})
    assert built.returncode == 0, built.stderr
    return root


def _check(root: Path, mode: str, *args: str) -> subprocess.CompletedProcess[str]:
    (root / "state").write_text(mode)
    return _run(root, "check", "config.json", "--against", "dist", *args, env={"DRIFT_STATE": str(root / "state")})


@pytest.mark.e2e
@pytest.mark.timeout(180)
def test_check_reports_growth_past_a_budget_and_a_target_as_breaking_drift(grown: Path) -> None:
    clean = _check(grown, "base")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "profile all: 3 tools, " in clean.stderr

    proc = _check(grown, "changed", "--error-format", "json", "--fail-on", "breaking")
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    profile_level = [c for c in report["changes"] if c["kind"] == "profile"]
    assert sorted((c["code"], c["name"], c["severity"]) for c in profile_level) == [
        ("BUDGET_EXCEEDED", "all", "breaking"),
        ("TARGET_EXCEEDED", "all", "breaking"),
    ]
    budget = next(c for c in profile_level if c["code"] == "BUDGET_EXCEEDED")
    assert "lists 4 tools, over its budget of 3" in budget["message"] and budget["line"] == 1
    target = next(c for c in profile_level if c["code"] == "TARGET_EXCEEDED")
    assert (
        "tool '" + "d" * 39 + "__exfiltrate'" in target["message"] and '"rename": {"exfiltrate": ' in target["message"]
    )
    tokens = {t["tool"]: t for t in report["tokens"]}
    assert set(tokens) == {"echo", "exfiltrate"}  # "add" swapped a parameter b for c: same cost
    assert tokens["echo"]["after"] > tokens["echo"]["before"] and tokens["exfiltrate"]["before"] is None
    [live] = [p for p in report["surface"]["profiles"] if p["name"] == "all"]
    assert live["tools"] == 4

    text = _check(grown, "changed", "--fail-on", "breaking")
    assert text.returncode == 1
    assert "token changes (o200k_base, the backend's own definitions):" in text.stdout
    echo = tokens["echo"]
    assert f"  drift/echo: {echo['before']} → {echo['after']} (+{echo['after'] - echo['before']})" in text.stdout
    assert "  drift/exfiltrate: - → " in text.stdout
