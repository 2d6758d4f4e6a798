"""Exact match as in SQuAD v1.1 (Rajpurkar et al., 2016, "SQuAD: 100,000+ Questions for Machine Comprehension
of Text", EMNLP).

    normalize(s) = lowercase; drop every character of string.punctuation; drop the words a, an, the;
                   collapse whitespace to single spaces
    EM(prediction) = 1 if normalize(prediction) == normalize(r) for some reference r, else 0
    corpus EM      = mean over items, in [0, 1] (the official script prints 100 times this)

Matches the official `evaluate-v1.1.py` (`normalize_answer`, `exact_match_score`, and the max over ground
truths). Parity: tests/evaluation/test_squad.py::test_exact_match_equals_official_script
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

from llmlab.evaluation.metrics.inputs import check_pairs

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """SQuAD's answer normalisation: lowercase, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match_score(prediction: str, references: Sequence[str]) -> float:
    """1.0 when the normalised prediction equals a normalised reference, else 0.0."""
    key = normalize_answer(prediction)
    return float(any(key == normalize_answer(r) for r in references))


def exact_match_scores(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> list[float]:
    """Per-item exact match; their mean is the corpus score."""
    check_pairs(predictions, references)
    return [exact_match_score(p, r) for p, r in zip(predictions, references, strict=True)]


def exact_match(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Mean exact match over items, in [0, 1]."""
    scores = exact_match_scores(predictions, references)
    return sum(scores) / len(scores)
