"""The search index of a `mode: search` profile, computed at build time from the exposed tool definitions.

Ranking is BM25F: a tool is a document with four fields (its exposed name, its titles, its
description, its parameters' names and descriptions, nested), each weighted and length-normalised
on its own, so a word in a tool's name counts more than the same word deep in a parameter's
description. Every term's contribution to every tool is computed here, once, and rounded to an
integer; the runtime only adds them up (mcpgw_runtime.search). Sorted terms, sorted tools and
integer scores make the rendered literal byte-stable.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mcpgw_runtime.search import SCORE_SCALE, SearchIndex, tokenize

from mcpgw.pyliteral import pyliteral
from mcpgw.search_synonyms import GROUPS

JSON = Mapping[str, Any]

K1 = 1.2
"""How fast a term's repeated occurrences stop adding to a tool's score."""


@dataclass(frozen=True)
class Field:
    """One field of a tool as a BM25F document: its weight and how much its length normalises."""

    name: str
    weight: float
    b: float


FIELDS = (
    Field("name", 3.0, 0.5),
    Field("title", 2.0, 0.5),
    Field("description", 1.0, 0.75),
    Field("parameters", 0.5, 0.75),
    Field("related", 0.5, 0.5),
)
"""`related`: the other words of every synonym group the name, title or description matches."""

_GROUPS: tuple[tuple[tuple[str, ...], ...], ...] = tuple(
    tuple(terms for terms in (tuple(tokenize(phrase)) for phrase in group) if terms) for group in GROUPS
)


def related_terms(terms: set[str]) -> list[str]:
    """Synonyms of the terms, sorted: each member of a matched group the terms do not already hold."""
    found: set[str] = set()
    for group in _GROUPS:
        if any(all(t in terms for t in member) for member in group):
            found.update(t for member in group for t in member)
    return sorted(found - terms)


def _schema_texts(schema: object) -> Iterator[str]:
    """Property names, titles and descriptions of a JSON schema, nested objects and arrays included."""
    if isinstance(schema, Mapping):
        for key in ("title", "description"):
            if isinstance(schema.get(key), str):
                yield schema[key]
        properties = schema.get("properties")
        if isinstance(properties, Mapping):
            for name in sorted(properties):
                yield str(name)
                yield from _schema_texts(properties[name])
        for key in ("items", "additionalProperties"):
            yield from _schema_texts(schema.get(key))
        for key in ("anyOf", "oneOf", "allOf"):
            for sub in schema.get(key) or ():
                yield from _schema_texts(sub)
        definitions = schema.get("$defs") or schema.get("definitions")
        if isinstance(definitions, Mapping):
            for name in sorted(definitions):
                yield from _schema_texts(definitions[name])
    elif isinstance(schema, list):
        for sub in schema:
            yield from _schema_texts(sub)


def fields_of(tool: JSON) -> dict[str, list[str]]:
    """The terms of each BM25F field of one exposed tool definition."""
    annotations = tool.get("annotations") or {}
    titles = [tool.get("title"), annotations.get("title") if isinstance(annotations, Mapping) else None]
    fields = {
        "name": tokenize(str(tool["name"])),
        "title": tokenize(" ".join(dict.fromkeys(t for t in titles if isinstance(t, str)))),
        "description": tokenize(str(tool.get("description") or "")),
        "parameters": tokenize(" ".join(_schema_texts(tool.get("inputSchema")))),
    }
    fields["related"] = related_terms({*fields["name"], *fields["title"], *fields["description"]})
    return fields


def build_index(tools: Sequence[JSON]) -> SearchIndex:
    """The BM25F index over exposed tool definitions; the same definitions always give the same index."""
    by_name = {str(t["name"]): t for t in tools}
    if len(by_name) != len(tools):
        raise ValueError("tool names must be unique")
    names = tuple(sorted(by_name))
    docs = [fields_of(by_name[name]) for name in names]
    averages = {f.name: (sum(len(d[f.name]) for d in docs) / len(docs)) if docs else 0.0 for f in FIELDS}

    weighted: dict[str, dict[int, float]] = {}
    for position, doc in enumerate(docs):
        pseudo: dict[str, float] = {}
        for f in FIELDS:
            terms = doc[f.name]
            if not terms:
                continue
            norm = 1 - f.b + f.b * len(terms) / averages[f.name]
            for term, count in Counter(terms).items():
                pseudo[term] = pseudo.get(term, 0.0) + f.weight * count / norm
        for term, tf in pseudo.items():
            weighted.setdefault(term, {})[position] = tf

    total = len(docs)
    postings: dict[str, str] = {}
    for term in sorted(weighted):
        per_tool = weighted[term]
        idf = math.log(1 + (total - len(per_tool) + 0.5) / (len(per_tool) + 0.5))
        entries = []
        for position in sorted(per_tool):
            weight = per_tool[position]
            score = round(idf * weight * (K1 + 1) / (weight + K1) * SCORE_SCALE)
            if score > 0:
                entries.append(f"{position}:{score}")
        if entries:
            postings[term] = " ".join(entries)
    return SearchIndex(tools=names, postings=postings)


def render_index(index: SearchIndex) -> str:
    """`SearchIndex(...)` as Python source for `gateway.py` (the template imports the name)."""
    return f"SearchIndex(tools={pyliteral(tuple(index.tools))}, postings={pyliteral(dict(index.postings))})"
