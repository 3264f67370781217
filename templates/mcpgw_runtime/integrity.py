# mcpgw runtime, vendored into every generated gateway. DO NOT EDIT the copy in dist/: its digest is checked at start.
"""The vendored runtime is the code that was reviewed: check it against the digest in `gateway.py`.

`mcpgw build` writes `mcpgw_runtime/SHA256SUMS` (the `sha256sum` format, so
`sha256sum -c` works too) and puts the digest of that file in `gateway.py`.
At start the gateway recomputes both; an edited, missing or added module is
named. Digests are taken over text with line endings normalised to LF, so a
checkout with git's CRLF conversion passes, and nothing else does. Stdlib
only: this runs before any other runtime module is imported.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

SUMS = "SHA256SUMS"
"""The manifest's file name inside the runtime folder."""


def file_digest(data: bytes) -> str:
    return hashlib.sha256(data.replace(b"\r\n", b"\n")).hexdigest()


def runtime_files(folder: Path) -> list[str]:
    """The runtime's modules, as sorted POSIX paths relative to `folder` (caches left out)."""
    found = (p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)
    return sorted(p.relative_to(folder).as_posix() for p in found)


def manifest(files: dict[str, bytes]) -> str:
    """`SHA256SUMS`'s text for these files (relative path → content)."""
    return "".join(f"{file_digest(data)}  {name}\n" for name, data in sorted(files.items()))


def read_folder(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in runtime_files(folder)}


@dataclass(frozen=True)
class Verdict:
    """What differs between a runtime folder and the digest a gateway was built with."""

    changed: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    sums_edited: bool = False

    @property
    def ok(self) -> bool:
        return not (self.changed or self.missing or self.added or self.sums_edited)

    def describe(self) -> str:
        parts = []
        if self.sums_edited:
            parts.append(f"{SUMS} does not match gateway.py")
        for label, names in (("edited", self.changed), ("missing", self.missing), ("added", self.added)):
            if names:
                parts.append(f"{label}: {', '.join(names)}")
        return "; ".join(parts)


def verify(folder: Path, expected: str) -> Verdict:
    """Compare the runtime in `folder` with `expected`, the digest of its `SHA256SUMS` at build time."""
    try:
        sums = (folder / SUMS).read_bytes()
    except OSError:
        return Verdict(missing=(SUMS,))
    listed: dict[str, str] = {}
    for line in sums.decode("utf-8", "replace").splitlines():
        digest, _, name = line.partition("  ")
        if name:
            listed[name] = digest
    on_disk = set(runtime_files(folder))
    changed = tuple(n for n in sorted(listed) if n in on_disk and file_digest((folder / n).read_bytes()) != listed[n])
    return Verdict(
        changed=changed,
        missing=tuple(n for n in sorted(listed) if n not in on_disk),
        added=tuple(sorted(on_disk - set(listed))),
        sums_edited=file_digest(sums) != expected,
    )
