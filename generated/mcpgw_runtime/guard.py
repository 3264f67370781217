# mcpgw runtime, vendored into every generated gateway. DO NOT EDIT the copy in dist/: its digest is checked at start.
"""Who may talk to the gateway: Host (421), Origin (403) and, with a token, `Authorization: Bearer` (401).

Checked before any MCP code, on every route (health data is exactly as
protected as the tools), by the front while the SDK loads and by the guard
middleware after. Nothing here imports the SDK: the front must start without it.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mcpgw_runtime.metrics import GUARD_REFUSALS
from mcpgw_runtime.ratelog import REFUSALS

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


@dataclass(frozen=True, slots=True)
class Refusal:
    """An HTTP answer to a request the guard turns away."""

    status: int
    text: str
    headers: tuple[tuple[bytes, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class Guard:
    """Allowed Host and Origin patterns and an optional token."""

    allowed_hosts: tuple[str, ...]
    allowed_origins: tuple[str, ...]
    token: str | None

    @classmethod
    def for_bind(cls, host: str, port: int, hosts: Sequence[str], origins: Sequence[str], token: str | None) -> Guard:
        """Loopback names are always allowed; the bind address too when it is not a wildcard."""
        names = list(LOOPBACK_HOSTS)
        if host not in ("0.0.0.0", "::", "") and host not in names:
            names.append(f"[{host}]" if ":" in host else host)
        allowed_hosts = tuple(dict.fromkeys([*names, *hosts]))
        allowed_origins = tuple(
            dict.fromkeys([*(f"http://{n}" for n in names), *(f"https://{n}" for n in names), *origins])
        )
        return cls(allowed_hosts, allowed_origins, token)

    def host_ok(self, host: str | None) -> bool:
        """An allowed name, alone or with a port (`without_port`)."""
        if not host:
            return False
        if host in self.allowed_hosts or "*" in self.allowed_hosts:
            return True
        return without_port(host) in self.allowed_hosts

    def origin_ok(self, origin: str | None) -> bool:
        """No Origin, or an allowed `scheme://name`, alone or with a port (`without_port`)."""
        if origin is None:
            return True  # non-browser clients send none; browsers always do
        if origin in self.allowed_origins or "*" in self.allowed_origins:
            return True
        scheme, _, rest = origin.partition("://")
        bare = without_port(rest)
        return bare is not None and f"{scheme}://{bare}" in self.allowed_origins

    def token_ok(self, authorization: str | None) -> bool:
        if self.token is None:
            return True
        if not authorization or not authorization.lower().startswith("bearer "):
            return False
        return hmac.compare_digest(authorization[7:].strip().encode(), self.token.encode())

    def refusal(self, headers: Mapping[bytes, bytes]) -> Refusal | None:
        """Why a request with these raw ASGI headers is turned away, or None when it may pass."""

        def header(name: bytes) -> str | None:
            value = headers.get(name)
            return value.decode("latin-1") if value is not None else None

        if not self.host_ok(header(b"host")):
            return Refusal(421, "Invalid Host header")
        if not self.origin_ok(header(b"origin")):
            return Refusal(403, "Invalid Origin header")
        if not self.token_ok(header(b"authorization")):
            return Refusal(401, "Missing or invalid bearer token", ((b"www-authenticate", b"Bearer"),))
        return None

    def allows(self, headers: Mapping[bytes, bytes]) -> bool:
        return self.refusal(headers) is None


def without_port(authority: str) -> str | None:
    """`name` from `name` or `name:PORT`, `[v6]` from `[v6]` or `[v6]:PORT`; None for anything else.

    PORT must be a real port: 1 to 65535, in digits. Only that makes an allowed name
    with a suffix still the same host: `localhost:evil` or `127.0.0.1:9000x` is no
    address a browser would send for the gateway, so it is not let through as `localhost`.
    A name with a colon outside brackets (a bare IPv6 address) has no port to take off.
    """
    if authority.startswith("["):
        end = authority.find("]") + 1
        if end == 0:
            return None
        name, rest = authority[:end], authority[end:]
        if not rest:
            return name
        if rest[0] != ":":
            return None
        port = rest[1:]
    else:
        name, colon, port = authority.partition(":")
        if not colon:
            return name
    if not (0 < len(port) <= 5 and port.isascii() and port.isdigit() and 0 < int(port) <= 65535):
        return None
    return name


def record_refusal(scope: Mapping[str, Any], status: int, why: str) -> None:
    """Count a refused request for `/metrics` and log it, repeats at a bounded rate (ratelog.py).

    The path is the client's, so it is quoted and cut short; the kind of line (its
    rate-limit key) is the status and the reason only.
    """
    GUARD_REFUSALS[status].count += 1
    path = str(scope.get("path"))
    REFUSALS.warning(
        f"HTTP {status} {why}", "refused %s %r: HTTP %d (%s)", scope.get("method"), path[:200], status, why
    )


async def refuse(scope: Mapping[str, Any], send: Callable[[dict[str, Any]], Awaitable[None]], refusal: Refusal) -> None:
    """Answer a refused request (plain text), count it and log it (`record_refusal`)."""
    record_refusal(scope, refusal.status, refusal.text)
    body = refusal.text.encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": refusal.status, "headers": [*headers, *refusal.headers]})
    await send({"type": "http.response.body", "body": body})
