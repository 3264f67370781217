"""Compiled tool search: the tokenizer, the index (deterministic, byte-stable), the search tool's
answers, and its quality measured on real tools from servers nobody here wrote.

The quality set is tests/search/: tools.json (captured by tests/search/capture.py), queries.json
(written before the scorer; used while developing it) and queries_heldout.json (written after the
scorer was frozen, never tuned on). docs/search.md reports the figures `tests/search/quality.py` prints.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from typing import Any

import jsonschema
import pytest
from mcp import types
from mcpgw.search_index import build_index, fields_of, related_terms, render_index
from mcpgw_runtime.search import (
    CALL_TOOL,
    MAX_LIMIT,
    SEARCH_TOOL,
    SearchIndex,
    call_target,
    search,
    search_call,
    search_result,
    stem,
    tokenize,
    tool_definitions,
)

from tests.search.quality import (
    QUERIES_FILE,
    TOOLS_FILE,
    exposed_name,
    load_queries,
    load_tools,
    measure,
    savings,
)

HELDOUT_FILE = QUERIES_FILE.with_name("queries_heldout.json")
RECALL_AT_5_FLOOR = 0.9


@pytest.fixture(scope="module")
def tools() -> list[dict[str, Any]]:
    return load_tools()


@pytest.fixture(scope="module")
def index(tools: list[dict[str, Any]]) -> SearchIndex:
    return build_index(tools)


def tool(name: str, description: str = "", **extra: Any) -> dict[str, Any]:
    return {"name": name, "description": description, "inputSchema": {"type": "object"}, **extra}


# ---- the tokenizer ----


@pytest.mark.parametrize(
    ("text", "terms"),
    [
        ("getCurrentTime", ["get", "current", "tim"]),
        ("browser_take_screenshot", ["browser", "tak", "screenshot"]),
        ("get-resource-links", ["get", "resourc", "link"]),
        ("github__create_pull_request", ["github", "creat", "pull", "request"]),
        ("HTMLParser readURL", ["html", "parser", "read", "url"]),
        ("What is the time in Tokyo?", ["tim", "tokyo"]),
        ("List the files of a directory", ["list", "fil", "directory"]),
        ("", []),
        ("a I of", []),
    ],
)
def test_tokenize_splits_cases_drops_stop_words_and_stems(text: str, terms: list[str]) -> None:
    assert tokenize(text) == terms


@pytest.mark.parametrize(
    "forms",
    [
        ("file", "files"),
        ("create", "created", "creating", "creates"),
        ("query", "queries"),
        ("entity", "entities"),
        ("branch", "branches"),
        ("stage", "staged", "staging"),
        ("run", "running"),
        ("commit", "committed", "commits"),
        ("directory", "directories"),
        ("process", "processes"),
        ("timezone", "timezones"),
    ],
)
def test_stem_brings_inflections_together(forms: tuple[str, ...]) -> None:
    assert len({stem(f) for f in forms}) == 1, {f: stem(f) for f in forms}


def test_stem_leaves_short_words_numbers_and_s_endings_alone() -> None:
    assert [stem(w) for w in ("get", "add", "2024", "status", "analysis", "access")] == [
        "get",
        "add",
        "2024",
        "status",
        "analysis",
        "access",
    ]


# ---- the index ----


def test_fields_cover_name_titles_description_and_nested_parameters() -> None:
    definition = tool(
        "gh__open_issue",
        "Opens an issue.",
        title="Issue opener",
        annotations={"title": "Open issue"},
        inputSchema={
            "type": "object",
            "properties": {
                "labels": {"type": "array", "items": {"type": "object", "properties": {"colour": {"type": "string"}}}},
                "body": {"type": "string", "description": "Markdown text"},
            },
        },
    )
    fields = fields_of(definition)
    assert fields["name"] == ["gh", "open", "issu"]
    assert fields["title"] == ["issu", "opener", "open", "issu"]
    assert fields["description"] == ["open", "issu"]
    assert set(fields["parameters"]) == {"body", "markdown", "text", "label", "colour"}
    assert "bug" in fields["related"]  # issue ~ bug ~ ticket
    assert "issu" not in fields["related"]


def test_synonyms_match_phrases_only_whole() -> None:
    assert "pr" in related_terms({"pull", "request"})
    assert "pr" not in related_terms({"pull"})
    assert {"folder", "dir"} <= set(related_terms({"directory"}))


def test_same_tools_in_any_order_give_the_same_index_and_literal(tools: list[dict[str, Any]]) -> None:
    forward = build_index(tools)
    backward = build_index(list(reversed(tools)))
    assert forward == backward
    assert render_index(forward) == render_index(backward)
    assert list(forward.tools) == sorted(forward.tools)
    assert list(forward.postings) == sorted(forward.postings)


def test_the_literal_is_the_index(index: SearchIndex) -> None:
    literal = render_index(index)
    assert eval(literal, {"SearchIndex": SearchIndex}) == index
    assert "\n" not in literal


def test_the_literal_does_not_depend_on_the_hash_seed() -> None:
    program = (
        "import hashlib; from tests.search.quality import load_tools; "
        "from mcpgw.search_index import build_index, render_index; "
        "print(hashlib.sha256(render_index(build_index(load_tools())).encode()).hexdigest())"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", program],
            env={"PYTHONHASHSEED": seed, "PATH": ""},
            capture_output=True,
            text=True,
            check=True,
            cwd=TOOLS_FILE.parents[2],
        ).stdout
        for seed in ("0", "4242")
    }
    assert len(digests) == 1
    assert hashlib.sha256(b"").hexdigest() not in digests


def test_a_profile_without_tools_has_an_empty_index() -> None:
    empty = build_index([])
    assert empty == SearchIndex(tools=(), postings={})
    assert search(empty, "anything", 5) == []
    assert search_result(empty, {}, "anything", 5)["structuredContent"] == {"tools": []}


def test_duplicate_names_are_refused() -> None:
    with pytest.raises(ValueError, match="unique"):
        build_index([tool("a"), tool("a")])


def test_postings_are_positions_and_integer_scores(index: SearchIndex) -> None:
    for term, posting in index.postings.items():
        assert term == term.strip() and term
        positions = []
        for entry in posting.split(" "):
            position, score = entry.split(":")
            assert int(score) > 0
            positions.append(int(position))
        assert positions == sorted(set(positions))
        assert positions[-1] < len(index.tools)


# ---- search ----


def test_search_ranks_by_score_then_name() -> None:
    index = build_index([tool("b_rename", "Rename a file"), tool("a_rename", "Rename a file"), tool("c", "Say hi")])
    assert search(index, "rename", 5) == ["a_rename", "b_rename"]
    assert search(index, "rename", 1) == ["a_rename"]
    assert search(index, "rename", 0) == []
    assert search(index, "zebra", 5) == []
    assert search(index, "the of", 5) == []


def test_a_word_in_the_name_outweighs_it_in_a_parameter() -> None:
    index = build_index(
        [
            tool("send_mail", "Sends mail.", inputSchema={"type": "object", "properties": {"archive": {}}}),
            tool("archive", "Moves old items away."),
        ]
    )
    assert search(index, "archive", 5) == ["archive", "send_mail"]


def test_a_synonym_finds_the_tool() -> None:
    index = build_index([tool("mkdir", "Create a directory"), tool("echo", "Echo text")])
    assert search(index, "new folder", 5) == ["mkdir"]


# ---- the search tool and the call tool ----


def test_tool_definitions_are_valid_mcp_tools() -> None:
    search_tool, call_tool = tool_definitions()
    assert [search_tool["name"], call_tool["name"]] == [SEARCH_TOOL, CALL_TOOL]
    for definition in (search_tool, call_tool):
        types.Tool.model_validate(definition)
        jsonschema.Draft202012Validator.check_schema(definition["inputSchema"])
        assert len(definition["description"]) > 100
    assert search_tool["annotations"]["readOnlyHint"] is True
    assert call_tool["annotations"]["readOnlyHint"] is False
    limit = search_tool["inputSchema"]["properties"]["limit"]
    assert (limit["type"], limit["minimum"], limit["maximum"], limit["default"]) == ("integer", 1, MAX_LIMIT, 5)
    assert search_tool["inputSchema"]["required"] == ["query"]
    assert call_tool["inputSchema"]["properties"]["arguments"]["type"] == "object"


def test_search_result_lists_full_definitions_as_text_and_structured(
    index: SearchIndex, tools: list[dict[str, Any]]
) -> None:
    by_name = {t["name"]: t for t in tools}
    result = search_result(index, by_name, "what time is it in Tokyo", 3)
    types.CallToolResult.model_validate(result)
    found = result["structuredContent"]["tools"]
    assert len(found) == 3
    assert json.loads(result["content"][0]["text"]) == found
    assert found[0] == by_name[found[0]["name"]]
    assert {f["name"] for f in found} >= {"time__get_current_time", "time__convert_time"}
    assert result["isError"] is False
    search_tool, _ = tool_definitions()
    jsonschema.validate(result["structuredContent"], search_tool["outputSchema"])


def test_search_result_skips_tools_the_caller_cannot_use_now(index: SearchIndex, tools: list[dict[str, Any]]) -> None:
    by_name = {t["name"]: t for t in tools}
    top = search(index, "current time in Tokyo", 2)
    del by_name[top[0]]
    found = search_result(index, by_name, "current time in Tokyo", 2)["structuredContent"]["tools"]
    assert found[0]["name"] == top[1]
    assert len(found) == 2


def test_search_result_says_when_nothing_matches(index: SearchIndex, tools: list[dict[str, Any]]) -> None:
    result = search_result(index, {t["name"]: t for t in tools}, "xylophone zeppelin", 5)
    assert result["structuredContent"] == {"tools": []}
    assert result["isError"] is False
    assert "No tool matches 'xylophone zeppelin'" in result["content"][0]["text"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({}, "`query` must be a non-empty string"),
        ({"query": "  "}, "`query` must be a non-empty string"),
        ({"query": "x", "limit": 0}, "`limit` must be an integer from 1 to 20, got 0"),
        ({"query": "x", "limit": 21}, "`limit` must be an integer from 1 to 20"),
        ({"query": "x", "limit": True}, "`limit` must be an integer"),
        ({"query": "x", "limit": "3"}, "`limit` must be an integer"),
        ({"query": "x", "top": 3}, "unknown argument(s) top"),
    ],
)
def test_search_call_refuses_bad_arguments(index: SearchIndex, arguments: dict[str, Any], message: str) -> None:
    result = search_call(index, {}, arguments)
    assert result["isError"] is True
    assert message in result["content"][0]["text"]


def test_search_call_defaults_to_five(index: SearchIndex, tools: list[dict[str, Any]]) -> None:
    result = search_call(index, {t["name"]: t for t in tools}, {"query": "github pull request"})
    assert len(result["structuredContent"]["tools"]) == 5


def test_call_target() -> None:
    assert call_target({"name": "time__get_current_time", "arguments": {"timezone": "UTC"}}) == (
        "time__get_current_time",
        {"timezone": "UTC"},
    )
    assert call_target({"name": "x"}) == ("x", {})
    assert call_target({"name": "x", "arguments": None}) == ("x", {})
    for bad, message in (
        ({}, "`name` must be"),
        ({"name": ""}, "`name` must be"),
        ({"name": "x", "arguments": [1]}, "`arguments` must be an object"),
        ({"name": "x", "args": {}}, "unknown argument(s) args"),
    ):
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
            call_target(bad)


# ---- quality on real tools ----


def test_the_fixture_is_real_tools_from_many_servers() -> None:
    fixture = json.loads(TOOLS_FILE.read_text(encoding="utf-8"))
    servers = fixture["servers"]
    assert sum(len(s["tools"]) for s in servers) >= 100
    assert len(servers) >= 10
    for server in servers:
        assert server["package"] and server["version"] and server["registry"] in {"npm", "pypi"}
        assert [t["name"] for t in server["tools"]] == sorted(t["name"] for t in server["tools"])
    assert [s["server"] for s in servers] == sorted(s["server"] for s in servers)


@pytest.mark.parametrize("path", [QUERIES_FILE, HELDOUT_FILE], ids=["queries", "heldout"])
def test_every_query_names_a_real_tool(path: Any, tools: list[dict[str, Any]]) -> None:
    names = {t["name"] for t in tools}
    queries = load_queries(path)
    assert all(expected in names for _, expected in queries)
    assert len({q for q, _ in queries}) == len(queries)


def test_recall(index: SearchIndex) -> None:
    queries = load_queries(QUERIES_FILE)
    heldout = load_queries(HELDOUT_FILE)
    assert len(queries) >= 60
    assert not {q for q, _ in queries} & {q for q, _ in heldout}
    figures = {name: measure(index, qs) for name, qs in (("queries", queries), ("heldout", heldout))}
    for name, quality in figures.items():
        print(f"{name}: {quality.queries} queries, recall@1 {quality.recall_at_1:.3f}, @5 {quality.recall_at_5:.3f}")
    for name, quality in figures.items():
        misses = [(q, e, top) for q, e, top in quality.misses if e not in top]
        assert quality.recall_at_5 >= RECALL_AT_5_FLOOR, f"{name}: recall@5 {quality.recall_at_5:.3f}; {misses}"


def test_a_search_profile_lists_a_fraction_of_the_tokens(index: SearchIndex, tools: list[dict[str, Any]]) -> None:
    figures = savings(tools, index, load_queries(QUERIES_FILE))
    print(figures)
    assert figures.list_search * 20 < figures.list_all
    # Even a search answer (five full definitions) costs far less than listing everything on every turn.
    assert figures.search_answer_median * 5 < figures.list_all


def test_exposed_names_follow_the_gateway_default() -> None:
    assert exposed_name("github", "create_issue") == "github__create_issue"


def test_the_published_figures_are_the_measured_ones(index: SearchIndex, tools: list[dict[str, Any]]) -> None:
    """docs/search.md and the README quote these figures; change them together with the scorer."""
    root = TOOLS_FILE.parents[2]
    docs = (root / "docs" / "search.md").read_text(encoding="utf-8")
    readme = (root / "README.md").read_text(encoding="utf-8")
    main = measure(index, load_queries(QUERIES_FILE))
    heldout = measure(index, load_queries(HELDOUT_FILE))
    figures = savings(tools, index, load_queries(QUERIES_FILE))
    rows = [
        f"| {main.queries} | {main.recall_at_1:.3f} | {main.recall_at_5:.3f} |",
        f"| {heldout.queries} | {heldout.recall_at_1:.3f} | {heldout.recall_at_5:.3f} |",
        f"| {figures.list_all:,} |",
        f"| {figures.list_search:,} ({1 - figures.list_search / figures.list_all:.1%} less) |",
        f"| {figures.search_answer_median:,} |",
        f"{main.tools} tool definitions",
    ]
    for row in rows:
        assert row in docs, f"docs/search.md should say {row!r}"
    sentence = (
        f"recall@1 {main.recall_at_1:.3f} and recall@5 {main.recall_at_5:.3f} over {main.queries} queries, "
        f"{heldout.recall_at_1:.3f} and {heldout.recall_at_5:.3f} over {heldout.queries} held-out queries; "
        f"the listing costs {figures.list_search} tokens instead of {figures.list_all:,}"
    )
    assert sentence in readme
