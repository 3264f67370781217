"""Probe every enabled backend once, concurrently, through the gateway's own connection code.

Each list is paged through every `nextCursor` (`Connection.pages`, capped, so
a server whose cursor never ends cannot hang a build). A backend's stderr goes to a private
file whose tail is shown only if that backend fails.

The handshake and these lists are a backend starting, so each is bounded by its
`startup_timeout`, not by its `timeout` (as when the gateway connects). A step that has
waited `NOTICE_AFTER` seconds is reported, naming what it waits for: a silent build that
waits half a minute for a server looks hung.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import anyio
from mcp.shared.exceptions import MCPError
from mcpgw_runtime.connect import BackendError, Connection, open_backend
from mcpgw_runtime.envsubst import UnsetVariableError, redact, secret_values
from mcpgw_runtime.spec import BackendSpec

from mcpgw import __version__
from mcpgw.config import Config
from mcpgw.snapshot import BackendOffer
from mcpgw.specs import backend_spec
from mcpgw.wording import plural

JSON = dict[str, Any]
Listener = Callable[[str, str], None]
"""Called with (backend name, status text) as a probe advances; a long wait's text starts with "waiting for"."""

NOTICE_AFTER = 3.0
"""Seconds one step of a probe may wait before the listener is told what it waits for."""


@dataclass(frozen=True)
class ProbeFailure:
    backend: str
    message: str
    stderr_tail: str


class _Waits:
    """What one backend's probe waits for now; tells the listener once that has lasted `NOTICE_AFTER`."""

    def __init__(self, name: str, listener: Listener, secrets: dict[str, str]) -> None:
        self.name = name
        self.listener = listener
        self.secrets = secrets
        self.what: str | None = None
        self.since = 0.0
        self.step = 0

    def __call__(self, what: str | None) -> None:
        """A new step begins: `what` it waits for (None: nothing more)."""
        self.what = redact(what, self.secrets) if what is not None else None  # a URL may carry a token
        self.since = anyio.current_time()
        self.step += 1

    async def watch(self) -> None:
        told = 0
        while True:
            await anyio.sleep(0.25)
            if self.what is not None and self.step != told and anyio.current_time() - self.since >= NOTICE_AFTER:
                told = self.step
                self.listener(self.name, self.what)


async def _offer(conn: Connection, timeout: float, waits: _Waits) -> BackendOffer:
    caps = conn.init.capabilities
    lists: dict[str, list[JSON]] = {"tools": [], "prompts": [], "resources": [], "resourceTemplates": []}
    wanted = [
        ("tools/list", "tools", caps.tools),
        ("prompts/list", "prompts", caps.prompts),
        ("resources/list", "resources", caps.resources),
        ("resources/templates/list", "resourceTemplates", caps.resources),
    ]
    for method, key, capability in wanted:
        if capability is not None:
            waits.listener(waits.name, f"listing {key}")
            waits(f"waiting for backend {waits.name!r} to answer {method}, up to {timeout:g}s")
            lists[key] = await conn.pages(method, key, timeout)
    waits(None)
    return BackendOffer(
        server_info=conn.init.server_info.model_dump(by_alias=True, mode="json", exclude_none=True),
        protocol_version=conn.init.protocol_version,
        capabilities=caps.model_dump(by_alias=True, mode="json", exclude_none=True),
        instructions=conn.init.instructions,
        tools=lists["tools"],
        prompts=lists["prompts"],
        resources=lists["resources"],
        resource_templates=lists["resourceTemplates"],
    )


def _leaf(exc: BaseException) -> BaseException:
    """The first real error inside nested task-group exception groups: the one a user can act on."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _tail(path: Path, lines: int = 12) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


async def _attempt(spec: BackendSpec, base_dir: Path, errlog: TextIO, waits: _Waits) -> BackendOffer | str:
    """The backend's offer, or why there is none (not yet redacted)."""
    try:
        async with open_backend(spec, base_dir, client_version=__version__, errlog=errlog, waiting=waits) as conn:
            return await _offer(conn, spec.startup_timeout, waits)
    except UnsetVariableError as exc:
        return str(exc)
    except (BackendError, MCPError, OSError) as exc:
        return str(exc)
    except Exception as exc:  # any transport failure must name the backend, not crash the build
        leaf = _leaf(exc)
        return str(leaf) if isinstance(leaf, BackendError | MCPError) else f"{type(leaf).__name__}: {leaf}"


async def probe_one(config: Config, base_dir: Path, name: str, listener: Listener) -> BackendOffer | ProbeFailure:
    backend = config.backends[name]
    spec = backend_spec(backend)
    secrets = secret_values(spec.texts())
    waits = _Waits(name, listener, secrets)
    with tempfile.TemporaryDirectory(prefix="mcpgw-probe-") as tmp:
        errpath = Path(tmp) / "stderr.log"
        with errpath.open("w") as errlog:
            listener(name, "connecting")
            async with anyio.create_task_group() as tg:
                tg.start_soon(waits.watch)
                result = await _attempt(spec, base_dir, errlog, waits)
                tg.cancel_scope.cancel()
            if isinstance(result, BackendOffer):
                listener(name, f"ok: {plural(len(result.tools), 'tool')}, {plural(len(result.prompts), 'prompt')}")
                return result
            message = result
        listener(name, "failed")
        message = redact(message, secrets)  # build logs end up in CI output
        if not message.startswith("backend "):
            message = f"backend {name!r}: {message}"
        return ProbeFailure(name, message, _tail(errpath))


async def probe_all(config: Config, base_dir: Path, listener: Listener) -> dict[str, BackendOffer | ProbeFailure]:
    """Probe every enabled backend concurrently; failures are values, one per backend."""
    results: dict[str, BackendOffer | ProbeFailure] = {}

    async def run(name: str) -> None:
        results[name] = await probe_one(config, base_dir, name, listener)

    async with anyio.create_task_group() as tg:
        for name, backend in sorted(config.backends.items()):
            if backend.enabled:
                tg.start_soon(run, name)
    return dict(sorted(results.items()))
