"""The search-quality figures: recall@1 and recall@5 of the compiled index over the real-tool fixture,
and what a search profile saves against listing every tool.

Shared by tests/test_search.py (which asserts the floor) and docs/search.md's figures:

    .venv/bin/python tests/search/quality.py           # the figures
    .venv/bin/python tests/search/quality.py --misses  # and every query whose tool is not first

Tools are exposed as a gateway with one backend per server exposes them by default:
`<server>__<tool>`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcpgw.search_index import build_index
from mcpgw_runtime.search import SearchIndex, search, search_result, tool_definitions

HERE = Path(__file__).resolve().parent
TOOLS_FILE = HERE / "tools.json"
QUERIES_FILE = HERE / "queries.json"
SEPARATOR = "__"


def exposed_name(server: str, tool: str) -> str:
    return f"{server}{SEPARATOR}{tool}"


def load_tools() -> list[dict[str, Any]]:
    """Every captured tool, renamed as the gateway exposes it."""
    fixture = json.loads(TOOLS_FILE.read_text(encoding="utf-8"))
    return [
        {**tool, "name": exposed_name(server["server"], tool["name"])}
        for server in fixture["servers"]
        for tool in server["tools"]
    ]


def load_queries(path: Path = QUERIES_FILE) -> list[tuple[str, str]]:
    """(query, expected exposed tool name) pairs."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return [(q["query"], exposed_name(q["server"], q["tool"])) for q in data["queries"]]


@dataclass(frozen=True)
class Quality:
    queries: int
    tools: int
    recall_at_1: float
    recall_at_5: float
    misses: list[tuple[str, str, list[str]]]
    """(query, expected, top 5) for every query whose tool is not ranked first."""


def measure(index: SearchIndex, queries: list[tuple[str, str]]) -> Quality:
    hits1 = hits5 = 0
    misses = []
    for query, expected in queries:
        top = search(index, query, 5)
        hits1 += top[:1] == [expected]
        hits5 += expected in top
        if top[:1] != [expected]:
            misses.append((query, expected, top))
    n = len(queries)
    return Quality(n, len(index.tools), hits1 / n, hits5 / n, misses)


def _compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


@dataclass(frozen=True)
class Savings:
    unit: str
    list_all: int
    """Listing every tool (the tools/list result's tools, compact JSON)."""
    list_search: int
    """Listing the search profile: the search tool and the call tool."""
    search_answer_median: int
    """One search answer (limit 5): the text content the model reads, median over the queries."""


def savings(tools: list[dict[str, Any]], index: SearchIndex, queries: list[tuple[str, str]]) -> Savings:
    """Tokens (o200k_base, compiler/mcpgw/tokens.py) of listing everything vs the search profile."""
    from mcpgw.tokens import count_tokens

    by_name = {t["name"]: t for t in tools}
    answers = [count_tokens(search_result(index, by_name, query, 5)["content"][0]["text"]) for query, _ in queries]
    return Savings(
        unit="tokens (o200k_base)",
        list_all=count_tokens(_compact({"tools": tools})),
        list_search=count_tokens(_compact({"tools": list(tool_definitions())})),
        search_answer_median=round(statistics.median(answers)),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="search-quality figures")
    parser.add_argument("--misses", action="store_true", help="print every query whose tool is not first")
    parser.add_argument("--queries", type=Path, default=QUERIES_FILE)
    args = parser.parse_args()
    tools = load_tools()
    index = build_index(tools)
    queries = load_queries(args.queries)
    quality = measure(index, queries)
    servers = len({t["name"].split(SEPARATOR)[0] for t in tools})
    print(f"{quality.tools} tools from {servers} servers, {quality.queries} queries")
    print(f"recall@1 {quality.recall_at_1:.3f}  recall@5 {quality.recall_at_5:.3f}")
    s = savings(tools, index, queries)
    print(
        f"{s.unit}: listing every tool {s.list_all}, the search profile's listing {s.list_search} "
        f"({1 - s.list_search / s.list_all:.1%} less), one search answer (limit 5) median {s.search_answer_median}"
    )
    if args.misses:
        for query, expected, top in quality.misses:
            mark = "  (in top 5)" if expected in top else ""
            print(f"- {query!r}: expected {expected}{mark}\n    got {', '.join(top)}", file=sys.stdout)


if __name__ == "__main__":
    main()
