"""BLEU equals sacreBLEU: corpus and sentence level, every smoothing method, lowercase, tokenizers 13a and none."""

from __future__ import annotations

import math

import pytest
import sacrebleu  # the reference: a missing one fails the run (never skip a parity test)
from hypothesis import given, settings
from hypothesis import strategies as st
from sacrebleu.metrics import BLEU
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a
from texts import text

from llmlab.errors import ConfigError
from llmlab.evaluation.metrics.bleu import (
    BleuConfig,
    bleu_from_statistics,
    bleu_statistics,
    corpus_bleu,
    sentence_bleu,
    tokenize_13a,
)

SMOOTHING = [("none", None), ("floor", None), ("floor", 0.5), ("add-k", None), ("add-k", 2.0), ("exp", None)]
corpus = st.integers(1, 4).flatmap(
    lambda n: st.tuples(
        st.lists(text, min_size=n, max_size=n),
        st.lists(st.lists(text, min_size=1, max_size=3), min_size=n, max_size=n),
    )
)


def streams(refs: list[list[str]]) -> list[list[str | None]]:
    """sacreBLEU's layout: one stream per reference slot, None where an item has fewer references."""
    width = max(map(len, refs))
    return [[r[k] if k < len(r) else None for r in refs] for k in range(width)]


def signature_without_version(signature: object) -> str:
    return str(signature).rsplit("|version:", 1)[0]


def check(preds: list[str], refs: list[list[str]], config: BleuConfig) -> None:
    reference = BLEU(
        smooth_method=config.smooth_method, smooth_value=config.smooth_value, lowercase=config.lowercase,
        tokenize=config.tokenize, effective_order=config.effective_order,
    )  # fmt: skip
    theirs = reference.corpus_score(preds, streams(refs))
    ours = corpus_bleu(preds, refs, config)
    assert ours.score == pytest.approx(theirs.score, abs=1e-9, rel=0)
    assert ours.counts == pytest.approx(theirs.counts) and ours.totals == pytest.approx(theirs.totals)
    assert (ours.sys_len, ours.ref_len) == (theirs.sys_len, theirs.ref_len)
    assert ours.bp == pytest.approx(theirs.bp, abs=1e-12)
    assert signature_without_version(ours.signature) == signature_without_version(reference.get_signature())


@settings(max_examples=60, deadline=None)
@given(corpus, st.sampled_from(SMOOTHING), st.booleans(), st.sampled_from(["13a", "none"]), st.booleans())
def test_corpus_bleu_matches_sacrebleu(
    data, smoothing, lowercase: bool, tokenize: str, effective: bool
) -> None:
    preds, refs = data
    check(preds, refs, BleuConfig(smoothing[0], smoothing[1], lowercase, tokenize, effective))  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(text, st.lists(text, min_size=1, max_size=3), st.sampled_from(SMOOTHING))
def test_sentence_bleu_matches_sacrebleu(prediction: str, refs: list[str], smoothing) -> None:
    method, value = smoothing
    theirs = sacrebleu.sentence_bleu(prediction, refs, smooth_method=method, smooth_value=value)
    ours = sentence_bleu(prediction, refs, BleuConfig(method, value, effective_order=True))
    assert ours.score == pytest.approx(theirs.score, abs=1e-9, rel=0)


@settings(max_examples=300, deadline=None)
@given(text)
def test_13a_tokenizer_matches_sacrebleu(line: str) -> None:
    assert tokenize_13a(line) == Tokenizer13a()(line).split()


@pytest.mark.parametrize(
    ("preds", "refs"),
    [
        (["completely different words"], [["nothing in common here"]]),
        ([""], [["the cat sat on the mat"]]),
        (["the cat"], [[""]]),
        ([""], [[""]]),
        (["a b c d e"], [["a b c d e"]]),
        (["the the the the the the the"], [["the cat is on the mat"]]),
        (
            ["3.5% of 1,000 U.S. e.g. (AP) &amp; well-known"],
            [["3.5 % of 1,000 U.S. e.g. (AP) & well - known"]],
        ),
        (
            ["Short.", "A much longer second sentence here."],
            [["Short one."], ["A much longer second sentence."]],
        ),
    ],
)
def test_degenerate_cases_match_sacrebleu(preds: list[str], refs: list[list[str]]) -> None:
    for method, value in SMOOTHING:
        for lowercase in (False, True):
            check(preds, refs, BleuConfig(method, value, lowercase))  # type: ignore[arg-type]


def test_bleu_hand_derived() -> None:
    """Output "the cat sat on the mat" against itself plus a second item "a b" vs "a c":
    unigrams 6/6 + 1/2, bigrams 5/5 + 0/1, trigrams 4/4, 4-grams 3/3 (corpus sums: 7/8, 5/6, 4/4, 3/3).
    Lengths 8 = 8, so BP = 1 and BLEU = 100 * (7/8 * 5/6 * 1 * 1) ** (1/4)."""
    result = corpus_bleu(["the cat sat on the mat", "a b"], [["the cat sat on the mat"], ["a c"]])
    assert result.counts == [7, 5, 4, 3] and result.totals == [8, 6, 4, 3]
    assert result.score == pytest.approx(100 * (7 / 8 * 5 / 6) ** 0.25, abs=1e-12)


def test_statistics_sum_to_the_corpus_score() -> None:
    preds = ["the cat sat", "on the mat today", "a dog"]
    refs = [["the cat sat down"], ["on the mat"], ["a dog barked", "the dog"]]
    stats = bleu_statistics(preds, refs, BleuConfig())
    assert stats.shape == (3, 10)
    assert (
        bleu_from_statistics(stats.sum(axis=0).tolist(), BleuConfig()).score == corpus_bleu(preds, refs).score
    )


def test_brevity_penalty_hand_derived() -> None:
    """c = 3 output tokens, r = 6: BP = exp(1 - 6/3) = e^-1; all n-grams of the output match."""
    result = corpus_bleu(["a b c"], [["a b c d e f"]], BleuConfig(max_ngram_order=3))
    assert result.bp == pytest.approx(math.exp(-1), abs=1e-15)
    assert result.score == pytest.approx(100 * math.exp(-1), abs=1e-12)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="--smooth-method must be one of"):
        BleuConfig(smooth_method="laplace")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="--tokenize must be one of"):
        BleuConfig(tokenize="intl")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="no predictions"):
        corpus_bleu([], [])
