"""A small MCP server with one tool, ``cmd``, that runs a command line with ``cmd.exe /c`` (Windows).

The command line goes to cmd.exe the way Python's own ``shell=True`` sends it on Windows,
``%ComSpec% /c "<command line>"``, so quotes and operators reach cmd.exe exactly as written (an argv
list would be re-quoted for C programs, which cmd.exe does not understand). The process runs without a
console window; a timeout or a cancelled call kills its whole tree with ``taskkill /T /F``. Output that
is not UTF-8 is decoded with the console's OEM code page. Everything else (output cap, structured
result, ``--cwd``/``--env``, transports) is shared with the bash server, see ``_command.py``.

On any other platform the server still starts and lists ``cmd``; every call answers "cmd is not
available on this platform" (an ``isError`` result).

The opt-in allow/deny lists (``--allow``/``--deny``, ``MCPGW_CMD_ALLOW``/``MCPGW_CMD_DENY``;
case-insensitive, ``.exe``/``.com``/``.bat``/``.cmd`` and folders ignored) guard against mistakes, such
as an agent reaching for ``del``. They are NOT a sandbox: the check reads the command names of each
``&``/``&&``/``||``/``|``-separated command, inside ``( )`` blocks and after ``if``/``for ... do``,
``call``, ``start`` and ``cmd /c``; it treats a name built from ``%variables%`` as unknown and refuses
what it cannot read (``for /f`` over a command's output), but it cannot see inside batch files.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from _command import (
    IS_WINDOWS,
    CommandTool,
    Dynamic,
    LogLevel,
    Settings,
    add_command_tool,
    make_settings,
    parse_command_args,
    serve,
    setup_logging,
)
from mcp.server.mcpserver import MCPServer

DESCRIPTION = (
    "Run a command line with `cmd.exe /c` (Windows) and return its exit code, stdout and stderr. Output over"
    " the server's cap is cut with a marker; on timeout the command's whole process tree is killed."
)
NOT_WINDOWS = (
    f"cmd is not available on this platform ({sys.platform}): it runs commands with cmd.exe, which only Windows has"
)

# cmd.exe's internal commands: they run even when written with punctuation glued on (`dir/w`, `echo.`, `cd\`).
INTERNAL = frozenset(
    "assoc break call cd chdir cls color copy date del dir echo endlocal erase exit for ftype goto if md mkdir"
    " mklink move path pause popd prompt pushd rd rem ren rename rmdir set setlocal shift start time title type"
    " ver verify vol".split()
)
_INTERNAL_PREFIX = re.compile(r"([A-Za-z]+)(?=[./\\+\[\]:(]|$)")
_EXTENSIONS = (".exe", ".com", ".bat", ".cmd")
_COMPARISONS = frozenset("equ neq lss leq gtr geq".split())
_CONDITIONS = frozenset("exist defined errorlevel cmdextversion".split())
_START_VALUED = frozenset("/d /node /affinity".split())  # `start` options that take a value


def normalize(name: str) -> str:
    """``C:\\Tools\\RM.EXE`` -> ``rm``: the form names are compared in."""
    base = re.split(r"[\\/]", name)[-1].lower()
    for extension in _EXTENSIONS:
        if base.endswith(extension) and len(base) > len(extension):
            return base[: -len(extension)]
    return base


def _redirect(command: str, i: int) -> tuple[str, int]:
    """The redirection at ``command[i]`` (``<``, ``>``, ``>>``, ``>&2``...): its kind and where it ends."""
    i += 2 if command.startswith(">>", i) else 1
    if command.startswith("&", i) and command[i + 1 : i + 2].isdigit():
        return "stream", i + 2
    return "target", i


def _escaped(command: str, i: int) -> tuple[str, int]:
    """The character a caret at ``command[i]`` escapes (nothing for a line continuation), and where it ends."""
    for continuation in ("^\r\n", "^\n"):
        if command.startswith(continuation, i):
            return "", i + len(continuation)
    return command[i + 1 : i + 2], i + 2


def _tokens(command: str) -> Iterator[tuple[str, str]]:
    """``(kind, text)``: ``word`` (quotes and carets removed; ``word"`` when it starts with a quote, ``word%``
    when it holds a ``%``: a variable, expanded by cmd.exe before it runs anything), ``op`` (``&``, ``&&``,
    ``|``, ``||``, newline), ``(``, ``)`` and ``redirect`` (text ``target`` when a file name follows).
    """
    word: list[str] = []
    lead = ""  # how the current word began: "" (not yet), '"' (with a quote) or "w"
    i = 0
    while i < len(command):
        char = command[i]
        if char in " \t\r&|\n()<>":
            if char in "<>" and lead == "w" and "".join(word).isdigit():  # `2>`: the digit names a stream
                word, lead = [], ""
            if word or lead:
                text = "".join(word)
                yield ("word%" if "%" in text else 'word"' if lead == '"' else "word", text)
            word, lead = [], ""
        if char == '"':
            end = command.find('"', i + 1)
            end = len(command) if end < 0 else end  # cmd.exe lets a quote run to the end of the line
            word.append(command[i + 1 : end])
            lead, i = lead or '"', end + 1
        elif char == "^":
            escaped, i = _escaped(command, i)
            word.append(escaped)
            lead = lead or "w"
        elif char in "&|\n":
            double = char != "\n" and command.startswith(char * 2, i)
            yield ("op", char * 2 if double else char)
            i += 2 if double else 1
        elif char in "()":
            yield (char, char)
            i += 1
        elif char in "<>":
            kind, i = _redirect(command, i)
            yield ("redirect", kind)
        else:
            if char not in " \t\r":
                word.append(char)
                lead = lead or "w"
            i += 1
    if word or lead:
        text = "".join(word)
        yield ("word%" if "%" in text else 'word"' if lead == '"' else "word", text)


def _name(kind: str, word: str) -> str:
    word = re.split(r"[,;=]", word, maxsplit=1)[0]  # cmd.exe also ends a command's name at these
    if kind == "word%":
        return Dynamic("a %variable% used as a command name")
    if (match := _INTERNAL_PREFIX.match(word)) and match.group(1).lower() in INTERNAL:
        return match.group(1).lower()
    return normalize(word)


class _Parser:
    """Walks the tokens, tracking whether the next word is in command position."""

    def __init__(self, command: str) -> None:
        self.tokens = list(_tokens(command))
        self.pos = 0
        self.names: list[str] = []

    def next_word(self) -> tuple[str, str] | None:
        """The next word of the current command, skipping redirections; None at the command's end."""
        while self.pos < len(self.tokens):
            kind, text = self.tokens[self.pos]
            if kind == "redirect":
                self.pos += 1
                if text == "target" and self.pos < len(self.tokens) and self.tokens[self.pos][0].startswith("word"):
                    self.pos += 1
                continue
            if not kind.startswith("word"):
                return None
            self.pos += 1
            return kind, text
        return None

    def parse(self) -> list[str]:
        depth = 0
        while self.pos < len(self.tokens):
            kind, _ = self.tokens[self.pos]
            if kind == "(":
                depth += 1
                self.pos += 1
            elif kind == ")":
                if depth == 0:
                    raise ValueError("unbalanced parentheses")
                depth -= 1
                self.pos += 1
            elif kind == "op":
                self.pos += 1
            else:  # a word, or a redirection before the command's name
                self.command(depth)
        return self.names

    def command(self, depth: int) -> None:
        """One simple command from command position: record its name(s), skip its arguments."""
        first = self.next_word()
        while first is not None and first[1].lower() == "else":
            first = self.next_word()
        if first is None:
            return
        kind, word = first
        word = word.lstrip("@")
        if word.startswith(":") or not word:  # a label, or a `::` comment
            self.skip_arguments(depth)
            return
        name = _name(kind, word)
        if not name:
            return
        self.names.append(name)
        if name == "if":
            self.condition()
            return  # what follows the condition is a command (or a `( )` block)
        if name == "for":
            self.for_set()
            return
        if name in {"call", "cmd", "start"}:
            self.wrapped(name)
            return
        self.skip_arguments(depth)

    def skip_arguments(self, depth: int) -> None:
        while self.pos < len(self.tokens):
            kind, _ = self.tokens[self.pos]
            if kind == "op" or (kind == ")" and depth > 0):
                return
            self.pos += 1

    def condition(self) -> None:
        """Skip ``[/i] [not] <condition>`` of an ``if``."""
        word = self.next_word()
        while word is not None and word[1].lower() in {"/i", "not"}:
            word = self.next_word()
        if word is None:
            raise ValueError("`if` without a condition")
        text = word[1]
        if text.lower() in _CONDITIONS:
            if self.next_word() is None:
                raise ValueError(f"`if {text}` without its operand")
        elif "==" in text:
            if text.endswith("==") and self.next_word() is None:
                raise ValueError("`if` comparison without a right-hand side")
        else:
            operator = self.next_word()
            if operator is None:
                raise ValueError("cannot read the `if` condition")
            if operator[1] == "==" or operator[1].lower() in _COMPARISONS:
                if self.next_word() is None:
                    raise ValueError("`if` comparison without a right-hand side")
            elif not operator[1].startswith("=="):
                raise ValueError("cannot read the `if` condition")

    def for_set(self) -> None:
        """Skip ``for [options] %x in (set)`` up to ``do``; refuse ``for /f`` over a command."""
        start = self.pos
        while self.pos < len(self.tokens):
            kind, text = self.tokens[self.pos]
            self.pos += 1
            if kind.startswith("word") and text.lower() == "do":
                words = [t for k, t in self.tokens[start : self.pos] if k.startswith("word")]
                if any(w.lower() == "/f" for w in words) and any("'" in w or "`" in w for w in words):
                    raise ValueError("`for /f` runs the command in its set, which cannot be checked")
                return
        raise ValueError("`for` without `do`")

    def wrapped(self, name: str) -> None:
        """The command that ``call``, ``start`` or ``cmd /c`` runs is in command position too."""
        if name == "call":
            return
        titled = False
        while self.pos < len(self.tokens):
            kind, text = self.tokens[self.pos]
            lowered = text.lower()
            if name == "start" and kind == 'word"' and not titled:
                titled, self.pos = True, self.pos + 1  # start's first quoted argument is the window title
            elif kind.startswith("word") and lowered.startswith("/"):
                self.pos += 1
                if name == "start" and lowered in _START_VALUED:
                    self.next_word()
                elif name == "cmd" and lowered in {"/c", "/k", "/r"}:
                    following = self.tokens[self.pos] if self.pos < len(self.tokens) else None
                    if following is not None and following[0] == 'word"':  # cmd /c "a & b": one command line
                        self.names += command_names(following[1])
                        self.pos += 1
                    return
            else:
                return


def command_names(command: str) -> list[str]:
    """The (normalized) command names in a cmd.exe command line; ValueError when it cannot tell."""
    return _Parser(command).parse()


def invocation(command: str) -> str:
    """What to start: the command line itself, which Python hands to ``%ComSpec% /c "..."`` on Windows."""
    return command


def cmd_tool(windows: bool = IS_WINDOWS) -> CommandTool:
    fallback = None
    if sys.platform == "win32":
        import ctypes

        fallback = f"cp{ctypes.windll.kernel32.GetOEMCP()}"
    return CommandTool(
        name="cmd",
        unavailable=None if windows else NOT_WINDOWS,
        invocation=invocation,
        names=command_names,
        fallback_encoding=fallback,
    )


def build_server(tool: CommandTool, settings: Settings, log_level: LogLevel = "WARNING") -> MCPServer[Any]:
    server: MCPServer[Any] = MCPServer("cmd", log_level=log_level)
    add_command_tool(
        server,
        tool,
        settings,
        title="Run a cmd.exe command",
        description=DESCRIPTION,
        command_help="The command line, run with `cmd.exe /c`.",
    )
    return server


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_command_args("MCP server with one tool that runs cmd.exe commands (Windows).", "MCPGW_CMD", argv)
    logger = setup_logging("cmd_server", args.log_level)
    tool = cmd_tool()
    if tool.unavailable:
        logger.warning(tool.unavailable)
    serve(build_server(tool, make_settings(args, normalize), args.log_level), args)


if __name__ == "__main__":
    main()
