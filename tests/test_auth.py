"""The gate and the token checks in isolation: config, URLs, key selection, the caller it hands on.

test_oauth.py proves the whole against a real OpenID provider; these pin the rules that one
run of the provider cannot show (every URL spelling, the rate limit under concurrency, what a
gateway without OAuth imports).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import sys
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from mcpgw.config import config_from_document
from mcpgw.validate import schema_errors
from mcpgw_runtime import cli, start
from mcpgw_runtime.auth import (
    CALLER_KEY,
    STATIC_CALLER,
    AuthGate,
    Caller,
    OAuth,
    bearer_of,
    endpoint_path,
    resolve_public_url,
)
from mcpgw_runtime.guard import Guard
from mcpgw_runtime.oauth import Audiences, KeySet, Rejected, discovery_urls, normalized_url, usable_for
from mcpgw_runtime.spec import AuthSpec, GatewaySpec
from pydantic import ValidationError

ISSUER = "https://login.example.com/realms/team"


# ---- config ---------------------------------------------------------------------------------------


def _model_accepts(document: object) -> bool:
    try:
        config_from_document(document)
    except ValidationError:
        return False
    return True


AUTH_DOCUMENTS: list[tuple[dict[str, Any], bool]] = [
    ({"issuer": ISSUER}, True),
    ({"issuer": "http://127.0.0.1:8080"}, True),
    ({"issuer": "http://localhost/realms/x", "jwks_uri": "http://[::1]:9/jwks"}, True),
    (
        {
            "issuer": ISSUER,
            "public_url": "https://mcp.example.com/",
            "audience": ["api://gw"],
            "scopes": ["mcp:tools", "read"],
            "algorithms": ["ES256", "EdDSA", "PS256"],
            "clock_skew": 0,
            "jwks_max_age": 60,
            "jwks_min_interval": 0,
        },
        True,
    ),
    ({}, False),
    ({"issuer": "http://login.example.com"}, False),
    ({"issuer": ISSUER + "?tenant=1"}, False),
    ({"issuer": ISSUER + "\n"}, False),
    ({"issuer": ISSUER, "public_url": "https://mcp.example.com/mcp"}, False),
    ({"issuer": ISSUER, "public_url": "ftp://mcp.example.com"}, False),
    ({"issuer": ISSUER, "jwks_uri": "http://keys.example.com"}, False),
    ({"issuer": ISSUER, "algorithms": ["HS256"]}, False),
    ({"issuer": ISSUER, "algorithms": ["none"]}, False),
    ({"issuer": ISSUER, "algorithms": []}, False),
    ({"issuer": ISSUER, "scopes": ["two words"]}, False),
    ({"issuer": ISSUER, "scopes": ['say"hi']}, False),
    ({"issuer": ISSUER, "scopes": ["tools\n"]}, False),
    ({"issuer": ISSUER, "audience": [""]}, False),
    ({"issuer": ISSUER, "clock_skew": 301}, False),
    ({"issuer": ISSUER, "jwks_max_age": 0}, False),
    ({"issuer": ISSUER, "jwks_min_interval": -1}, False),
    ({"issuer": ISSUER, "client_secret": "x"}, False),
    ({"issuer": None}, False),
]


@pytest.mark.parametrize(("auth", "valid"), AUTH_DOCUMENTS, ids=[json.dumps(d)[:60] for d, _ in AUTH_DOCUMENTS])
def test_schema_and_models_agree_on_gateway_auth(auth: dict[str, Any], valid: bool) -> None:
    document = {"mcpServers": {}, "gateway": {"auth": auth}}
    assert (not schema_errors(document)) is valid, schema_errors(document)
    assert _model_accepts(document) is valid


# ---- URLs -----------------------------------------------------------------------------------------


def _oauth(transports: tuple[str, ...] = ("http", "sse"), **fields: Any) -> OAuth:
    return OAuth(AuthSpec(issuer=ISSUER, **fields), "https://mcp.example.com", transports, "team", ("dev",))


def test_each_request_path_belongs_to_its_endpoints_resource() -> None:
    assert [endpoint_path(p) for p in ("/mcp", "/mcp/", "/mcp/dev", "/sse", "/sse/dev", "/messages/?s=1")] == [
        "/mcp",
        "/mcp",
        "/mcp/dev",
        "/sse",
        "/sse/dev",
        "/sse",
    ]
    assert [endpoint_path(p) for p in ("/healthz", "/metrics", "/mcp/a/b", "/mcpx", "/")] == [""] * 5
    oauth = _oauth(("http",))
    assert oauth.metadata_url("/mcp/dev") == "https://mcp.example.com/.well-known/oauth-protected-resource/mcp/dev"
    assert oauth.metadata_url("/sse") == "https://mcp.example.com/.well-known/oauth-protected-resource"  # not served
    assert oauth.metadata("/mcp/dev")["resource"] == "https://mcp.example.com/mcp/dev"
    assert oauth.serves("/mcp/dev") and not oauth.serves("/mcp/ops") and not oauth.serves("/sse/dev")


def test_challenges_follow_rfc_6750_and_9728() -> None:
    oauth = _oauth(scopes=("mcp:tools", "mcp:read"))
    well_known = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
    assert oauth.challenge("/mcp") == f'Bearer scope="mcp:tools mcp:read", resource_metadata="{well_known}"'.encode()
    assert oauth.challenge("/mcp", "invalid_token", "why") == (
        f'Bearer error="invalid_token", error_description="why", resource_metadata="{well_known}"'.encode()
    )
    assert b'scope="mcp:tools mcp:read"' in oauth.challenge("/mcp", "insufficient_scope", "why")
    assert _oauth().challenge("/mcp") == f'Bearer resource_metadata="{well_known}"'.encode()


def test_an_audience_names_the_gateway_however_its_url_is_spelt() -> None:
    audiences = Audiences("https://mcp.example.com", frozenset(), _oauth(("http",)).serves)
    for aud in (
        "https://mcp.example.com",
        "https://MCP.example.com:443/",
        "https://mcp.example.com/mcp",
        "https://mcp.example.com/mcp/",
        "https://mcp.example.com/mcp/dev",
        ["https://other.example", "https://mcp.example.com/mcp"],
    ):
        assert audiences.accepts(aud), aud
    for aud in (
        "https://mcp.example.com/sse",  # not served by this gateway
        "https://mcp.example.com/mcp/a/b",
        "https://mcp.example.com/mcp/ops",  # no such profile
        "https://mcp.example.com:8443/mcp",
        "http://mcp.example.com/mcp",
        "https://mcp.example.com.evil/mcp",
        "https://mcp.example.com/mcpx",
        "https://other.example/mcp",
        ["https://other.example"],
        None,
        17,
    ):
        assert not audiences.accepts(aud), aud
    configured = Audiences("https://mcp.example.com", frozenset({"api://gw"}), _oauth().serves)
    assert configured.accepts("api://gw") and not configured.accepts("https://mcp.example.com/mcp")
    assert normalized_url("HTTPS://[::1]:443/x/") == "https://[::1]/x"


def test_the_public_url_is_given_or_the_bound_address() -> None:
    assert resolve_public_url("https://mcp.example.com/", None, "0.0.0.0", 9000) == "https://mcp.example.com"
    assert resolve_public_url("https://a.example", "https://b.example", "0.0.0.0", 9000) == "https://b.example"
    assert resolve_public_url(None, None, "127.0.0.1", 9000) == "http://127.0.0.1:9000"
    assert resolve_public_url(None, None, "::1", 9000) == "http://[::1]:9000"
    with pytest.raises(ValueError, match="public_url"):
        resolve_public_url(None, None, "0.0.0.0", 9000)


def test_discovery_tries_rfc_8414_then_openid_connect() -> None:
    assert discovery_urls(ISSUER) == [
        "https://login.example.com/.well-known/oauth-authorization-server/realms/team",
        "https://login.example.com/realms/team/.well-known/openid-configuration",
        "https://login.example.com/.well-known/openid-configuration/realms/team",
    ]
    assert discovery_urls("https://login.example.com/") == [
        "https://login.example.com/.well-known/oauth-authorization-server",
        "https://login.example.com/.well-known/openid-configuration",
    ]


def test_a_key_checks_only_the_algorithm_it_is_for() -> None:
    rsa_jwk = {"kty": "RSA", "kid": "r"}
    assert usable_for(rsa_jwk, "RS256") and usable_for(rsa_jwk, "PS384")
    assert not usable_for(rsa_jwk, "ES256") and not usable_for(rsa_jwk, "HS256")
    assert not usable_for({**rsa_jwk, "alg": "RS512"}, "RS256")
    assert not usable_for({**rsa_jwk, "use": "enc"}, "RS256")
    assert usable_for({"kty": "EC", "crv": "P-256"}, "ES256")
    assert not usable_for({"kty": "EC", "crv": "P-384"}, "ES256")
    assert usable_for({"kty": "OKP", "crv": "Ed25519"}, "EdDSA")
    assert not usable_for({"kty": "oct", "k": "c2VjcmV0"}, "HS256")


def test_bearer_of() -> None:
    assert bearer_of(b"Bearer abc") == "abc"
    assert bearer_of(b"bearer  abc \t") == "abc"
    assert bearer_of(b"Basic abc") is None
    assert bearer_of(b"Bearer ") is None
    assert bearer_of(None) is None


# ---- the keys, the verifier and the gate, on a key set served in process --------------------------


class Issuer:
    """Signs tokens and serves its key set to `KeySet` as a fetch function, counting the fetches."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.fetches = 0

    def fetch(self, url: str) -> Any:
        self.fetches += 1
        if url.endswith("/.well-known/oauth-authorization-server/realms/team"):
            return {"issuer": ISSUER, "jwks_uri": "https://login.example.com/keys"}
        assert url == "https://login.example.com/keys", url
        time.sleep(0.05)  # a fetch that takes a while, as a real one does: concurrent requests overlap it
        jwk = RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {"keys": [{**jwk, "kid": "k1", "use": "sig"}]}

    def token(self, kid: str = "k1", **claims: Any) -> str:
        base = {"iss": ISSUER, "aud": "https://mcp.example.com/mcp", "exp": int(time.time()) + 60}
        return jwt.encode({**base, **claims}, self.key, algorithm="RS256", headers={"kid": kid})


def _verifying_oauth(issuer: Issuer, **fields: Any) -> OAuth:
    oauth = _oauth(**fields)
    oauth.verifier.keys = KeySet(oauth.spec, fetch=issuer.fetch, on_change=oauth.verifier.cache.clear)
    return oauth


def test_unknown_kids_at_once_cost_one_fetch() -> None:
    issuer = Issuer()
    oauth = _verifying_oauth(issuer)

    async def main() -> list[str]:
        await oauth.verifier.keys.warm()
        assert issuer.fetches == 2  # discovery, then the key set
        tokens = [issuer.token(kid=f"made-up-{i}") for i in range(20)]
        outcomes = await asyncio.gather(*(oauth.verifier.verify(t) for t in tokens), return_exceptions=True)
        return [o.reason if isinstance(o, Rejected) else "accepted" for o in outcomes]

    assert asyncio.run(main()) == ["unknown_key"] * 20
    assert issuer.fetches == 3  # one refetch for all twenty, and none for the next ones within jwks_min_interval


def test_the_gate_hands_on_who_called(tmp_path: Path) -> None:
    """The `Caller` in the ASGI scope: an OAuth token's subject, client, scopes and kept claims; the static token's."""
    issuer = Issuer()
    oauth = _verifying_oauth(issuer, scopes=("mcp:tools",))
    seen: list[Caller] = []

    async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope[CALLER_KEY])

    gate = AuthGate(app, Guard.for_bind("127.0.0.1", 9000, [], [], None), "static-secret", oauth)

    async def call(token: str) -> int:
        status = 0

        async def send(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        headers = [(b"host", b"127.0.0.1:9000"), (b"authorization", f"Bearer {token}".encode())]
        scope = {"type": "http", "method": "POST", "path": "/mcp", "headers": headers}
        await gate(scope, None, send)  # type: ignore[arg-type]
        return status

    token = issuer.token(sub="alice", client_id="agent", scope="mcp:tools extra", groups=["ops"], secret="x")
    statuses = asyncio.run(_all(call(token), call("static-secret"), call(issuer.token(scope="other"))))
    assert statuses == [0, 0, 403]  # 0: handed on, the app answered nothing
    oauth_caller, static_caller = seen
    assert (oauth_caller.kind, oauth_caller.subject, oauth_caller.client_id) == ("oauth", "alice", "agent")
    assert oauth_caller.scopes == {"mcp:tools", "extra"}
    assert oauth_caller.claims["groups"] == ["ops"] and "secret" not in oauth_caller.claims
    assert static_caller == STATIC_CALLER
    assert len({oauth_caller, static_caller, STATIC_CALLER}) == 2  # hashable: a key per caller


async def _all(*calls: Any) -> list[int]:
    return [await c for c in calls]


# ---- what a gateway loads and needs ---------------------------------------------------------------


def test_a_gateway_without_oauth_neither_imports_nor_needs_pyjwt(monkeypatch: pytest.MonkeyPatch) -> None:
    probe = "import sys, mcpgw_runtime.cli, mcpgw_runtime.auth\nprint('jwt' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "jwt" else real(name, *a))
    spec = _spec()
    assert start.missing_requirements(spec) == []
    assert start.missing_requirements(dataclasses.replace(spec, auth=AuthSpec(ISSUER))) == ["pyjwt"]


def _spec() -> GatewaySpec:
    return GatewaySpec("gw", "0", "0", ".", (), (), {}, (), {}, (), {}, {}, {})


def test_oauth_off_loopback_needs_a_public_url() -> None:
    spec = dataclasses.replace(_spec(), auth=AuthSpec(ISSUER))
    oauth, error = cli.configured_oauth(spec, cli.parse_args(spec, ["--host", "0.0.0.0"]))
    assert oauth is None and error is not None and "set gateway.auth.public_url, or pass --public-url" in error
    args = cli.parse_args(spec, ["--host", "0.0.0.0", "--public-url", "https://mcp.example.com"])
    oauth, error = cli.configured_oauth(spec, args)
    assert error is None and oauth is not None and oauth.public_url == "https://mcp.example.com"
    assert cli.configured_oauth(_spec(), args) == (None, None)
