"""The description lint: what in a backend's offer hides instructions from a reviewer.

Run on the probed (or snapshotted) offers by `mcpgw build`, `mcpgw check` and
`mcpgw lint`, before anything is written. Modules:

- `rules.py`  the rules table: stable IDs, severities, what each detects, the fix
- `text.py`   detectors over one string (hidden and look-alike characters, phrasing)
- `scan.py`   the walk over every exposed item with JSON pointers, cross-backend
              references, the config's acceptances → sorted `Finding`s
- `output.py` findings located in the config: text, JSON lines, GitHub annotations
- `sarif.py`  SARIF 2.1.0 for code scanning (with `mcpgw check`'s drift too)

Error-level findings a config has not accepted fail the build (exit 2).
"""

from __future__ import annotations

from mcpgw.lint.output import Located, locate_all
from mcpgw.lint.rules import BY_ID, RULES, Rule
from mcpgw.lint.scan import INSTRUCTIONS, Finding, lint

__all__ = ["BY_ID", "INSTRUCTIONS", "RULES", "Finding", "Located", "Rule", "lint", "locate_all"]
