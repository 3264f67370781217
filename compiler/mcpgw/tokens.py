"""What a tool costs the model, in tokens of a real BPE tokenizer, counted offline.

Every tool a gateway lists is sent to the model on every turn, so its definition
is context the model pays for. The reference count is OpenAI's `o200k_base`
encoding (GPT-4o and later), through `tiktoken`, with the BPE ranks shipped in
this package (`data/o200k_base.tiktoken`, sha256-checked at load against the hash
tiktoken publishes), so counting never touches the network. Other models
tokenize differently: the figure is a reference to compare tools and builds by,
not any one provider's bill.

What is counted for a tool (`tool_tokens`): the fields a client passes on to the
model, `name`, `description`, `inputSchema` and `outputSchema`, exactly as the
gateway's `tools/list` sends them (after renames and description overrides),
serialized as compact JSON (no whitespace, keys sorted, non-ASCII kept as is).
`title`, `annotations`, `icons`, `execution` and `_meta` are not counted: clients
show or act on them, they do not hand them to the model. A provider wraps each
function in a few tokens of its own framing, which is not counted either.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import tiktoken

ENCODING = "o200k_base"
"""The tokenizer every figure mcpgw prints is counted with; output names it."""

RANKS_FILE = Path(__file__).resolve().parent / "data" / "o200k_base.tiktoken"
RANKS_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
"""tiktoken's own expected hash of the o200k_base ranks (tiktoken_ext/openai_public.py)."""

PAT_STR = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
"""o200k_base's pre-tokenizer split, as tiktoken_ext/openai_public.py defines it."""

SPECIAL_TOKENS = {"<|endoftext|>": 199999, "<|endofprompt|>": 200018}

COUNTED_FIELDS = ("name", "description", "inputSchema", "outputSchema")
"""The fields of a tool definition that reach the model."""

JSON = Mapping[str, Any]


class RanksError(Exception):
    """The shipped ranks file is missing or not the one tiktoken publishes."""


def load_ranks(path: Path = RANKS_FILE) -> dict[bytes, int]:
    """The BPE ranks, after checking the file's sha256; the parse is tiktoken's own format."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RanksError(f"cannot read the {ENCODING} ranks at {path}: {exc}") from exc
    found = hashlib.sha256(data).hexdigest()
    if found != RANKS_SHA256:
        raise RanksError(f"{path} is not tiktoken's {ENCODING} ranks (sha256 {found}, expected {RANKS_SHA256})")
    ranks: dict[bytes, int] = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


@cache
def encoding() -> tiktoken.Encoding:
    """The o200k_base encoding, built once per process from the shipped ranks (no download, no cache dir)."""
    import tiktoken

    return tiktoken.Encoding(
        name=ENCODING, pat_str=PAT_STR, mergeable_ranks=load_ranks(), special_tokens=SPECIAL_TOKENS
    )


def count_tokens(text: str) -> int:
    """Tokens in `text` under o200k_base; special-token spellings in it count as the plain text they are."""
    return len(encoding().encode_ordinary(text))


def counted_text(tool: JSON) -> str:
    """The text `tool_tokens` counts: the model-facing fields of `tool` as compact, key-sorted JSON."""
    fields = {key: tool[key] for key in COUNTED_FIELDS if key in tool}
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def tool_tokens(tool: JSON) -> int:
    """What one tool definition, as `tools/list` sends it, costs the model (see the module docstring)."""
    return count_tokens(counted_text(tool))
