# mcpgw runtime, vendored into every generated gateway. DO NOT EDIT the copy in dist/: its digest is checked at start.
"""The runtime of every generated gateway, vendored beside it as `dist/mcpgw_runtime/`.

Each module here is ordinary, linted, typed and tested Python; `mcpgw build`
copies them byte for byte and `gateway.py` holds only the tables it hands to
`start.start`. The front (cli, front, front_backends and what they import) never
imports the SDK; `core.py` is the part that does, imported in a worker thread
when first needed.
"""

from __future__ import annotations

RUNTIME_VERSION = "0.2.0"
"""The mcpgw release this runtime ships with (the compiler's `__version__`)."""
