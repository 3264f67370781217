"""A located problem in an input file: the one error value the config front end returns.

Every stage (JSON syntax, schema, semantic checks) reports through this type, so the
CLI prints all of them the same way and `--error-format` is one switch, not three.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, order=True)
class Diagnostic:
    """`file` as the user gave it; `line` and `col` 1-based; `pointer` an RFC 6901 JSON pointer ("" = whole file)."""

    file: str
    line: int
    col: int
    pointer: str
    message: str
    severity: Severity = "error"

    def format_text(self) -> str:
        """`config.json:12:5: /mcpServers/bash/args: expected ...`, the compiler convention editors link."""
        where = f"{self.pointer}: " if self.pointer else ""
        label = "warning: " if self.severity == "warning" else ""
        return f"{self.file}:{self.line}:{self.col}: {where}{label}{self.message}"

    def to_json(self) -> dict[str, str | int]:
        return {
            "file": self.file,
            "line": self.line,
            "col": self.col,
            "pointer": self.pointer,
            "message": self.message,
            "severity": self.severity,
        }

    def format_github(self) -> str:
        """A GitHub Actions workflow command, shown as an annotation on the config line."""
        props = f"file={escape_property(self.file)},line={self.line},col={self.col}"
        where = f"{self.pointer}: " if self.pointer else ""
        return f"::{self.severity} {props}::{escape_data(where + self.message)}"


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def has_errors(diagnostics: list[Diagnostic]) -> bool:
    return any(d.severity == "error" for d in diagnostics)
