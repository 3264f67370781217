# mcpgw runtime, vendored into every generated gateway. DO NOT EDIT the copy in dist/: its digest is checked at start.
"""Check an OAuth 2.1 access token (a JWT, RFC 9068) as the gateway's authorization server signed it.

Why a module of its own: it is the only part of the runtime that needs PyJWT (and, through it,
`cryptography`), and auth.py imports it only when `gateway.auth` is configured, so a gateway
without OAuth neither loads nor needs them. The crypto is PyJWT's; what is decided here:

    header    `alg` must be one the config allows (asymmetric only: never `none`, never HS*),
              so a token cannot pick the algorithm that checks it (no HS/RS confusion)
    key       from the issuer's JWKS (its `jwks_uri`, configured or found by RFC 8414 / OIDC
              discovery), matched by `kid`, of the key type and curve the `alg` needs, not
              marked for another algorithm or use; an unknown `kid` refetches the set once,
              at most one fetch a request can trigger per `jwks_min_interval` (key rotation
              is followed, a flood of made-up kids costs the issuer nothing)
    claims    signature first, then `iss` (exactly the issuer), `exp` and `nbf` with
              `clock_skew` seconds of slack, `aud` (one of the gateway's URLs, RFC 8707, or
              the configured audiences)

A token that passed is remembered until it expires (`VerifiedCache`), so a client's next calls
cost a dict lookup, not a signature check; a new key set empties the cache. Every failure
is a `Rejected` with a reason from `REASONS`: fixed words, never the token or a part of it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import jwt

from mcpgw_runtime.spec import AuthSpec

log = logging.getLogger("mcpgw")

REASONS: dict[str, str] = {
    "malformed": "the access token is not a well-formed JWT",
    "algorithm": "the access token's signing algorithm is not accepted",
    "unknown_key": "the access token is signed with a key the issuer does not publish",
    "signature": "the access token's signature does not verify",
    "expired": "the access token has expired",
    "not_yet_valid": "the access token is not valid yet",
    "issuer": "the access token was issued by another issuer",
    "audience": "the access token was issued for another resource",
    "missing_claim": "the access token lacks a required claim (exp, iss or aud)",
    "keys_unavailable": "the authorization server's keys could not be fetched",
}
"""Why a token was refused: the reason is the metric label, the text the `error_description`."""

SIGNING_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
"""What `gateway.auth.algorithms` may name: asymmetric JWS algorithms only."""

_KEY_TYPE = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
_CURVE = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521", "EdDSA": "Ed25519"}

MAX_TOKEN_BYTES = 16 * 1024
"""A longer bearer value is refused as malformed before it is parsed."""
MAX_DOCUMENT_BYTES = 1024 * 1024
"""Largest discovery document or JWKS read from the issuer."""
FETCH_TIMEOUT = 10.0
"""Seconds for one fetch of a discovery document or the JWKS."""
CACHE_SIZE = 4096
"""Verified tokens remembered at once; the oldest is forgotten first."""


class Rejected(Exception):
    """A token the gateway refuses; `reason` is a key of `REASONS`."""

    def __init__(self, reason: str) -> None:
        super().__init__(REASONS[reason])
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Verified:
    """What a valid token says about its bearer."""

    subject: str
    client_id: str | None
    scopes: frozenset[str]
    claims: Mapping[str, Any]
    expires_at: float


KEPT_CLAIMS = (
    "iss",
    "sub",
    "aud",
    "client_id",
    "azp",
    "scope",
    "scp",
    "exp",
    "iat",
    "nbf",
    "jti",
    "groups",
    "roles",
    "email",
    "preferred_username",
    "name",
)
"""The claims a `Verified` keeps for policy and audit: who, for which client, with which scopes and groups."""


def scopes_of(claims: Mapping[str, Any]) -> frozenset[str]:
    """`scope` (RFC 9068: space-separated) or `scp` (a list or a string, as some issuers write it)."""
    for name in ("scope", "scp"):
        value = claims.get(name)
        if isinstance(value, str):
            return frozenset(value.split())
        if isinstance(value, list):
            return frozenset(v for v in value if isinstance(v, str))
    return frozenset()


def verified(claims: Mapping[str, Any]) -> Verified:
    client_id = claims.get("client_id", claims.get("azp"))
    subject = claims.get("sub", client_id)
    return Verified(
        subject=str(subject) if subject is not None else "",
        client_id=str(client_id) if client_id is not None else None,
        scopes=scopes_of(claims),
        claims=MappingProxyType({k: claims[k] for k in KEPT_CLAIMS if k in claims}),
        expires_at=float(claims["exp"]),
    )


# ---- the gateway's own URLs: what `aud` may name ------------------------------------------------


def normalized_url(url: str) -> str:
    """A URL as two spellings of it compare: scheme and host lower case, no default port, no trailing `/`."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return url
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}.get(scheme)
    netloc = host if port is None or port == default else f"{host}:{port}"
    return urllib.parse.urlunsplit((scheme, netloc, parts.path.rstrip("/"), parts.query, ""))


@dataclass(frozen=True, slots=True)
class Audiences:
    """Accepted `aud` values: the configured ones, or else the gateway's URLs.

    The gateway's URLs are `public_url` itself and `public_url` + an endpoint path
    (`is_endpoint`: `/mcp`, `/sse`, and a profile's `/mcp/<name>`), compared as
    `normalized_url` spells them: a client asks its authorization server for a token
    for the URL it connects to (RFC 8707), and any of them names this gateway.
    """

    public_url: str
    configured: frozenset[str]
    is_endpoint: Callable[[str], bool]

    def accepts(self, aud: object) -> bool:
        values = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        return any(isinstance(v, str) and self._names_us(v) for v in values)

    def _names_us(self, value: str) -> bool:
        if self.configured:
            return value in self.configured or normalized_url(value) in self.configured
        url = normalized_url(value)
        base = normalized_url(self.public_url)
        if url == base:
            return True
        return url.startswith(base + "/") and self.is_endpoint(url[len(base) :])


# ---- the issuer's keys --------------------------------------------------------------------------


def fetch_json(url: str) -> Any:
    """GET `url` and parse its JSON body (blocking: called in a worker thread)."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"not an http(s) URL: {url}")
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT) as response:  # noqa: S310 -- scheme checked above
        body = response.read(MAX_DOCUMENT_BYTES + 1)
    if len(body) > MAX_DOCUMENT_BYTES:
        raise ValueError(f"{url}: larger than {MAX_DOCUMENT_BYTES} bytes")
    return json.loads(body)


def discovery_urls(issuer: str) -> list[str]:
    """Where the issuer's metadata may be: RFC 8414 (path after the well-known part), then OIDC Discovery."""
    parts = urllib.parse.urlsplit(issuer)
    origin, path = f"{parts.scheme}://{parts.netloc}", parts.path.rstrip("/")
    urls = [
        f"{origin}/.well-known/oauth-authorization-server{path}",
        f"{issuer.rstrip('/')}/.well-known/openid-configuration",
    ]
    if path:
        urls.append(f"{origin}/.well-known/openid-configuration{path}")
    return urls


@dataclass(eq=False)
class KeySet:
    """The issuer's JWKS, fetched when first needed (or at start, `warm`) and refetched as the spec says."""

    spec: AuthSpec
    fetch: Callable[[str], Any] = fetch_json
    clock: Callable[[], float] = time.monotonic
    on_fetch: Callable[[bool], None] = lambda ok: None
    """Told after every fetch of the JWKS whether it worked (auth.py counts them for `/metrics`)."""
    on_change: Callable[[], None] = lambda: None
    """Called when a fetch brought a different key set."""
    keys: list[dict[str, Any]] = field(default_factory=list)
    jwks_uri: str | None = None
    fetched_at: float | None = None
    _last_asked: float | None = None
    _lock: asyncio.Lock | None = None

    async def warm(self) -> None:
        """Fetch the keys once at start, so a wrong issuer or an unreachable one is logged at once.

        Requests that come meanwhile wait for it (the lock) rather than fetch the keys themselves.
        """
        async with self._locked():
            await self._refresh()

    async def candidates(self, kid: str | None, alg: str) -> list[dict[str, Any]]:
        """The JWKs that may have signed a token with this header, refetching once if none is known."""
        stale = self.fetched_at is not None and self.clock() - self.fetched_at > self.spec.jwks_max_age
        found = self._matching(kid, alg)
        if (not found or stale) and self._may_ask():
            before = self.fetched_at
            async with self._locked():
                if self.fetched_at == before and self._may_ask():  # else another request did, while this one waited
                    self._last_asked = self.clock()
                    await self._refresh()
            found = self._matching(kid, alg)
        if not found and self.fetched_at is None:
            raise Rejected("keys_unavailable")
        return found

    def _may_ask(self) -> bool:
        return self._last_asked is None or self.clock() - self._last_asked >= self.spec.jwks_min_interval

    def _locked(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    def _matching(self, kid: str | None, alg: str) -> list[dict[str, Any]]:
        return [k for k in self.keys if (kid is None or k.get("kid") == kid) and usable_for(k, alg)]

    async def _refresh(self) -> None:
        try:
            jwks_uri = self.jwks_uri or self.spec.jwks_uri
            if jwks_uri is None:
                jwks_uri = await asyncio.to_thread(self._discover)
            self.jwks_uri = jwks_uri
            document = await asyncio.to_thread(self.fetch, jwks_uri)
            keys = document.get("keys") if isinstance(document, dict) else None
            if not isinstance(keys, list):
                raise ValueError(f"{self.jwks_uri}: not a JWK set")
        except Exception as exc:  # noqa: BLE001 -- whatever failed, the keys known so far stay in use
            self.on_fetch(False)
            log.warning("oauth: cannot fetch the signing keys of %s: %s", self.spec.issuer, _plain(exc))
            return
        self.on_fetch(True)
        fresh = [k for k in keys if isinstance(k, dict)]
        if fresh != self.keys:
            kids = ", ".join(str(k.get("kid", "-")) for k in fresh) or "none"
            log.info("oauth: %d signing keys from %s (kid %s)", len(fresh), self.jwks_uri, kids)
            self.keys = fresh
            self.on_change()
        self.fetched_at = self.clock()

    def _discover(self) -> str:
        """The issuer's `jwks_uri`, from the first metadata document that names exactly this issuer."""
        problems = []
        for url in discovery_urls(self.spec.issuer):
            try:
                metadata = self.fetch(url)
            except Exception as exc:  # noqa: BLE001 -- the next place may have it
                problems.append(f"{url}: {_plain(exc)}")
                continue
            if not isinstance(metadata, dict) or metadata.get("issuer") != self.spec.issuer:
                found = metadata.get("issuer") if isinstance(metadata, dict) else None
                problems.append(f"{url}: names issuer {found!r}")  # RFC 8414 section 3.3: not this issuer's
                continue
            jwks_uri = metadata.get("jwks_uri")
            if isinstance(jwks_uri, str) and jwks_uri:
                return jwks_uri
            problems.append(f"{url}: no jwks_uri")
        raise ValueError("no usable authorization server metadata (" + "; ".join(problems) + ")")


def _plain(exc: BaseException) -> str:
    return str(getattr(exc, "reason", None) or exc) or type(exc).__name__


def usable_for(jwk: Mapping[str, Any], alg: str) -> bool:
    """A JWK may check a signature made with `alg`: its key type and curve, not marked for another alg or use.

    `key_ops` is not read: issuers publish it inconsistently (some copy the private key's "sign"),
    and `use` already says what matters, that the key is not an encryption key.
    """
    if jwk.get("kty") != _KEY_TYPE.get(alg[:2]):
        return False
    if alg in _CURVE and jwk.get("crv") != _CURVE[alg]:
        return False
    return jwk.get("alg") in (None, alg) and jwk.get("use") in (None, "sig")


# ---- the verifier ---------------------------------------------------------------------------------


class VerifiedCache:
    """Tokens already checked, until they expire: a client's next call costs a lookup, not a signature check."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self._entries: dict[str, Verified] = {}

    def get(self, token: str, now: float, skew: float) -> Verified | None:
        entry = self._entries.get(token)
        if entry is not None and entry.expires_at + skew <= now:
            del self._entries[token]
            return None
        return entry

    def put(self, token: str, entry: Verified) -> None:
        if len(self._entries) >= self.size:
            del self._entries[next(iter(self._entries))]
        self._entries[token] = entry

    def clear(self) -> None:
        self._entries.clear()


_ERRORS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.ExpiredSignatureError, "expired"),
    (jwt.ImmatureSignatureError, "not_yet_valid"),
    (jwt.InvalidIssuedAtError, "not_yet_valid"),
    (jwt.InvalidAudienceError, "audience"),
    (jwt.InvalidIssuerError, "issuer"),
    (jwt.MissingRequiredClaimError, "missing_claim"),
    (jwt.InvalidSignatureError, "signature"),
    (jwt.InvalidAlgorithmError, "algorithm"),
)


class Verifier:
    """`verify(token)`: the bearer's `Verified` identity, or `Rejected` with the reason."""

    def __init__(
        self,
        spec: AuthSpec,
        audiences: Audiences,
        keys: KeySet | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.spec = spec
        self.audiences = audiences
        self.cache = VerifiedCache()
        self.keys = keys if keys is not None else KeySet(spec)
        self.keys.on_change = self.cache.clear  # a key taken out of the set stops its tokens at once
        self.clock = clock
        self.algorithms = frozenset(spec.algorithms) & SIGNING_ALGORITHMS

    async def verify(self, token: str) -> Verified:
        now = self.clock()
        known = self.cache.get(token, now, self.spec.clock_skew)
        if known is not None:
            return known
        if len(token) > MAX_TOKEN_BYTES:
            raise Rejected("malformed")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Rejected("malformed") from None
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise Rejected("algorithm")
        if kid is not None and not isinstance(kid, str):
            raise Rejected("malformed")
        candidates = await self.keys.candidates(kid, alg)
        if not candidates:
            raise Rejected("unknown_key")
        claims = self._check(token, alg, candidates)
        if not self.audiences.accepts(claims.get("aud")):
            raise Rejected("audience")
        entry = verified(claims)
        self.cache.put(token, entry)
        return entry

    def _check(self, token: str, alg: str, candidates: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        """The claims, checked against the first candidate key whose signature verifies.

        PyJWT checks the signature before any claim, and the times against its own clock
        with the configured skew; `aud` is left to `Audiences` (its URLs compare normalized).
        """
        reason = "signature"
        for jwk in candidates:
            try:
                key = jwt.PyJWK(dict(jwk), algorithm=alg)
            except jwt.PyJWTError:
                continue  # a key the issuer published in a shape PyJWT cannot use checks nothing
            try:
                claims: dict[str, Any] = jwt.decode(
                    token,
                    key=key,
                    algorithms=[alg],
                    issuer=self.spec.issuer,
                    leeway=self.spec.clock_skew,
                    options={"require": ["exp", "iss", "aud"], "verify_aud": False},
                )
            except jwt.InvalidSignatureError:
                continue  # without a kid, the next key may be the one
            except jwt.PyJWTError as exc:
                reason = next((r for kind, r in _ERRORS if isinstance(exc, kind)), "malformed")
                break
            return claims
        raise Rejected(reason)
