"""A small MCP server with one tool, ``powershell``, that runs a PowerShell script.

The interpreter: ``--powershell`` (or ``MCPGW_POWERSHELL``) if given, else ``powershell.exe`` on
Windows, else ``pwsh`` (PowerShell 7) wherever it is on PATH, on any OS. Each call runs
``<exe> -NoLogo -NoProfile -NonInteractive -EncodedCommand <base64 UTF-16LE>``: the encoded form takes
the script verbatim, with no quoting rules to get wrong. A short preamble turns off progress bars
(which would land in stderr as CLIXML) and makes stdout UTF-8. The process runs without a console
window; a timeout or a cancelled call kills its whole tree. Everything else (output cap, structured
result, ``--cwd``/``--env``, transports) is shared with the bash server, see ``_command.py``.

With no interpreter found, the server still starts and lists ``powershell``; every call answers
"powershell is not available on this platform" (an ``isError`` result).

The opt-in allow/deny lists (``--allow``/``--deny``, ``MCPGW_POWERSHELL_ALLOW``/``_DENY``;
case-insensitive, folders and ``.exe``/``.ps1`` ignored; a built-in alias matches its cmdlet, so
denying ``Remove-Item`` also refuses ``rm`` and ``del``) guard against mistakes. They are NOT a sandbox:
the check reads the command names of each statement and pipeline element, inside ``{ }``, ``( )``,
``$( )`` and strings, after ``&`` and ``.``, and the literal script given to ``Invoke-Expression``. It
treats a name it cannot read (``& $cmd``, a .NET static call under an allow list) as unknown and refuses
what it cannot parse, but it cannot see into scripts, functions, aliases defined on the fly, or
methods called on objects.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from _command import (
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
    "Run a PowerShell script (Windows PowerShell, or PowerShell 7 `pwsh` on any OS) and return its exit code,"
    " stdout and stderr. Output over the server's cap is cut with a marker; on timeout the whole process tree"
    " is killed."
)
FLAGS = ("-NoLogo", "-NoProfile", "-NonInteractive")
PREAMBLE = "$ProgressPreference = 'SilentlyContinue'; [Console]::OutputEncoding = [System.Text.Encoding]::UTF8\n"

# Built-in aliases of Windows PowerShell that name a command people deny or allow by its cmdlet name.
ALIASES = {
    alias: cmdlet.lower()
    for cmdlet, aliases in {
        "Add-Content": "ac",
        "Clear-Content": "clc",
        "Copy-Item": "copy cp cpi",
        "ForEach-Object": "% foreach",
        "Get-ChildItem": "dir gci ls",
        "Get-Content": "cat gc type",
        "Get-Item": "gi",
        "Get-Location": "gl pwd",
        "Get-Process": "gps ps",
        "Get-WmiObject": "gwmi",
        "Invoke-Command": "icm",
        "Invoke-Expression": "iex",
        "Invoke-Item": "ii",
        "Invoke-RestMethod": "irm",
        "Invoke-WebRequest": "curl iwr wget",
        "Move-Item": "mi move mv",
        "New-Item": "ni",
        "Remove-Item": "del erase rd ri rm rmdir",
        "Rename-Item": "ren rni",
        "Set-Content": "sc",
        "Set-Location": "cd chdir sl",
        "Start-Job": "sajb",
        "Start-Process": "saps start",
        "Stop-Process": "kill spps",
        "Where-Object": "? where",
        "Write-Output": "echo write",
    }.items()
    for alias in aliases.split()
}
_KEYWORDS = frozenset(
    "begin break catch class continue data do dynamicparam else elseif end enum exit filter finally for foreach"
    " function if in param process return switch throw trap try until using while workflow".split()
)
_DEFINES = frozenset("function filter workflow class enum configuration break continue".split())  # + a name
_EXTENSIONS = (".exe", ".ps1", ".cmd", ".bat", ".com")
_BAREWORD = re.compile(r"[^\s;|&(){}\"'`,=]+|`.")
_NUMBER = re.compile(r"\d")


def normalize(name: str) -> str:
    """``C:\\bin\\Tool.EXE`` -> ``tool``: the form names are compared in."""
    base = re.split(r"[\\/]", name)[-1].lower()
    for extension in _EXTENSIONS:
        if base.endswith(extension) and len(base) > len(extension):
            return base[: -len(extension)]
    return base


@dataclass
class _Token:
    kind: str  # word, string, expandable, variable, type, open, close, sep, assign, call
    text: str


def _string(script: str, i: int) -> tuple[_Token, int]:
    """A quoted string (or here-string) at ``script[i]``: its value and where it ends."""
    here = script.startswith(("@'", '@"'), i)
    quote = script[i + 1] if here else script[i]
    end_mark = "\n" + quote + "@" if here else quote
    j = i + (2 if here else 1)
    value: list[str] = []
    while j < len(script):
        if script.startswith(end_mark, j) or (here and script.startswith("\r" + end_mark, j)):
            if not here and script.startswith(quote * 2, j):  # '' or "" inside the string
                value.append(quote)
                j += 2
                continue
            kind = "string" if quote == "'" else "expandable"
            return _Token(kind, "".join(value)), j + len(end_mark) + (1 if script[j] == "\r" else 0)
        if quote == '"' and script[j] == "`":
            value.append(script[j : j + 2])
            j += 2
            continue
        value.append(script[j])
        j += 1
    raise ValueError("unterminated string")


def _tokens(script: str) -> list[_Token]:  # noqa: PLR0912, PLR0915 - a flat lexer, one branch per token
    tokens: list[_Token] = []
    i = 0
    while i < len(script):
        char = script[i]
        if script.startswith("<#", i):
            end = script.find("#>", i + 2)
            if end < 0:
                raise ValueError("unterminated block comment")
            i = end + 2
        elif char == "#":
            end = script.find("\n", i)
            i = len(script) if end < 0 else end
        elif char in " \t\r" or script.startswith("`\n", i):
            i += 1 if char != "`" else 2
        elif char in "'\"" or script.startswith(("@'\n", '@"\n', "@'\r\n", '@"\r\n'), i):
            token, i = _string(script, i)
            tokens.append(token)
        elif script.startswith(("$(", "@(", "@{"), i):
            tokens.append(_Token("open", script[i : i + 2]))
            i += 2
        elif char in "({":
            tokens.append(_Token("open", char))
            i += 1
        elif char in ")}":
            tokens.append(_Token("close", char))
            i += 1
        elif char in ";\n" or script.startswith(("&&", "||"), i) or char == "|":
            size = 2 if script.startswith(("&&", "||"), i) else 1
            tokens.append(_Token("sep", script[i : i + size]))
            i += size
        elif char == "&":
            tokens.append(_Token("call", "&"))
            i += 1
        elif char == "=":
            tokens.append(_Token("assign", "="))
            i += 1
        elif char == ",":
            i += 1
        elif char == "$":
            match = re.compile(r"\$(\{[^}]*\}|[\w:?^$]*)").match(script, i)
            assert match is not None
            tokens.append(_Token("variable", match.group()))
            i = match.end()
        elif char == "[":
            end = _matching(script, i, "[", "]")
            tokens.append(_Token("type", script[i : end + 1]))
            i = end + 1
        else:
            match = _BAREWORD.match(script, i)
            assert match is not None
            text = match.group()
            if text in {"+=", "-=", "*=", "/=", "%="}:
                tokens.append(_Token("assign", text))
            else:
                tokens.append(_Token("word", text))
            i = match.end()
    return tokens


def _matching(script: str, start: int, opening: str, closing: str) -> int:
    depth = 0
    for j in range(start, len(script)):
        depth += {opening: 1, closing: -1}.get(script[j], 0)
        if depth == 0:
            return j
    raise ValueError(f"unbalanced {opening}{closing}")


_SUBEXPRESSION = re.compile(r"(?<!`)\$\(")


def _expanded_bodies(text: str) -> list[str]:
    """The ``$( ... )`` subexpressions inside an expandable string: scripts of their own."""
    bodies = []
    for match in _SUBEXPRESSION.finditer(text):
        end = _matching(text, match.end() - 1, "(", ")")
        bodies.append(text[match.end() : end])
    return bodies


class _Parser:
    """Walks the tokens, tracking command position (statement start, after ``|``, ``(``, ``{``, ``=``...)."""

    def __init__(self, script: str, allow_listed: bool) -> None:
        self.tokens = _tokens(script)
        self.allow_listed = allow_listed
        self.names: list[str] = []

    def literal_names(self, token: _Token) -> list[str]:
        """Names hidden inside a string token (its subexpressions)."""
        names: list[str] = []
        if token.kind == "expandable":
            for body in _expanded_bodies(token.text):
                names += _Parser(body, self.allow_listed).parse()
        return names

    def parse(self) -> list[str]:  # noqa: PLR0912, PLR0915 - one branch per token kind reads best here
        position = True  # the next token starts a command
        statement_is_command = False  # this pipeline element's first token was a command
        keys: list[bool] = []  # per open bracket: is it a hashtable (first word of a statement is a key)?
        expect_key = False
        skip_next = False
        tokens = self.tokens
        i = 0
        while i < len(tokens):
            token = tokens[i]
            i += 1
            if token.kind in {"string", "expandable"}:
                self.names += self.literal_names(token)
            if skip_next and token.kind == "word":
                skip_next, position = False, False
                continue
            if token.kind == "sep":
                position, statement_is_command = True, False
                expect_key = bool(keys and keys[-1])
            elif token.kind == "open":
                keys.append(token.text == "@{")
                position, statement_is_command, expect_key = True, False, token.text == "@{"
            elif token.kind == "close":
                if not keys:
                    raise ValueError(f"unbalanced {token.text}")
                keys.pop()
                position = False
            elif token.kind == "assign":
                position = not statement_is_command
            elif token.kind == "call":
                if not position:  # `cmd1 & cmd2`: PowerShell 7's background operator ends a statement
                    position, statement_is_command = True, False
                    continue
                i = self.called(tokens, i)
                position, statement_is_command = False, True
            elif token.kind == "word" and position:
                word = token.text.lower()
                if expect_key:  # a hashtable key
                    position = expect_key = False
                elif word in _KEYWORDS or word == "configuration":
                    skip_next = word in _DEFINES
                    if word == "using":
                        while i < len(tokens) and tokens[i].kind != "sep":
                            i += 1
                elif word == "." and i < len(tokens):  # dot-sourcing: `. script.ps1`
                    i = self.called(tokens, i)
                    position, statement_is_command = False, True
                elif _NUMBER.match(word) or word.startswith("-"):
                    position = False
                else:
                    self.add(word, tokens, i)
                    position, statement_is_command = False, True
            elif token.kind == "type" and position and i < len(tokens) and tokens[i].text.startswith("::"):
                if self.allow_listed:
                    self.names.append(Dynamic("a .NET static method call"))
                position = False
            elif token.kind == "word" and token.text.lower() == "in" and not statement_is_command:
                position = True  # foreach ($x in <pipeline>)
            elif token.kind != "word":
                position = expect_key = (
                    False  # a value (string, variable, number...) starts an expression, not a command
                )
        if keys:
            raise ValueError("unbalanced brackets")
        return self.names

    def add(self, word: str, tokens: list[_Token], i: int) -> None:
        name = normalize(word)
        self.names.append(name)
        if ALIASES.get(name, name) == "invoke-expression":  # its literal argument is a script of its own
            argument = tokens[i] if i < len(tokens) else None
            if argument is not None and argument.kind == "string":
                self.names += _Parser(argument.text, self.allow_listed).parse()
            elif argument is None or argument.kind != "expandable" or "$" in argument.text:
                self.names.append(Dynamic("a script built at run time (Invoke-Expression)"))
            else:
                self.names += _Parser(argument.text, self.allow_listed).parse()

    def called(self, tokens: list[_Token], i: int) -> int:
        """After ``&`` or ``.``: the command is the next token, when it is written out."""
        if i >= len(tokens):
            raise ValueError("`&` without a command")
        target = tokens[i]
        if target.kind in {"word", "string"} or (target.kind == "expandable" and "$" not in target.text):
            self.add(target.text, tokens, i + 1)
            return i + 1
        if target.kind == "open" and target.text == "{":
            return i  # a script block: its body is parsed as commands
        self.names.append(Dynamic("a command name computed at run time (`&` or `.` with a variable)"))
        return i + 1


def command_names(script: str, allow_listed: bool = False) -> list[str]:
    """The (normalized) command names in a PowerShell script; ValueError when it cannot tell."""
    return _Parser(script, allow_listed).parse()


def find_interpreter(configured: str | None, windows: bool = sys.platform == "win32") -> str | None:
    """The PowerShell to run: ``configured``, else ``powershell.exe`` on Windows, else ``pwsh``."""
    if configured:
        return shutil.which(configured) or (configured if os.path.isfile(configured) else None)
    if windows and (found := shutil.which("powershell.exe")):
        return found
    return shutil.which("pwsh")


def invocation(interpreter: str, script: str) -> list[str]:
    """``<interpreter> -NoLogo -NoProfile -NonInteractive -EncodedCommand <base64 of UTF-16LE script>``."""
    encoded = base64.b64encode((PREAMBLE + script).encode("utf-16-le")).decode("ascii")
    return [interpreter, *FLAGS, "-EncodedCommand", encoded]


def unavailable_reason(configured: str | None) -> str:
    if configured:
        return f"powershell is not available on this platform: --powershell {configured!r} was not found"
    wanted = "powershell.exe or pwsh" if sys.platform == "win32" else "pwsh (PowerShell 7)"
    return f"powershell is not available on this platform ({sys.platform}): no {wanted} on PATH"


def powershell_tool(interpreter: str | None, configured: str | None, allow_listed: bool) -> CommandTool:
    return CommandTool(
        name="powershell",
        unavailable=None if interpreter else unavailable_reason(configured),
        invocation=lambda script: invocation(interpreter or "pwsh", script),
        names=lambda script: command_names(script, allow_listed),
        aliases=ALIASES,
    )


def build_server(tool: CommandTool, settings: Settings, log_level: LogLevel = "WARNING") -> MCPServer[Any]:
    server: MCPServer[Any] = MCPServer("powershell", log_level=log_level)
    add_command_tool(
        server,
        tool,
        settings,
        title="Run a PowerShell script",
        description=DESCRIPTION,
        command_help="The PowerShell script (one or more statements).",
    )
    return server


def main(argv: Sequence[str] | None = None) -> None:
    def interpreter_option(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--powershell",
            default=os.environ.get("MCPGW_POWERSHELL") or None,
            metavar="PATH",
            help="the interpreter (default: powershell.exe on Windows, else pwsh; env MCPGW_POWERSHELL)",
        )

    args = parse_command_args(
        "MCP server with one tool that runs PowerShell scripts.", "MCPGW_POWERSHELL", argv, interpreter_option
    )
    logger = setup_logging("powershell_server", args.log_level)
    settings = make_settings(args, normalize)
    tool = powershell_tool(find_interpreter(args.powershell), args.powershell, bool(settings.allow))
    if tool.unavailable:
        logger.warning(tool.unavailable)
    serve(build_server(tool, settings, args.log_level), args)


if __name__ == "__main__":
    main()
