"""A strict JSON parser that remembers where every value and key was.

`json.loads` forgets positions, silently keeps the last of duplicate keys, and
reports syntax errors in terms of its own grammar. Config errors must point at
line:col, so this parser records the position of each value and object key by
JSON pointer and turns every syntax problem into a `Diagnostic` a human can act on.
"""

from __future__ import annotations

import bisect
import json
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcpgw.diagnostics import Diagnostic, Severity

Pos = tuple[int, int]
"""(line, col), both 1-based; col counts characters."""

MAX_DEPTH = 128
"""Deeper nesting is never a config; the limit keeps recursion far from Python's."""

_WS = " \t\n\r"
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_PLAIN = re.compile(r'[^"\\\x00-\x1f]*')
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_LITERALS: dict[str, Any] = {"true": True, "false": False, "null": None}
_SPELLINGS = {"True": "true", "False": "false", "None": "null", "NaN": "a number", "Infinity": "a number"}


def escape(token: str | int) -> str:
    return str(token).replace("~", "~0").replace("/", "~1")


def pointer(tokens: Iterable[str | int]) -> str:
    """RFC 6901: "" is the whole document, each token is escaped and prefixed with "/"."""
    return "".join("/" + escape(t) for t in tokens)


def parent(ptr: str) -> str:
    return ptr[: ptr.rfind("/")] if ptr else ""


@dataclass
class Parsed:
    """The value, where each part of it is, and the duplicate keys found on the way."""

    value: Any
    values: dict[str, Pos] = field(default_factory=dict)
    keys: dict[str, Pos] = field(default_factory=dict)
    duplicates: list[Diagnostic] = field(default_factory=list)

    def locate(self, ptr: str, *, at_key: bool = False) -> Pos:
        """Where `ptr` is (its key when asked and known), else its nearest located ancestor."""
        if at_key and ptr in self.keys:
            return self.keys[ptr]
        while ptr not in self.values and ptr:
            ptr = parent(ptr)
        return self.values.get(ptr, (1, 1))


class _Fail(Exception):
    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index
        self.message = message


def _show(ch: str) -> str:
    return "end of file" if not ch else repr(ch)


class _Parser:
    def __init__(self, text: str, file: str) -> None:
        self.text = text
        self.file = file
        self.i = 0
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.result = Parsed(None)

    def pos(self, index: int) -> Pos:
        line = bisect.bisect_right(self.line_starts, index)
        return line, index - self.line_starts[line - 1] + 1

    def peek(self) -> str:
        return self.text[self.i : self.i + 1]

    def skip_ws(self) -> None:
        text, n = self.text, len(self.text)
        while self.i < n:
            ch = text[self.i]
            if ch in _WS:
                self.i += 1
            elif text.startswith(("//", "/*"), self.i):
                raise _Fail(self.i, "comments are not allowed in JSON")
            else:
                return

    def value(self, ptr: str, depth: int) -> Any:
        self.skip_ws()
        self.result.values[ptr] = self.pos(self.i)
        ch = self.peek()
        if ch == "{":
            return self.obj(ptr, depth + 1)
        if ch == "[":
            return self.array(ptr, depth + 1)
        if ch == '"':
            return self.string()
        if ch == "-" or ch.isdigit():
            return self.number()
        word = _WORD.match(self.text, self.i)
        if word and word.group() in _LITERALS:
            self.i = word.end()
            return _LITERALS[word.group()]
        if word:
            hint = _SPELLINGS.get(word.group())
            tail = f"; JSON spells it {hint}" if hint else "; strings need double quotes"
            raise _Fail(self.i, f"unexpected {word.group()}{tail}")
        if ch == "'":
            raise _Fail(self.i, "strings need double quotes, not single quotes")
        raise _Fail(self.i, f"expected a value, got {_show(ch)}")

    def nest(self, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise _Fail(self.i, f"nesting deeper than {MAX_DEPTH} levels")
        self.i += 1
        self.skip_ws()

    def obj(self, ptr: str, depth: int) -> dict[str, Any]:
        self.nest(depth)
        out: dict[str, Any] = {}
        first_at: dict[str, Pos] = {}
        if self.peek() == "}":
            self.i += 1
            return out
        while True:
            self.skip_ws()
            ch = self.peek()
            if ch != '"':
                if ch == "}":
                    raise _Fail(self.i, "trailing comma before '}' is not allowed in JSON")
                if ch == "'" or _WORD.match(ch):
                    raise _Fail(self.i, "object keys need double quotes")
                raise _Fail(self.i, f"expected a key in double quotes, got {_show(ch)}")
            key_pos = self.pos(self.i)
            key = self.string()
            child = f"{ptr}/{escape(key)}"
            if key in first_at:
                line, col = first_at[key]
                self.result.duplicates.append(
                    Diagnostic(
                        self.file,
                        *key_pos,
                        child,
                        f"duplicate key {json.dumps(key)} (first at {line}:{col}); only one of them would be used",
                    )
                )
            else:
                first_at[key] = key_pos
            self.result.keys[child] = key_pos
            self.skip_ws()
            if self.peek() != ":":
                raise _Fail(self.i, f"expected ':' after key {json.dumps(key)}, got {_show(self.peek())}")
            self.i += 1
            out[key] = self.value(child, depth)
            self.skip_ws()
            ch = self.peek()
            self.i += 1
            if ch == "}":
                return out
            if ch != ",":
                missing = " (missing comma?)" if ch == '"' else ""
                raise _Fail(self.i - 1, f"expected ',' or '}}' after an object member, got {_show(ch)}{missing}")

    def array(self, ptr: str, depth: int) -> list[Any]:
        self.nest(depth)
        out: list[Any] = []
        if self.peek() == "]":
            self.i += 1
            return out
        while True:
            self.skip_ws()
            if self.peek() == "]":
                raise _Fail(self.i, "trailing comma before ']' is not allowed in JSON")
            out.append(self.value(f"{ptr}/{len(out)}", depth))
            self.skip_ws()
            ch = self.peek()
            self.i += 1
            if ch == "]":
                return out
            if ch != ",":
                missing = " (missing comma?)" if ch in '"{[' or ch.isdigit() else ""
                raise _Fail(self.i - 1, f"expected ',' or ']' after an array item, got {_show(ch)}{missing}")

    def string(self) -> str:
        start = self.i
        self.i += 1
        parts: list[str] = []
        text = self.text
        while True:
            plain = _PLAIN.match(text, self.i)
            assert plain is not None  # the pattern matches the empty string
            parts.append(plain.group())
            self.i = plain.end()
            ch = self.peek()
            if ch == '"':
                self.i += 1
                return "".join(parts)
            if not ch or ch == "\n":
                raise _Fail(start, "unterminated string")
            if ch != "\\":
                raise _Fail(self.i, f"control character {ch!r} in a string; write it as an escape such as \\n or \\t")
            parts.append(self.escape())

    def escape(self) -> str:
        code = self.text[self.i + 1 : self.i + 2]
        if code in _ESCAPES:
            self.i += 2
            return _ESCAPES[code]
        if code != "u":
            raise _Fail(self.i, f'invalid escape \\{code}; JSON allows \\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX')
        first = self.hex4()
        if 0xD800 <= first < 0xDC00 and self.text.startswith("\\u", self.i):
            back = self.i
            second = self.hex4()
            if 0xDC00 <= second < 0xE000:
                return chr(0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00))
            self.i = back
        if 0xD800 <= first < 0xE000:
            raise _Fail(self.i - 6, "lone surrogate in \\u escape; pair it or write the character itself")
        return chr(first)

    def hex4(self) -> int:
        digits = self.text[self.i + 2 : self.i + 6]
        if len(digits) != 4 or any(c not in "0123456789abcdefABCDEF" for c in digits):
            raise _Fail(self.i, "\\u needs exactly four hex digits")
        self.i += 6
        return int(digits, 16)

    def number(self) -> int | float:
        match = _NUMBER.match(self.text, self.i)
        after = match.end() if match else self.i
        if match is None or re.match(r"[0-9A-Za-z.+-]", self.text[after : after + 1]):
            bad = re.match(r"[-+0-9A-Za-z.]*", self.text[self.i :])
            shown = bad.group() if bad else ""
            raise _Fail(self.i, f"invalid number {shown}")
        token = match.group()
        self.i = after
        if any(c in token for c in ".eE"):
            value: float = float(token)
            if value in (float("inf"), float("-inf")):
                raise _Fail(match.start(), f"number {token} is out of range")
            return value
        if len(token.lstrip("-")) > 308:
            raise _Fail(match.start(), "integer is out of range")
        number = int(token)
        if abs(number) > sys.float_info.max:
            raise _Fail(match.start(), "integer is out of range")
        return number


def parse(text: str, file: str) -> Parsed | Diagnostic:
    """The value with its positions, or one diagnostic at the first syntax error."""
    if not text.strip(_WS):
        return Diagnostic(file, 1, 1, "", "invalid JSON: the file is empty; an empty config is {}")
    parser = _Parser(text, file)
    try:
        parser.result.value = parser.value("", 0)
        parser.skip_ws()
        if parser.i < len(text):
            raise _Fail(parser.i, "unexpected text after the end of the JSON value")
    except _Fail as fail:
        line, col = parser.pos(fail.index)
        return Diagnostic(file, line, col, "", f"invalid JSON: {fail.message}")
    return parser.result


_DOTTED = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]")


def dotted_pointer(path: str) -> str:
    """`gateway.profiles.find.always[0]`, as messages name a place, as the pointer `/gateway/profiles/find/always/0`."""
    tokens: list[str | int] = [int(index) if index else key for key, index in _DOTTED.findall("." + path)]
    return pointer(tokens)


def located(
    problems: Iterable[tuple[str, str, Severity]], config_path: Path, *, at_key: bool = False
) -> list[Diagnostic]:
    """(pointer, message, severity) problems as the config's diagnostics, each at its pointer's line (or a parent's)."""
    file = str(config_path)
    try:
        result = parse(config_path.read_text(encoding="utf-8-sig"), file)
    except OSError:
        result = Parsed(value=None)
    parsed = result if isinstance(result, Parsed) else Parsed(value=None)
    out = []
    for ptr, message, severity in problems:
        line, col = parsed.locate(ptr, at_key=at_key)
        out.append(Diagnostic(file, line, col, ptr, message, severity))
    return out
