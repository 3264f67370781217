# mcpgw runtime, vendored into every generated gateway. DO NOT EDIT the copy in dist/: its digest is checked at start.
"""Compiled tool search: a profile in `mode: search` lists two tools instead of all of them.

Every tool definition a client lists costs the model context on every turn. A search profile
lists `search_tools` (a query in words, the best matching tools' full definitions back) and
`call_tool` (an exposed name and its arguments, forwarded like a direct call). `mcpgw build`
ranks the tools with BM25F over their names, titles, descriptions and parameters and writes the
result into `gateway.py` as a `SearchIndex` literal: for each term, the tools it occurs in with
their precomputed score. Answering a query is adding up integers: no model, no service, and the
same query always gets the same answer.

The tokenizer lives here, not in the compiler, so the index's terms and a query's terms are cut
by the same code: the compiler imports `tokenize` from this module.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mcpgw_runtime.spec import JSON

SEARCH_TOOL = "search_tools"
CALL_TOOL = "call_tool"
DEFAULT_LIMIT = 5
MAX_LIMIT = 20

SCORE_SCALE = 1000
"""Scores are stored as integers, in thousandths, so the literal and the ranking are byte-stable."""


@dataclass(frozen=True, slots=True)
class SearchIndex:
    """The compiled index of one profile's tools, rendered into `gateway.py` by `mcpgw build`.

    `postings` maps a term to the tools it occurs in as `"<tool>:<score> <tool>:<score> ..."`:
    `<tool>` is a position in `tools`, `<score>` the term's BM25F contribution to that tool in
    thousandths. One string per term keeps the literal one line per term in the diff.
    """

    tools: tuple[str, ...]
    """Exposed tool names, sorted; postings refer to them by position."""
    postings: Mapping[str, str]


# ---- the tokenizer, shared with the compiler ----

STOP_WORDS = frozenset(
    """
    a about above after again all also am an and any are as at be been before being below between both
    but by can could did do does doing done down during each either else etc ever every few for from
    further had has have having he her here hers him his how i if in into is it its itself just let
    me more most my myself no nor not of off on once only or other our ours out over own please
    same she should so some such than that the their theirs them then there these they this those
    through to too under until up upon us very via was we were what when where whether which while who
    whom whose why will with within without would yet you your yours
    """.split()
)
"""English function words: they say nothing about which tool is meant."""

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_WORD = re.compile(r"[a-z0-9]+")
_UNDOUBLE = frozenset("bdgkmnprt")
"""After a suffix is cut, a doubled one of these ends a stem once: stopped, running → stop, run."""


def stem(word: str) -> str:
    """A light suffix stripper: plural, -ing and -ed forms and a final e meet at one stem.

    Not a full Porter stemmer: a handful of rules that are easy to read and cover the English
    of tool descriptions (files/file, created/creating/create, queries/query, branches/branch).
    """
    if len(word) <= 3 or word.isdigit():
        return word
    for suffix, replacement in (("ies", "y"), ("ied", "y"), ("sses", "ss")):
        if word.endswith(suffix):
            return word[: -len(suffix)] + replacement
    if word.endswith(("ches", "shes", "xes", "zes")):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix in ("ing", "ed"):
        base = word[: -len(suffix)]
        if word.endswith(suffix) and len(base) >= 3 and any(c in "aeiouy" for c in base):
            word = base
            if len(word) >= 4 and word[-1] == word[-2] and word[-1] in _UNDOUBLE:
                word = word[:-1]
            break
    if word.endswith("e") and len(word) > 3:
        word = word[:-1]
    return word


def tokenize(text: str) -> list[str]:
    """Terms of a text: camelCase, snake_case and kebab-case split, lowercased, stop words out, stemmed."""
    words = _WORD.findall(_CAMEL.sub(" ", text).lower())
    return [stem(w) for w in words if len(w) > 1 and w not in STOP_WORDS]


# ---- answering a query ----


def scores(index: SearchIndex, query: str) -> dict[int, int]:
    """Each matching tool's score for the query (positions in `index.tools`), in thousandths."""
    totals: dict[int, int] = {}
    for term in dict.fromkeys(tokenize(query)):
        posting = index.postings.get(term)
        if not posting:
            continue
        for entry in posting.split():
            position, _, score = entry.partition(":")
            tool = int(position)
            totals[tool] = totals.get(tool, 0) + int(score)
    return totals


def search(index: SearchIndex, query: str, limit: int) -> list[str]:
    """The exposed names of the best matching tools, best first; ties go to the name first in order."""
    ranked = sorted(scores(index, query).items(), key=lambda item: (-item[1], index.tools[item[0]]))
    return [index.tools[tool] for tool, _ in ranked[: max(limit, 0)]]


# ---- the two tools a search profile lists ----

_SEARCH_DESCRIPTION = (
    "Find the tools that can do a task. This gateway does not list its tools up front: describe what you "
    "want to do in a few words (for example 'create a GitHub issue' or 'current time in Tokyo') and get "
    "back the full definitions (name, description, input schema) of the best matching tools, best first. "
    f"Then run one with `{CALL_TOOL}`, passing its exact name and arguments that follow its input schema. "
    "If nothing fits, search again with other words (synonyms, the service's name, the object acted on)."
)
_CALL_DESCRIPTION = (
    f"Run a tool found with `{SEARCH_TOOL}`. `name` is the tool's exact name as the search returned it; "
    "`arguments` is an object that follows that tool's input schema. The result is the tool's own result, "
    "unchanged. A name the search did not return is an unknown tool."
)


def tool_definitions() -> tuple[JSON, JSON]:
    """The MCP definitions of the search tool and the call tool, in that order."""
    search_tool: JSON = {
        "name": SEARCH_TOOL,
        "title": "Search the gateway's tools",
        "description": _SEARCH_DESCRIPTION,
        "inputSchema": {
            "type": "object",
            "properties": {
                "query": {
                    "type": "string",
                    "minLength": 1,
                    "description": "What you want to do, in plain words.",
                },
                "limit": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": MAX_LIMIT,
                    "default": DEFAULT_LIMIT,
                    "description": "How many tools to return at most.",
                },
            },
            "required": ["query"],
            "additionalProperties": False,
        },
        "outputSchema": {
            "type": "object",
            "properties": {
                "tools": {
                    "type": "array",
                    "items": {"type": "object"},
                    "description": "Full definitions of the matching tools, best first.",
                }
            },
            "required": ["tools"],
        },
        "annotations": {
            "title": "Search the gateway's tools",
            "readOnlyHint": True,
            "destructiveHint": False,
            "idempotentHint": True,
            "openWorldHint": False,
        },
    }
    call_tool: JSON = {
        "name": CALL_TOOL,
        "title": "Call a tool found by search",
        "description": _CALL_DESCRIPTION,
        "inputSchema": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "minLength": 1, "description": "The tool's exact name."},
                "arguments": {
                    "type": "object",
                    "description": "The tool's arguments, following its input schema.",
                    "default": {},
                },
            },
            "required": ["name"],
            "additionalProperties": False,
        },
        "annotations": {
            "title": "Call a tool found by search",
            "readOnlyHint": False,
            "destructiveHint": True,
            "idempotentHint": False,
            "openWorldHint": True,
        },
    }
    return search_tool, call_tool


def _error(text: str) -> JSON:
    return {"content": [{"type": "text", "text": text}], "isError": True}


def search_result(index: SearchIndex, tools_by_name: Mapping[str, JSON], query: str, limit: int) -> JSON:
    """The `CallToolResult` of the search tool: the matches' full definitions, as text and structured.

    `tools_by_name` is what the caller may use now (pins at run time can hide a reviewed tool):
    a match missing from it is skipped, and the next one takes its place.
    """
    ranked = [name for name in search(index, query, len(index.tools)) if name in tools_by_name]
    found = [tools_by_name[name] for name in ranked[:limit]]
    if not found:
        text = (
            f"No tool matches {query!r}. Try other words: a synonym, the service's name "
            "(for example github, slack, filesystem) or the thing to act on (file, issue, message)."
        )
    else:
        text = json.dumps(found, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return {"content": [{"type": "text", "text": text}], "structuredContent": {"tools": found}, "isError": False}


def search_call(index: SearchIndex, tools_by_name: Mapping[str, JSON], arguments: Mapping[str, Any] | None) -> JSON:
    """The search tool's `tools/call`, arguments checked: an error result names what is wrong."""
    arguments = arguments or {}
    query = arguments.get("query")
    limit = arguments.get("limit", DEFAULT_LIMIT)
    if not isinstance(query, str) or not query.strip():
        return _error("`query` must be a non-empty string saying what you want to do.")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        return _error(f"`limit` must be an integer from 1 to {MAX_LIMIT}, got {limit!r}.")
    unknown = sorted(set(arguments) - {"query", "limit"})
    if unknown:
        return _error(f"unknown argument(s) {', '.join(unknown)}: `{SEARCH_TOOL}` takes `query` and `limit`.")
    return search_result(index, tools_by_name, query, limit)


def call_target(arguments: Mapping[str, Any] | None) -> tuple[str, JSON]:
    """The exposed name and arguments a `call_tool` call asks for; ValueError says what is malformed."""
    arguments = arguments or {}
    name = arguments.get("name")
    inner = arguments.get("arguments", {})
    if not isinstance(name, str) or not name:
        raise ValueError(f"`name` must be the exact name of a tool `{SEARCH_TOOL}` returned.")
    if inner is None:
        inner = {}
    if not isinstance(inner, dict):
        raise ValueError("`arguments` must be an object that follows the tool's input schema.")
    unknown = sorted(set(arguments) - {"name", "arguments"})
    if unknown:
        raise ValueError(f"unknown argument(s) {', '.join(unknown)}: `{CALL_TOOL}` takes `name` and `arguments`.")
    return name, inner
