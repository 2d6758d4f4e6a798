"""Bootstrap confidence intervals for corpus metrics (Efron & Tibshirani, 1993, "An Introduction to the
Bootstrap", chapter 13: the percentile interval).

    for b in 1..B:  draw n items with replacement (numpy.random.default_rng(seed))
                    s_b = statistic(sum of the drawn items' rows)
    CI = [percentile(s, 100 * (1 - c) / 2), percentile(s, 100 * (1 + c) / 2)]       c: the confidence level

Every metric in `llmlab.evaluation.metrics` is a function of per-item statistics summed over items: a mean
metric sums (value, 1) rows and divides; corpus BLEU and chrF sum their sufficient statistics (so a resample
recomputes the corpus score, it does not average sentence scores); perplexity sums (NLL, tokens). One routine
therefore serves all of them. Percentiles use numpy's default linear interpolation. The same seed, rows and B
give the same interval.

Invariants: tests/evaluation/test_bootstrap.py
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from llmlab.errors import ConfigError

_CELLS = 4_000_000
"""Resampled rows held at once (bounds memory: one block is about 32 MB of float64)."""


@dataclass(frozen=True)
class Interval:
    """A percentile bootstrap interval for one metric."""

    low: float
    high: float
    confidence: float
    resamples: int
    seed: int


def check_bootstrap(resamples: int, confidence: float) -> None:
    if resamples < 1:
        raise ConfigError(f"--bootstrap must be a positive number of resamples, got {resamples}")
    if not 0 < confidence < 1:
        raise ConfigError(f"--confidence must be in (0, 1), got {confidence}")


def resample_sums(rows: np.ndarray, resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Blocks of (b, d) sums of `rows` (n, d) over items drawn with replacement; `resamples` sums in all."""
    n = rows.shape[0]
    rng = np.random.default_rng(seed)
    block = max(1, _CELLS // max(1, n * rows.shape[1]))
    done = 0
    while done < resamples:
        b = min(block, resamples - done)
        picks = rng.integers(0, n, size=(b, n))
        yield rows[picks].sum(axis=1)
        done += b


def bootstrap_interval(
    rows: np.ndarray | Sequence[float] | Sequence[Sequence[float]],
    statistic: Callable[[np.ndarray], float],
    resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> Interval:
    """Percentile interval of `statistic` over item resamples.

    Args:
        rows: per-item statistics, (n,) or (n, d).
        statistic: the metric from the column sums of a resample, a (d,) array.
        resamples: B, the number of resamples.
        seed: seeds the draw.
        confidence: the interval's coverage c.
    """
    check_bootstrap(resamples, confidence)
    data = np.asarray(rows, dtype=np.float64)
    if data.ndim == 1:
        data = data[:, None]
    if data.shape[0] == 0:
        raise ConfigError("cannot bootstrap an empty corpus")
    values = np.array([statistic(s) for block in resample_sums(data, resamples, seed) for s in block])
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return Interval(float(low), float(high), confidence, resamples, seed)


def mean_interval(
    values: Sequence[float] | np.ndarray, resamples: int = 1000, seed: int = 0, confidence: float = 0.95
) -> Interval:
    """Percentile interval of the mean of per-item values."""
    n = len(values)
    return bootstrap_interval(values, lambda s: float(s[0]) / n, resamples, seed, confidence)
