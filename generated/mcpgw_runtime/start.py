# mcpgw runtime, vendored into every generated gateway. DO NOT EDIT the copy in dist/: its digest is checked at start.
"""What `gateway.py` calls: check the runtime and the installed packages, then serve.

Both checks come before any module that serves is imported, and use only the
standard library: an edited runtime is refused before its code runs, and a
missing package is said as a missing package, not as a traceback after the
startup panel.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from mcpgw_runtime.integrity import verify
from mcpgw_runtime.spec import GatewaySpec

ALLOW_MODIFIED = "--allow-modified-runtime"
EXIT_REFUSED = 1

REQUIRED_MODULES: dict[str, str] = {
    "anyio": "mcp",
    "httpx2": "mcp",
    "mcp": "mcp",
    "mcp_types": "mcp",
    "pydantic_core": "mcp",
    "starlette": "starlette",
    "uvicorn": "uvicorn",
}
"""Modules the gateway imports (at start or when the SDK part loads) → the requirement that brings each."""

AUTH_MODULES: dict[str, str] = {"jwt": "pyjwt", "cryptography": "pyjwt"}
"""Modules only a gateway with `gateway.auth` imports (oauth.py): PyJWT and, for RS256/ES256, `pyjwt[crypto]`."""


TRACING_MODULES: dict[str, str] = {
    "opentelemetry.sdk": "opentelemetry-sdk",
    "opentelemetry.exporter.otlp.proto.http": "opentelemetry-exporter-otlp-proto-http",
}
"""Modules only a gateway with `gateway.tracing` imports (tracing.py): the `mcpgw[otel]` extra."""


def missing_requirements(spec: GatewaySpec | None = None) -> list[str]:
    """The requirements whose modules cannot be found; PyJWT's only when `spec` configures OAuth, OpenTelemetry's
    only when it configures tracing."""
    missing = set()
    needed = {**REQUIRED_MODULES, **(AUTH_MODULES if spec is not None and spec.auth is not None else {})}
    if spec is not None and spec.tracing is not None:
        needed |= TRACING_MODULES
    for module, requirement in needed.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.add(requirement)
    return sorted(missing)


def start(spec: GatewaySpec, gateway_file: str, runtime_sha256: str, argv: list[str] | None = None) -> int:
    """Entry point of every generated gateway: refuse an edited runtime or a missing package, else serve."""
    args = sys.argv[1:] if argv is None else argv
    here = Path(gateway_file).resolve().parent
    runtime = Path(__file__).resolve().parent
    verdict = verify(runtime, runtime_sha256)
    allowed = ALLOW_MODIFIED in args
    if not verdict.ok and not ("-h" in args or "--help" in args):
        where = f"{runtime} differs from the runtime {gateway_file} was built with: {verdict.describe()}"
        if not allowed:
            print(
                f"error: {where}.\nRebuild with `mcpgw build` to get the runtime back, "
                f"or pass {ALLOW_MODIFIED} to run the edited copy anyway.",
                file=sys.stderr,
            )
            return EXIT_REFUSED
        print(f"WARNING: RUNNING A MODIFIED RUNTIME ({ALLOW_MODIFIED}): {where}", file=sys.stderr)
    missing = missing_requirements(spec)
    if missing:
        print(
            f"error: this gateway needs Python packages that {sys.executable} does not have: {', '.join(missing)}.\n"
            f"Install them with: {sys.executable} -m pip install -r {here / 'requirements.txt'}",
            file=sys.stderr,
        )
        return EXIT_REFUSED
    from mcpgw_runtime.cli import main

    return main(spec, gateway_file, args, modified_runtime=None if verdict.ok else verdict.describe())
