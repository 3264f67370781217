"""The lint's rules, in one table: each with a stable ID, a severity, what it detects and the fix.

IDs are an API like the drift codes: a config accepts a finding by its ID, CI
annotations and SARIF alerts are keyed by it, so an ID is never renamed,
reused or reclassified. Adding a rule is adding a row (and its detector in
`text.py` or `scan.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning", "note"]


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    """kebab-case, for people; the ID is what configs and tools key on."""
    severity: Severity
    summary: str
    """What it detects, one line."""
    why: str
    """Why it matters to a reviewer."""
    fix: str
    """What to do about a finding."""


_ACCEPT = 'or, when it is intended, accept it in the backend\'s "lint": {"accept": {"<name>": ["<ID>"]}}'

RULES: tuple[Rule, ...] = (
    Rule(
        "MCPGW-L101",
        "unicode-tag-characters",
        "error",
        "invisible Unicode tag characters (U+E0000-U+E007F)",
        "Tag characters render as nothing, yet models read them as the ASCII text they mirror: a whole hidden "
        "instruction can sit in an empty-looking string. No legitimate description needs them.",
        "Remove the characters (the finding spells out the text they hide) and report the server to its authors.",
    ),
    Rule(
        "MCPGW-L102",
        "invisible-characters",
        "error",
        "zero-width and other invisible characters (U+200B-U+200D, U+2060-U+2064, U+FEFF, soft hyphens, "
        "Hangul fillers, variation selectors U+E0100-U+E01EF)",
        "Invisible characters hide text from a reviewer, split words so a reviewer's search misses them, or carry "
        "a payload encoded in variation selectors. Joiners inside emoji and scripts that need them are allowed.",
        f"Remove the characters; {_ACCEPT}.",
    ),
    Rule(
        "MCPGW-L103",
        "bidi-controls",
        "error",
        "bidirectional control characters (U+202A-U+202E, U+2066-U+2069)",
        "Embedding, override and isolate controls reorder what a reviewer sees against what the model reads "
        "(the Trojan Source technique).",
        f"Remove the characters; {_ACCEPT}.",
    ),
    Rule(
        "MCPGW-L104",
        "confusable-characters",
        "warning",
        "confusable characters: a name with characters that look like ASCII letters but are not (Cyrillic, "
        "Greek, fullwidth, mathematical), or a Latin word with such a letter mixed in",
        "A look-alike name impersonates another tool (`read_file` spelled with a Cyrillic e), and a look-alike word "
        "slips past a reviewer's search and keyword filters.",
        f"Rename the item with tools.rename or prompts.rename, or override its description; {_ACCEPT}.",
    ),
    Rule(
        "MCPGW-L201",
        "instruction-markup",
        "error",
        "tag-like markup addressed to the model: <IMPORTANT>, <system>, <instructions>, [INST], <|im_start|>",
        "Tool poisoning wraps its instructions in tags that models treat as authoritative and clients rarely "
        "show; a tool's description has no reason to speak to the model in markup.",
        f"Override the description with tools.describe; {_ACCEPT}.",
    ),
    Rule(
        "MCPGW-L202",
        "instruction-override",
        "error",
        'phrasing that overrides the model\'s instructions: "ignore previous instructions", "disregard the '
        'system prompt", "these instructions take precedence"',
        "A description that tells the model to drop its instructions is a prompt injection, whatever else it says.",
        f"Override the description with tools.describe; {_ACCEPT}.",
    ),
    Rule(
        "MCPGW-L203",
        "conceal-from-user",
        "error",
        'phrasing that hides actions from the user: "do not tell the user", "without informing the user", '
        '"silently send"',
        "Secrecy towards the user is the mark of a poisoned tool: an honest tool has nothing to keep from the "
        "person it works for.",
        f"Override the description with tools.describe; {_ACCEPT}.",
    ),
    Rule(
        "MCPGW-L204",
        "sensitive-file-demand",
        "error",
        "a demand to read, pass or send secret files: ~/.ssh, id_rsa, .env, ~/.aws/credentials, .netrc, "
        "/etc/shadow, a client's mcp.json",
        "Reading a credential file has nothing to do with what a tool says it does; it is how poisoned tools "
        "exfiltrate keys through the model.",
        f"Override the description with tools.describe; {_ACCEPT}.",
    ),
    Rule(
        "MCPGW-L205",
        "hidden-precondition",
        "error",
        'a precondition that makes the model act before it calls the tool: "before using this tool, read ...", '
        '"you must first call ..." (unless it names one of the server\'s own tools: its workflow)',
        "Preconditions are how a poisoned description makes the model run other tools or read data the user "
        "never asked for, before the call the user sees.",
        f"Override the description with tools.describe; {_ACCEPT}.",
    ),
    Rule(
        "MCPGW-L206",
        "exfiltration",
        "error",
        "a demand to send data somewhere: a URL or e-mail address as the target of send, post, upload or "
        'forward, or "send the user\'s files/messages/history"',
        "Sending the user's data to an address the description names is exfiltration through the model.",
        f"Override the description with tools.describe; {_ACCEPT}.",
    ),
    Rule(
        "MCPGW-L301",
        "cross-backend-reference",
        "error",
        "a description or schema string that names a tool of another backend (tool shadowing)",
        "A server has no business telling the model how to use another server's tools; that is how a poisoned "
        "server redirects calls to a trusted one (send all e-mail to the attacker, say).",
        "Override the description with tools.describe, or leave the item out (tools.exclude); when the servers "
        f"are meant to work together, {_ACCEPT[3:]}.",
    ),
    Rule(
        "MCPGW-L901",
        "stale-acceptance",
        "warning",
        'an entry in "lint": {"accept": ...} that matches no finding',
        "A stale acceptance would silently accept a future finding of the same kind on that item.",
        "Remove the entry (or the one ID) from the backend's lint.accept.",
    ),
)

BY_ID: dict[str, Rule] = {r.id: r for r in RULES}
