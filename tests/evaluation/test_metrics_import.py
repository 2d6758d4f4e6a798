"""`llmlab.evaluation.metrics` imports without torch, and without the perplexity module, which itself imports
torch only when it runs."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import sys
import llmlab.evaluation.bootstrap
import llmlab.evaluation.metrics
assert "torch" not in sys.modules, "importing llmlab.evaluation.metrics imported torch"
assert "llmlab.evaluation.metrics.perplexity" not in sys.modules, "the package imported perplexity"
import llmlab.evaluation.metrics.perplexity
assert "torch" not in sys.modules, "importing the perplexity module imported torch"
"""


def test_metrics_import_without_torch() -> None:
    result = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
