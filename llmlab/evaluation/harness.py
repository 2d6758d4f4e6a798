"""The evaluation harness: prompt a model with a task over a data set, read its answers, score them.

    item -> query = template.format(**fields) -> few-shot prompt (instruction, k examples, query)
         -> engine.generate(batch, greedy by default) -> postprocess(output) -> prediction
    predictions, references -> per-item metric values -> corpus score per metric

Few-shot examples are the first k items of a pool (a separate shots file, or the evaluated data itself) whose
query differs from the evaluated item's, so an item is never its own example; an example's answer is its first
reference. Prompts use the model's chat template when it has one (`llmlab.prompting.render`); examples that do
not fit the context window (after room for `max_new_tokens`) are dropped and counted. Generation is batched:
prompts are sorted by length so each batch pads little, and results return to data order.

The results keep every item's prompt, output, prediction and per-item metric values, so `compare.py` can
resample items for a paired bootstrap, and a fingerprint of each item's fields and references, so runs over
different data are refused.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from llmlab.errors import ConfigError
from llmlab.evaluation.scoring import METRICS, score_items
from llmlab.evaluation.task import Item, Task, task_labels
from llmlab.generation.config import GenerationConfig

RESULTS_FORMAT = "llmlab-eval/1"


class TextGenerator(Protocol):
    """What the harness needs from `llmlab.generation.Engine` (a scripted fake in tests)."""

    tokenizer: Any
    context_length: int

    def generate(self, prompts: Sequence[str], config: GenerationConfig) -> Sequence[Any]:
        """One result with a `.text` per prompt, in order."""
        ...


@dataclass
class ItemResult:
    """One evaluated item."""

    id: str
    line: int
    key: str
    """Fingerprint of the item's fields and references (runs are paired only over equal keys)."""
    prompt: str
    output: str
    """The model's raw text."""
    prediction: str
    """The output after the task's post-processing: what was scored."""
    references: list[str]
    shots: int
    """Examples in this item's prompt."""
    scores: dict[str, float] = field(default_factory=dict)
    """Mean metrics: this item's score."""
    statistics: dict[str, list[float]] = field(default_factory=dict)
    """Corpus metrics (BLEU, chrF): this item's sufficient statistics."""


@dataclass
class EvalRun:
    """Everything about one evaluation: settings, corpus scores and per-item results."""

    name: str
    task: str
    model: str
    adapter: str | None
    data: str
    ids: str
    """"record" when items carry their own ids, "position" when they are numbered by line order."""
    shots: int
    shots_source: str | None
    generation: dict[str, Any]
    labels: list[str]
    metrics: dict[str, float]
    items: list[ItemResult]
    format: str = RESULTS_FORMAT

    def item_values(self, metric: str) -> np.ndarray:
        """(n,) item scores or (n, d) statistics of one metric, in item order."""
        if METRICS[metric].is_corpus:
            return np.array([item.statistics[metric] for item in self.items], dtype=np.float64)
        return np.array([item.scores[metric] for item in self.items], dtype=np.float64)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str = "results") -> EvalRun:
        if data.get("format") != RESULTS_FORMAT:
            raise ConfigError(
                f"{where} is not an `llmlab eval run` results file (format {data.get('format')!r}, expected "
                f"{RESULTS_FORMAT!r}); write one with `llmlab eval run ... --output FILE.json`"
            )
        try:
            items = [ItemResult(**item) for item in data["items"]]
            return cls(**{**data, "items": items})
        except (KeyError, TypeError) as e:
            raise ConfigError(f"{where}: malformed results file ({e}); re-run `llmlab eval run`") from e


def item_key(item: Item) -> str:
    """Stable fingerprint of an item's content (fields and references), independent of the prompt."""
    payload = json.dumps([item.fields, item.references], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def query_text(task: Task, item: Item) -> str:
    return task.template.format(**item.fields)


def instruction_text(task: Task, labels: Sequence[str]) -> str:
    return task.instruction.replace("{labels}", ", ".join(labels))


def choose_shots(task: Task, item: Item, pool: Sequence[Item], k: int) -> list[Item]:
    """The first k pool items whose query differs from this item's (never the item itself)."""
    query = query_text(task, item)
    return [p for p in pool if query_text(task, p) != query][:k]


@dataclass
class Prompted:
    item: Item
    text: str
    tokens: int
    shots: int


def build_prompts(
    task: Task,
    items: Sequence[Item],
    pool: Sequence[Item],
    k: int,
    tokenizer: Any,
    budget: int,
    labels: list[str],
) -> list[Prompted]:
    """Render each item's prompt within `budget` tokens (examples are dropped from the end if needed)."""
    from llmlab.prompting import Example, FewShotPrompt, render

    instruction = instruction_text(task, labels)
    prompts = []
    for item in items:
        examples = [Example(query_text(task, s), s.references[0]) for s in choose_shots(task, item, pool, k)]
        prompt = FewShotPrompt(query_text(task, item), instruction, examples, task.system)
        try:
            rendered = render(prompt, tokenizer, budget)
        except ConfigError as e:
            raise ConfigError(f"{item.where}: {e}") from e
        prompts.append(Prompted(item, rendered.text, rendered.tokens, rendered.shots))
    return prompts


def generate_all(
    engine: TextGenerator,
    prompts: Sequence[str],
    config: GenerationConfig,
    batch_size: int,
    on_progress: Callable[[int, int], None] | None = None,
) -> list[str]:
    """Outputs for every prompt, generated in batches of similar length; reported as (done, total)."""
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {batch_size}")
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    outputs = [""] * len(prompts)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        for i, completion in zip(chunk, engine.generate([prompts[i] for i in chunk], config), strict=True):
            outputs[i] = completion.text
        if on_progress is not None:
            on_progress(min(start + batch_size, len(order)), len(order))
    return outputs


@dataclass
class RunInfo:
    """Names recorded in the results (not used for scoring)."""

    model: str = ""
    adapter: str | None = None
    data: str = ""
    shots_source: str | None = None
    name: str = ""


def evaluate(
    engine: TextGenerator,
    task: Task,
    items: Sequence[Item],
    config: GenerationConfig,
    *,
    shots: int = 0,
    pool: Sequence[Item] = (),
    labels: Sequence[str] | None = None,
    batch_size: int = 8,
    on_progress: Callable[[int, int], None] | None = None,
    info: RunInfo | None = None,
) -> EvalRun:
    """Generate an answer for every item, post-process and score it.

    Args:
        pool: candidate few-shot examples (first k used); `shots` > 0 needs at least one.
        labels: the label set for `postprocess: label` tasks (default: `task_labels(task, items, pool)`).
    """
    if shots < 0:
        raise ConfigError(f"--shots must be >= 0, got {shots}")
    if shots and not pool:
        raise ConfigError(f"--shots {shots} needs examples to choose from: pass a non-empty pool")
    if not items:
        raise ConfigError("no items to evaluate")
    label_list = list(labels) if labels is not None else task_labels(task, items, pool)
    budget = engine.context_length - config.max_new_tokens
    prompted = build_prompts(task, items, pool, shots, engine.tokenizer, budget, label_list)
    outputs = generate_all(engine, [p.text for p in prompted], config, batch_size, on_progress)
    predictions = [task.process(out, label_list) for out in outputs]
    references = [item.references for item in items]
    values = score_items(task.metrics, predictions, references)
    results = [
        _item_result(p, out, pred, values, i)
        for i, (p, out, pred) in enumerate(zip(prompted, outputs, predictions, strict=True))
    ]
    info = info or RunInfo()
    return EvalRun(
        name=info.name or default_name(info.model, info.adapter, shots),
        task=task.name,
        model=info.model,
        adapter=info.adapter,
        data=info.data,
        ids="record" if items[0].has_id else "position",
        shots=shots,
        shots_source=info.shots_source if shots else None,
        generation=asdict(config),
        labels=label_list,
        metrics={name: METRICS[name].aggregate(v) for name, v in values.items()},
        items=results,
    )


def _item_result(
    p: Prompted, output: str, prediction: str, values: dict[str, np.ndarray], i: int
) -> ItemResult:
    result = ItemResult(
        p.item.id, p.item.line, item_key(p.item), p.text, output, prediction, p.item.references, p.shots
    )
    for name, v in values.items():
        if METRICS[name].is_corpus:
            result.statistics[name] = [float(x) for x in v[i]]
        else:
            result.scores[name] = float(v[i])
    return result


def default_name(model: str, adapter: str | None, shots: int) -> str:
    """e.g. "tiny-llama + lora-run, 3-shot"."""
    from pathlib import Path

    base = Path(model).name or model
    if adapter:
        base += f" + {Path(adapter).name}"
    return f"{base}, {shots}-shot"
