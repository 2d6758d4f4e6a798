"""ROUGE equals Google's rouge-score on every type, with and without stemming, with one or several references."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rouge_score import rouge_scorer  # the reference: a missing one fails the run, never skips
from texts import references, text

from llmlab.errors import ConfigError
from llmlab.evaluation.metrics.lcs import lcs_indices, lcs_length, pack, union_lcs_indices
from llmlab.evaluation.metrics.rouge import mean_rouge, rouge, rouge_score

TYPES = ["rouge1", "rouge2", "rouge3", "rougeL", "rougeLsum"]
SCORERS = {stem: rouge_scorer.RougeScorer(TYPES, use_stemmer=stem) for stem in (False, True)}


def reference_scores(prediction: str, refs: list[str], stem: bool) -> dict:
    scorer = SCORERS[stem]
    return scorer.score(refs[0], prediction) if len(refs) == 1 else scorer.score_multi(refs, prediction)


def assert_same(ours: dict, theirs: dict) -> None:
    assert list(ours) == TYPES
    for t in TYPES:
        assert ours[t].precision == pytest.approx(theirs[t].precision, abs=1e-9, rel=0), t
        assert ours[t].recall == pytest.approx(theirs[t].recall, abs=1e-9, rel=0), t
        assert ours[t].fmeasure == pytest.approx(theirs[t].fmeasure, abs=1e-9, rel=0), t


@settings(max_examples=150, deadline=None)
@given(text, references, st.booleans())
def test_matches_rouge_score_on_generated_texts(prediction: str, refs: list[str], stem: bool) -> None:
    assert_same(rouge_score(prediction, refs, TYPES, stem), reference_scores(prediction, refs, stem))


def test_matches_rouge_score_on_realistic_summaries() -> None:
    sys.path.insert(0, str(Path(__file__).parents[2] / "bench"))
    from metrics import summaries

    preds, refs = summaries(60, seed=7)
    multi = [[r, refs[(i + 1) % len(refs)]] for i, r in enumerate(refs)]
    for stem in (False, True):
        ours = rouge(preds, [[r] for r in refs], TYPES, stem)
        for p, r, o in zip(preds, refs, ours, strict=True):
            assert_same(o, reference_scores(p, [r], stem))
        for p, rs, o in zip(preds, multi, rouge(preds, multi, TYPES, stem), strict=True):
            assert_same(o, reference_scores(p, rs, stem))


def test_long_sentences_match_rouge_score(monkeypatch: pytest.MonkeyPatch) -> None:
    """Output sentences over 63 tokens do not fit one machine word and take the Python path; items of both
    kinds share chunks (made small here so that several are used)."""
    import importlib

    monkeypatch.setattr(importlib.import_module("llmlab.evaluation.metrics.rouge"), "_CHUNK", 3)
    rng = random.Random(3)
    words = ["the", "cat", "sat", "on", "mat", "dog", "ran", "a", "park", "in"]

    def sentence(n: int) -> str:
        return " ".join(rng.choice(words) for _ in range(n)) + "."

    preds = [
        sentence(70) + "\n" + sentence(5),
        sentence(12),
        sentence(64),
        sentence(63) + "\n" + sentence(9),
    ] * 2
    refs = [
        [sentence(66) + "\n" + sentence(8)],
        [sentence(80)],
        [sentence(20), sentence(64)],
        [sentence(63)],
    ] * 2
    for stem in (False, True):
        for p, rs, o in zip(preds, refs, rouge(preds, refs, TYPES, stem), strict=True):
            assert_same(o, reference_scores(p, rs, stem))


@pytest.mark.parametrize(
    ("prediction", "reference"),
    [
        ("", ""),
        ("", "the cat"),
        ("the cat", ""),
        ("!!! ... ???", "the cat"),
        ("the cat", "--- ,,,"),
        ("\n\n\n", "a\n\nb\n"),
        ("über naïve café 中文", "uber naive cafe"),
        ("İstanbul K", "i̇stanbul k"),
        ("The cat.\nThe dog sat.\n", "the dog.\nThe cat sat!"),
        ("running runs ran", "run running"),
    ],
)
def test_edge_cases_match_rouge_score(prediction: str, reference: str) -> None:
    for stem in (False, True):
        assert_same(
            rouge_score(prediction, reference, TYPES, stem), reference_scores(prediction, [reference], stem)
        )


def test_rouge1_hand_derived() -> None:
    """Output "the cat sat" (3 unigrams), reference "the cat sat on the mat" (6): 3 match.
    P = 3/3 = 1, R = 3/6 = 0.5, F1 = 2 * 1 * 0.5 / 1.5 = 2/3."""
    s = rouge_score("the cat sat", "the cat sat on the mat", ["rouge1"])["rouge1"]
    assert (s.precision, s.recall) == (1.0, 0.5)
    assert s.fmeasure == pytest.approx(2 / 3, abs=1e-15)


def test_rouge_lsum_hand_derived() -> None:
    """Reference sentences r1 = "a b c", r2 = "d e"; output sentences c1 = "a c d", c2 = "b e".
    Union LCS of r1: LCS(r1, c1) = {a, c}, LCS(r1, c2) = {b} -> {a, b, c}; of r2: {d} and {e} -> {d, e}.
    Hits 5 (clipping removes nothing), m = n = 5: P = R = F1 = 1, while ROUGE-L on the flat texts
    "a b c d e" / "a c d b e" has LCS 4 ("a c d e"): P = R = F1 = 4/5."""
    scores = rouge_score("a c d\nb e", "a b c\nd e", ["rougeL", "rougeLsum"])
    assert scores["rougeLsum"].fmeasure == 1.0
    assert scores["rougeL"].fmeasure == pytest.approx(0.8, abs=1e-15)


def test_mean_rouge_averages_items() -> None:
    items = rouge(["the cat", "a dog"], [["the cat"], ["the dog"]], ["rouge1"])
    assert [s["rouge1"].fmeasure for s in items] == [1.0, 0.5]
    assert mean_rouge(items)["rouge1"].fmeasure == 0.75


@pytest.mark.parametrize("types", [["rouge0"], ["rougeX"], ["rouge10"], ["ROUGE1"], []])
def test_bad_types_are_refused(types: list[str]) -> None:
    with pytest.raises(ConfigError, match="rouge"):
        rouge(["a"], [["a"]], types)


def test_unpaired_inputs_are_refused() -> None:
    with pytest.raises(ConfigError, match="2 predictions but 1 reference"):
        rouge(["a", "b"], [["a"]])
    with pytest.raises(ConfigError, match="non-empty list"):
        rouge(["a"], [[]])


def lcs_table(a: list[int], b: list[int]) -> list[list[int]]:
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            same = a[i - 1] == b[j - 1]
            table[i][j] = table[i - 1][j - 1] + 1 if same else max(table[i - 1][j], table[i][j - 1])
    return table


small_lists = st.lists(st.integers(0, 4), max_size=25)


@settings(max_examples=300, deadline=None)
@given(small_lists, small_lists)
def test_lcs_matches_dynamic_programming_table(a: list[int], b: list[int]) -> None:
    assert lcs_length(a, pack([b])) == lcs_table(a, b)[-1][-1]
    assert lcs_indices(a, b) == rouge_scorer.lcs_ind(a, b)


@settings(max_examples=150, deadline=None)
@given(small_lists, st.lists(small_lists, max_size=4))
def test_union_lcs_matches_rouge_score(a: list[int], sentences: list[list[int]]) -> None:
    """Packing several sentences into one bit string changes nothing: guard bits stop carries and borrows."""
    expected = set().union(*(rouge_scorer.lcs_ind(a, s) for s in sentences))
    assert union_lcs_indices(a, pack(sentences)) == expected
    assert lcs_length(a, pack(sentences)) == lcs_table(a, [t for s in sentences for t in s])[-1][-1]


@pytest.mark.slow
def test_matches_rouge_score_on_thousands_of_cases() -> None:
    """The heavier sweep: 3,000 random texts per setting, one to three references each."""
    rng = random.Random(0)
    from texts import SEPARATORS, WORDS

    def sample() -> str:
        return "".join(rng.choice(WORDS) + rng.choice(SEPARATORS) for _ in range(rng.randint(0, 40)))

    for stem in (False, True):
        preds = [sample() for _ in range(3000)]
        refs = [[sample() for _ in range(rng.randint(1, 3))] for _ in preds]
        for p, rs, o in zip(preds, refs, rouge(preds, refs, TYPES, stem), strict=True):
            assert_same(o, reference_scores(p, rs, stem))
