"""The gateway as an OAuth 2.1 resource server, against a real OpenID provider.

The provider is node-oidc-provider (OpenID Certified), run by tests/oauth/provider.mjs on Node 22:
client_credentials, JWT access tokens (RFC 9068) for the resource the client names (RFC 8707),
signed with keys this test generates, so the test can also sign tokens that are valid in every
way but one. A generated gateway (`gateway.auth` naming the provider) in front of mcp-server-time
must take the provider's tokens, refuse every forged or misdirected one with the answer the MCP
authorization spec gives, follow a key rotation without a restart, and never repeat a token.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import os
import re
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from mcp import Client
from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
from mcpgw_runtime.oauth import REASONS

from tests.peers import (
    LOCALHOST,
    PeerExitedError,
    ServedGateway,
    build_gateway,
    free_port,
    kill_process_group,
    missing_peer,
    node22_binary,
    npm22_prefix,
    serve_gateway,
    time_server_command,
    wait_for_port,
    with_client,
)

pytestmark = pytest.mark.e2e

PROVIDER_SCRIPT = Path(__file__).resolve().parent / "oauth" / "provider.mjs"
CLIENTS = [
    {"client_id": "tools", "client_secret": "tools-secret", "scope": "mcp:tools mcp:read"},
    {"client_id": "reader", "client_secret": "reader-secret", "scope": "mcp:read"},
    {"client_id": "ec", "client_secret": "ec-secret", "scope": "mcp:tools", "alg": "ES256"},
]
STATIC = "static-monitoring-token"
TOOLS = ["time__convert_time", "time__get_current_time"]


# ---- keys and tokens ------------------------------------------------------------------------------


@dataclasses.dataclass
class Key:
    kid: str
    alg: str
    private: Any

    def jwk(self) -> dict[str, Any]:
        """The private JWK the provider signs with (it publishes the public half at its jwks_uri)."""
        algorithm = RSAAlgorithm if self.alg.startswith("RS") else ECAlgorithm
        jwk: dict[str, Any] = algorithm.to_jwk(self.private, as_dict=True)
        jwk.pop("key_ops", None)  # PyJWT marks a private JWK "sign"; a provider's key set says nothing of the kind
        return {**jwk, "kid": self.kid, "alg": self.alg, "use": "sig"}

    def public_pem(self) -> bytes:
        return bytes(
            self.private.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )


def rsa_key(kid: str) -> Key:
    return Key(kid, "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))


def ec_key(kid: str) -> Key:
    return Key(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"


def segment(token: str, index: int) -> dict[str, Any]:
    part = token.split(".")[index]
    loaded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return loaded


# ---- the provider ---------------------------------------------------------------------------------


def provider_package() -> Path:
    package = npm22_prefix() / "node_modules" / "oidc-provider"
    if not (package / "lib" / "index.js").is_file():
        missing_peer(f"oidc-provider is not installed under {npm22_prefix()}")
    return package


class Provider:
    """node-oidc-provider on a fixed port; `restart` brings it back with another key set, same issuer."""

    def __init__(self, work: Path, keys: list[Key]) -> None:
        self.work = work
        self.port = free_port()
        self.issuer = f"http://{LOCALHOST}:{self.port}"
        self.keys = keys
        self.process: subprocess.Popen[bytes] | None = None
        self.log = work / f"provider-{self.port}.log"

    def start(self) -> None:
        jwks = self.work / f"jwks-{self.port}.json"
        jwks.write_text(json.dumps({"keys": [k.jwk() for k in self.keys]}))
        env = {
            **os.environ,
            "OIDC_PROVIDER": str(provider_package()),
            "PORT": str(self.port),
            "JWKS_FILE": str(jwks),
            "CLIENTS": json.dumps(CLIENTS),
        }
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                [node22_binary(), str(PROVIDER_SCRIPT)],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_for_port(LOCALHOST, self.port, 30, process=self.process)
        except (PeerExitedError, TimeoutError) as exc:
            raise RuntimeError(f"oidc-provider did not start:\n{self.log.read_text()[-3000:]}") from exc

    def stop(self) -> None:
        if self.process is not None:
            kill_process_group(self.process)
            self.process = None

    def restart(self, keys: list[Key]) -> None:
        self.stop()
        self.keys = keys
        self.start()

    def token(self, client: str, resource: str, scope: str | None = None) -> str:
        """A client_credentials access token from the provider's token endpoint (client_secret_basic)."""
        secret = next(c["client_secret"] for c in CLIENTS if c["client_id"] == client)
        form = {"grant_type": "client_credentials", "resource": resource, **({"scope": scope} if scope else {})}
        request = urllib.request.Request(
            f"{self.issuer}/token",
            data=urllib.parse.urlencode(form).encode(),
            headers={"Authorization": "Basic " + base64.b64encode(f"{client}:{secret}".encode()).decode()},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return str(json.loads(response.read())["access_token"])


@pytest.fixture(scope="module")
def work() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="mcpgw-oauth-") as where:
        yield Path(where)


@pytest.fixture(scope="module")
def provider(work: Path) -> Iterator[Provider]:
    p = Provider(work, [rsa_key("k1"), ec_key("e1")])
    p.start()
    try:
        yield p
    finally:
        p.stop()


def serve_with_auth(work: Path, name: str, auth: dict[str, Any]) -> ServedGateway:
    """Build a gateway in front of mcp-server-time with `gateway.auth`, and serve it (the static token for probes)."""
    command, args = time_server_command()
    root = work / name
    root.mkdir()
    config = {"mcpServers": {"time": {"command": command, "args": args}}, "gateway": {"auth": auth}}
    gateway = build_gateway(root, config)
    assert "auth=AuthSpec(" in gateway.read_text()
    return serve_gateway(
        gateway, root, env={"MCPGW_TOKEN": STATIC}, headers={"Authorization": f"Bearer {STATIC}"}, ready=["time"]
    )


@pytest.fixture(scope="module")
def gw(work: Path, provider: Provider) -> Iterator[ServedGateway]:
    served = serve_with_auth(work, "main", {"issuer": provider.issuer, "scopes": ["mcp:tools"]})
    try:
        yield served
    finally:
        kill_process_group(served.proc)


# ---- HTTP -----------------------------------------------------------------------------------------


@dataclasses.dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: str


def request(gw: ServedGateway, path: str, token: str | None = None, method: str = "POST", **headers: str) -> Answer:
    sent = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream", **headers}
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    body = b'{"jsonrpc":"2.0","id":1,"method":"ping"}' if method == "POST" else None
    req = urllib.request.Request(gw.url + path, data=body, headers=sent, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return Answer(
                response.status, {k.lower(): v for k, v in response.headers.items()}, response.read().decode()
            )
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read().decode())


def metrics(gw: ServedGateway) -> dict[str, float]:
    page = gw.get("/metrics")[1]
    found = re.findall(r"^(mcpgw_auth_\w+\{[^}]*\}) (\S+)$", page, re.MULTILINE)
    return {name: float(value) for name, value in found}


def failures(gw: ServedGateway, reason: str) -> float:
    return metrics(gw).get(f'mcpgw_auth_failures_total{{reason="{reason}"}}', 0.0)


def fetches(gw: ServedGateway) -> float:
    return metrics(gw).get('mcpgw_auth_jwks_fetches_total{outcome="ok"}', 0.0)


def list_tools(gw: ServedGateway, token: str) -> list[str]:
    async def body(c: Client) -> list[str]:
        return sorted(t.name for t in (await c.list_tools()).tools)

    return with_client(dataclasses.replace(gw, headers={"Authorization": f"Bearer {token}"}), body)


# ---- metadata and challenges ----------------------------------------------------------------------


def test_protected_resource_metadata_per_endpoint(gw: ServedGateway, provider: Provider) -> None:
    """RFC 9728: one document per protected resource, its `resource` the URL whose path follows the well-known part."""
    for suffix in ("", "/mcp", "/sse"):
        status, text = gw.get(f"/.well-known/oauth-protected-resource{suffix}", headers={})
        assert status == 200, text
        assert json.loads(text) == {
            "resource": gw.url + suffix,
            "authorization_servers": [provider.issuer],
            "bearer_methods_supported": ["header"],
            "scopes_supported": ["mcp:tools"],
            "resource_name": "mcpgw",
        }
    answer = request(gw, "/.well-known/oauth-protected-resource/mcp", method="GET", Origin="https://elsewhere.example")
    assert answer.status == 200 and answer.headers["access-control-allow-origin"] == "*"
    assert request(gw, "/.well-known/oauth-protected-resource/admin", method="GET").status == 404
    assert request(gw, "/.well-known/oauth-protected-resource/mcp/a/b", method="GET").status == 404
    assert request(gw, "/.well-known/oauth-protected-resource/mcp").status == 405
    assert request(gw, "/.well-known/oauth-protected-resource", method="GET", Host="evil.example").status == 421


def test_a_request_without_a_token_is_told_where_the_metadata_is(gw: ServedGateway) -> None:
    well_known = f"{gw.url}/.well-known/oauth-protected-resource"
    answer = request(gw, "/mcp")
    assert answer.status == 401
    assert answer.headers["www-authenticate"] == f'Bearer scope="mcp:tools", resource_metadata="{well_known}/mcp"'
    assert json.loads(answer.body)["error"] == "invalid_token"
    sse = request(gw, "/sse", method="GET")
    assert sse.status == 401 and sse.headers["www-authenticate"].endswith(f'resource_metadata="{well_known}/sse"')
    health = request(gw, "/healthz", method="GET")
    assert health.status == 401 and health.headers["www-authenticate"].endswith(f'resource_metadata="{well_known}"')
    assert request(gw, "/mcp", "some-token", Host="evil.example").status == 421  # Host before the token


# ---- tokens the provider issues -------------------------------------------------------------------


def test_a_client_credentials_token_lists_and_calls_tools(gw: ServedGateway, provider: Provider) -> None:
    token = provider.token("tools", gw.url + "/mcp", "mcp:tools")
    assert segment(token, 0)["kid"] == "k1" and segment(token, 1)["aud"] == gw.url + "/mcp"
    assert list_tools(gw, token) == TOOLS

    async def call(c: Client) -> str:
        result = await c.call_tool("time__get_current_time", {"timezone": "UTC"})
        return str(result.content[0].text)  # type: ignore[union-attr]

    assert "UTC" in with_client(dataclasses.replace(gw, headers={"Authorization": f"Bearer {token}"}), call)
    es256 = provider.token("ec", gw.url + "/mcp", "mcp:tools")
    assert segment(es256, 0)["alg"] == "ES256"
    assert list_tools(gw, es256) == TOOLS
    for resource in (gw.url, gw.url + "/sse"):  # any of the gateway's URLs names it
        assert request(gw, "/mcp", provider.token("tools", resource, "mcp:tools")).status != 401
    assert metrics(gw)['mcpgw_auth_accepted_total{kind="oauth"}'] >= 3
    assert metrics(gw)['mcpgw_auth_accepted_total{kind="static"}'] >= 1  # the probes' MCPGW_TOKEN, beside OAuth


def test_the_sdk_clients_own_client_credentials_flow(gw: ServedGateway, provider: Provider) -> None:
    """The mcp SDK's OAuth client: 401 → this metadata → the provider's discovery → token for /mcp → retry."""

    class Memory:
        def __init__(self) -> None:
            self.tokens: OAuthToken | None = None
            self.client: OAuthClientInformationFull | None = None

        async def get_tokens(self) -> OAuthToken | None:
            return self.tokens

        async def set_tokens(self, tokens: OAuthToken) -> None:
            self.tokens = tokens

        async def get_client_info(self) -> OAuthClientInformationFull | None:
            return self.client

        async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
            self.client = client_info

    storage = Memory()

    async def main() -> list[str]:
        auth = ClientCredentialsOAuthProvider(
            server_url=gw.url + "/mcp",
            storage=storage,
            client_id="tools",
            client_secret="tools-secret",
            scope="mcp:tools",
            issuer=provider.issuer,
        )
        http = httpx2.AsyncClient(auth=auth, timeout=30)
        async with http, Client(streamable_http_client(gw.url + "/mcp", http_client=http), mode="legacy") as c:
            return sorted(t.name for t in (await c.list_tools()).tools)

    assert anyio.run(main) == TOOLS
    assert storage.tokens is not None
    assert segment(storage.tokens.access_token, 1)["aud"] == gw.url + "/mcp"


def test_a_token_without_the_required_scope_gets_403(gw: ServedGateway, provider: Provider) -> None:
    before = failures(gw, "scope")
    answer = request(gw, "/mcp", provider.token("reader", gw.url + "/mcp", "mcp:read"))
    assert answer.status == 403
    challenge = answer.headers["www-authenticate"]
    assert challenge.startswith('Bearer error="insufficient_scope", ')
    assert 'scope="mcp:tools"' in challenge
    assert f'resource_metadata="{gw.url}/.well-known/oauth-protected-resource/mcp"' in challenge
    assert json.loads(answer.body)["error"] == "insufficient_scope"
    assert failures(gw, "scope") == before + 1


# ---- tokens the gateway must refuse ---------------------------------------------------------------


def claims_for(gw: ServedGateway, provider: Provider, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": provider.issuer,
        "aud": gw.url + "/mcp",
        "sub": "tools",
        "client_id": "tools",
        "scope": "mcp:tools",
        "iat": now,
        "exp": now + 300,
        "jti": os.urandom(8).hex(),
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def signed(key: Key, claims: dict[str, Any], alg: str | None = None, kid: str | None = None) -> str:
    headers = {"kid": kid or key.kid, "typ": "at+jwt"}
    return jwt.encode(claims, key.private, algorithm=alg or key.alg, headers=headers)


def hs256_with_public_key(gw: ServedGateway, provider: Provider) -> str:
    """The classic confusion: HMAC keyed with the RSA public key, hoping the verifier takes `alg` from the token."""
    k1 = provider.keys[0]
    head = unsigned({"alg": "HS256", "typ": "JWT", "kid": k1.kid}, claims_for(gw, provider))
    return f"{head}.{b64(hmac.new(k1.public_pem(), head.encode(), hashlib.sha256).digest())}"


def tampered(gw: ServedGateway, provider: Provider) -> str:
    """A real token whose claims were edited (a scope added), its signature kept."""
    token = provider.token("reader", gw.url + "/mcp", "mcp:read")
    header, _, signature = token.split(".")
    claims = segment(token, 1) | {"scope": "mcp:tools mcp:read"}
    return f"{header}.{b64(json.dumps(claims).encode())}.{signature}"


FORGERIES: dict[str, tuple[str, Callable[[ServedGateway, Provider], str]]] = {
    "expired": (
        "expired",
        lambda g, p: signed(p.keys[0], claims_for(g, p, iat=int(time.time()) - 7200, exp=int(time.time()) - 3600)),
    ),
    "not yet valid": ("not_yet_valid", lambda g, p: signed(p.keys[0], claims_for(g, p, nbf=int(time.time()) + 3600))),
    "issued by the provider for another resource": (
        "audience",
        lambda g, p: p.token("tools", f"http://{LOCALHOST}:1/mcp", "mcp:tools"),
    ),
    "audience of another service": (
        "audience",
        lambda g, p: signed(p.keys[0], claims_for(g, p, aud="https://other.example/mcp")),
    ),
    "no audience": ("missing_claim", lambda g, p: signed(p.keys[0], claims_for(g, p, aud=None))),
    "no expiry": ("missing_claim", lambda g, p: signed(p.keys[0], claims_for(g, p, exp=None))),
    "another issuer": ("issuer", lambda g, p: signed(p.keys[0], claims_for(g, p, iss="https://evil.example"))),
    "tampered claims": ("signature", tampered),
    "signed by another key under the provider's kid": (
        "signature",
        lambda g, p: signed(rsa_key("k1"), claims_for(g, p)),
    ),
    "an unknown kid": ("unknown_key", lambda g, p: signed(rsa_key("nobody"), claims_for(g, p))),
    "alg none": ("algorithm", lambda g, p: unsigned({"alg": "none", "typ": "JWT"}, claims_for(g, p)) + "."),
    "HS256 keyed with the public key": ("algorithm", hs256_with_public_key),
    "RS384, not an allowed algorithm": ("algorithm", lambda g, p: signed(p.keys[0], claims_for(g, p), alg="RS384")),
    "ES256 under the kid of an RSA key": (
        "unknown_key",
        lambda g, p: signed(p.keys[1], claims_for(g, p), alg="ES256", kid="k1"),
    ),
    "not a JWT": ("malformed", lambda g, p: "not-a-jwt"),
}


@pytest.mark.parametrize("case", sorted(FORGERIES))
def test_a_forged_or_misdirected_token_is_refused(gw: ServedGateway, provider: Provider, case: str) -> None:
    reason, make = FORGERIES[case]
    token = make(gw, provider)
    before = failures(gw, reason)
    answer = request(gw, "/mcp", token)
    assert answer.status == 401, answer
    assert answer.headers["www-authenticate"] == (
        f'Bearer error="invalid_token", error_description="{REASONS[reason]}", '
        f'resource_metadata="{gw.url}/.well-known/oauth-protected-resource/mcp"'
    )
    assert json.loads(answer.body) == {"error": "invalid_token", "error_description": REASONS[reason]}
    assert failures(gw, reason) == before + 1


def test_token_values_reach_no_log_answer_or_metric(gw: ServedGateway, provider: Provider) -> None:
    """Valid and refused tokens alike: not in the gateway's logs (at debug), its answers, or /metrics."""
    marker = "LEAK" + os.urandom(6).hex()
    tokens = [
        provider.token("tools", gw.url + "/mcp", "mcp:tools"),
        provider.token("reader", gw.url + "/mcp", "mcp:read"),
        signed(provider.keys[0], claims_for(gw, provider, sub=marker, iss="https://evil.example")),
        signed(rsa_key(marker), claims_for(gw, provider, sub=marker)),
        marker + "." + marker + "." + marker,
        marker * 1200,  # longer than any token the gateway parses, shorter than the header limit
    ]
    seen = [request(gw, "/healthz", t, method="GET") for t in tokens]
    assert [a.status for a in seen] == [200, 403, 401, 401, 401, 401]
    list_tools(gw, tokens[0])
    texts = [json.dumps(dataclasses.asdict(a)) for a in seen] + [gw.get("/metrics")[1], gw.log.read_text()]
    texts += [p.read_text(errors="replace") for p in gw.root.glob("*.log")]
    for token in tokens:
        for part in {token, *(s for s in token.split(".") if len(s) >= 16)}:
            assert not any(part in text for text in texts), f"a token's value was repeated: {part[:24]}..."
    assert not any(marker in text for text in texts)


# ---- the keys change ------------------------------------------------------------------------------


def test_a_key_rotation_at_the_provider_is_followed_without_a_restart(work: Path) -> None:
    k1, k2 = rsa_key("k1"), rsa_key("k2")
    provider = Provider(work, [k1])
    provider.start()
    gw = serve_with_auth(work, "rotation", {"issuer": provider.issuer})
    try:
        old = provider.token("tools", gw.url + "/mcp")
        assert list_tools(gw, old) == TOOLS
        fetched = fetches(gw)
        provider.restart([k2, k1])  # k2 signs from now on; k1 stays published for the tokens already out
        new = provider.token("tools", gw.url + "/mcp")
        assert segment(new, 0)["kid"] == "k2"
        assert list_tools(gw, new) == TOOLS  # an unknown kid: the key set is fetched again, once
        assert fetches(gw) == fetched + 1
        assert request(gw, "/healthz", signed(k1, claims_for(gw, provider)), method="GET").status == 200
        flood = [
            request(gw, "/healthz", signed(rsa_key(f"made-up-{i}"), claims_for(gw, provider)), method="GET")
            for i in range(5)
        ]
        assert {a.status for a in flood} == {401}
        assert fetches(gw) <= fetched + 2  # made-up kids cost the provider at most one fetch per jwks_min_interval
    finally:
        kill_process_group(gw.proc)
        provider.stop()


def test_an_unreachable_issuer_answers_503_not_401(work: Path) -> None:
    """The token may be fine; the gateway cannot tell without the issuer's keys, so it says so and when to retry."""
    nowhere = f"http://{LOCALHOST}:{free_port()}"
    gw = serve_with_auth(work, "unreachable", {"issuer": nowhere})
    try:
        token = signed(rsa_key("k1"), {"iss": nowhere, "aud": gw.url + "/mcp", "exp": int(time.time()) + 60})
        answer = request(gw, "/mcp", token)
        assert answer.status == 503 and answer.headers["retry-after"] == "10"
        assert json.loads(answer.body)["error_description"] == REASONS["keys_unavailable"]
        assert request(gw, "/healthz", STATIC, method="GET").status == 200  # the static token needs no issuer
    finally:
        kill_process_group(gw.proc)
