"""Detectors over one string: hidden characters, look-alike characters, instruction-like phrasing.

Each returns `Hit`s (a rule ID and what was seen), at most one per rule and
string, so a `<IMPORTANT>...</IMPORTANT>` block is one finding, not two.
Phrasing is matched on a *normalised* copy (invisible characters dropped,
NFKC, look-alikes mapped to Latin, case folded), so splitting a phrase with
a zero-width space or writing it in Cyrillic look-alikes does not evade it.

Plain English is not a finding: the phrase rules need the shape of an
instruction aimed at the model (an imperative with a target), not a word.
"Read the file at path" has no secret file, "Send a message to a channel"
no address, and neither is reported.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from mcpgw.wording import plural


@dataclass(frozen=True)
class Hit:
    rule: str
    message: str


TAGS = range(0xE0000, 0xE0080)
VARIATION_SUPPLEMENT = range(0xE0100, 0xE01F0)
ZERO_WIDTH = frozenset(
    {0x00AD, 0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x180E, 0x200B, 0x200C, 0x200D}
    | {0x2060, 0x2061, 0x2062, 0x2063, 0x2064, 0x3164, 0xFEFF, 0xFFA0}
)
JOINERS = frozenset({0x200C, 0x200D})
"""ZWNJ and ZWJ: needed inside emoji sequences and in Persian, Indic and other scripts."""
BIDI = frozenset({0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069})

_LOOKALIKES = (
    # Cyrillic
    (
        "\u0430\u0435\u043e\u0440\u0441\u0443\u0445\u0455\u0456\u0458\u04bb\u0501\u051b\u051d\u04cf\u0410"
        "\u0412\u0415\u041a\u041c\u041d\u041e\u0420\u0421\u0422\u0425\u0405\u0406\u0408\u04ae\u051a\u051c"
        "\u04c0",
        "aeopcyxsijhdqwlABEKMHOPCTXSIJYQWl",
    ),
    # Greek
    (
        "\u03bf\u03b1\u03bd\u03c1\u03b9\u03ba\u03c5\u0391\u0392\u0395\u0396\u0397\u0399\u039a\u039c\u039d"
        "\u039f\u03a1\u03a4\u03a5\u03a7",
        "oavpikuABEZHIKMNOPTYX",
    ),
    # Armenian
    ("\u0585\u057d\u0570", "ouh"),
)
HOMOGLYPHS: dict[str, str] = {f: r for fakes, reals in _LOOKALIKES for f, r in zip(fakes, reals, strict=True)}
"""Letters of other scripts drawn like a Latin letter, and that letter."""


def _code(ch: str) -> str:
    return f"U+{ord(ch):04X}"


def _names(chars: list[str]) -> str:
    seen = sorted(set(chars), key=ord)
    shown = ", ".join(f"{_code(c)} {unicodedata.name(c, 'UNNAMED')}" for c in seen[:3])
    return shown + (f" and {len(seen) - 3} more" if len(seen) > 3 else "")


def _joiner_allowed(text: str, i: int) -> bool:
    """A joiner between two non-ASCII letters, marks or symbols (emoji, Arabic, Devanagari) is writing."""
    if i == 0 or i + 1 >= len(text):
        return False
    return all(
        (ord(c) > 0x7F and unicodedata.category(c)[0] in "LMS") or ord(c) in VARIATION_SUPPLEMENT
        for c in (text[i - 1], text[i + 1])
    )


def _quote(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return '"' + (text if len(text) <= limit else text[: limit - 3] + "...") + '"'


def hidden_characters(text: str) -> list[Hit]:
    """MCPGW-L101 tag characters (with the text they spell), L102 invisible characters, L103 bidi controls."""
    tags: list[int] = []
    invisible: list[str] = []
    bidi: list[str] = []
    first: dict[str, int] = {}
    for i, ch in enumerate(text):
        cp = ord(ch)
        if cp in TAGS:
            tags.append(cp)
            first.setdefault("tag", i)
        elif cp in VARIATION_SUPPLEMENT or (cp in ZERO_WIDTH and not (cp in JOINERS and _joiner_allowed(text, i))):
            invisible.append(ch)
            first.setdefault("invisible", i)
        elif cp in BIDI:
            bidi.append(ch)
            first.setdefault("bidi", i)
    hits = []
    if tags:
        spelled = "".join(chr(cp - 0xE0000) for cp in tags if 0x20 <= cp - 0xE0000 < 0x7F)
        said = f", spelling {_quote(spelled)}" if spelled.strip() else ""
        hits.append(
            Hit("MCPGW-L101", f"{len(tags)} invisible Unicode tag characters from character {first['tag']}{said}")
        )
    if invisible:
        hits.append(
            Hit(
                "MCPGW-L102",
                f"{plural(len(invisible), 'invisible character')} ({_names(invisible)})"
                f" from character {first['invisible']}",
            )
        )
    if bidi:
        hits.append(
            Hit(
                "MCPGW-L103",
                f"{plural(len(bidi), 'bidirectional control')} ({_names(bidi)}) from character {first['bidi']}",
            )
        )
    return hits


def _lookalike(ch: str) -> str | None:
    """The ASCII letter or digit `ch` passes for, if it is not one itself."""
    if ord(ch) < 0x80:
        return None
    if ch in HOMOGLYPHS:
        return HOMOGLYPHS[ch]
    folded = unicodedata.normalize("NFKC", ch)
    return folded if len(folded) == 1 and folded.isascii() and folded.isalnum() else None


def confusable_name(name: str) -> list[Hit]:
    """MCPGW-L104 for an identifier (a tool, prompt, argument or property name)."""
    fakes = [(ch, alike) for ch in name if (alike := _lookalike(ch)) is not None]
    if not fakes:
        return []
    shown = ", ".join(f"{_code(ch)} {unicodedata.name(ch, '?')} (looks like {alike!r})" for ch, alike in fakes[:3])
    plain = "".join(_lookalike(ch) or ch for ch in name)
    return [Hit("MCPGW-L104", f"name {name!r} passes for {plain!r}: {shown}")]


_WORD = re.compile(r"\w+")


def confusable_words(text: str) -> list[Hit]:
    """MCPGW-L104 for prose: a Latin word with a look-alike letter of another script mixed in."""
    bad = []
    for match in _WORD.finditer(_drop_invisible(text)):
        word = match.group()
        if any("a" <= c.lower() <= "z" for c in word) and any(_lookalike(c) for c in word):
            bad.append(word)
    if not bad:
        return []
    shown = ", ".join(repr(w) for w in bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
    return [Hit("MCPGW-L104", f"look-alike letters of another script inside Latin words: {shown}")]


_INVISIBLE = frozenset(TAGS) | frozenset(VARIATION_SUPPLEMENT) | BIDI | ZERO_WIDTH


def _drop_invisible(text: str) -> str:
    return "".join(ch for ch in text if ord(ch) not in _INVISIBLE)


def normalise(text: str, *, lower: bool = True) -> str:
    """What the phrase rules read: no invisible characters, NFKC, look-alikes as Latin, one space, lower case."""
    plain = unicodedata.normalize("NFKC", _drop_invisible(text))
    plain = "".join(HOMOGLYPHS.get(ch, ch) for ch in plain).replace("\u2019", "'")
    plain = re.sub(r"\s+", " ", re.sub(r"\n\s*\n", ". ", plain)).strip()
    return plain.lower() if lower else plain


_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+")


def sentences(plain: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(plain) if s]


_MARKUP = re.compile(
    r"""
    <\s*/?\s*(?:important|system|sys|instructions?|override|critical|urgent
      |(?:system|ai|assistant|model|llm|agent)[\s_-]*(?:prompt|message|note|reminder|instructions?|directive)
      |note[\s_-]*to[\s_-]*(?:the[\s_-]*)?(?:ai|assistant|model|llm|agent))\s*/?\s*>
    | <\|\s*(?:im_start|im_end|system|endoftext|start_header_id|end_header_id|eot_id)\s*\|>
    | \[\s*/?\s*(?:inst|system)\s*\]
    | <<\s*/?\s*sys\s*>>
    """,
    re.VERBOSE | re.IGNORECASE,
)
_FILLER = r"(?:(?:all|any|every|each|the|your|of|these|those|its|my)\s+){0,3}"
_OVERRIDE = re.compile(
    r"\b(?:ignore|disregard|forget|override|overrule|bypass|discard)\s+" + _FILLER
    + r"(?:(?:previous|prior|above|earlier|preceding|former|foregoing|system|original|safety|developer)\s+"
    r"(?:instructions?|directions?|directives?|prompts?|guidelines?|guidance|rules|context|messages)"
    r"|instructions|system\s+prompt)\b"
    r"|\b(?:these|this|the\s+following|my)\s+instructions?\s+(?:take\s+precedence|override|supersede|replace)"
    r"|\btakes?\s+precedence\s+over\s+(?:all\s+|any\s+)?(?:other\s+|previous\s+|prior\s+|system\s+|user\s+)"
    r"(?:instructions|prompts?|rules|messages)"
    r"|\bnew\s+(?:system\s+)?instructions\s*:"
    r"|\bdo\s+not\s+follow\s+(?:the\s+|your\s+|any\s+)?(?:previous|prior|system|user'?s?|original)\s+instructions",
    re.IGNORECASE,
)  # fmt: skip
_CONCEAL = re.compile(
    r"\b(?:do\s+not|don'?t|never|must\s+not|mustn'?t|should\s+not|shouldn'?t|without)\s+(?:ever\s+)?"
    r"(?:tell(?:ing)?|inform(?:ing)?|notify(?:ing)?|mention(?:ing)?|reveal(?:ing)?|disclos(?:e|ing)|alert(?:ing)?"
    r"|warn(?:ing)?)\s+(?:this\s+|it\s+|that\s+|anything\s+)?(?:to\s+)?(?:the\s+)?(?:user|human)\b"
    r"|\b(?:do\s+not|don'?t|never|without)\s+let(?:ting)?\s+the\s+(?:user|human)\s+know"
    r"|\b(?:do\s+not|don'?t|never)\s+(?:mention|reveal|disclose)\s+(?:this|these|that)\s+"
    r"(?:instructions?|steps?|notes?|tool|sidenote)"
    r"|\b(?:keep|hide)\s+(?:this|it|that|these)\b[^.!?]{0,40}\bfrom\s+the\s+(?:user|human)\b"
    r"|\bthe\s+(?:user|human)\s+(?:must|should|need|needs|may)\s+(?:not|never)\s+"
    r"(?:know|see|notice|be\s+told|find\s+out|learn)\b"
    r"|\b(?:silently|secretly|covertly|quietly|discreetly|surreptitiously)\s+(?:\w+\s+){0,2}?"
    r"(?:send|read|include|add|forward|copy|upload|attach|post|exfiltrate|collect|append|call|run|execute)\b",
    re.IGNORECASE,
)  # fmt: skip
_SECRET_FILE = re.compile(
    r"~/\.ssh\b|\.ssh/|\bid_(?:rsa|dsa|ecdsa|ed25519)\b|\.aws/credentials|~/\.aws\b|\.git-credentials|\.netrc\b"
    r"|\.pgpass\b|\.npmrc\b|\.pypirc\b|\.docker/config\.json|\.kube/config|/etc/(?:passwd|shadow|sudoers)\b"
    r"|(?<![\w.$])\.env(?:\.[a-z]+)?(?![\w/-])|\bmcp\.json\b|claude_desktop_config\.json|\.cursor/"
    r"|\bcredentials\.json\b|\bwallet\.dat\b|\.gnupg\b|\bseed\s+phrases?\b",
    re.IGNORECASE,
)
_DEMAND = re.compile(
    r"\b(?:read|open|cat|include|attach|pass|send|upload|provide|copy|fetch|retrieve|collect|extract|grab|leak"
    r"|share|paste|dump|forward|post|append|put|insert|embed)\b",
    re.IGNORECASE,
)
_PRECONDITION = re.compile(
    r"\bbefore\s+(?:using|calling|invoking|running|executing|answering|responding|replying|proceeding"
    r"|doing\s+anything|you\s+(?:use|call|invoke|run|answer|respond|reply|do\s+anything))\b[^.!?]{0,100}?"
    r"\b(?:read|call|run|invoke|open|fetch|send|include|pass|provide|execute|upload|collect|gather|cat|load)\b"
    r"|\byou\s+must\s+(?:first|always)\s+(?:call|read|run|invoke|send|pass|include|open|fetch)\b"
    r"|\botherwise\s+(?:the|this)\s+tool\s+(?:will\s+not|won't|does\s+not|doesn't|cannot|can't)\s+work\b",
    re.IGNORECASE,
)
_SEND = re.compile(r"\b(?:send|post|upload|forward|transmit|exfiltrate|leak|relay|beacon)\b", re.IGNORECASE)
"""Verbs that send to an address: with a URL or e-mail address after them, a demand to send data there."""
_HAND_OVER = re.compile(
    r"\b(?:send|post|upload|forward|transmit|exfiltrate|leak|relay|beacon|share|copy|deliver)\b", re.IGNORECASE
)
"""Verbs that hand data over: with the user's data after them, a demand to send it away."""
_TARGET = re.compile(r"https?://[^\s)>\]'\"`]+|\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_USER_DATA = re.compile(
    r"\bthe\s+user'?s?\s+(?:files?|data|messages|conversations?|chat\s+history|history|credentials|secrets|keys"
    r"|tokens|passwords|e-?mails|contacts|documents|notes|code)\b"
    r"|\ball\s+(?:of\s+)?(?:the\s+)?(?:user'?s?\s+)?(?:messages|conversations|chat\s+history|credentials|secrets"
    r"|passwords|tokens|keys)\b"
    r"|\b(?:conversation|chat)\s+history\b",
    re.IGNORECASE,
)


def _first(pattern: re.Pattern[str], plain: str) -> str | None:
    match = pattern.search(plain)
    return match.group() if match else None


def _in_sentence(plain: str, *patterns: re.Pattern[str]) -> str | None:
    """The first sentence in which every pattern matches."""
    for sentence in sentences(plain):
        if all(p.search(sentence) for p in patterns):
            return sentence
    return None


def _exfiltration(plain: str) -> str | None:
    for sentence in sentences(plain):
        if any(_TARGET.search(sentence, verb.end()) for verb in _SEND.finditer(sentence)):
            return sentence
        if any(_USER_DATA.search(sentence[verb.end() : verb.end() + 80]) for verb in _HAND_OVER.finditer(sentence)):
            return sentence
    return None


def _precondition(plain: str, own_tools: frozenset[str]) -> str | None:
    """A precondition, unless its sentence names one of the server's own tools: that is its workflow."""
    for sentence in sentences(plain):
        match = _PRECONDITION.search(sentence)
        if match and not any(re.search(rf"(?<![\w-]){re.escape(t)}(?![\w-])", sentence) for t in own_tools):
            return match.group()
    return None


def phrasing(text: str, own_tools: frozenset[str] = frozenset()) -> list[Hit]:
    """MCPGW-L201..L206: instruction-like phrasing aimed at the model.

    `own_tools`: the names of the server's own tools; "before using this tool, call list_tables" is how
    a server documents its own workflow, not an instruction smuggled in (L205 is not reported for it).
    """
    plain = normalise(text, lower=False)
    hits = []
    if found := _first(_MARKUP, plain):
        hits.append(Hit("MCPGW-L201", f"markup addressed to the model: {_quote(found)}"))
    if found := _first(_OVERRIDE, plain):
        hits.append(Hit("MCPGW-L202", f"tells the model to set its instructions aside: {_quote(found)}"))
    if found := _first(_CONCEAL, plain):
        hits.append(Hit("MCPGW-L203", f"tells the model to keep something from the user: {_quote(found)}"))
    if found := _in_sentence(plain, _SECRET_FILE, _DEMAND):
        secret = _first(_SECRET_FILE, found) or ""
        hits.append(Hit("MCPGW-L204", f"asks for the secret file {_quote(secret)}: {_quote(found, 120)}"))
    if found := _precondition(plain, own_tools):
        hits.append(Hit("MCPGW-L205", f"makes the model act before the call: {_quote(found)}"))
    if found := _exfiltration(plain):
        hits.append(Hit("MCPGW-L206", f"asks to send data away: {_quote(found, 120)}"))
    return hits
