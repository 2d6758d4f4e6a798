"""The examples in docs/rag-store.md print exactly the output shown under them (real MiniLM: slow tier)."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "rag-store.md"
EXAMPLE = re.compile(r"```python\n((?:(?!```)[\s\S])*)```\n\n```text\n([\s\S]*?)```")
"""A python block directly followed by a text block (its output); the other blocks are fragments."""


@pytest.mark.slow
def test_examples_print_what_the_page_shows(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMLAB_HOME", str(tmp_path / "home"))
    examples = EXAMPLE.findall(DOC.read_text(encoding="utf-8"))
    assert len(examples) == 4
    namespace: dict[str, object] = {}
    for code, shown in examples:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code.replace("/tmp/llmlab-store-demo", str(tmp_path)), str(DOC), "exec"), namespace)
        assert out.getvalue() == shown.replace("/tmp/llmlab-store-demo", str(tmp_path))
