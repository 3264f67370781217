# mcpgw runtime, vendored into every generated gateway. DO NOT EDIT the copy in dist/: its digest is checked at start.
"""Resources across backends, without the SDK: the composite cursor and which backend serves a URI.

Why here: both halves of the gateway page through the backends' resource lists
and route `resources/read` by URI (the front before the core is loaded, the core
after it), and a cursor the front handed out must mean the same to the core.

`resources/list` walks the backends that offer resources, one backend's page
at a time; the cursor says which backend (its index in that order) and that
backend's own cursor:

    cursor = urlsafe_b64(json([index, inner]))    inner None: the backend's first page

A URI is served by the backend named in the embedded resources table, else by
the one whose live listing offered it, else by the first whose resource template
matches it.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable

from mcpgw_runtime.forwarding import INVALID_PARAMS, Refused


def encode_cursor(index: int, inner: str | None) -> str:
    raw = json.dumps([index, inner], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_cursor(cursor: str, error: Callable[[int, str], Exception] = Refused) -> tuple[int, str | None]:
    """The backend's index and its own cursor; `error(INVALID_PARAMS, "invalid cursor")` is raised for garbage.

    `error` is the raising half's exception type (the core's is the SDK's `MCPError`).
    """
    try:
        index, inner = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError) as exc:
        raise error(INVALID_PARAMS, "invalid cursor") from exc
    if not isinstance(index, int) or not (inner is None or isinstance(inner, str)):
        raise error(INVALID_PARAMS, "invalid cursor")
    return index, inner


def no_backend_offers(uri: str) -> Refused:
    return Refused(INVALID_PARAMS, f"no backend offers resource {uri!r}")


MAX_URI_LENGTH = 65_536
"""Longer URIs match no template (the SDK's `DEFAULT_MAX_URI_LENGTH`)."""

SIMPLE_STOPS = "/?#&,"
"""Where a simple `{var}` ends in a URI (RFC 6570: everything structural in it is percent-encoded)."""

_EXPRESSION = re.compile(r"\{([^{}]*)\}")
_VARNAME = re.compile(r"^[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*$")


class SimpleTemplate:
    """A URI template made of literals and simple `{var}` expressions, matched as the SDK's `UriTemplate`.

    Only this form is matched here (what resource templates almost always are); `parse`
    returns None for any other (operators, lists, modifiers), and the core decides those.
    The scan is the SDK's for a template without a greedy variable: right to left, each
    variable taking what lies between its stop characters and the rightmost occurrence
    of the literal before it, the first literal anchored at the start of the URI.
    """

    __slots__ = ("atoms",)

    def __init__(self, atoms: list[str | None]) -> None:
        self.atoms = atoms
        """Literals, and None for a variable."""

    @classmethod
    def parse(cls, template: str) -> SimpleTemplate | None:
        atoms: list[str | None] = []
        pos = 0
        for expression in _EXPRESSION.finditer(template):
            literal = template[pos : expression.start()]
            if "{" in literal or "}" in literal:
                return None
            if literal:
                atoms.append(literal)
            if not _VARNAME.match(expression.group(1)) or (atoms and atoms[-1] is None):
                return None
            atoms.append(None)
            pos = expression.end()
        tail = template[pos:]
        if "{" in tail or "}" in tail:
            return None
        if tail:
            atoms.append(tail)
        return cls(atoms)

    def matches(self, uri: str) -> bool:
        if len(uri) > MAX_URI_LENGTH:
            return False
        atoms, pos = self.atoms, len(uri)
        for i in range(len(atoms) - 1, -1, -1):
            atom = atoms[i]
            if atom is not None:
                if pos < len(atom) or uri[pos - len(atom) : pos] != atom:
                    return False
                pos -= len(atom)
                continue
            earliest = pos
            while earliest > 0 and uri[earliest - 1] not in SIMPLE_STOPS:
                earliest -= 1
            before = atoms[i - 1] if i > 0 else None
            if before is None:
                start = earliest
            elif i - 1 == 0:  # the template's first literal: fixed at the start of the URI
                start = len(before)
                if start < earliest or start > pos:
                    return False
            else:
                found = uri.rfind(before, 0, pos)
                if found == -1 or found + len(before) < earliest:
                    return False
                start = found + len(before)
            pos = start
        return pos == 0


class ResourceRoutes:
    """Which backend serves a URI: the embedded table, what live listings offered, the templates."""

    def __init__(self, fixed: dict[str, str], templates: list[tuple[str, str]]) -> None:
        self.fixed = fixed
        self.live: dict[str, str] = {}
        """URI → backend, from the `resources/list` pages this half has fetched."""
        self.by_template = {template: backend for backend, template in templates}
        parsed = [(SimpleTemplate.parse(template), backend) for backend, template in templates]
        self._templates = [(t, b) for t, b in parsed if t is not None]
        self.complete = len(self._templates) == len(parsed)
        """Every template is one `SimpleTemplate` matches exactly as the core would."""

    def decides(self, uri: str) -> bool:
        """Whether `backend(uri)` is the core's answer: named by table or listing, or every template is simple."""
        return self.complete or uri in self.fixed or uri in self.live

    def backend(self, uri: str) -> str | None:
        """The backend serving `uri`; None when no table, listing or template names one."""
        name = self.fixed.get(uri) or self.live.get(uri)
        if name is not None:
            return name
        for template, backend in self._templates:
            if template.matches(uri):
                return backend
        return None
