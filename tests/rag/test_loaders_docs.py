"""The examples in docs/rag-documents.md print exactly the output shown under them."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "rag-documents.md"
EXAMPLE = re.compile(r"```python\n((?:(?!```)[\s\S])*)```\n\n```text\n([\s\S]*?)```")
"""A python block directly followed by a text block (its output); other python blocks need the network."""


def test_examples_print_what_the_page_shows(tmp_path):
    examples = EXAMPLE.findall(DOC.read_text(encoding="utf-8"))
    assert len(examples) == 3
    namespace: dict[str, object] = {}
    for code, shown in examples:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code.replace("/tmp/llmlab-demo", str(tmp_path)), str(DOC), "exec"), namespace)
        assert out.getvalue() == shown.replace("/tmp/llmlab-demo", str(tmp_path))
