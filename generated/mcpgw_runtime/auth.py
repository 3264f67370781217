# mcpgw runtime, vendored into every generated gateway. DO NOT EDIT the copy in dist/: its digest is checked at start.
"""Who is calling: every HTTP request's bearer token, checked once, before anything else sees it.

`AuthGate` is the outermost ASGI app whenever the gateway has a token to check: the static
`MCPGW_TOKEN`, an OAuth 2.1 authorization server (`gateway.auth`), or both. It checks Host
and Origin (guard.py), then the token, and hands the request on with the caller's identity
in the ASGI scope:

    scope["mcpgw.caller"]   a `Caller`: kind "oauth" or "static", subject, client_id,
                            scopes, a subset of the token's claims (oauth.KEPT_CLAIMS)

The key is absent only where nothing is checked (loopback without a token, `--no-auth`).
The layers inside (front, session table, fast path, guard middleware) get a guard without
a token: they check Host and Origin again, which is cheap, and never the token.

With `gateway.auth` the gateway is an OAuth 2.1 resource server as the MCP authorization
spec describes it:

    GET /.well-known/oauth-protected-resource[/mcp|/sse|/mcp/<profile>]
        RFC 9728 metadata: `resource` (public_url + that path), the issuer as the
        authorization server, `scopes_supported`, `bearer_methods_supported`
    no token                  401  WWW-Authenticate: Bearer resource_metadata="...", scope="..."
    a token that fails        401  Bearer error="invalid_token", error_description="<fixed text>"
    a token without a scope   403  Bearer error="insufficient_scope", scope="<required>"
    the issuer's keys unknown 503  Retry-After (the token may be fine; the gateway cannot tell)

oauth.py checks the token (PyJWT, imported only then). A static token is compared first, in
constant time, so both can be configured: people or agents with OAuth, a monitor with the
static token. A token's value never reaches a log line, an answer or a metric: refusals
carry fixed reasons (`mcpgw_auth_failures_total{reason}`).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import re
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mcpgw_runtime.caller import CALLER
from mcpgw_runtime.guard import Guard, Refusal, record_refusal, refuse
from mcpgw_runtime.metrics import GUARD_REFUSALS, Tally
from mcpgw_runtime.ratelog import REFUSALS

if TYPE_CHECKING:
    from mcpgw_runtime.oauth import Verifier
    from mcpgw_runtime.spec import AuthSpec

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

CALLER_KEY = "mcpgw.caller"
"""Where a request's `Caller` is in its ASGI scope, for every layer after the gate (policy, audit, logs)."""

WELL_KNOWN = "/.well-known/oauth-protected-resource"

ENDPOINT = re.compile(r"/(mcp|sse)(/[A-Za-z0-9_-]+)?")
"""The paths a client connects to: `/mcp`, `/sse` and a profile's `/mcp/<name>`, `/sse/<name>`."""

STATIC_SUBJECT = "static-token"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a request, as the gate established it: what policy and audit decide and record by."""

    kind: str
    """"oauth" (a verified access token) or "static" (`MCPGW_TOKEN`)."""
    subject: str
    """The token's `sub` (its client's id when it has none); "static-token" for the static token."""
    client_id: str | None = None
    """The OAuth client the token was issued to (`client_id`, else `azp`)."""
    scopes: frozenset[str] = frozenset()
    claims: Mapping[str, Any] = field(default_factory=dict, compare=False)
    """The token's claims that oauth.KEPT_CLAIMS names (groups, roles, email, ...), read-only; empty for the
    static token. Not compared: a caller is hashable by kind, subject, client and scopes (a key per caller)."""


STATIC_CALLER = Caller("static", STATIC_SUBJECT)


# ---- counters for /metrics ----------------------------------------------------------------------

FAILURES: dict[str, Tally] = {}
"""Refused requests by reason: "missing", "static_token", "scope", and oauth.REASONS' keys."""
ACCEPTED: dict[str, Tally] = {"oauth": Tally(), "static": Tally()}
JWKS_FETCHES: dict[str, Tally] = {"ok": Tally(), "error": Tally()}
_ENABLED: list[bool] = []
"""Set by the first gate: a gateway that checks no token shows none of these families."""


def _failed(reason: str) -> None:
    tally = FAILURES.get(reason)
    if tally is None:
        tally = FAILURES[reason] = Tally()
    tally.count += 1


def render_auth_metrics() -> str:
    """`mcpgw_auth_*` families, appended to `/metrics` by http.py; "" when no token is checked."""
    if not _ENABLED:
        return ""
    parts = []
    families = (
        ("mcpgw_auth_failures_total", "reason", FAILURES, "Requests refused for their bearer token, by reason."),
        ("mcpgw_auth_accepted_total", "kind", ACCEPTED, "Requests let in, by the kind of token they carried."),
        ("mcpgw_auth_jwks_fetches_total", "outcome", JWKS_FETCHES, "Fetches of the authorization server's keys."),
    )
    for name, label, tallies, help_text in families:
        samples = "".join(f'{name}{{{label}="{k}"}} {t.count}\n' for k, t in sorted(tallies.items()))
        parts.append(f"# HELP {name} {help_text}\n# TYPE {name} counter\n{samples}")
    return "".join(parts)


# ---- OAuth: the resource server's side ----------------------------------------------------------


def endpoint_path(path: str) -> str:
    """The endpoint a request path belongs to (its protected resource's path), "" for the gateway as a whole.

    `/messages/` carries the legacy SSE transport's posts, so it belongs to `/sse`.
    """
    match = ENDPOINT.match(path)
    if match is not None and path[match.end() :] in ("", "/"):
        return match.group(0)
    return "/sse" if path.startswith("/messages/") else ""


class OAuth:
    """`gateway.auth` resolved for this process: its URLs, its challenges, its verifier."""

    def __init__(
        self, spec: AuthSpec, public_url: str, transports: Sequence[str], name: str, profiles: Sequence[str] = ()
    ) -> None:
        from mcpgw_runtime.oauth import Audiences, KeySet, Verifier, normalized_url

        self.spec = spec
        self.public_url = public_url.rstrip("/")
        self.name = name
        self.prefixes = tuple(p for p, t in (("mcp", "http"), ("sse", "sse")) if t in transports)
        self.profiles = frozenset(profiles)
        """The named profiles, each an endpoint of its own under every prefix (`/mcp/<name>`, `/sse/<name>`)."""
        configured = frozenset(a for value in spec.audience for a in (value, normalized_url(value)))
        audiences = Audiences(self.public_url, configured, self.serves)
        keys = KeySet(spec, on_fetch=_count_fetch)
        self.verifier: Verifier = Verifier(spec, audiences, keys)
        self.required = frozenset(spec.scopes)
        self._scope = " ".join(spec.scopes)

    def serves(self, path: str) -> bool:
        """Whether `path` is an endpoint this gateway serves (so a resource with a metadata document)."""
        match = ENDPOINT.fullmatch(path)
        if match is None or match.group(1) not in self.prefixes:
            return False
        return match.group(2) is None or match.group(2)[1:] in self.profiles

    def metadata_url(self, request_path: str) -> str:
        """Where the metadata of the resource a request went to is (a `WWW-Authenticate` parameter)."""
        suffix = endpoint_path(request_path)
        return f"{self.public_url}{WELL_KNOWN}{suffix if self.serves(suffix) else ''}"

    def metadata(self, resource_path: str) -> dict[str, Any]:
        """The RFC 9728 document of the resource at `resource_path` ("" for the gateway itself)."""
        document: dict[str, Any] = {
            "resource": self.public_url + resource_path,
            "authorization_servers": [self.spec.issuer],
            "bearer_methods_supported": ["header"],
            "resource_name": self.name,
        }
        if self.spec.scopes:
            document["scopes_supported"] = list(self.spec.scopes)
        return document

    def challenge(self, path: str, error: str | None = None, description: str | None = None) -> bytes:
        """A `WWW-Authenticate` value (RFC 6750 section 3, RFC 9728 section 5.1)."""
        params = []
        if error is not None:
            params.append(f'error="{error}"')
        if description is not None:
            params.append(f'error_description="{description}"')
        if self._scope and error in (None, "insufficient_scope"):
            params.append(f'scope="{self._scope}"')
        params.append(f'resource_metadata="{self.metadata_url(path)}"')
        return ("Bearer " + ", ".join(params)).encode()


def _count_fetch(ok: bool) -> None:
    JWKS_FETCHES["ok" if ok else "error"].count += 1


def resolve_public_url(configured: str | None, override: str | None, host: str, port: int) -> str:
    """The URL clients reach the gateway at: `--public-url`, `gateway.auth.public_url`, or the bound address.

    A wildcard bind says nothing about the name clients use, so there one must be given.
    """
    url = override or configured
    if url:
        return url.rstrip("/")
    if host in ("0.0.0.0", "::", ""):
        raise ValueError(
            f"gateway.auth needs the URL clients reach the gateway at when it binds {host or '*'}: "
            "set gateway.auth.public_url, or pass --public-url"
        )
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


# ---- the gate -------------------------------------------------------------------------------------


def bearer_of(authorization: bytes | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (the scheme in any case), or None."""
    if authorization is None:
        return None
    text = authorization.decode("latin-1")
    if not text[:7].lower() == "bearer ":
        return None
    return text[7:].strip() or None


def _json(error: str, description: str) -> bytes:
    return json.dumps({"error": error, "error_description": description}).encode()


class AuthGate:
    """The outermost ASGI app when there is a token to check; see the module's docstring."""

    def __init__(self, app: App, guard: Guard, token: str | None, oauth: OAuth | None) -> None:
        self.app = app
        self.guard = guard
        """Host and Origin only: the gate compares the token itself."""
        self.token = token.encode() if token is not None else None
        self.oauth = oauth
        self._warm: asyncio.Task[None] | None = None
        _ENABLED.append(True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan" and self.oauth is not None and self._warm is None:
                self._warm = asyncio.ensure_future(self.oauth.verifier.keys.warm())
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if self.oauth is not None and (path == WELL_KNOWN or path.startswith(WELL_KNOWN + "/")):
            await self._metadata(scope, send, self.oauth, path[len(WELL_KNOWN) :])
            return
        headers = dict(scope["headers"])
        refusal = self.guard.refusal(headers)
        if refusal is not None:
            await refuse(scope, send, refusal)
            return
        bearer = bearer_of(headers.get(b"authorization"))
        if self.token is not None and bearer is not None and hmac.compare_digest(bearer.encode(), self.token):
            caller = STATIC_CALLER
        elif self.oauth is not None:
            found = await self._oauth_caller(scope, send, self.oauth, bearer)
            if found is None:
                return
            caller = found
        else:
            _failed("missing" if bearer is None else "static_token")
            await refuse(
                scope, send, Refusal(401, "Missing or invalid bearer token", ((b"www-authenticate", b"Bearer"),))
            )
            return
        ACCEPTED[caller.kind].count += 1
        scope[CALLER_KEY] = caller
        CALLER.set(caller)  # this request's own task: what serves it reads the caller there (caller.py)
        await self.app(scope, receive, send)

    async def _oauth_caller(self, scope: Scope, send: Send, oauth: OAuth, bearer: str | None) -> Caller | None:
        """The caller a valid access token names, or None once the request is answered (401, 403, 503)."""
        from mcpgw_runtime.oauth import Rejected

        path = scope["path"]
        if bearer is None:
            _failed("missing")
            challenge = oauth.challenge(path)
            await _answer(
                scope,
                send,
                401,
                "an access token is required",
                challenge,
                _json("invalid_token", "an access token is required"),
            )
            return None
        try:
            verified = await oauth.verifier.verify(bearer)
        except Rejected as rejected:
            _failed(rejected.reason)
            why = str(rejected)
            if rejected.reason == "keys_unavailable":
                await _answer(scope, send, 503, why, None, _json("temporarily_unavailable", why), retry_after=True)
            else:
                challenge = oauth.challenge(path, "invalid_token", why)
                await _answer(scope, send, 401, why, challenge, _json("invalid_token", why))
            return None
        lacking = oauth.required - verified.scopes
        if lacking:
            _failed("scope")
            why = "the access token lacks a required scope: " + " ".join(sorted(lacking))
            challenge = oauth.challenge(path, "insufficient_scope", why)
            await _answer(scope, send, 403, why, challenge, _json("insufficient_scope", why))
            return None
        return Caller("oauth", verified.subject, verified.client_id, verified.scopes, verified.claims)

    async def _metadata(self, scope: Scope, send: Send, oauth: OAuth, suffix: str) -> None:
        """RFC 9728 protected resource metadata; public (any Origin, CORS), but only under an allowed Host."""
        headers = dict(scope["headers"])
        host = headers.get(b"host")
        if not self.guard.host_ok(host.decode("latin-1") if host is not None else None):
            await refuse(scope, send, Refusal(421, "Invalid Host header"))
            return
        cors = [(b"access-control-allow-origin", b"*")]
        if suffix and not oauth.serves(suffix):
            await _send(send, 404, b"not found", b"text/plain; charset=utf-8", cors)
        elif scope["method"] == "OPTIONS":
            allow = [(b"access-control-allow-methods", b"GET, OPTIONS"), (b"access-control-allow-headers", b"*")]
            await _send(send, 204, b"", None, cors + allow)
        elif scope["method"] not in ("GET", "HEAD"):
            await _send(
                send, 405, b"method not allowed", b"text/plain; charset=utf-8", [*cors, (b"allow", b"GET, OPTIONS")]
            )
        else:
            body = json.dumps(oauth.metadata(suffix), indent=2).encode()
            cache = [(b"cache-control", b"public, max-age=300")]
            await _send(
                send, 200, body if scope["method"] == "GET" else b"", b"application/json", cors + cache, len(body)
            )


async def _answer(
    scope: Scope,
    send: Send,
    status: int,
    why: str,
    challenge: bytes | None,
    body: bytes,
    *,
    retry_after: bool = False,
) -> None:
    """A refusal with a JSON body, counted and logged as the guard's are (guard.record_refusal).

    A 503 (the issuer's keys unknown) is no refusal of the client's: only the log and
    `mcpgw_auth_failures_total` have it.
    """
    if status in GUARD_REFUSALS:
        record_refusal(scope, status, why)
    else:
        REFUSALS.warning(
            f"HTTP {status} {why}",
            "answered %s %r: HTTP %d (%s)",
            scope.get("method"),
            str(scope.get("path"))[:200],
            status,
            why,
        )
    extra = [(b"www-authenticate", challenge)] if challenge is not None else []
    if retry_after:
        extra.append((b"retry-after", b"10"))
    await _send(send, status, body, b"application/json", extra)


async def _send(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes | None,
    extra: list[tuple[bytes, bytes]],
    length: int | None = None,
) -> None:
    headers = [(b"content-length", b"%d" % (len(body) if length is None else length))]
    if content_type is not None:
        headers.append((b"content-type", content_type))
    await send({"type": "http.response.start", "status": status, "headers": headers + extra})
    await send({"type": "http.response.body", "body": body})
