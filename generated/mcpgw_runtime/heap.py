# mcpgw runtime, vendored into every generated gateway. DO NOT EDIT the copy in dist/: its digest is checked at start.
"""Large messages: memory freed after one is kept for the next, not handed back to the kernel at once.

Why: glibc's malloc gets blocks of 128 KiB and more from mmap, and gives the top
of its heap back to the kernel once more than 128 KiB lies free there (both
limits rise as it goes). A 512 KB answer from a stdio backend is read, joined, parsed
(its text becomes strings as large), sent and freed on every call, and its pages
kept coming back zero-filled from the kernel: 29 to 48 page faults per call in
the gateway, about 1 with the limits fixed (its 256 KB p50 went from 3.85 to
3.59 ms and from 3.34 to 3.18 ms in two interleaved runs, bench/README.md).
Once the gateway reads a message of `LARGE_MESSAGE` bytes or more (a backend's
line, a client's request body), it fixes both limits for the rest of its life;
one that only ever sees small messages never changes them.

The cost is memory: up to `TRIM_THRESHOLD` of freed heap may stay mapped after
large answers (glibc's own moving limits go up to 32 MiB for mmap and twice that
for trimming). Other C libraries (musl, macOS) are left alone.
"""

from __future__ import annotations

import functools
import os

LARGE_MESSAGE = 128 * 1024
"""A message this long or longer fixes the limits (glibc's first mmap threshold)."""

MMAP_THRESHOLD = 4 * 1024 * 1024
"""Blocks below this come from the heap, where freed ones are reused (`M_MMAP_THRESHOLD`)."""

TRIM_THRESHOLD = 8 * 1024 * 1024
"""Free memory at the heap's top is given back only past this (`M_TRIM_THRESHOLD`)."""

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
"""mallopt's parameter numbers (glibc's malloc.h)."""


def glibc() -> bool:
    confstr = getattr(os, "confstr", None)  # Windows has none
    if confstr is None:
        return False
    try:
        return confstr("CS_GNU_LIBC_VERSION") is not None
    except (ValueError, OSError):  # no such name here: not glibc
        return False


@functools.cache
def keep_freed_memory() -> bool:
    """Fix glibc's limits, once per process; False where the C library is not glibc or refused them."""
    if not glibc():
        return False
    import ctypes  # only now: 3 ms and 0.4 MiB that a gateway without large messages never pays

    libc = ctypes.CDLL(None)
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
