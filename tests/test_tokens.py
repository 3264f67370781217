"""The token counter: the shipped ranks are tiktoken's o200k_base, counts match published ones, no network."""

from __future__ import annotations

import hashlib
import importlib.util
import re
import socket
from pathlib import Path
from typing import Any

import pytest
from mcpgw import tokens
from mcpgw.tokens import (
    ENCODING,
    PAT_STR,
    RANKS_FILE,
    RANKS_SHA256,
    SPECIAL_TOKENS,
    RanksError,
    count_tokens,
    counted_text,
    encoding,
    load_ranks,
    tool_tokens,
)


def _published_hash() -> str:
    """The expected_hash tiktoken's own openai_public.py gives for o200k_base (read, not imported)."""
    spec = importlib.util.find_spec("tiktoken_ext.openai_public")
    assert spec is not None and spec.origin is not None
    source = Path(spec.origin).read_text(encoding="utf-8")
    found = re.search(r'o200k_base\.tiktoken",\s*expected_hash="([0-9a-f]{64})"', source)
    assert found, "tiktoken no longer publishes an o200k_base hash where this test looks"
    return found.group(1)


def test_the_shipped_ranks_are_the_file_tiktoken_publishes() -> None:
    assert hashlib.sha256(RANKS_FILE.read_bytes()).hexdigest() == RANKS_SHA256 == _published_hash()
    assert RANKS_FILE.stat().st_size < 4_000_000


def test_the_encoding_is_built_as_tiktoken_builds_o200k_base(monkeypatch: pytest.MonkeyPatch) -> None:
    """tiktoken's own constructor, fed the shipped file instead of a download, gives our pattern and specials."""
    import tiktoken_ext.openai_public as public

    asked: list[tuple[str, str | None]] = []

    def local(url: str, expected_hash: str | None = None) -> dict[bytes, int]:
        asked.append((url, expected_hash))
        return load_ranks()

    monkeypatch.setattr(public, "load_tiktoken_bpe", local)
    theirs: dict[str, Any] = public.o200k_base()
    assert asked == [(asked[0][0], RANKS_SHA256)] and asked[0][0].endswith("/o200k_base.tiktoken")
    assert theirs["name"] == ENCODING
    assert theirs["pat_str"] == PAT_STR
    assert theirs["special_tokens"] == SPECIAL_TOKENS
    assert encoding().n_vocab == 200019


# "hello world" → [24912, 2375] is the o200k_base example published across tokenizer ports (Xenova/gpt-4o,
# js-tiktoken users' tests). The other counts were checked against js-tiktoken 1.0.21 (npm), a separate
# implementation of the same encoding, run on the same strings.
KNOWN = [
    ("hello world", 2),
    ("请考试我的软件！12345", 7),  # noqa: RUF001 (tiktoken's own roundtrip sample: full-width on purpose)
    ("Get the current time in a given IANA timezone, e.g. 'Europe/Berlin'.", 20),
    (
        '{"description":"Read the complete contents of a file from the file system.","inputSchema":'
        '{"properties":{"path":{"type":"string"}},"required":["path"],"type":"object"},"name":"read_file"}',
        42,
    ),
    ("<|endoftext|> ignore", 8),
    ("👍🏽 naïve café — \t\n  tabs", 10),
    ("", 0),
]


def test_known_token_ids() -> None:
    assert encoding().encode("hello world") == [24912, 2375]


@pytest.mark.parametrize(("text", "count"), KNOWN)
def test_known_counts(text: str, count: int) -> None:
    assert count_tokens(text) == count


def test_counting_never_touches_the_network(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A fresh encoding (no tiktoken cache dir, no sockets) still counts."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the token counter tried to connect")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "empty"))
    encoding.cache_clear()
    try:
        assert count_tokens("hello world") == 2
    finally:
        encoding.cache_clear()


def test_an_altered_ranks_file_is_refused(tmp_path: Path) -> None:
    altered = tmp_path / "o200k_base.tiktoken"
    altered.write_bytes(RANKS_FILE.read_bytes().replace(b" 0\n", b" 1\n", 1))
    with pytest.raises(RanksError, match="not tiktoken's o200k_base ranks"):
        load_ranks(altered)
    with pytest.raises(RanksError, match="cannot read"):
        load_ranks(tmp_path / "missing.tiktoken")


READ_FILE = {
    "name": "read_file",
    "description": "Read the complete contents of a file from the file system.",
    "inputSchema": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
}


def test_a_tool_costs_its_model_facing_fields_as_compact_sorted_json() -> None:
    assert counted_text(READ_FILE) == KNOWN[3][0]
    assert tool_tokens(READ_FILE) == 42


def test_fields_the_model_never_sees_cost_nothing_and_key_order_is_irrelevant() -> None:
    dressed = {
        "annotations": {"readOnlyHint": True, "title": "Read a file"},
        "title": "Read file",
        "icons": [{"src": "data:image/png;base64,AAAA"}],
        "_meta": {"vendor": {"x": 1}},
        **dict(reversed(list(READ_FILE.items()))),
    }
    assert tool_tokens(dressed) == tool_tokens(READ_FILE)


def test_the_output_schema_counts() -> None:
    with_output = {**READ_FILE, "outputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}}
    assert tool_tokens(with_output) > tool_tokens(READ_FILE)


def test_the_module_names_its_tokenizer() -> None:
    assert tokens.ENCODING == "o200k_base"
