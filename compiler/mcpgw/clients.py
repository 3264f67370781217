"""The dialects of other clients' config files that `mcpgw build` reads as they are.

- Claude Desktop (`claude_desktop_config.json`), Cursor (`.cursor/mcp.json`),
  Cline: `{"mcpServers": {...}}`, `type` optional (`command` ⇒ stdio, `url` ⇒
  http, a URL path ending in `/sse` ⇒ sse).
- VS Code (`.vscode/mcp.json`): `{"servers": {...}, "inputs": [...]}`, `type`
  one of `stdio`, `http`, `sse`.

Variables: `${env:NAME}` (VS Code's and Cursor's spelling) means `${NAME}`,
expanded at run time from the gateway's environment; the compiler rewrites it
to `${NAME}`, so a client file and the equivalent config.json build the same
gateway. `${input:ID}` is an error: an editor prompts for inputs, a gateway
runs unattended, so the value has to come from the environment instead. The
editors' own variables (`${workspaceFolder}`, `${userHome}`, ...) are errors
too, naming what to write instead.
"""

from __future__ import annotations

import re

SERVERS_KEYS = ("$schema", "gateway", "servers", "inputs")
"""Top-level keys of VS Code's shape."""

ENV_PREFIXED = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)((?::-[^}]*)?)\}")
INPUT_REF = re.compile(r"\$\{input:([^}]*)\}")
EDITOR_VARIABLES = {
    "workspaceFolder": 'relative paths resolve against the config file\'s folder; use a relative path or set "cwd"',
    "workspaceFolderBasename": "write the folder name out",
    "userHome": "use ${HOME}",
    "pathSeparator": 'write "/"',
    "fileDirname": "use a path relative to the config file's folder",
}
EDITOR_REF = re.compile(r"\$\{(" + "|".join(EDITOR_VARIABLES) + r")(?::[^}]*)?\}")


def plain_refs(text: str) -> str:
    """`${env:NAME}` → `${NAME}`; everything else unchanged."""
    return ENV_PREFIXED.sub(lambda m: "${" + m.group(1) + m.group(2) + "}", text)


def _env_name(input_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", input_id).upper() or "NAME"


def editor_variable_problem(text: str) -> str | None:
    """Why an editor-only variable in `text` cannot work in a gateway, or None."""
    match = INPUT_REF.search(text)
    if match:
        name = _env_name(match.group(1))
        return (
            f"${{input:{match.group(1)}}} is prompted for by the editor, but a gateway runs unattended: "
            f"write ${{env:{name}}} (VS Code reads it too) and set {name} in the gateway's environment"
        )
    match = EDITOR_REF.search(text)
    if match:
        return f"${{{match.group(1)}}} is an editor variable, unknown to a gateway: {EDITOR_VARIABLES[match.group(1)]}"
    return None
