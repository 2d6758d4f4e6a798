"""Evaluation tasks: a prompt, the metrics, and how a model's output becomes a prediction; and their data.

A task is a YAML file (the built-in ones live in `llmlab/evaluation/tasks/`):

    name: classify
    instruction: "Classify the text. Answer with exactly one of these labels: {labels}."
    template: "{input}"            # the query; {variables} are fields of each data record
    reference: label               # the field holding the expected output: a string or a list of strings
    postprocess: label             # strip | first_line | label
    metrics: [accuracy]
    labels: [positive, negative]   # optional; `postprocess: label` infers them from the data when absent
    max_new_tokens: 8              # default decoding length for this task
    stop: ["\\n\\n"]               # optional stop strings
    system: "You are ..."          # optional system message for chat models

Data is JSONL, one record a line, with the template's fields and the reference field, e.g. `{"input", "reference"}`
(summarize, translate, qa) or `{"input", "label"}` (classify). An optional `"id"` (string or integer, unique)
names the item; `eval compare` pairs items by id when every item has one, by position otherwise. Other fields
are ignored. Post-processing: `strip` trims whitespace; `first_line` keeps the first non-empty line; `label`
maps the output to the label that occurs first in it (whole words, case-insensitive; the longest label wins a
tie), or to "" when none occurs (counted wrong).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from llmlab.errors import ConfigError, DataError
from llmlab.evaluation.scoring import METRICS

TASK_KEYS = (
    "name", "description", "instruction", "template", "reference", "postprocess", "metrics", "labels",
    "max_new_tokens", "stop", "system",
)  # fmt: skip


def builtin_tasks() -> list[str]:
    """Names of the tasks shipped in `llmlab/evaluation/tasks/`."""
    folder = resources.files("llmlab.evaluation") / "tasks"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def strip(text: str, labels: Sequence[str]) -> str:
    return text.strip()


def first_line(text: str, labels: Sequence[str]) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def first_label(text: str, labels: Sequence[str]) -> str:
    """The label that occurs first in `text` as a whole word, case-insensitively; "" when none does."""
    best: tuple[int, int, str] | None = None
    for label in labels:
        match = re.search(rf"(?<!\w){re.escape(label)}(?!\w)", text, flags=re.IGNORECASE)
        if match and (best is None or (match.start(), -len(label)) < best[:2]):
            best = (match.start(), -len(label), label)
    return best[2] if best else ""


POSTPROCESSORS: dict[str, Callable[[str, Sequence[str]], str]] = {
    "strip": strip,
    "first_line": first_line,
    "label": first_label,
}


@dataclass(frozen=True)
class Task:
    """What to ask, what to compute, how to read the answer."""

    name: str
    template: str
    """The query for one item, with {field} variables from its data record."""
    metrics: tuple[str, ...]
    instruction: str = ""
    """Put before the examples and the query; {labels} becomes the comma-separated label list."""
    reference: str = "reference"
    """The data field with the expected output (a string, or a list of acceptable strings)."""
    postprocess: str = "strip"
    labels: tuple[str, ...] = ()
    max_new_tokens: int = 64
    stop: tuple[str, ...] = ()
    system: str | None = None
    description: str = ""
    source: str = ""
    """Where the task came from (a built-in name or a file path), for messages."""

    def __post_init__(self) -> None:
        where = self.source or self.name
        if self.postprocess not in POSTPROCESSORS:
            raise ConfigError(
                f"{where}: postprocess {self.postprocess!r} is unknown; use one of {', '.join(POSTPROCESSORS)}"
            )
        unknown = [m for m in self.metrics if m not in METRICS]
        if unknown or not self.metrics:
            raise ConfigError(
                f"{where}: unknown metric(s) {', '.join(map(repr, unknown)) or '(none given)'}; "
                f"known metrics: {', '.join(METRICS)}"
            )
        if self.max_new_tokens < 1:
            raise ConfigError(f"{where}: max_new_tokens must be >= 1, got {self.max_new_tokens}")
        self.fields  # noqa: B018 - validates the template syntax now

    @property
    def fields(self) -> list[str]:
        """Data fields the template uses, in order."""
        return _variables(self.template, self.source or self.name)

    def process(self, output: str, labels: Sequence[str]) -> str:
        """The prediction scored for a raw model output."""
        return POSTPROCESSORS[self.postprocess](output, labels)


def _variables(template: str, where: str) -> list[str]:
    from llmlab.prompting import PromptTemplate

    try:
        return PromptTemplate(where, template).variables
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from e


def load_task(name_or_path: str | Path) -> Task:
    """A built-in task by name (classify, qa, summarize, translate) or a task YAML file.

    Raises:
        ConfigError: unknown task name, missing file, or an invalid task definition (with file:line).
    """
    text = str(name_or_path)
    if text in builtin_tasks():
        resource = resources.files("llmlab.evaluation") / "tasks" / f"{text}.yaml"
        return _parse_task(resource.read_text(encoding="utf-8"), text, text)
    path = Path(text)
    if path.suffix not in (".yaml", ".yml"):
        raise ConfigError(
            f"unknown task {text!r}; built-in tasks: {', '.join(builtin_tasks())}, or give a task FILE.yaml"
        )
    try:
        content = path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise ConfigError(f"task file not found: {path}") from e
    return _parse_task(content, str(path), path.stem)


def _parse_task(content: str, where: str, default_name: str) -> Task:
    try:
        node = yaml.compose(content)
        data = yaml.safe_load(content)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{where}{line}: invalid YAML ({getattr(e, 'problem', e)}); fix the syntax") from e
    if not isinstance(data, dict) or not isinstance(data.get("template"), str):
        raise ConfigError(f"{where}: a task file is a mapping with at least `template:` and `metrics:`")
    lines = {k.value: k.start_mark.line + 1 for k, _ in node.value} if node is not None else {}
    for key in data:
        if key not in TASK_KEYS:
            raise ConfigError(
                f"{where}:{lines.get(key, 1)}: unknown key {key!r}; allowed: {', '.join(TASK_KEYS)}"
            )
    return Task(
        name=str(data.get("name", default_name)),
        template=data["template"],
        metrics=tuple(_strings(data, "metrics", where, lines)),
        instruction=str(data.get("instruction", "")),
        reference=str(data.get("reference", "reference")),
        postprocess=str(data.get("postprocess", "strip")),
        labels=tuple(_strings(data, "labels", where, lines)),
        max_new_tokens=int(data.get("max_new_tokens", 64)),
        stop=tuple(_strings(data, "stop", where, lines)),
        system=data.get("system"),
        description=str(data.get("description", "")),
        source=where,
    )


def _strings(data: dict[str, Any], key: str, where: str, lines: dict[str, int]) -> list[str]:
    value = data.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str | int | float) for v in value):
        raise ConfigError(f"{where}:{lines.get(key, 1)}: {key} must be a list of strings, got {value!r}")
    return [str(v) for v in value]


@dataclass
class Item:
    """One evaluation record."""

    id: str
    """The record's "id", or its 0-based position in the file when records have none."""
    line: int
    fields: dict[str, str]
    references: list[str]
    where: str = ""
    """`file:line`, for messages."""
    has_id: bool = False
    """True when the record gave its own "id"."""


def read_items(path: str | Path, task: Task) -> list[Item]:
    """Read a JSONL data file for `task`: every record needs the template's fields and the reference field.

    Raises:
        DataError: at `file:line` for bad JSON, a missing or non-string field, an empty reference list, a
            duplicate id, or a label outside the task's labels.
    """
    from llmlab.data.jsonl import iter_jsonl

    items: list[Item] = []
    seen: dict[str, int] = {}
    for number, record in iter_jsonl(path):
        where = f"{path}:{number}"
        item = _item(record, task, len(items), number, where)
        if items and item.has_id != items[0].has_id:
            raise DataError(
                f"this record {'has' if item.has_id else 'has no'} 'id' but line {items[0].line} "
                f"{'does not' if item.has_id else 'does'}; give every record an id or none",
                where,
            )
        if item.id in seen:
            raise DataError(
                f"duplicate id {item.id!r} (first on line {seen[item.id]}); ids must be unique", where
            )
        seen[item.id] = number
        items.append(item)
    if not items:
        raise DataError(f"{path} has no records; write one JSON object per line")
    _check_labels(items, task)
    return items


def _item(record: dict[str, Any], task: Task, index: int, number: int, where: str) -> Item:
    needed = [*task.fields, task.reference]
    missing = [f for f in dict.fromkeys(needed) if f not in record]
    if missing:
        raise DataError(
            f"missing field(s) {', '.join(map(repr, missing))}; each record of a {task.name!r} data file needs "
            f"{', '.join(map(repr, dict.fromkeys(needed)))}",
            where,
        )
    for name in task.fields:
        if not isinstance(record[name], str):
            raise DataError(f"field {name!r} must be a string, got {type(record[name]).__name__}", where)
    references = record[task.reference]
    if isinstance(references, str):
        references = [references]
    if not references or not all(isinstance(r, str) for r in references):
        raise DataError(
            f"field {task.reference!r} must be a string or a non-empty list of strings, got {references!r}",
            where,
        )
    item_id = str(index)
    if "id" in record:
        if not isinstance(record["id"], str | int) or isinstance(record["id"], bool):
            raise DataError(f"field 'id' must be a string or an integer, got {record['id']!r}", where)
        item_id = str(record["id"])
    return Item(item_id, number, {k: record[k] for k in task.fields}, list(references), where, "id" in record)


def _check_labels(items: Sequence[Item], task: Task) -> None:
    if not task.labels:
        return
    """Every reference must be one of the labels; references take the task's spelling (case-insensitive)."""
    known = {label.lower(): label for label in task.labels}
    for item in items:
        for i, ref in enumerate(item.references):
            if ref.lower() not in known:
                raise DataError(
                    f"label {ref!r} is not one of the task's labels ({', '.join(task.labels)}); fix the label "
                    "or add it to `labels:` in the task file",
                    item.where,
                )
            item.references[i] = known[ref.lower()]


def task_labels(task: Task, *item_lists: Sequence[Item]) -> list[str]:
    """The task's labels, or (for `postprocess: label` without a list) the references seen, first seen first."""
    if task.labels:
        return list(task.labels)
    if task.postprocess != "label":
        return []
    labels = dict.fromkeys(ref for items in item_lists for item in items for ref in item.references)
    return list(labels)
