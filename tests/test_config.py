"""The config front end: load → parse with positions → schema → semantic checks → models.

A table of malformed configs pins each exact message (file:line:col, pointer,
expectation); fixtures prove the schema and the models accept the same files;
hypothesis proves no input makes loading raise.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped, unused-ignore]  # stubs not in test deps
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcpgw.config import (
    Backend,
    Config,
    Gateway,
    LintRules,
    NameRules,
    PromptRules,
    ResourceRules,
    config_from_document,
    normalized,
)
from mcpgw.diagnostics import Diagnostic
from mcpgw.jsonpos import Parsed, parse, pointer
from mcpgw.load import load, load_config
from mcpgw.resources import schema_path, template_dir
from mcpgw.validate import schema_errors
from pydantic import ValidationError


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in a fresh folder, so diagnostics name "config.json" exactly as a user would type it."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _load_text(text: str) -> Config | list[Diagnostic]:
    Path("config.json").write_text(text, encoding="utf-8")
    return load_config(Path("config.json"))


def _messages(text: str) -> list[str]:
    result = _load_text(text)
    assert isinstance(result, list), f"expected diagnostics, got {result!r}"
    return [d.format_text() for d in result]


def _config(doc: object) -> Config:
    result = _load_text(json.dumps(doc))
    assert isinstance(result, Config), [d.format_text() for d in result] if isinstance(result, list) else result
    return result


# ---------------------------------------------------------------- the table of malformed configs

BACKEND_FIELDS = (
    "args, client_idle_timeout, client_spawn_rate, command, cwd, description, enabled, env, headers, lint, "
    "max_client_sessions, max_concurrency, max_queue, pin, prefix, prompts, resources, session, startup_timeout, "
    "timeout, tool_timeouts, "
    "tools, type, url"
)
MALFORMED: list[tuple[str, str, list[str]]] = [
    (
        "args given as a string",
        '{\n  "mcpServers": {\n    "bash": {\n      "command": "python",\n      "args": "servers/bash_server.py"\n'
        "    }\n  }\n}\n",
        ['config.json:5:15: /mcpServers/bash/args: expected an array of strings, got "servers/bash_server.py"'],
    ),
    (
        "misspelt field, did-you-mean and no second error about the missing command",
        '{"bash": {"comand": "python"}}',
        [
            'config.json:1:11: /bash/comand: unknown field "comand" (did you mean "command"?); '
            f"valid fields: {BACKEND_FIELDS}"
        ],
    ),
    (
        "a field from another client's config",
        '{"bash": {"command": "x", "disabled": true}}',
        [
            'config.json:1:27: /bash/disabled: unknown field "disabled" (write "enabled": false instead); '
            f"valid fields: {BACKEND_FIELDS}"
        ],
    ),
    (
        "type typo",
        '{"a": {"type": "studio", "command": "x"}}',
        [
            'config.json:1:16: /a/type: expected one of "stdio", "sse", "http", "streamable-http", "streamableHttp", '
            'got "studio" (did you mean "stdio"?)'
        ],
    ),
    (
        "neither command nor url",
        '{"a": {"args": []}}',
        ['config.json:1:7: /a: a backend needs "command" (stdio) or "url" (sse/http)'],
    ),
    (
        "headers on a backend inferred to be stdio",
        '{"a": {"command": "x", "headers": {"A": "b"}}}',
        ['config.json:1:35: /a/headers: "headers" applies only to sse/http backends, which need "url"'],
    ),
    ("stdio without command", '{"a": {"type": "stdio"}}', ['config.json:1:7: /a: a stdio backend needs "command"']),
    ("http without url", '{"a": {"type": "http"}}', ['config.json:1:7: /a: an sse or http backend needs "url"']),
    (
        "url on a stdio backend",
        '{"a": {"type": "stdio", "command": "x", "url": "http://h/mcp"}}',
        [
            'config.json:1:48: /a/url: "url" does not apply to a stdio backend; '
            'remove it or set "type" to "http" or "sse"'
        ],
    ),
    (
        "timeout zero",
        '{"a": {"command": "x", "timeout": 0}}',
        ["config.json:1:35: /a/timeout: expected a number greater than 0, got 0"],
    ),
    (
        "timeout as a string",
        '{"a": {"command": "x", "timeout": "60"}}',
        ['config.json:1:35: /a/timeout: expected a number, got "60"'],
    ),
    (
        "per-tool timeout negative",
        '{"a": {"command": "x", "tool_timeouts": {"build": -1}}}',
        ["config.json:1:51: /a/tool_timeouts/build: expected a number greater than 0, got -1"],
    ),
    (
        "tool_timeouts as an array",
        '{"a": {"command": "x", "tool_timeouts": []}}',
        ["config.json:1:41: /a/tool_timeouts: expected an object with number values, got an array"],
    ),
    (
        "env value not a string",
        '{"a": {"command": "x", "env": {"PORT": 8080}}}',
        ["config.json:1:40: /a/env/PORT: expected a string, got 8080"],
    ),
    ("null command", '{"a": {"command": null}}', ["config.json:1:19: /a/command: expected a string, got null"]),
    ("empty command", '{"a": {"command": ""}}', ['config.json:1:19: /a/command: expected a non-empty string, got ""']),
    (
        "session typo",
        '{"a": {"command": "x", "session": "per_client"}}',
        [
            'config.json:1:35: /a/session: expected one of "shared", "per-client", got "per_client" '
            '(did you mean "per-client"?)'
        ],
    ),
    (
        "invalid backend name, located at the key",
        '{"mcpServers": {\n  "my server": {"command": "x"}\n}}',
        [
            "config.json:2:3: /mcpServers/my server: invalid backend name: "
            'expected 1 to 64 letters, digits, "_" or "-", got "my server"'
        ],
    ),
    (
        "malformed variable reference",
        '{"a": {"command": "x", "args": ["--token", "${TOKEN"]}}',
        ['config.json:1:44: /a/args/1: malformed variable reference in "${TOKEN": write ${NAME} or ${NAME:-default}'],
    ),
    (
        "url scheme",
        '{"a": {"url": "ws://h/mcp"}}',
        ['config.json:1:15: /a/url: unsupported URL scheme "ws": expected http:// or https://'],
    ),
    (
        "url without scheme",
        '{"a": {"url": "localhost:8000/mcp"}}',
        ['config.json:1:15: /a/url: expected an http:// or https:// URL, got "localhost:8000/mcp"'],
    ),
    (
        "url without host",
        '{"a": {"url": "http:///mcp"}}',
        ['config.json:1:15: /a/url: the URL has no host: "http:///mcp"'],
    ),
    (
        "two tools renamed to one name",
        '{"a": {"command": "x", "tools": {"rename": {"run": "go", "start": "go"}}}}',
        [
            'config.json:1:67: /a/tools/rename/start: "start" and "run" are both renamed to "go"; '
            "exposed names must be unique"
        ],
    ),
    (
        "describe on prompts",
        '{"a": {"command": "x", "prompts": {"describe": {}}}}',
        ['config.json:1:36: /a/prompts/describe: unknown field "describe"; valid fields: exclude, include, rename'],
    ),
    (
        "gateway port out of range and unknown gateway field",
        '{"gateway": {"port": 70000, "hots": "0.0.0.0"}}',
        [
            "config.json:1:22: /gateway/port: expected at most 65535, got 70000",
            'config.json:1:29: /gateway/hots: unknown field "hots" (did you mean "host"?); '
            "valid fields: allowed_hosts, allowed_origins, audit, auth, body_timeout, header_timeout, host, "
            "instructions, limits, log_dir, max_body_bytes, max_connections, max_header_bytes, max_headers, "
            "max_name_length, max_sessions, max_sessions_per_caller, max_sse_streams, name, policy, port, profiles, "
            "separator, session_idle_timeout, tracing",
        ],
    ),
    (
        "separator outside the tool-name alphabet",
        '{"gateway": {"separator": "."}}',
        [
            'config.json:1:27: /gateway/separator: expected letters, digits, "_" or "-" (or "/", which breaks the '
            'Anthropic and OpenAI tool-name rules), got "."'
        ],
    ),
    (
        "port not an integer",
        '{"gateway": {"port": 9000.5}}',
        ["config.json:1:22: /gateway/port: expected an integer, got 9000.5"],
    ),
    (
        "misspelt top-level field in the clients' shape",
        '{"mcpServers": {}, "gatway": {}}',
        [
            'config.json:1:20: /gatway: unknown field "gatway" (did you mean "gateway"?); '
            "valid fields: $schema, gateway, mcpServers"
        ],
    ),
    (
        "a backend beside mcpServers",
        '{"mcpServers": {},\n "bash": {"command": "x"}}',
        [
            'config.json:2:2: /bash: unknown field "bash" (a backend? move it into "mcpServers"); '
            "valid fields: $schema, gateway, mcpServers"
        ],
    ),
    (
        "mcpServers not an object",
        '{"mcpServers": []}',
        ["config.json:1:16: /mcpServers: expected an object, got an array"],
    ),
    ("top level not an object", "[1, 2]", ["config.json:1:1: expected an object, got an array"]),
    ("$schema not a string", '{"$schema": 1}', ["config.json:1:13: /$schema: expected a string, got 1"]),
    (
        "pointer escaping in env names",
        '{"a": {"command": "x", "env": {"a/b~c": 1}}}',
        ["config.json:1:41: /a/env/a~1b~0c: expected a string, got 1"],
    ),
    (
        "duplicate key",
        '{"a": {"command": "x",\n       "command": "y"}}',
        ['config.json:2:8: /a/command: duplicate key "command" (first at 1:8); only one of them would be used'],
    ),
    # invalid JSON: one diagnostic at the exact spot
    (
        "trailing comma",
        '{\n  "a": {"command": "x",}\n}',
        ["config.json:2:24: invalid JSON: trailing comma before '}' is not allowed in JSON"],
    ),
    (
        "missing comma",
        '{\n  "a": {"command": "x"}\n  "b": {}\n}',
        ["config.json:3:3: invalid JSON: expected ',' or '}' after an object member, got '\"' (missing comma?)"],
    ),
    ("comment", '{\n  // tools\n  "a": {}\n}', ["config.json:2:3: invalid JSON: comments are not allowed in JSON"]),
    ("single quotes", "{'a': {}}", ["config.json:1:2: invalid JSON: object keys need double quotes"]),
    (
        "Python literal",
        '{"a": {"enabled": True}}',
        ["config.json:1:19: invalid JSON: unexpected True; JSON spells it true"],
    ),
    ("unterminated string", '{"a": {"command": "x}}\n', ["config.json:1:19: invalid JSON: unterminated string"]),
    ("empty file", "\n", ["config.json:1:1: invalid JSON: the file is empty; an empty config is {}"]),
    ("two values", "{}\n{}\n", ["config.json:2:1: invalid JSON: unexpected text after the end of the JSON value"]),
    ("leading zero", '{"gateway": {"port": 09000}}', ["config.json:1:22: invalid JSON: invalid number 09000"]),
    (
        "bad escape",
        '{"a": {"cwd": "C:\\tools\\x"}}',
        ['config.json:1:24: invalid JSON: invalid escape \\x; JSON allows \\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX'],
    ),
]


@pytest.mark.parametrize(("text", "expected"), [(t, e) for _, t, e in MALFORMED], ids=[n for n, _, _ in MALFORMED])
def test_malformed_config_messages(in_tmp: Path, text: str, expected: list[str]) -> None:
    assert _messages(text) == expected


def test_every_mistake_is_reported_at_once(in_tmp: Path) -> None:
    text = json.dumps(
        {
            "mcpServers": {
                "bash": {"command": "python", "args": "servers/bash_server.py"},
                "web": {"url": "https://h/mcp", "timeout": -5},
            },
            "gateway": {"prot": 9000},
        },
        indent=2,
    )
    messages = _messages(text)
    assert len(messages) == 3, messages
    assert [m.split(": ")[1] for m in messages] == ["/mcpServers/bash/args", "/mcpServers/web/timeout", "/gateway/prot"]


def test_invalid_utf8_is_located(in_tmp: Path) -> None:
    Path("config.json").write_bytes(b'{\n  "a": {"command": "caf\xe9"}\n}\n')
    assert _load_text_bytes() == ["config.json:2:24: not UTF-8: byte 0xe9 cannot be decoded"]


def _load_text_bytes() -> list[str]:
    result = load_config(Path("config.json"))
    assert isinstance(result, list)
    return [d.format_text() for d in result]


def test_missing_and_unreadable_files_are_diagnostics_at_1_1(in_tmp: Path) -> None:
    assert [d.format_text() for d in _as_list(load_config(Path("nope.json")))] == [
        "nope.json:1:1: cannot read config: No such file or directory"
    ]
    Path("folder.json").mkdir()
    (only,) = _as_list(load_config(Path("folder.json")))
    assert (only.line, only.col, only.severity) == (1, 1, "error")


def _as_list(result: Config | list[Diagnostic]) -> list[Diagnostic]:
    assert isinstance(result, list)
    return result


def test_byte_order_mark_is_accepted(in_tmp: Path) -> None:
    Path("config.json").write_bytes(b'\xef\xbb\xbf{"a": {"command": "x"}}')
    assert isinstance(load_config(Path("config.json")), Config)


# ---------------------------------------------------------------- warnings


def test_slash_separator_is_allowed_with_a_warning(in_tmp: Path) -> None:
    Path("config.json").write_text('{"a": {"command": "x"},\n "gateway": {"separator": "/"}}')
    loaded = load(Path("config.json"))
    assert loaded.config is not None and loaded.config.gateway.separator == "/"
    (warning,) = loaded.diagnostics
    assert warning.severity == "warning"
    assert warning.format_text().startswith('config.json:2:27: /gateway/separator: warning: separator "/" breaks')
    assert isinstance(load_config(Path("config.json")), Config)


def test_misspelt_reserved_key_in_the_seed_shape_warns(in_tmp: Path) -> None:
    messages = _messages('{"mcpservers": {"a": {"command": "x"}}}')
    assert (
        messages[0]
        == 'config.json:1:2: /mcpservers: warning: "mcpservers" is read as a backend name; did you mean "mcpServers"?'
    )


# ---------------------------------------------------------------- shapes, inference, aliases, defaults

SEED = {
    "$schema": "./schemas/config.schema.json",
    "bash": {"command": "python", "args": ["servers/bash_server.py"]},
    "docs": {"url": "https://docs.example.com/mcp", "headers": {"Authorization": "Bearer ${DOCS_TOKEN}"}},
    "gateway": {"port": 9100},
}
CLIENTS = {
    "mcpServers": {k: v for k, v in SEED.items() if k not in ("$schema", "gateway")},
    "gateway": {"port": 9100},
}


def test_both_shapes_give_equal_models(in_tmp: Path) -> None:
    seed, clients = _config(SEED), _config(CLIENTS)
    assert (seed.shape, clients.shape) == ("seed", "mcpServers")
    assert seed.backends == clients.backends
    assert seed.gateway == clients.gateway
    assert normalized(seed) == normalized(clients)


def test_backends_are_sorted_and_named_by_key(in_tmp: Path) -> None:
    config = _config({"zeta": {"command": "z"}, "alpha": {"command": "a"}, "mid": {"command": "m"}})
    assert list(config.backends) == ["alpha", "mid", "zeta"]
    assert [b.name for b in config.backends.values()] == ["alpha", "mid", "zeta"]


@pytest.mark.parametrize(
    ("backend", "expected"),
    [
        ({"command": "python"}, "stdio"),
        ({"url": "http://127.0.0.1:8001/sse"}, "sse"),
        ({"url": "http://127.0.0.1:8001/v1/sse/"}, "sse"),
        ({"url": "http://127.0.0.1:8001/sse?key=1"}, "sse"),
        ({"url": "http://127.0.0.1:8001/mcp"}, "http"),
        ({"url": "https://example.com/ssestream"}, "http"),
        ({"url": "${DOCS_URL}"}, "http"),
        ({"url": "http://127.0.0.1:8001/mcp", "command": "python", "args": ["server.py"]}, "http"),
        ({"type": "http", "url": "http://h/sse"}, "http"),
        ({"type": "streamable-http", "url": "http://h/mcp"}, "http"),
        ({"type": "streamableHttp", "url": "http://h/mcp"}, "http"),
        ({"type": "sse", "url": "http://h/events"}, "sse"),
        ({"type": "stdio", "command": "x"}, "stdio"),
    ],
)
def test_type_inference_and_aliases(in_tmp: Path, backend: dict[str, Any], expected: str) -> None:
    assert _config({"a": backend}).backends["a"].type == expected


def test_defaults_are_filled(in_tmp: Path) -> None:
    config = _config({"a": {"command": "x"}})
    backend = config.backends["a"]
    assert backend == Backend(name="a", type="stdio", command="x")
    assert (backend.enabled, backend.prefix, backend.timeout, backend.startup_timeout) == (True, None, 60.0, 30.0)
    assert (backend.session, backend.pin, backend.args, backend.env, backend.cwd) == ("shared", "strict", [], {}, None)
    assert backend.tools == NameRules(include=["*"], exclude=[], rename={}, describe={})
    assert backend.prompts == PromptRules(include=["*"], exclude=[], rename={})
    assert backend.resources == ResourceRules(include=["*"], exclude=[])
    assert config.gateway == Gateway(
        name="mcpgw",
        separator="__",
        max_name_length=64,
        host="127.0.0.1",
        port=9000,
        log_dir="logs",
        allowed_origins=[],
        allowed_hosts=[],
        max_body_bytes=4194304,
        instructions=None,
    )


def _schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(schema_path("config.schema.json").read_text(encoding="utf-8"))
    return loaded


def _resolved(prop: dict[str, Any]) -> dict[str, Any]:
    ref = prop.get("$ref", "")
    return {**_schema()["$defs"][ref.removeprefix("#/$defs/")], **prop} if ref else prop


@pytest.mark.parametrize(("definition", "model"), [("backend", Backend), ("gateway", Gateway)])
def test_schema_documents_every_field_with_the_models_defaults(definition: str, model: type[Backend | Gateway]) -> None:
    """Editors autocomplete from the schema, so it must describe every field and agree on defaults."""
    props = {k: _resolved(v) for k, v in _schema()["$defs"][definition]["properties"].items()}
    assert set(props) == set(model.model_fields) - ({"name"} if model is Backend else set())
    for field, prop in props.items():
        assert prop.get("description"), field
        assert prop.get("examples"), field
        info = model.model_fields[field]
        default = None if info.is_required() else info.get_default(call_default_factory=True)
        if default is not None:
            if isinstance(default, NameRules | PromptRules | ResourceRules | LintRules):
                default = default.model_dump()
            assert prop.get("default") == default, field


def test_schema_is_valid_2020_12_and_found_by_resources() -> None:
    schema = _schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] and schema["title"] and schema["description"]
    assert (template_dir() / "gateway.py.jinja").is_file()


# ---------------------------------------------------------------- normalized config


def test_normalized_is_canonical_json_with_variables_unexpanded(in_tmp: Path) -> None:
    config = _config(
        {
            "mcpServers": {
                "b": {"url": "https://h/mcp", "headers": {"Authorization": "Bearer ${TOKEN}"}},
                "a": {"type": "streamableHttp", "url": "https://h/mcp"},
            }
        }
    )
    norm = normalized(config)
    assert json.loads(json.dumps(norm)) == norm
    assert list(norm) == ["backends", "gateway"]
    assert list(norm["backends"]) == ["a", "b"]
    assert list(norm["backends"]["b"]) == sorted(norm["backends"]["b"])
    assert norm["backends"]["b"]["headers"] == {"Authorization": "Bearer ${TOKEN}"}
    assert norm["backends"]["a"]["type"] == "http"
    assert norm["backends"]["a"]["timeout"] == 60.0
    assert norm["gateway"]["separator"] == "__"


def test_normalized_ignores_key_order_and_spelling_of_defaults(in_tmp: Path) -> None:
    one = _config({"a": {"command": "x", "timeout": 60, "type": "stdio"}, "b": {"url": "http://h/mcp"}})
    two = _config({"b": {"type": "http", "url": "http://h/mcp"}, "a": {"timeout": 60.0, "command": "x"}})
    assert normalized(one) == normalized(two)


# ---------------------------------------------------------------- schema and models agree

AGREEMENT: list[tuple[object, bool]] = [
    ({}, True),
    ({"mcpServers": {}}, True),
    (SEED, True),
    (CLIENTS, True),
    ({"$schema": "x", "a": {"command": "x"}}, True),
    ({"mcpServers": {"gateway": {"command": "x"}}}, True),
    ({"a": {"command": "x", "prefix": ""}}, True),
    ({"a": {"url": "http://h/mcp", "command": "python", "args": [], "env": {}, "cwd": "."}}, True),
    (
        {
            "a": {
                "command": "x",
                "tools": {"include": ["a*"], "exclude": [], "rename": {"a": "b"}, "describe": {"a": ""}},
            }
        },
        True,
    ),
    ({"a": {"command": "x", "tool_timeouts": {"t": 0.5}, "timeout": 1, "startup_timeout": 2.5}}, True),
    ({"gateway": {"port": 9000.0, "max_name_length": 64.0, "max_body_bytes": 1e9}}, True),
    ({"gateway": {"separator": "/"}}, True),
    ({"gateway": {"separator": "-", "instructions": "", "allowed_hosts": ["*"]}}, True),
    ({"x" * 64: {"command": "x"}}, True),
    ([], False),
    ("config", False),
    (None, False),
    ({"mcpServers": None}, False),
    ({"mcpServers": {}, "extra": {}}, False),
    ({"mcpServers": {}, "backends": {}}, False),
    ({"$schema": 1}, False),
    ({"gateway": None}, False),
    ({"a": None}, False),
    ({"a": {}}, False),
    ({"a": {"name": "a", "command": "x"}}, False),
    ({"a": {"command": None}}, False),
    ({"a": {"command": ""}}, False),
    ({"a": {"command": "x", "prefix": None}}, False),
    ({"a": {"command": "x", "enabled": 1}}, False),
    ({"a": {"command": "x", "timeout": True}}, False),
    ({"a": {"command": "x", "timeout": 0}}, False),
    ({"a": {"command": "x", "timeout": "60"}}, False),
    ({"a": {"command": "x", "args": "x"}}, False),
    ({"a": {"command": "x", "args": [1]}}, False),
    ({"a": {"command": "x", "env": {"A": 1}}}, False),
    ({"a": {"command": "x", "headers": {}}}, False),
    ({"a": {"url": "http://h/mcp", "headers": {}}}, True),
    ({"a": {"type": "stdio", "command": "x", "headers": {}}}, False),
    ({"a": {"type": "stdio", "command": "x", "url": "http://h"}}, False),
    ({"a": {"type": "http", "command": "x"}}, False),
    ({"a": {"type": "websocket", "url": "ws://h"}}, False),
    ({"a": {"type": 1, "command": "x"}}, False),
    ({"a": {"url": 5}}, False),
    ({"a": {"url": ""}}, False),
    ({"a": {"command": "x", "tools": {"rename": {"a": ""}}}}, False),
    ({"a": {"command": "x", "prompts": {"describe": {}}}}, False),
    ({"a": {"command": "x", "resources": {"rename": {}}}}, False),
    ({"a": {"command": "x", "session": "per_client"}}, False),
    ({"a": {"command": "x", "pin": "loose"}}, False),
    ({"a": {"command": "x", "tool_timeouts": {"t": 0}}}, False),
    ({"x" * 65: {"command": "x"}}, False),
    ({"bad\n": {"command": "x"}}, False),
    ({"my server": {"command": "x"}}, False),
    ({"": {"command": "x"}}, False),
    ({"gateway": {"separator": "/\n"}}, False),
    ({"gateway": {"separator": ""}}, False),
    ({"gateway": {"port": 0}}, False),
    ({"gateway": {"port": 65536}}, False),
    ({"gateway": {"port": 9000.5}}, False),
    ({"gateway": {"port": True}}, False),
    ({"gateway": {"max_name_length": 0}}, False),
    ({"gateway": {"name": ""}}, False),
    ({"gateway": {"instructions": None}}, False),
    ({"gateway": {"allowed_origins": "*"}}, False),
    ({"gateway": {"mcpServers": {}}}, False),
]


def _model_accepts(document: object) -> bool:
    try:
        config_from_document(document)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize(("document", "valid"), AGREEMENT, ids=[json.dumps(d)[:60] for d, _ in AGREEMENT])
def test_schema_and_models_agree(document: object, valid: bool) -> None:
    assert (not schema_errors(document)) is valid, schema_errors(document)
    assert _model_accepts(document) is valid


# ---------------------------------------------------------------- positions and diagnostics


def test_positions_of_values_and_keys_use_escaped_pointers() -> None:
    parsed = parse('{\n  "a/b": {"c~d": [1, {"e": null}]}\n}', "x.json")
    assert isinstance(parsed, Parsed)
    assert parsed.values["/a~1b/c~0d/1/e"] == (2, 28)
    assert parsed.keys["/a~1b/c~0d"] == (2, 11)
    assert parsed.values["/a~1b/c~0d/0"] == (2, 19)
    assert parsed.locate("/a~1b/missing/deeper") == (2, 10)
    assert pointer(["a/b", "c~d", 0]) == "/a~1b/c~0d/0"


def test_surrogate_pairs_and_escapes_decode() -> None:
    parsed = parse('{"k": "\\ud83d\\ude00 \\u00e9\\n\\/"}', "x.json")
    assert isinstance(parsed, Parsed)
    assert parsed.value == {"k": "\U0001f600 \u00e9\n/"}


def test_diagnostic_formats() -> None:
    d = Diagnostic("config.json", 12, 5, "/mcpServers/bash/args", 'expected an array of strings, got "x"')
    assert d.format_text() == 'config.json:12:5: /mcpServers/bash/args: expected an array of strings, got "x"'
    assert d.format_github() == (
        '::error file=config.json,line=12,col=5::/mcpServers/bash/args: expected an array of strings, got "x"'
    )
    assert d.to_json() == {
        "file": "config.json",
        "line": 12,
        "col": 5,
        "pointer": "/mcpServers/bash/args",
        "message": 'expected an array of strings, got "x"',
        "severity": "error",
    }
    w = Diagnostic("dir,1/c:f.json", 1, 1, "", "50% done\nnext", "warning")
    assert w.format_text() == "dir,1/c:f.json:1:1: warning: 50% done\nnext"
    assert w.format_github() == "::warning file=dir%2C1/c%3Af.json,line=1,col=1::50%25 done%0Anext"


# ---------------------------------------------------------------- properties

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["", "stdio", "sse", "http", "streamableHttp", "http://h/sse", "${X}", "${", "/", "*"])
)


def _containers_json(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Lists and objects of `inner` (a named function: hypothesis reads its source to check it recurses)."""
    return st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)


_json = st.recursive(
    _scalars,
    _containers_json,
    max_leaves=12,
)


def _field(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return valid | _json


_strs = st.lists(st.sampled_from(["a", "*", "${A}", "x y"]), max_size=2)
_str_map = st.dictionaries(st.sampled_from(["A", "B/C"]), st.sampled_from(["v", "${V}"]), max_size=2)
_rules = st.fixed_dictionaries(
    {},
    optional={
        "include": _field(_strs),
        "exclude": _field(_strs),
        "rename": _field(st.dictionaries(st.sampled_from(["a", "b"]), st.sampled_from(["c", ""]), max_size=2)),
        "describe": _field(st.dictionaries(st.just("a"), st.just("text"), max_size=1)),
    },
)
_seconds = _field(st.sampled_from([0, 0.5, 60, -1, 1e300]))
_backend = st.fixed_dictionaries(
    {},
    optional={
        "type": _field(st.sampled_from(["stdio", "sse", "http", "streamable-http", "streamableHttp", "ws"])),
        "command": _field(st.sampled_from(["python", ""])),
        "args": _field(_strs),
        "env": _field(_str_map),
        "cwd": _field(st.sampled_from(["", "servers"])),
        "url": _field(st.sampled_from(["http://h/mcp", "https://h/sse", "ws://h", ""])),
        "headers": _field(_str_map),
        "enabled": _field(st.booleans()),
        "prefix": _field(st.sampled_from(["", "p"])),
        "tools": _field(_rules),
        "prompts": _field(_rules),
        "resources": _field(_rules),
        "timeout": _seconds,
        "tool_timeouts": _field(st.dictionaries(st.just("t"), _seconds, max_size=1)),
        "startup_timeout": _seconds,
        "session": _field(st.sampled_from(["shared", "per-client"])),
        "pin": _field(st.sampled_from(["strict", "warn", "off"])),
        "description": _field(st.just("text")),
        "name": st.just("a"),
        "comand": st.just("x"),
    },
)
_gateway = st.fixed_dictionaries(
    {},
    optional={
        "name": _field(st.sampled_from(["gw", ""])),
        "separator": _field(st.sampled_from(["__", "/", ".", "", "-\n"])),
        "max_name_length": _field(st.sampled_from([64, 64.0, 0, 64.5])),
        "port": _field(st.sampled_from([9000, 0, 65536, 9000.0])),
        "allowed_hosts": _field(_strs),
        "max_body_bytes": _field(st.sampled_from([1, 1e9, 0])),
        "instructions": _field(st.just("hi")),
        "hots": st.just("x"),
    },
)
_names = st.sampled_from(
    ["bash", "a-b_1", "x" * 64, "x" * 65, "my server", "gateway", "$schema", "", "ok\n", "mcpServers", "inputs"]
)
_servers = st.dictionaries(_names, _field(_backend), max_size=3)
_documents = (
    st.fixed_dictionaries({"mcpServers": _field(_servers)}, optional={"gateway": _field(_gateway), "$schema": _json})
    | st.builds(lambda s, g: {**s, **g}, _servers, st.fixed_dictionaries({}, optional={"gateway": _field(_gateway)}))
    | st.fixed_dictionaries(
        {"servers": _field(_servers)},
        optional={"gateway": _field(_gateway), "inputs": st.sampled_from([[], [{"id": "k"}], [1], {}]), "x": _json},
    )
    | _json
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_documents)
def test_schema_and_models_agree_on_generated_documents(document: object) -> None:
    assert (not schema_errors(document)) is _model_accepts(document)


def _check_load(text: str | bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.json"
        path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
        result = load_config(path)
    if isinstance(result, Config):
        return
    assert result, "an empty diagnostic list is neither a config nor an error"
    assert any(d.severity == "error" for d in result)
    lines = (text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")).count(b"\n") + 1
    for d in result:
        assert d.file == str(path)
        assert 1 <= d.line <= lines and d.col >= 1
        assert d.pointer == "" or d.pointer.startswith("/")


@settings(max_examples=300, deadline=None)
@given(st.one_of(_documents, _json))
def test_any_json_value_loads_to_a_config_or_located_diagnostics(document: object) -> None:
    _check_load(json.dumps(document, indent=1 if isinstance(document, dict) else None))


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(list('{}[]:,"\\ \n\tab01-.eEtrufalsn/*u')), max_size=40) | st.binary(max_size=30)
)
def test_any_text_loads_without_raising(text: str | bytes) -> None:
    _check_load(text)


def test_example_configs_in_the_schema_load(in_tmp: Path) -> None:
    for example in _schema()["examples"]:
        assert isinstance(_config(example), Config)
