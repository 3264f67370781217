"""The example configs the docs point users at must stay valid as the schema grows."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "docs" / "examples").glob("*.json"))


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_config_validates(example: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mcpgw", "validate", str(example)], check=False, capture_output=True, text=True, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr


def test_security_page_links_resolve() -> None:
    """Every relative link of docs/security.md names a file that exists, and its anchor a heading there."""
    page = ROOT / "docs" / "security.md"
    links = re.findall(r"\]\(([^)#]+\.(?:md|json))(?:#([^)]+))?\)", page.read_text())
    assert links
    for target, anchor in links:
        path = (page.parent / target).resolve()
        assert path.exists(), target
        if anchor:
            slugs = {
                re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-")
                for h in re.findall(r"^#+ (.+)$", path.read_text(), re.M)
            }
            assert anchor in slugs, f"{target}#{anchor}"
