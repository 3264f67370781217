"""A small MCP server with one tool, ``bash``, that runs a command line in bash.

Why: the gateway needs a real, dependency-light backend (only ``mcp``) whose calls can be slow, noisy,
failing and killable, over every transport: stdio by default, ``--transport sse`` (``/sse``) and
``--transport http`` (``/mcp``). Each call runs ``bash -c`` in a new session; a timeout or a cancelled
call SIGTERMs the whole process group, then SIGKILLs it. Output is read as it arrives and capped per
stream. Background jobs that outlive bash are left running, but cannot hold the call open.

The opt-in allow/deny lists (``--allow``/``--deny``, ``MCPGW_BASH_ALLOW``/``MCPGW_BASH_DENY``)
guard against mistakes, such as an agent reaching for ``rm``. They are NOT a sandbox. The check
reads the command line conservatively and refuses what it cannot parse, but it cannot see commands
hidden in variables, ``eval``, ``bash -c '...'``, scripts, functions or aliases. For isolation, use
a container or VM.
"""

from __future__ import annotations

import re
import shlex
import shutil
from collections.abc import Sequence
from typing import Any

from _command import (
    CommandOutput,
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
    "Run a command line with `bash -c` and return its exit code, stdout and stderr. Output over the server's"
    " cap is cut with a marker; on timeout the command's whole process tree is killed."
)
NO_BASH = "bash is not available on this platform (no `bash` on PATH); this server cannot run commands"

# Command-line check. Operators are split off by shlex; a word starting a segment is a command name
# unless it is a reserved word, an assignment or a redirection target.
_PUNCTUATION = ";&|()<>\n"
_SUBSTITUTION = "$__substitution__"  # stands in for $(...), `...`, <(...) and >(...) once their bodies are taken out
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\[[^]]*\])?\+?=")
_BACKQUOTED = re.compile(r"(?:[^`\\]|\\.)*`", re.DOTALL)
_OPTION_VALUE = re.compile(r"-.*|\d[\d.]*[smhd]?")
_RESERVED = frozenset("! { } if then else elif fi do done while until coproc".split())
_NOT_A_COMMAND = frozenset("for select case esac in function ]] ))".split())
_WRAPPERS = frozenset("builtin command doas env exec nice nohup stdbuf sudo time timeout xargs".split())


class BashOutput(CommandOutput):
    """Structured result of one command."""


def _matching_paren(text: str, start: int) -> int:
    """Index of the ``)`` closing the ``(`` at ``start``, skipping quoted and escaped characters."""
    depth, quote, i = 0, "", start
    while i < len(text):
        char = text[i]
        if char == "\\" and quote != "'":
            i += 2
            continue
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "()":
            depth += 1 if char == "(" else -1
            if depth == 0:
                return i
        i += 1
    raise ValueError("unbalanced parentheses")


def _closing_backtick(text: str, start: int) -> int:
    if (match := _BACKQUOTED.match(text, start + 1)) is None:
        raise ValueError("unbalanced backquotes")
    return match.end() - 1


def _take_substitutions(text: str) -> tuple[str, list[str]]:
    """Replace each command/process substitution with a placeholder word and drop comments.

    Returns the rewritten text and the substitution bodies, which hold command lines of their own.
    """
    out: list[str] = []
    bodies: list[str] = []
    quote, i = "", 0
    while i < len(text):
        char = text[i]
        if quote == "'":
            quote = "" if char == "'" else quote
        elif char == "\\":
            out.append(text[i : i + 2])
            i += 2
            continue
        elif char == "#" and not quote and (i == 0 or text[i - 1] in f" \t{_PUNCTUATION}"):
            i = len(text) if (newline := text.find("\n", i)) < 0 else newline
            continue
        elif char == "`" or text.startswith("$(", i) or (not quote and text.startswith(("<(", ">("), i)):
            end = _closing_backtick(text, i) if char == "`" else _matching_paren(text, i + 1)
            body = text[i + 1 : end] if char == "`" else text[i + 2 : end]
            if text.startswith("$((", i):  # arithmetic: not a command, but may contain substitutions
                bodies += _take_substitutions(body)[1]
            else:
                bodies.append(body)
            out.append(_SUBSTITUTION)
            i = end + 1
            continue
        elif char in "'\"":
            quote = "" if quote == char else (quote or char)
        out.append(char)
        i += 1
    return "".join(out), bodies


def _names_in_simple_command(words: list[str]) -> list[str]:
    """The command name of one simple command, plus the command a wrapper (``sudo``, ``xargs``...) runs."""
    start = 0
    while start < len(words) and (words[start] in _RESERVED or _ASSIGNMENT.match(words[start])):
        start += 1
    if start == len(words) or words[start] in _NOT_A_COMMAND:
        return []
    name = words[start].rsplit("/", 1)[-1] or words[start]
    if name not in _WRAPPERS:
        return [name]
    rest = words[start + 1 :]
    target = next((i for i, word in enumerate(rest) if not _OPTION_VALUE.fullmatch(word)), len(rest))
    return [name, *_names_in_simple_command(rest[target:])]


def _top_level_names(text: str) -> list[str]:
    """Command names of the segments of ``text`` split on ``;``, ``&&``, ``||``, ``|``, ``&``, newlines..."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=_PUNCTUATION)
    lexer.whitespace, lexer.whitespace_split, lexer.commenters = " \t\r", True, ""
    names: list[str] = []
    words: list[str] = []
    skip_target = False
    for token in lexer:
        if token and all(char in _PUNCTUATION for char in token):
            if any(char in ";|()\n" for char in token) or not token.strip("&"):
                names += _names_in_simple_command(words)
                words = []
            skip_target = "<" in token or ">" in token
            if skip_target and words and words[-1].isdigit():  # `2>&1`: the digits name a file descriptor
                words.pop()
        elif skip_target:
            skip_target = False
        else:
            words.append(token)
    return names + _names_in_simple_command(words)


def _command_names(command: str) -> list[str]:
    text, bodies = _take_substitutions(command)
    names = _top_level_names(text)
    for body in bodies:
        names += _command_names(body)
    return names


def command_names(command: str) -> list[str]:
    """Every simple-command name in ``command``, including inside substitutions (raises ValueError)."""
    dynamic = Dynamic("a command substitution used as a command name")
    return [dynamic if name == _SUBSTITUTION else name for name in _command_names(command)]


def bash_tool(bash: str | None) -> CommandTool:
    """The ``bash`` tool, run with the ``bash`` found at ``bash`` (None: not available here)."""
    return CommandTool(
        name="bash",
        unavailable=None if bash else NO_BASH,
        invocation=lambda command: [bash or "bash", "-c", command],
        names=command_names,
    )


def _normalize(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def build_server(tool: CommandTool, settings: Settings, log_level: LogLevel = "WARNING") -> MCPServer[Any]:
    server: MCPServer[Any] = MCPServer("bash", log_level=log_level)
    add_command_tool(
        server,
        tool,
        settings,
        title="Run a bash command",
        description=DESCRIPTION,
        command_help="The command line, run with `bash -c`.",
        output=BashOutput,
    )
    return server


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_command_args("MCP server with one tool that runs bash commands.", "MCPGW_BASH", argv)
    logger = setup_logging("bash_server", args.log_level)
    tool = bash_tool(shutil.which("bash"))
    if tool.unavailable:
        logger.warning(tool.unavailable)
    serve(build_server(tool, make_settings(args, _normalize), args.log_level), args)


if __name__ == "__main__":
    main()
