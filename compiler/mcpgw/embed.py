"""Inline the runtime modules into one namespace for `gateway.py`.

Top-level imports are hoisted and de-duplicated, imports between runtime
modules are dropped, comments are kept. A top-level name defined twice is an
error unless both definitions are the same text (then the repeat is dropped):
one namespace must never silently shadow.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import mcpgw_runtime
from mcpgw_runtime.front import HEAVY_PACKAGES

RUNTIME_PACKAGE = "mcpgw_runtime"


@dataclass(frozen=True)
class Embedded:
    """The front (imports and bodies), then the core, which `gateway.py` runs only when the front loads it."""

    imports: list[str]
    body: str
    core_imports: list[str]
    core_body: str


class EmbedError(Exception):
    """The runtime cannot be inlined as is: a bug in mcpgw, never in user input."""


def _defined_names(node: ast.stmt) -> list[str]:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [node.name]
    if isinstance(node, ast.Assign):
        return [t.id for t in node.targets if isinstance(t, ast.Name)]
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return [node.target.id]
    return []


def _span(node: ast.stmt) -> tuple[int, int]:
    """0-based [start, end) line range, decorators included."""
    decorators = getattr(node, "decorator_list", [])
    start = min([node.lineno, *(d.lineno for d in decorators)])
    return start - 1, node.end_lineno or node.lineno


def _claim(seen: dict[str, str], name: str, text: str, path: Path) -> bool:
    """Record that `text` binds `name`; True when the identical binding already exists."""
    if name in seen and seen[name] != text:
        raise EmbedError(f"{path.name}: {name!r} is bound twice in the shared namespace ({seen[name]!r})")
    repeat = name in seen
    seen[name] = text
    return repeat


def _module(path: Path, imports: dict[str, None], seen: dict[str, str]) -> str:
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    tree = ast.parse(source, filename=str(path))
    drop: set[int] = set()
    for index, node in enumerate(tree.body):
        start, end = _span(node)
        text = "\n".join(lines[start:end])
        if index == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            drop.update(range(start, end))
        elif isinstance(node, ast.Import | ast.ImportFrom):
            module = node.module if isinstance(node, ast.ImportFrom) else None
            if module != "__future__" and not (module or "").startswith(RUNTIME_PACKAGE):
                imports[text.strip()] = None
                for alias in node.names:
                    bound = alias.asname or alias.name.split(".")[0]
                    origin = f"{module}.{alias.name}" if module else (alias.name if alias.asname else bound)
                    _claim(seen, bound, f"import {origin}", path)
            drop.update(range(start, end))
        for name in _defined_names(node):
            if _claim(seen, name, text, path):
                drop.update(range(start, end))
    kept = [line for i, line in enumerate(lines) if i not in drop]
    return "\n".join(kept).strip("\n")


def _heavy(line: str) -> str | None:
    """The heavy package an import line brings in, if any."""
    words = line.split()
    module = words[1] if len(words) > 1 else ""
    top = module.split(".")[0]
    return top if top in HEAVY_PACKAGES else None


def _part(
    folder: Path, modules: tuple[str, ...], seen: dict[str, str], earlier: dict[str, None]
) -> tuple[list[str], str]:
    imports: dict[str, None] = {}
    sections = []
    for module in modules:
        body = _module(folder / f"{module}.py", imports, seen)
        sections.append(f"# ---- runtime: {module}.py ----\n\n{body}")
    return [line for line in imports if line not in earlier], "\n\n\n".join(sections)


def _bound_by(lines: list[str]) -> set[str]:
    """The names a block of import lines binds."""
    names: set[str] = set()
    for node in ast.parse("\n".join(lines)).body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            names.update(alias.asname or alias.name.split(".")[0] for alias in node.names)
    return names


def _without_names(lines: list[str], bound: set[str]) -> list[str]:
    """Import lines with the names already bound earlier left out (same origin: `_claim` checked it)."""
    kept = []
    for line in lines:
        node = ast.parse(line).body[0]
        if not isinstance(node, ast.ImportFrom):
            kept.append(line)
            continue
        aliases = [a for a in node.names if (a.asname or a.name) not in bound]
        if len(aliases) == len(node.names):
            kept.append(line)
        elif aliases:
            names = ", ".join(f"{a.name} as {a.asname}" if a.asname else a.name for a in aliases)
            kept.append(f"from {node.module} import {names}")
    return kept


def embed_runtime(runtime_dir: Path | None = None) -> Embedded:
    """The runtime's imports and its concatenated bodies: the front's, then the core's.

    The front must not import what makes the start slow (`front.HEAVY_PACKAGES`): that is
    the point of having a front, so it is an error here, not a slow gateway later.
    """
    folder = runtime_dir or Path(mcpgw_runtime.__file__).parent
    seen: dict[str, str] = {}
    imports, body = _part(folder, mcpgw_runtime.FRONT_ORDER, seen, {})
    for line in imports:
        heavy = _heavy(line)
        if heavy is not None:
            raise EmbedError(f"the front imports {heavy!r} ({line!r}); only the core may")
    core_imports, core_body = _part(folder, mcpgw_runtime.CORE_ORDER, seen, dict.fromkeys(imports))
    core_imports = _without_names(core_imports, _bound_by(imports))
    return Embedded(imports=imports, body=body, core_imports=core_imports, core_body=core_body)
