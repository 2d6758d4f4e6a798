"""Comparing evaluation runs over the same items: the difference of each metric and its paired bootstrap CI.

Paired bootstrap (Koehn, 2004, "Statistical Significance Tests for Machine Translation Evaluation", EMNLP):

    for b in 1..B:  draw n item positions with replacement (the same draw for both runs)
                    d_b = metric(run2 on the draw) - metric(run1 on the draw)
    CI = [percentile(d, (1 - c) / 2), percentile(d, (1 + c) / 2)]        (percentile interval, c = 0.95)

Resampling the same items for both runs keeps the pairing, so the item-to-item variation the runs share cancels
out. Mean metrics resample item scores; corpus metrics (BLEU, chrF) resample per-item sufficient statistics and
recompute the corpus score, as sacreBLEU's paired bootstrap does. The draw is seeded: the same runs and seed
give the same interval. Identical runs give a difference of exactly 0 and the interval [0, 0].

Items are paired by their record ids when every run has them, by position otherwise; each pair must hold the
same item (its fields and references, fingerprinted by the harness), else the runs are over different data and
are refused.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from llmlab.errors import ConfigError, DataError
from llmlab.evaluation.harness import EvalRun
from llmlab.evaluation.scoring import METRICS


@dataclass(frozen=True)
class Difference:
    """One run against the baseline on one metric."""

    value: float
    """metric(run) - metric(baseline) on all items."""
    low: float
    high: float


@dataclass(frozen=True)
class MetricRow:
    metric: str
    values: list[float]
    """The metric of each run, baseline first."""
    differences: list[Difference]
    """Each later run minus the baseline."""


@dataclass(frozen=True)
class Comparison:
    names: list[str]
    task: str
    rows: list[MetricRow]
    items: int
    paired_by: str
    """"id" or "position"."""
    resamples: int
    seed: int
    confidence: float


def load_run(path: str | Path) -> EvalRun:
    """Read a results file written by `llmlab eval run --output`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ConfigError(f"results file not found: {path}") from e
    except json.JSONDecodeError as e:
        raise DataError(
            f"invalid JSON ({e.msg}); is this an `llmlab eval run` results file?", f"{path}:{e.lineno}"
        ) from e
    if not isinstance(data, dict):
        raise DataError("expected a JSON object from `llmlab eval run --output`", str(path))
    return EvalRun.from_json(data, str(path))


def paired_bootstrap(
    metric: str,
    baseline: np.ndarray,
    other: np.ndarray,
    resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> Difference:
    """Difference `other - baseline` of a metric over paired item values, with its percentile bootstrap CI.

    The two runs' rows are put side by side, so `bootstrap_interval`'s single draw of items resamples both
    runs' rows of the same items; the statistic is the metric of the right half minus that of the left half.

    Args:
        baseline, other: per-item values in the same item order: (n,) scores or (n, d) statistics.
    """
    from llmlab.evaluation.bootstrap import bootstrap_interval

    m = METRICS[metric]
    left, right = m.rows(baseline), m.rows(other)
    if left.shape != right.shape or len(left) == 0:
        raise ConfigError(
            f"paired runs need the same non-zero number of items, got {len(left)} and {len(right)}"
        )
    n, d = left.shape

    def difference(sums: np.ndarray) -> float:
        return m.from_sums(sums[d:], n) - m.from_sums(sums[:d], n)

    interval = bootstrap_interval(np.hstack([left, right]), difference, resamples, seed, confidence)
    return Difference(m.aggregate(right) - m.aggregate(left), interval.low, interval.high)


def align(runs: Sequence[EvalRun], names: Sequence[str]) -> tuple[list[EvalRun], str]:
    """Reorder every run's items to the baseline's item order; refuse runs over different data."""
    by_id = all(run.ids == "record" for run in runs)
    base = runs[0]
    aligned = [base]
    for run, name in zip(runs[1:], names[1:], strict=True):
        if by_id:
            items = _by_id(base, run, names[0], name)
        else:
            if len(run.items) != len(base.items):
                raise ConfigError(
                    f"runs over different data: {names[0]} has {len(base.items)} items, {name} has "
                    f"{len(run.items)}; evaluate both on the same --data and --limit"
                )
            items = run.items
        for mine, theirs in zip(base.items, items, strict=True):
            if mine.key != theirs.key:
                raise ConfigError(
                    f"runs over different data: item {mine.id} (line {mine.line}) differs between {names[0]} "
                    f"and {name} (its input or reference changed); compare runs over the same data file"
                )
        aligned.append(EvalRun(**{**run.__dict__, "items": items}))
    return aligned, "id" if by_id else "position"


def _by_id(base: EvalRun, run: EvalRun, base_name: str, name: str) -> list:
    found = {item.id: item for item in run.items}
    missing = [item.id for item in base.items if item.id not in found]
    extra = sorted(set(found) - {item.id for item in base.items})
    if missing or extra:
        detail = "; ".join(
            part
            for part in (
                f"ids only in {base_name}: {_few(missing)}" if missing else "",
                f"ids only in {name}: {_few(extra)}" if extra else "",
            )
            if part
        )
        raise ConfigError(
            f"runs over different data ({detail}); evaluate both on the same --data and --limit"
        )
    return [found[item.id] for item in base.items]


def _few(ids: list[str]) -> str:
    return ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")


def compare_runs(
    runs: Sequence[EvalRun],
    resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    names: Sequence[str] | None = None,
) -> Comparison:
    """Compare runs 2..n against run 1 (the baseline) on every metric they all report."""
    if len(runs) < 2:
        raise ConfigError("give at least two results files to compare")
    names = list(names) if names else _unique_names(runs)
    aligned, paired_by = align(runs, names)
    metrics = [m for m in runs[0].metrics if all(m in run.metrics for run in runs[1:])]
    if not metrics:
        listed = "; ".join(f"{n}: {', '.join(r.metrics)}" for n, r in zip(names, runs, strict=True))
        raise ConfigError(f"the runs share no metric ({listed}); compare runs of the same task")
    rows = []
    for metric in metrics:
        base_values = aligned[0].item_values(metric)
        diffs = [
            paired_bootstrap(metric, base_values, run.item_values(metric), resamples, seed, confidence)
            for run in aligned[1:]
        ]
        rows.append(MetricRow(metric, [run.metrics[metric] for run in aligned], diffs))
    task = runs[0].task if all(r.task == runs[0].task for r in runs) else " / ".join(r.task for r in runs)
    return Comparison(names, task, rows, len(aligned[0].items), paired_by, resamples, seed, confidence)


def _unique_names(runs: Sequence[EvalRun]) -> list[str]:
    names = [run.name for run in runs]
    if len(set(names)) < len(names):
        names = [f"{i + 1}: {name}" for i, name in enumerate(names)]
    return names
