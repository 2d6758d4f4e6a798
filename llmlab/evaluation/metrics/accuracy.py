"""Accuracy: the fraction of items whose prediction is correct.

    accuracy = correct / total

A prediction is correct when, with surrounding whitespace stripped (and case folded with `ignore_case`), it
equals one of the item's references exactly. This is the classification accuracy of e.g.
`sklearn.metrics.accuracy_score` on string labels; for answers that differ only in articles and punctuation use
`exact_match` (SQuAD's normalisation) instead.

Hand-derived cases: tests/evaluation/test_accuracy.py::test_accuracy_hand_derived
"""

from __future__ import annotations

from collections.abc import Sequence

from llmlab.evaluation.metrics.inputs import check_pairs


def _key(text: str, ignore_case: bool) -> str:
    text = text.strip()
    return text.casefold() if ignore_case else text


def is_correct(prediction: str, references: Sequence[str], ignore_case: bool = False) -> bool:
    """True when the stripped prediction equals one of the stripped references."""
    key = _key(prediction, ignore_case)
    return any(key == _key(r, ignore_case) for r in references)


def accuracy_scores(
    predictions: Sequence[str], references: Sequence[Sequence[str]], ignore_case: bool = False
) -> list[float]:
    """1.0 for each correct item, 0.0 otherwise; their mean is the accuracy."""
    check_pairs(predictions, references)
    return [float(is_correct(p, r, ignore_case)) for p, r in zip(predictions, references, strict=True)]


def accuracy(
    predictions: Sequence[str], references: Sequence[Sequence[str]], ignore_case: bool = False
) -> float:
    """correct / total, in [0, 1]."""
    scores = accuracy_scores(predictions, references, ignore_case)
    return sum(scores) / len(scores)
