"""accuracy = correct / total, on hand-derived cases."""

from __future__ import annotations

import pytest

from llmlab.errors import ConfigError
from llmlab.evaluation.metrics.accuracy import accuracy, accuracy_scores, is_correct


def test_accuracy_hand_derived() -> None:
    """ "yes" = "yes"; " no " strips to "no" = "no"; "Maybe" != "maybe" unless case is ignored: 2/3, then 3/3."""
    preds, refs = ["yes", " no ", "Maybe"], [["yes"], ["no"], ["maybe"]]
    assert accuracy_scores(preds, refs) == [1.0, 1.0, 0.0]
    assert accuracy(preds, refs) == pytest.approx(2 / 3, abs=1e-15)
    assert accuracy(preds, refs, ignore_case=True) == 1.0


def test_any_reference_counts() -> None:
    assert is_correct("four", ["4", "four"])
    assert not is_correct("for", ["4", "four"])


def test_empty_corpus_is_refused() -> None:
    with pytest.raises(ConfigError, match="no predictions"):
        accuracy([], [])
