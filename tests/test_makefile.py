"""The Makefile keeps the project installed in editable mode: a plain `pip install .` would replace the
clone's code with a copy in site-packages (and `llmlab ask` would lose the docs/ folder next to it)."""

from __future__ import annotations

import re
from pathlib import Path

MAKEFILE = Path(__file__).parents[1] / "Makefile"


def test_every_install_of_the_project_is_editable() -> None:
    installs = [line for line in MAKEFILE.read_text().splitlines() if re.search(r"\binstall\b", line)]
    project = [line for line in installs if re.search(r"""\s['"]?\.(\[[\w,]+\])?['"]?(\s|$)""", line)]
    assert len(project) >= 2, project  # the venv and bench-llama targets at least
    for line in project:
        assert re.search(r"""\s-e\s+['"]?\.""", line), f"not editable: {line.strip()}"
