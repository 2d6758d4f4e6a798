"""The metrics a task can name, as per-item values that aggregate (and resample) to the corpus score.

Two kinds, because the bootstrap in `compare.py` resamples items:
- mean metrics (accuracy, exact_match, f1, rouge*): one score per item; the corpus score is their mean.
- corpus metrics (bleu, chrf): sufficient statistics per item; the corpus score is computed from their sum
  (corpus BLEU is not the mean of sentence BLEU), so a resample sums the resampled rows, as sacreBLEU's
  paired bootstrap does.

The metric maths lives in `llmlab.evaluation.metrics`; this module only adapts it to items. Scales are the
metrics' own: accuracy, exact match, SQuAD F1 and ROUGE F1 in [0, 1]; BLEU and chrF in [0, 100].
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

Predictions = Sequence[str]
References = Sequence[Sequence[str]]


@dataclass(frozen=True)
class Metric:
    name: str
    description: str
    item_values: Callable[[Predictions, References], np.ndarray]
    """(n,) item scores for a mean metric; (n, d) sufficient statistics for a corpus metric."""
    from_statistics: Callable[[np.ndarray], float] | None = None
    """Corpus metrics: the score from statistics summed over items. None: the score is the mean."""

    @property
    def is_corpus(self) -> bool:
        return self.from_statistics is not None

    def rows(self, values: np.ndarray) -> np.ndarray:
        """(n, d) rows whose column sums give the score (a mean metric's scores become one column)."""
        values = np.asarray(values, dtype=np.float64)
        return values[:, None] if values.ndim == 1 else values

    def from_sums(self, sums: np.ndarray, n: int) -> float:
        """The corpus score of n items from the column sums of their rows (what a bootstrap resample gives)."""
        if self.from_statistics is None:
            return float(sums[0]) / n
        return float(self.from_statistics(np.asarray(sums)))

    def aggregate(self, values: np.ndarray) -> float:
        """The corpus score of these items' values."""
        rows = self.rows(values)
        return self.from_sums(rows.sum(axis=0), rows.shape[0])


def _mean_metric(name: str) -> Callable[[Predictions, References], np.ndarray]:
    """Item scores from a `<name>_scores(predictions, references)` function of `llmlab.evaluation.metrics`."""

    def item_values(predictions: Predictions, references: References) -> np.ndarray:
        import llmlab.evaluation.metrics as metrics

        return np.asarray(getattr(metrics, f"{name}_scores")(predictions, references), dtype=np.float64)

    return item_values


def _rouge(kind: str) -> Callable[[Predictions, References], np.ndarray]:
    def item_values(predictions: Predictions, references: References) -> np.ndarray:
        from llmlab.evaluation.metrics.rouge import rouge

        return np.array([s[kind].fmeasure for s in rouge(predictions, references, types=(kind,))])

    return item_values


def _bleu_statistics(predictions: Predictions, references: References) -> np.ndarray:
    from llmlab.evaluation.metrics.bleu import BleuConfig, bleu_statistics

    return np.asarray(bleu_statistics(predictions, references, BleuConfig()), dtype=np.float64)


def _bleu_score(sums: np.ndarray) -> float:
    from llmlab.evaluation.metrics.bleu import BleuConfig, bleu_from_statistics

    return bleu_from_statistics(sums.tolist(), BleuConfig()).score


def _chrf_statistics(predictions: Predictions, references: References) -> np.ndarray:
    from llmlab.evaluation.metrics.chrf import ChrfConfig, chrf_statistics

    return np.asarray(chrf_statistics(predictions, references, ChrfConfig()), dtype=np.float64)


def _chrf_score(sums: np.ndarray) -> float:
    from llmlab.evaluation.metrics.chrf import ChrfConfig, chrf_from_statistics

    return chrf_from_statistics(sums.tolist(), ChrfConfig())


METRICS: dict[str, Metric] = {
    "accuracy": Metric(
        "accuracy", "prediction equals a reference (after stripping whitespace)", _mean_metric("accuracy")
    ),
    "exact_match": Metric(
        "exact_match",
        "SQuAD exact match (lowercase, no punctuation or articles)",
        _mean_metric("exact_match"),
    ),
    "f1": Metric("f1", "SQuAD token F1 (best reference)", _mean_metric("f1")),
    "rouge1": Metric("rouge1", "ROUGE-1 F1 (unigram overlap)", _rouge("rouge1")),
    "rouge2": Metric("rouge2", "ROUGE-2 F1 (bigram overlap)", _rouge("rouge2")),
    "rougeL": Metric("rougeL", "ROUGE-L F1 (longest common subsequence)", _rouge("rougeL")),
    "rougeLsum": Metric("rougeLsum", "ROUGE-Lsum F1 (summary-level LCS over lines)", _rouge("rougeLsum")),
    "bleu": Metric("bleu", "corpus BLEU (sacreBLEU 13a, 0-100)", _bleu_statistics, _bleu_score),
    "chrf": Metric("chrf", "corpus chrF2 (sacreBLEU, 0-100)", _chrf_statistics, _chrf_score),
}
"""Every metric a task may list, by the name used in task files and results."""


def score_items(
    names: Sequence[str], predictions: Predictions, references: References
) -> dict[str, np.ndarray]:
    """Per-item values of each named metric (see `Metric.item_values`)."""
    return {name: METRICS[name].item_values(predictions, references) for name in names}
