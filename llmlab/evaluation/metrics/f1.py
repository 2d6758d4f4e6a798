"""Token F1 as in SQuAD v1.1 (Rajpurkar et al., 2016, "SQuAD: 100,000+ Questions for Machine Comprehension of
Text", EMNLP).

    tokens(s)  = normalize_answer(s).split()                  (see exact_match.py)
    common     = sum over tokens of min(count in prediction, count in reference)
    P = common / len(tokens(prediction)),  R = common / len(tokens(reference)),  F1 = 2PR / (P + R)
    F1 = 0 when nothing is in common (also when either side is empty: SQuAD v1.1, unlike v2.0)
    item F1    = max over the item's references;  corpus F1 = mean over items, in [0, 1]

Matches the official `evaluate-v1.1.py` (`f1_score` and the max over ground truths).
Parity: tests/evaluation/test_squad.py::test_f1_equals_official_script
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from llmlab.evaluation.metrics.exact_match import normalize_answer
from llmlab.evaluation.metrics.inputs import check_pairs


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD token F1 of one prediction against one reference."""
    pred = normalize_answer(prediction).split()
    ref = normalize_answer(reference).split()
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision = common / len(pred)
    recall = common / len(ref)
    return (2 * precision * recall) / (precision + recall)


def f1_score(prediction: str, references: Sequence[str]) -> float:
    """The best token F1 over the references."""
    return max(token_f1(prediction, r) for r in references)


def f1_scores(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> list[float]:
    """Per-item token F1; their mean is the corpus score."""
    check_pairs(predictions, references)
    return [f1_score(p, r) for p, r in zip(predictions, references, strict=True)]


def f1(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Mean token F1 over items, in [0, 1]."""
    scores = f1_scores(predictions, references)
    return sum(scores) / len(scores)
