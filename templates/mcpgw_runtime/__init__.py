"""The runtime of every generated gateway.

Each module here is ordinary, linted, typed and tested Python. `mcpgw build`
embeds their bodies verbatim into `gateway.py`: the front (`FRONT_ORDER`),
then the tables and the `__main__` guard, then the core (`CORE_ORDER`), which
the front loads once the port is open (cli.load_core). The template only adds
the tables. Imports between these modules must be written
`from mcpgw_runtime.x import ...` on their own lines: the embedder drops them,
since in `gateway.py` everything shares one namespace.
"""

from __future__ import annotations

FRONT_ORDER: tuple[str, ...] = (
    "envsubst",
    "spec",
    "observe",
    "logfiles",
    "console",
    "guard",
    "drift",
    "pins",
    "metrics",
    "heap",
    "pipes",
    "prestart",
    "front",
    "cli",
)
"""What runs first: it must not import the SDK (the embedder refuses `front.HEAVY_PACKAGES` here)."""

CORE_ORDER: tuple[str, ...] = (
    "limits",
    "relay",
    "rounds",
    "backends",
    "sessions",
    "server",
    "fastpath",
    "http",
    "stdio",
)
"""Loaded by the front in a worker thread once the port is open."""

EMBED_ORDER: tuple[str, ...] = FRONT_ORDER + CORE_ORDER
