"""One canonical JSON form, so digests, snapshots and diffs never depend on dict order.

`canonical` and `digest` live in the runtime, which re-checks pins with them;
the compiler uses the very same functions.
"""

from __future__ import annotations

import json
from typing import Any

from mcpgw_runtime.drift import canonical, digest

__all__ = ["canonical", "digest", "pretty"]


def pretty(value: Any) -> str:
    """The on-disk form: sorted keys, 2-space indent, trailing newline."""
    return json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
