"""The flywheel's final measures: base vs aligned on the held-out questions, each with a paired interval.

From the two `llmlab eval run` results (the same held-out prompts, greedy decoding):

- ROUGE-L F1 and SQuAD token F1 against the reference answers: `llmlab eval compare`'s paired bootstrap
  (llmlab.evaluation.compare.compare_runs);
- the ranker's rule, per answer: 1 when it contains a reference answer (any case), else 0; and its length in
  characters (the rule's tie-break: shorter is better);
- the ranker's preference between the two answers to each question: +1 aligned preferred, -1 base, 0 tie;
- the reward model's score of each answer, when a reward model is given;
- with `samples` (`feedback generate` of both models on the held-out prompts, n completions each at the
  sampling temperature): per question, the mean token F1 of the samples against the reference answers and the
  share that contain one. This is the policy's expected score under the ranker's rule on questions it never
  saw, which is what DPO optimizes; averaging n samples a question makes it far steadier than one greedy
  answer.

The per-item values are paired by question; the interval is the percentile bootstrap of the mean of the paired
differences (aligned - base), the same draw of items for both runs, as `eval compare` does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from llmlab.evaluation.bootstrap import mean_interval
from llmlab.rlhf.rankers import rank_by_reference


def contains_reference(text: str, references: list[str]) -> float:
    """The ranker's rule on one answer: 1.0 when it contains a reference answer (any case, whole words)."""
    return float(rank_by_reference(references, [text, ""]) == [1, 2])


def ranker_preference(base: str, aligned: str, references: list[str]) -> float:
    """The ranker's rule applied to the two answers to one question: +1 when it prefers the aligned answer,
    -1 when it prefers the base answer, 0 on a tie (its mean over questions is the aligned model's win rate
    minus its loss rate, the held-out measure of what the ranker asked for)."""
    base_rank, aligned_rank = rank_by_reference(references, [base, aligned])
    return float(np.sign(base_rank - aligned_rank))


def measure(
    base: str | Path,
    aligned: str | Path,
    reward_model: str | None = None,
    seed: int = 0,
    resamples: int = 1000,
    data: str | Path | None = None,
    samples: tuple[str | Path, str | Path] | None = None,
) -> dict[str, Any]:
    """Every measure of the module docstring, as {"items", "measures": {name: {base, aligned, delta, low,
    high}}, "examples": [...]}. `data` (the `eval run --data` file, with ids) gives the reward model each
    item's prompt as it was trained on; without it the prompt as the model saw it (chat template) is scored."""
    from llmlab.evaluation.compare import compare_runs, load_run

    runs = [load_run(base), load_run(aligned)]
    comparison = compare_runs(runs, resamples=resamples, seed=seed, names=["base", "aligned"])
    measures: dict[str, dict[str, float]] = {}
    for row in comparison.rows:
        d = row.differences[0]
        measures[row.metric] = {"base": row.values[0], "aligned": row.values[1], "delta": d.value,
                                "low": d.low, "high": d.high}  # fmt: skip
    by_id = [{item.id: item for item in run.items} for run in runs]
    ids = [i for i in by_id[0] if i in by_id[1]]
    pairs = [(by_id[0][i], by_id[1][i]) for i in ids]
    per_item: dict[str, tuple[list[float], list[float]]] = {
        "contains_reference": ([contains_reference(b.prediction, b.references) for b, _ in pairs],
                               [contains_reference(a.prediction, a.references) for _, a in pairs]),
        "characters": ([float(len(b.prediction)) for b, _ in pairs], [float(len(a.prediction)) for _, a in pairs]),
        "ranker_preference": ([0.0] * len(pairs), [ranker_preference(b.prediction, a.prediction, b.references)
                                                   for b, a in pairs]),
    }  # fmt: skip
    inputs: dict[str, str] = {}  # id -> the prompt as written in `data` (feedback generate's prompt)
    if data is not None:
        lines = Path(data).read_text(encoding="utf-8").splitlines()
        inputs = {str(r["id"]): r["input"] for r in map(json.loads, filter(str.strip, lines))}
    if reward_model:
        from llmlab.rlhf.reward_model import load_reward_model

        scorer = load_reward_model(reward_model)
        prompts = [inputs.get(b.id, b.prompt) for b, _ in pairs]
        per_item["reward"] = (
            [float(s) for s in scorer.score(prompts, [b.prediction for b, _ in pairs])],
            [float(s) for s in scorer.score(prompts, [a.prediction for _, a in pairs])],
        )
    if samples is not None:
        from llmlab.errors import DataError

        if not inputs:
            raise DataError(
                "the sampled measures need --data (the held-out file with each prompt as sampled)"
            )
        references = {inputs[b.id]: b.references for b, _ in pairs if b.id in inputs}
        per_item.update(sampled_measures(samples, references))
    for name, (before, after) in per_item.items():
        diff = np.asarray(after) - np.asarray(before)
        interval = mean_interval(diff, resamples, seed)
        measures[name] = {"base": float(np.mean(before)), "aligned": float(np.mean(after)),
                          "delta": float(diff.mean()), "low": interval.low, "high": interval.high}  # fmt: skip
    examples = [{"id": b.id, "prompt": b.prompt, "references": b.references, "base": b.prediction,
                 "aligned": a.prediction} for b, a in pairs]  # fmt: skip
    return {"items": len(pairs), "paired_by": comparison.paired_by, "resamples": resamples, "seed": seed,
            "measures": measures, "examples": examples}  # fmt: skip


def sampled_measures(
    samples: tuple[str | Path, str | Path], references: dict[str, list[str]]
) -> dict[str, tuple[list[float], list[float]]]:
    """{"sampled_f1", "sampled_contains_reference"}: per held-out prompt of `references` (prompt -> its
    reference answers), the mean over its completions in each of the two `feedback generate` files (base,
    aligned), paired by prompt."""
    from llmlab.errors import DataError
    from llmlab.evaluation.metrics.f1 import f1_score
    from llmlab.rlhf.records import read_completion_sets

    sets = [{s.prompt: s.completions for s in read_completion_sets(path)} for path in samples]
    prompts = [p for p in references if p in sets[0] and p in sets[1]]
    if not prompts:
        raise DataError(f"{samples[0]} and {samples[1]} share no held-out prompt; sample the held-out prompts "
                        "(`eval run --data`'s inputs) with `feedback generate`")  # fmt: skip

    def mean(rule: Any, which: int) -> list[float]:
        return [float(np.mean([rule(c, references[p]) for c in sets[which][p]])) for p in prompts]

    return {
        "sampled_f1": (mean(f1_score, 0), mean(f1_score, 1)),
        "sampled_contains_reference": (mean(contains_reference, 0), mean(contains_reference, 1)),
    }


def write_measures(result: dict[str, Any], out: str | Path) -> None:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(out)
