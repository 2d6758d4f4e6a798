"""chrF and chrF++ equal sacreBLEU's at corpus and sentence level."""

from __future__ import annotations

import pytest
import sacrebleu  # the reference: a missing one fails the run (never skip a parity test)
from hypothesis import given, settings
from hypothesis import strategies as st
from sacrebleu.metrics import CHRF
from test_bleu import corpus, signature_without_version, streams
from texts import text

from llmlab.errors import ConfigError
from llmlab.evaluation.metrics.chrf import ChrfConfig, corpus_chrf, sentence_chrf

configs = st.builds(
    ChrfConfig,
    char_order=st.sampled_from([6, 4, 1]),
    word_order=st.sampled_from([0, 2]),
    beta=st.sampled_from([2, 1, 3]),
    lowercase=st.booleans(),
    whitespace=st.booleans(),
    eps_smoothing=st.booleans(),
)


@settings(max_examples=80, deadline=None)
@given(corpus, configs)
def test_corpus_chrf_matches_sacrebleu(data, config: ChrfConfig) -> None:
    preds, refs = data
    reference = CHRF(
        char_order=config.char_order, word_order=config.word_order, beta=config.beta,
        lowercase=config.lowercase, whitespace=config.whitespace, eps_smoothing=config.eps_smoothing,
    )  # fmt: skip
    theirs = reference.corpus_score(preds, streams(refs))
    ours = corpus_chrf(preds, refs, config)
    assert ours.score == pytest.approx(theirs.score, abs=1e-9, rel=0)
    assert ours.name == theirs.name
    assert signature_without_version(ours.signature) == signature_without_version(reference.get_signature())


@settings(max_examples=60, deadline=None)
@given(text, st.lists(text, min_size=1, max_size=3), st.sampled_from([0, 2]))
def test_sentence_chrf_matches_sacrebleu(prediction: str, refs: list[str], word_order: int) -> None:
    theirs = sacrebleu.sentence_chrf(prediction, refs, word_order=word_order)
    assert sentence_chrf(prediction, refs, ChrfConfig(word_order=word_order)).score == pytest.approx(
        theirs.score, abs=1e-9, rel=0
    )


@pytest.mark.parametrize(
    ("preds", "refs"),
    [([""], [["abc"]]), (["abc"], [[""]]), ([""], [[""]]), (["xyz"], [["abc"]]), (["ab"], [["abcdefgh"]])],
)
def test_degenerate_cases_match_sacrebleu(preds: list[str], refs: list[list[str]]) -> None:
    for word_order in (0, 2):
        for eps in (False, True):
            theirs = CHRF(word_order=word_order, eps_smoothing=eps).corpus_score(preds, streams(refs))
            ours = corpus_chrf(preds, refs, ChrfConfig(word_order=word_order, eps_smoothing=eps))
            assert ours.score == pytest.approx(theirs.score, abs=1e-9, rel=0)


def test_chrf_hand_derived() -> None:
    """char_order 1, output "ab", reference "abb": unigram P = 2/2, R = 2/3;
    chrF2 = 100 * 5 P R / (4 P + R) = 100 * (10/3) / (14/3) = 100 * 5/7."""
    score = corpus_chrf(["ab"], [["abb"]], ChrfConfig(char_order=1)).score
    assert score == pytest.approx(500 / 7, abs=1e-12)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="--char-order"):
        ChrfConfig(char_order=0)
    with pytest.raises(ConfigError, match="--beta"):
        ChrfConfig(beta=0)
