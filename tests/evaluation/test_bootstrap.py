"""Percentile bootstrap: deterministic for a seed, degenerate for one item, and each resample of a corpus metric
is that metric recomputed on the resampled items."""

from __future__ import annotations

import numpy as np
import pytest

from llmlab.errors import ConfigError
from llmlab.evaluation.bootstrap import bootstrap_interval, mean_interval, resample_sums
from llmlab.evaluation.metrics.bleu import BleuConfig, bleu_from_statistics, bleu_statistics, corpus_bleu


def test_same_seed_same_interval() -> None:
    values = [0.1, 0.9, 0.4, 0.7, 0.3, 0.8]
    assert mean_interval(values, 500, seed=3) == mean_interval(values, 500, seed=3)
    assert mean_interval(values, 500, seed=3) != mean_interval(values, 500, seed=4)


def test_one_item_gives_a_point() -> None:
    interval = mean_interval([0.25], 200)
    assert (interval.low, interval.high) == (0.25, 0.25)


def test_interval_matches_normal_theory_for_a_proportion() -> None:
    """500 items, 150 correct: the mean is 0.3 with standard error sqrt(0.3 * 0.7 / 500) = 0.0205, so a 95%
    interval is about 0.3 +- 0.040; the percentile bootstrap with 4,000 resamples lands within 0.01 of that."""
    values = np.array([1.0] * 150 + [0.0] * 350)
    interval = mean_interval(values, 4000, seed=0)
    half = 1.96 * (0.3 * 0.7 / 500) ** 0.5
    assert interval.low == pytest.approx(0.3 - half, abs=0.01)
    assert interval.high == pytest.approx(0.3 + half, abs=0.01)


def test_a_resample_is_the_metric_on_the_resampled_items() -> None:
    preds = ["the cat sat on the mat", "a dog barked", "it rained all day", "the end"]
    refs = [["the cat sat on a mat"], ["the dog barked"], ["it was raining all day"], ["the end"]]
    config = BleuConfig()
    stats = bleu_statistics(preds, refs, config)
    sums = next(resample_sums(stats.astype(float), 3, seed=11))
    picks = np.random.default_rng(11).integers(0, len(preds), size=(3, len(preds)))
    for row, pick in zip(sums, picks, strict=True):
        direct = corpus_bleu([preds[i] for i in pick], [refs[i] for i in pick], config).score
        assert bleu_from_statistics(row.tolist(), config).score == pytest.approx(direct, abs=1e-9)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="--bootstrap must be a positive"):
        mean_interval([1.0], 0)
    with pytest.raises(ConfigError, match="--confidence must be in"):
        mean_interval([1.0], 10, confidence=1.5)
    with pytest.raises(ConfigError, match="empty corpus"):
        bootstrap_interval([], lambda s: 0.0, 10)
