"""The runtime of every generated gateway.

Each module here is ordinary, linted, typed and tested Python. `mcpgw build`
embeds their bodies verbatim, in `EMBED_ORDER`, into `gateway.py`; the
template only adds the tables. Imports between these modules must be written
`from mcpgw_runtime.x import ...` on their own lines: the embedder drops them,
since in `gateway.py` everything shares one namespace.
"""

from __future__ import annotations

EMBED_ORDER: tuple[str, ...] = (
    "envsubst",
    "spec",
    "drift",
    "pins",
    "observe",
    "limits",
    "metrics",
    "relay",
    "rounds",
    "backends",
    "sessions",
    "server",
    "fastpath",
    "http",
    "logfiles",
    "console",
    "cli",
)
