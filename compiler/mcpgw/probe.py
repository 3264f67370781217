"""Probe every enabled backend once, concurrently, through the gateway's own connection code.

Each list is paged through every `nextCursor` (`Connection.pages`, capped, so
a server whose cursor never ends cannot hang a build). A backend's stderr goes to a private
file whose tail is shown only if that backend fails.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from mcp.shared.exceptions import MCPError
from mcpgw_runtime.backends import BackendError, Connection, open_backend
from mcpgw_runtime.envsubst import UnsetVariableError, redact, secret_values

from mcpgw import __version__
from mcpgw.config import Config
from mcpgw.snapshot import BackendOffer
from mcpgw.specs import backend_spec

JSON = dict[str, Any]
Listener = Callable[[str, str], None]
"""Called with (backend name, status text) as a probe advances."""


@dataclass(frozen=True)
class ProbeFailure:
    backend: str
    message: str
    stderr_tail: str


async def _offer(conn: Connection, timeout: float, listener: Listener, name: str) -> BackendOffer:
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
            listener(name, f"listing {key}")
            lists[key] = await conn.pages(method, key, timeout)
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


async def probe_one(config: Config, base_dir: Path, name: str, listener: Listener) -> BackendOffer | ProbeFailure:
    backend = config.backends[name]
    spec = backend_spec(backend)
    with tempfile.TemporaryDirectory(prefix="mcpgw-probe-") as tmp:
        errpath = Path(tmp) / "stderr.log"
        with errpath.open("w") as errlog:
            try:
                listener(name, "connecting")
                async with open_backend(spec, base_dir, client_version=__version__, errlog=errlog) as conn:
                    offer = await _offer(conn, spec.timeout, listener, name)
                listener(name, f"ok: {len(offer.tools)} tools, {len(offer.prompts)} prompts")
                return offer
            except UnsetVariableError as exc:
                message = str(exc)
            except (BackendError, MCPError, OSError) as exc:
                message = str(exc)
            except Exception as exc:  # any transport failure must name the backend, not crash the build
                leaf = _leaf(exc)
                message = str(leaf) if isinstance(leaf, BackendError | MCPError) else f"{type(leaf).__name__}: {leaf}"
        listener(name, "failed")
        message = redact(message, secret_values(spec.texts()))  # build logs end up in CI output
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
