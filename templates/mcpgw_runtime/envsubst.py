# mcpgw runtime, vendored into every generated gateway. DO NOT EDIT the copy in dist/: its digest is checked at start.
"""`${VAR}` and `${VAR:-default}` expansion, done at run time so secrets never land in output."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

ENV_REF = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")
"""A reference; anything else containing `${` is malformed and rejected by the compiler."""


class UnsetVariableError(LookupError):
    """A `${VAR}` without default names a variable that is not set."""

    def __init__(self, name: str, where: str) -> None:
        super().__init__(f"environment variable {name} is not set (needed by {where})")
        self.name = name
        self.where = where


def expand(text: str, where: str, environ: Mapping[str, str] | None = None) -> str:
    """Expand every reference in `text`; `where` names the backend in the error."""
    env = os.environ if environ is None else environ

    def substitute(match: re.Match[str]) -> str:
        name = match.group("name")
        value = env.get(name)
        if value is not None:
            return value
        default = match.group("default")
        if default is not None:
            return default
        raise UnsetVariableError(name, where)

    return ENV_REF.sub(substitute, text)


def references(text: str) -> list[str]:
    """Names referenced in `text`, in order, for validation and docs."""
    return [m.group("name") for m in ENV_REF.finditer(text)]


def malformed(text: str) -> bool:
    """True when `text` holds a `${` that is not a well-formed reference."""
    return "${" in ENV_REF.sub("", text)


MIN_SECRET_CHARS = 4
"""Shorter values are not redacted: replacing every "1" or "on" in a message would garble it."""

PORT_LIKE = re.compile(r"\d{1,5}")
"""Nor are port-like numbers: `127.0.0.1:${PORT}` in an error says where nothing listened."""


def secret_values(texts: Iterable[str], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Value → `${NAME}` for every variable these texts reference that is set: what `redact` hides."""
    env = os.environ if environ is None else environ
    found: dict[str, str] = {}
    for text in texts:
        for name in references(text):
            value = env.get(name)
            if value is not None and len(value) >= MIN_SECRET_CHARS and not PORT_LIKE.fullmatch(value):
                found[value] = f"${{{name}}}"
    return found


def redact(text: str, secrets: Mapping[str, str]) -> str:
    """`text` with every expanded secret put back as its `${NAME}`, longest first.

    Errors quote what failed (a URL with a key in its query, an argv), so every
    message that leaves a backend's supervisor passes through here.
    """
    for value in sorted(secrets, key=len, reverse=True):
        if value in text:
            text = text.replace(value, secrets[value])
    return text
