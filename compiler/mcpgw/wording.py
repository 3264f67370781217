"""Counts in messages: "1 tool", "3 tools", never "1 tools" or "tool(s)".

The gateway's console has its own copy (`console._plural`): the runtime imports nothing of the compiler.
"""

from __future__ import annotations


def plural(count: int, noun: str, many: str | None = None) -> str:
    """`count` and `noun`, with an "s" (or `many`) unless the count is exactly one."""
    return f"{count} {noun if count == 1 else many or noun + 's'}"
