"""Profiles, without a running gateway: config → resolved profiles (or every problem, located), the rendered
tables, and the runtime's application of them (which profile a path names, what a profile lists and calls).

The end-to-end proof against real servers is tests/test_profiles_e2e.py; the golden cases
tests/cases/profiles*/ pin the rendered tables and the error output.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mcpgw.config import config_from_document
from mcpgw.load import load_config
from mcpgw.names import Exposed, expose
from mcpgw.profiles import Profile, resolve_profiles
from mcpgw.snapshot import offers_from_snapshot, read_snapshot
from mcpgw_runtime.cli import parse_args
from mcpgw_runtime.profiles import DEFAULT, PROFILE, Profiles, path_profile, table_lists
from mcpgw_runtime.search import CALL_TOOL, SEARCH_TOOL, SearchIndex
from mcpgw_runtime.spec import GatewaySpec, ProfileSpec

CASE = Path(__file__).parent / "cases" / "profiles"


def _resolve(profiles: dict[str, Any]) -> list[Profile] | list[str]:
    document = json.loads((CASE / "config.json").read_text())
    document["gateway"] = {"profiles": profiles}
    config = config_from_document(document)
    offers = offers_from_snapshot(read_snapshot(CASE / "snapshot.json"))
    exposed = expose(config, offers)
    assert isinstance(exposed, Exposed)
    return resolve_profiles(config, exposed)


def _profiles(profiles: dict[str, Any]) -> dict[str, Profile]:
    resolved = _resolve(profiles)
    assert all(isinstance(p, Profile) for p in resolved), resolved
    return {p.name: p for p in resolved if isinstance(p, Profile)}


def _problems(profiles: dict[str, Any]) -> list[str]:
    resolved = _resolve(profiles)
    assert all(isinstance(p, str) for p in resolved), resolved
    return [p for p in resolved if isinstance(p, str)]


# ---------------------------------------------------------------- config → profiles


def test_default_comes_first_and_shows_everything() -> None:
    resolved = _resolve({"ro": {"tools": {"annotations": {"readOnlyHint": True}}}})
    assert [p.name for p in resolved if isinstance(p, Profile)] == ["default", "ro"]
    default = resolved[0]
    assert isinstance(default, Profile)
    assert default.path == "gateway" and default.mode == "all" and default.budget is None
    assert len(default.tools) == 19 and default.listed == default.tools and len(default.prompts) == 4


def test_selections_globs_backends_and_annotations() -> None:
    profiles = _profiles(
        {
            "ro": {"tools": {"exclude": ["everything__get-*"], "annotations": {"readOnlyHint": True}}},
            "open": {"tools": {"annotations": {"openWorldHint": True}}, "prompts": {"include": ["*simple*"]}},
            "time": {"backends": ["ti*"], "clients": ["cursor"], "budget": {"max_tools": 5}},
        }
    )
    assert profiles["ro"].tool_names == (
        "everything__echo",
        "everything__trigger-long-running-operation",
        "time__convert_time",
        "time__get_current_time",
    )
    assert profiles["ro"].path == "gateway.profiles.ro"
    assert profiles["open"].tool_names == (
        "everything__gzip-file-as-resource",
        "everything__trigger-sampling-request",
        "everything__trigger-url-elicitation",
    )
    assert profiles["open"].prompts == ("everything__simple-prompt",)
    time = profiles["time"]
    assert time.backends == ("time",) and time.prompts == () and time.clients == ("cursor",)
    assert time.budget is not None and (time.budget.max_tools, time.budget.max_tokens) == (5, None)
    assert time.tools[0] == next(t for t in profiles["default"].tools if t["name"] == "time__convert_time")


def test_a_search_profile_lists_its_two_tools_then_always() -> None:
    search = _profiles({"s": {"mode": "search", "always": ["time__get_current_time"]}})["s"]
    assert [t["name"] for t in search.listed] == [SEARCH_TOOL, CALL_TOOL, "time__get_current_time"]
    assert len(search.tools) == 19 and search.always == ("time__get_current_time",)


def test_every_problem_with_its_path() -> None:
    assert _problems(
        {
            "a": {"mode": "search", "always": ["nope", "everything__echo"], "tools": {"exclude": ["everything__*"]}},
            "b": {"always": ["time__convert_time"]},
            "c": {"backends": ["time", "tme"], "tools": {"include": ["everything__*"]}},
        }
    ) == [
        "gateway.profiles.a.always[0]: unknown tool 'nope'; expected an exposed tool name",
        "gateway.profiles.a.always[1]: tool 'everything__echo' is not among this profile's tools; select it first",
        'gateway.profiles.b.always: only a profile in mode "search" lists tools besides its own; remove it',
        "gateway.profiles.c.backends[1]: 'tme' matches no enabled backend; expected one of: everything, time",
        "gateway.profiles.c: selects no tool; expected its backends, tools.include, tools.exclude and "
        "tools.annotations to leave at least one of the gateway's 19 exposed tools",
    ]


def test_an_exposed_tool_named_like_the_search_tools_is_an_error() -> None:
    document = json.loads((CASE / "config.json").read_text())
    document["mcpServers"]["time"]["prefix"] = ""
    document["mcpServers"]["time"]["tools"] = {"rename": {"convert_time": "call_tool"}}
    document["gateway"] = {"profiles": {"s": {"mode": "search"}, "all": {}}}
    config = config_from_document(document)
    exposed = expose(config, offers_from_snapshot(read_snapshot(CASE / "snapshot.json")))
    assert isinstance(exposed, Exposed)
    assert resolve_profiles(config, exposed) == [
        "gateway.profiles.s: exposed tool 'call_tool' has the name of the search profile's own tool; "
        "rename it in its backend or exclude it from this profile"
    ]


@pytest.mark.parametrize(
    ("profiles", "message"),
    [
        (
            {"default": {}},
            '/gateway/profiles/default: invalid profile name: expected 1 to 32 lowercase letters, digits, "_" or "-", '
            'starting with a letter or digit, other than "default" (the implicit profile that shows everything), '
            'got "default"',
        ),
        ({"Ops": {}}, "/gateway/profiles/Ops: invalid profile name: expected 1 to 32 lowercase letters"),
        ({"ops": {"mode": "some"}}, '/gateway/profiles/ops/mode: expected one of "all", "search", got "some"'),
        (
            {"ops": {"tools": {"annotations": {"readonly": True}}}},
            '/gateway/profiles/ops/tools/annotations/readonly: unknown field "readonly" (did you mean "readOnlyHint"?)',
        ),
        ({"ops": {"budget": {"max_tools": 0}}}, "/gateway/profiles/ops/budget/max_tools: expected at least 1, got 0"),
    ],
)
def test_config_errors_are_located(
    profiles: dict[str, Any], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("config.json").write_text(json.dumps({"time": {"command": "x"}, "gateway": {"profiles": profiles}}))
    result = load_config(Path("config.json"))
    assert isinstance(result, list)
    texts = [d.format_text() for d in result]
    assert any(message in t for t in texts), texts
    assert all(t.startswith("config.json:1:") for t in texts)


# ---------------------------------------------------------------- the runtime applies the tables


def _spec() -> GatewaySpec:
    tools = tuple({"name": n, "inputSchema": {"type": "object"}} for n in ("a__x", "a__y", "b__z"))
    return GatewaySpec(
        name="g",
        version="1",
        generator="1",
        config_dir=".",
        backends=(),
        tools=tools,
        tool_routes={},
        prompts=({"name": "a__p"},),
        prompt_routes={},
        resource_templates=(("a", {"uriTemplate": "file:///{path}"}), ("b", {"uriTemplate": "mem://{key}"})),
        resources={},
        tool_pins={},
        prompt_pins={},
        profiles={
            "one": ProfileSpec(tools=("a__y",), backends=("b",), resource_include=("mem://*",)),
            "find": ProfileSpec(
                tools=("a__x", "b__z"),
                backends=("a", "b"),
                mode="search",
                always=("b__z",),
                search=SearchIndex(tools=("a__x", "b__z"), postings={"alpha": "0:200", "zulu": "1:100"}),
            ),
        },
    )


def test_path_profile() -> None:
    names = {"one", "find"}
    assert path_profile("/mcp", "/mcp", names) == DEFAULT
    assert path_profile("/mcp/one", "/mcp", names) == "one"
    assert path_profile("/mcp/two", "/mcp", names) is None
    assert path_profile("/mcp/one/x", "/mcp", names) is None
    assert path_profile("/sse/one", "/mcp", names) is None


def test_the_request_profile_decides_what_is_listed_and_callable() -> None:
    spec = _spec()
    profiles = Profiles(spec)
    full = {"tools": list(spec.tools)}
    assert profiles.listing("tools/list", full) is full and profiles.allows("tool", "b__z")
    token = PROFILE.set("one")
    try:
        assert profiles.listing("tools/list", full) == {"tools": [spec.tools[1]]}
        assert profiles.listing("tools/list", full) is profiles.listing("tools/list", full)  # made once
        assert not profiles.allows("tool", "a__x") and not profiles.allows("prompt", "a__p")
        assert profiles.listing("prompts/list", {"prompts": list(spec.prompts)}) == {"prompts": []}
        assert profiles.templates(spec.resource_templates) == [{"uriTemplate": "mem://{key}"}]
        assert profiles.shows_resource("mem://k", "b") and not profiles.shows_resource("mem://k", "a")
        assert profiles.direct({"name": CALL_TOOL, "arguments": {"name": "a__x"}})["name"] == CALL_TOOL
        assert profiles.search({"name": SEARCH_TOOL, "arguments": {"query": "x"}}, full) is None
    finally:
        PROFILE.reset(token)


def test_a_search_profile_finds_and_unwraps() -> None:
    spec = _spec()
    profiles = Profiles(spec)
    full = {"tools": list(spec.tools)}
    token = PROFILE.set("find")
    try:
        listed = [t["name"] for t in profiles.listing("tools/list", full)["tools"]]
        assert listed == [SEARCH_TOOL, CALL_TOOL, "b__z"]
        found = profiles.search({"name": SEARCH_TOOL, "arguments": {"query": "alpha zulu"}}, full)
        assert found is not None and [t["name"] for t in found["structuredContent"]["tools"]] == ["a__x", "b__z"]
        held = {"tools": [spec.tools[2]]}  # a tool held back by its pin is not found
        again = profiles.search({"name": SEARCH_TOOL, "arguments": {"query": "alpha zulu"}}, held)
        assert again is not None and [t["name"] for t in again["structuredContent"]["tools"]] == ["b__z"]
        direct = profiles.direct({"name": CALL_TOOL, "arguments": {"name": "a__x", "arguments": {"n": 1}}, "_meta": {}})
        assert direct == {"name": "a__x", "arguments": {"n": 1}, "_meta": {}}
        assert profiles.target({"name": CALL_TOOL, "arguments": {"name": "b__z"}}) == "b__z"
        with pytest.raises(ValueError, match="`name` must be"):
            profiles.direct({"name": CALL_TOOL, "arguments": {}})
    finally:
        PROFILE.reset(token)


def test_table_lists_per_profile() -> None:
    spec = _spec()
    lists = table_lists(spec, Profiles(spec), lambda value: json.dumps(value).encode())
    assert set(lists) == {"default", "one", "find"}
    assert json.loads(lists["one"]["tools/list"]) == {"tools": [spec.tools[1]]}
    assert json.loads(lists["default"]["resources/templates/list"])["resourceTemplates"] == [
        {"uriTemplate": "file:///{path}"},
        {"uriTemplate": "mem://{key}"},
    ]


def test_profile_flag(capsys: pytest.CaptureFixture[str]) -> None:
    spec = _spec()
    assert parse_args(spec, ["--transport", "stdio", "--profile", "one"]).profile == "one"
    assert parse_args(spec, ["--transport", "stdio"]).profile == "default"
    for argv in (["--transport", "stdio", "--profile", "two"], ["--profile", "one"]):
        with pytest.raises(SystemExit) as exited:
            parse_args(spec, argv)
        assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "--profile: no profile 'two'; this gateway's profiles: find, one" in err
    assert "--profile applies to --transport stdio; over HTTP, profile 'one' is /mcp/one" in err
