"""Exact match and token F1 follow the official SQuAD v1.1 evaluation (evaluate-v1.1.py), on hand-written cases.

The official script normalises answers by lowercasing, deleting every character of string.punctuation (so
"Eiffel-Tower" becomes "eiffeltower": the hyphen is deleted, not replaced by a space), replacing the words
a/an/the by spaces and collapsing whitespace; F1 is computed on the normalised tokens and is 0 whenever no
token is shared, even when both answers are empty; an item takes the best score over its ground truths.
"""

from __future__ import annotations

import pytest

from llmlab.errors import ConfigError
from llmlab.evaluation.metrics.exact_match import exact_match, exact_match_score, normalize_answer
from llmlab.evaluation.metrics.f1 import f1, f1_score, token_f1

NORMALIZED = {
    "The Eiffel Tower!": "eiffel tower",
    "Eiffel-Tower": "eiffeltower",
    "an apple a day": "apple day",
    "theater, anthem": "theater anthem",
    "  Multiple   spaces\tand\nnewlines ": "multiple spaces and newlines",
    "The": "",
    "it's": "its",
    "a.k.a.": "aka",
    "U.S. the": "us",
    "Ünïcode Straße": "ünïcode straße",
    "“curly” quotes": "“curly” quotes",
    "A (B) [C]": "b c",
    "THE END": "end",
}


@pytest.mark.parametrize(("raw", "normalized"), NORMALIZED.items())
def test_normalization_equals_official_script(raw: str, normalized: str) -> None:
    assert normalize_answer(raw) == normalized


def test_exact_match_equals_official_script() -> None:
    assert exact_match_score("The Eiffel Tower", ["eiffel tower"]) == 1.0
    assert exact_match_score("Eiffel Tower.", ["the tower"]) == 0.0
    assert exact_match_score("Eiffel-Tower", ["Eiffel Tower"]) == 0.0  # the hyphen is deleted, not spaced
    assert exact_match_score("1,000", ["1000"]) == 1.0
    assert exact_match_score("Denver Broncos", ["Broncos", "the Denver Broncos"]) == 1.0
    assert exact_match_score("", [""]) == 1.0
    assert exact_match(["Paris", "Rome", "a cat"], [["paris"], ["Milan"], ["the cat", "dog"]]) == 2 / 3


def test_f1_equals_official_script() -> None:
    """Hand-derived:
    - "the cat sat on the mat" vs "a cat on a mat": tokens [cat sat on mat] and [cat on mat], 3 shared:
      P = 3/4, R = 1, F1 = 2 * 3/4 / (7/4) = 6/7.
    - "cat cat cat" vs "cat dog": 1 shared (clipped): P = 1/3, R = 1/2, F1 = (1/3) / (5/6) = 2/5.
    - "cat sat" vs ["dog", "cat sat down"]: best is the second, P = 1, R = 2/3, F1 = 4/5.
    - empty against empty, and no shared token: 0 (SQuAD v1.1).
    """
    assert token_f1("the cat sat on the mat", "a cat on a mat") == pytest.approx(6 / 7, abs=1e-15)
    assert token_f1("cat cat cat", "cat dog") == pytest.approx(2 / 5, abs=1e-15)
    assert f1_score("cat sat", ["dog", "cat sat down"]) == pytest.approx(4 / 5, abs=1e-15)
    assert token_f1("", "") == 0.0
    assert token_f1("red", "blue") == 0.0
    assert f1(["cat sat", "red"], [["cat sat down"], ["blue"]]) == pytest.approx(0.4, abs=1e-15)


def test_unpaired_inputs_are_refused() -> None:
    with pytest.raises(ConfigError, match="1 predictions but 2 reference lists"):
        f1(["a"], [["a"], ["b"]])
