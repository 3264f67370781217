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

RUNTIME_PACKAGE = "mcpgw_runtime"


@dataclass(frozen=True)
class Embedded:
    imports: list[str]
    body: str


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


def embed_runtime(runtime_dir: Path | None = None) -> Embedded:
    """The runtime's imports and its concatenated bodies, in `EMBED_ORDER`."""
    folder = runtime_dir or Path(mcpgw_runtime.__file__).parent
    imports: dict[str, None] = {}
    seen: dict[str, str] = {}
    sections = []
    for module in mcpgw_runtime.EMBED_ORDER:
        body = _module(folder / f"{module}.py", imports, seen)
        sections.append(f"# ---- runtime: {module}.py ----\n\n{body}")
    return Embedded(imports=list(imports), body="\n\n\n".join(sections))
