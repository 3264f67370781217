"""Unit tests of the runtime modules on their own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp.shared.exceptions import MCPError
from mcpgw.pyliteral import pyliteral
from mcpgw_runtime.envsubst import UnsetVariableError, expand, malformed, redact, secret_values
from mcpgw_runtime.front import HANDSHAKE_VERSIONS, HEAVY_PACKAGES, SESSION_NOT_FOUND, _missing_core, starting_health
from mcpgw_runtime.front_backends import strip_meta
from mcpgw_runtime.gateway_server import _decode_cursor, _encode_cursor
from mcpgw_runtime.guard import Guard
from mcpgw_runtime.pipes import resolve
from mcpgw_runtime.spec import BackendSpec


def test_expand_references_defaults_and_unset() -> None:
    env = {"A": "1", "EMPTY": ""}
    assert expand("x${A}y${B:-two}z", "backend 'b'", env) == "x1ytwoz"
    assert expand("${EMPTY:-d}", "backend 'b'", env) == ""
    with pytest.raises(UnsetVariableError, match="MISSING is not set \\(needed by backend 'b'\\)"):
        expand("${MISSING}", "backend 'b'", env)
    assert malformed("${not closed") and malformed("${1BAD}") and not malformed("$HOME ${OK} ${X:-y}")


def test_resolve_python_alias_and_cwd(tmp_path: Path) -> None:
    import sys

    spec = BackendSpec(name="b", type="stdio", command="python", args=("s.py", "${V}"), cwd="sub")
    resolved = resolve(spec, tmp_path, {"V": "v"})
    assert resolved.command == [sys.executable, "s.py", "v"]
    assert resolved.cwd == str(tmp_path / "sub")
    assert resolve(BackendSpec(name="b", type="stdio", command="x"), tmp_path, {}).cwd == str(tmp_path)


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("127.0.0.1:9000", True),
        ("localhost", True),
        ("[::1]:9000", True),
        ("gw.internal:443", True),
        ("evil.example", False),
        (None, False),
        ("127.0.0.1.evil.example", False),
        ("localhost:evil", False),
        ("127.0.0.1:9000x", False),
        ("gw.internal:", False),
        ("[::1]:9000x", False),
        ("[::1]x", False),
        ("localhost:65536", False),
    ],
)
def test_guard_hosts(host: str | None, ok: bool) -> None:
    guard = Guard.for_bind("127.0.0.1", 9000, ["gw.internal"], [], None)
    assert guard.host_ok(host) is ok


def test_guard_origins_and_token() -> None:
    guard = Guard.for_bind("127.0.0.1", 9000, [], ["https://app.example"], "tok")
    assert guard.origin_ok(None) and guard.origin_ok("http://localhost:5173") and guard.origin_ok("https://app.example")
    assert not guard.origin_ok("http://localhost.evil.example") and not guard.origin_ok("null")
    assert guard.origin_ok("http://[::1]:9000") and guard.origin_ok("https://app.example:8443")
    assert not guard.origin_ok("http://localhost:evil") and not guard.origin_ok("https://app.example:443x")
    assert not guard.origin_ok("http://[::1]:9000x") and not guard.origin_ok("http://localhost:0")
    assert guard.token_ok("Bearer tok") and guard.token_ok("bearer tok")
    assert not guard.token_ok("Bearer tok2") and not guard.token_ok(None) and not guard.token_ok("tok")


def test_cursor_round_trip_and_garbage() -> None:
    assert _decode_cursor(_encode_cursor(2, "abc")) == (2, "abc")
    assert _decode_cursor(_encode_cursor(0, None)) == (0, None)
    with pytest.raises(MCPError):
        _decode_cursor("not-base64!")


def test_strip_meta_keeps_request_keys_only() -> None:
    params = {"name": "t", "_meta": {"progressToken": 1, "io.modelcontextprotocol/clientInfo": {}}}
    assert strip_meta(params) == {"name": "t", "_meta": {"progressToken": 1}}
    assert strip_meta({"name": "t", "_meta": {"io.modelcontextprotocol/x": 1}}) == {"name": "t"}


def test_front_negotiates_the_versions_the_sdk_does() -> None:
    from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

    assert HANDSHAKE_VERSIONS == HANDSHAKE_PROTOCOL_VERSIONS


def test_the_lazy_front_checks_for_every_package_the_front_keeps_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading the core on demand, the front says at start which package it lacks, for each it keeps out."""
    import importlib.util

    assert _missing_core() is None
    real = importlib.util.find_spec
    for gone in HEAVY_PACKAGES:
        monkeypatch.setattr(
            importlib.util, "find_spec", lambda name, *a, gone=gone: None if name == gone else real(name, *a)
        )
        missing = _missing_core()
        assert missing is not None and str(missing) == f"No module named {gone}"


def test_front_answers_an_unknown_session_as_the_sdk_does() -> None:
    """Before the core loads the front answers 404 itself; the body must be the SDK's, byte for byte."""
    from mcp.server.streamable_http_manager import _error_response

    response = _error_response("Session not found", 404)
    assert (response.status_code, bytes(response.body)) == (404, SESSION_NOT_FOUND)


def test_pyliteral_is_sorted_and_typed() -> None:
    assert pyliteral({"b": [1, None, True], "a": ("x",)}) == "{'a': ('x',), 'b': [1, None, True]}"


def test_redact_puts_every_expanded_secret_back_as_its_reference() -> None:
    environ = {"KEY": "sk-live-0123456789", "PORT": "8080", "ON": "on", "LONGER": "sk-live-0123456789-extra"}
    found = secret_values(["https://api.example/${PORT}?k=${KEY}", "${ON}", "${LONGER}", "${UNSET:-x}"], environ)
    assert found == {"sk-live-0123456789": "${KEY}", "sk-live-0123456789-extra": "${LONGER}"}
    text = "GET https://api.example:8080/?k=sk-live-0123456789 failed; also sk-live-0123456789-extra, on"
    assert redact(text, found) == "GET https://api.example:8080/?k=${KEY} failed; also ${LONGER}, on"


@pytest.mark.parametrize("backends", [0, 3])
def test_front_health_is_the_cores_before_any_backend_ran(tmp_path: Path, backends: int) -> None:
    """`/healthz` before the core (front.starting_health) reads like the core's own at that moment."""
    import anyio
    from mcpgw_runtime.gateway_server import Gateway
    from mcpgw_runtime.spec import GatewaySpec

    specs = (
        BackendSpec(name="b", type="stdio", command="x", pin="strict"),
        BackendSpec(name="a", type="http", url="http://127.0.0.1:1/mcp", pin="warn"),
        BackendSpec(name="c", type="stdio", command="y", session="per-client"),
    )[:backends]
    spec = GatewaySpec(
        name="g", version="1", generator="1", config_dir=".", backends=specs, tools=(), tool_routes={},
        prompts=(), prompt_routes={}, resource_templates=(), resources={}, tool_pins={}, prompt_pins={},
    )  # fmt: skip

    async def core_health() -> object:
        return Gateway(spec, tmp_path).health()

    assert anyio.run(core_health) == starting_health(spec)


def test_the_fronts_handshake_with_a_backend_is_the_sdk_clients() -> None:
    """`--lazy-core` initializes backends itself: as the core's ClientSession would (open_backend)."""
    import anyio
    import mcp_types as types
    from mcp.client import session as client_session
    from mcp.client.stdio import DEFAULT_INHERITED_ENV_VARS
    from mcp.shared.jsonrpc_dispatcher import JSONRPCDispatcher
    from mcpgw_runtime import forwarding, front_backends

    async def advertised() -> object:
        send, receive = anyio.create_memory_object_stream[Any](1)
        async with send, receive:
            session = client_session.ClientSession(
                dispatcher=JSONRPCDispatcher(receive, send),
                sampling_callback=prestart_callback,
                elicitation_callback=prestart_callback,
                list_roots_callback=prestart_callback,
            )
            caps = session._build_capabilities(client_session.LATEST_HANDSHAKE_VERSION)
            return caps.model_dump(by_alias=True, mode="json", exclude_none=True)

    async def prestart_callback(context: Any, params: Any = None) -> types.ErrorData:
        return types.ErrorData(code=0, message="")

    assert anyio.run(advertised) == front_backends.CLIENT_CAPABILITIES
    assert client_session.LATEST_HANDSHAKE_VERSION == front_backends.HANDSHAKE_VERSION
    assert tuple(DEFAULT_INHERITED_ENV_VARS) == front_backends.INHERITED_ENV
    codes = (forwarding.INVALID_REQUEST, forwarding.INVALID_PARAMS, forwarding.INTERNAL_ERROR)
    assert codes == (types.INVALID_REQUEST, types.INVALID_PARAMS, types.INTERNAL_ERROR)
    assert forwarding.REQUEST_TIMEOUT == types.REQUEST_TIMEOUT
    from mcpgw_runtime.backends import BACKEND_UNAVAILABLE

    assert forwarding.BACKEND_UNAVAILABLE == BACKEND_UNAVAILABLE


def test_early_backend_health_has_the_cores_fields(tmp_path: Path) -> None:
    """`/healthz` of a backend the front runs reads like the core's `Backend.health()`."""
    import anyio
    from mcpgw_runtime.backends import Backend
    from mcpgw_runtime.front_backends import FrontBackend

    spec = BackendSpec(name="b", type="stdio", command="x", pin="strict")

    async def both() -> tuple[dict[str, Any], dict[str, Any]]:
        return Backend(spec, tmp_path, "1").health(), FrontBackend(spec).health()

    core, early = anyio.run(both)
    assert core == early
