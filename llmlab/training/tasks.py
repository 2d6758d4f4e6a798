"""What `--task` selects: for each kind of supervised task, its records, model class, batches and objective.

    task        model kind        records                                   objective
    causal-lm   decoder-only      {"text"}, instruction, chat               CausalLMObjective (completion tokens)
    classify    encoder-only      {"text", "label"}                         ClassificationObjective (examples)
    seq2seq     encoder-decoder   {"source", "target"}, instruction         Seq2SeqObjective (target tokens)
    extractive-qa encoder-only    {"question", "context", "answer"}         ExtractiveQAObjective (windows)

`auto` picks the task from the model's kind. Every training method runs a task the same way, whatever it
trains (all weights, LoRA, adapters, soft prompts, a selected subset):

    task = task_for(config)                    # config: a FinetuneConfig (task, labels, tokenizer, ...)
    setup = task.setup(config)                 # tokenizer and model config, no weights yet
    data = task.data(config, setup)            # TaskData: train / val batch sources, the --dry-run preview
    model = task.build(config, setup)          # the model with the task's head, fp32
    Trainer(model, task.objective(setup), data.train, config, val_data=data.val, trainable=..., saver=...)

so `finetune full` (llmlab.training.finetune) and the PEFT verbs differ only in `trainable` and `saver`.
Tests: tests/training/test_tasks.py, test_classify.py, test_seq2seq.py, test_extractive_qa.py.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from llmlab.data.packing import split_by_seed
from llmlab.data.records import load_records
from llmlab.errors import ConfigError, DataError
from llmlab.training.batches import Batches
from llmlab.training.distributed import steps_per_epoch
from llmlab.training.objective import Objective
from llmlab.training.run import Preview

if TYPE_CHECKING:
    from torch import nn

TASK_NAMES = ("auto", "causal-lm", "classify", "seq2seq", "extractive-qa")


@dataclass
class TaskSetup:
    """The model's files and tokenizer, before any weight is loaded."""

    folder: Path | None
    """The checkpoint folder to load (None: a new model built from `hf_config`)."""
    tokenizer: Any
    hf_config: Any
    labels: list[str] = field(default_factory=list)
    """Classification: the label names, in the order of the head's outputs."""
    stops: set[int] = field(default_factory=set)


@dataclass
class TaskData:
    train: Batches[Any]
    val: Batches[Any] | None
    preview: Preview
    longest: int
    """The longest training example in tokens (the memory estimate's sequence length)."""


class Task(Protocol):
    name: str

    def setup(self, config: Any, resume_from: Path | None = None) -> TaskSetup: ...

    def data(self, config: Any, setup: TaskSetup) -> TaskData: ...

    def build(self, config: Any, setup: TaskSetup) -> nn.Module: ...

    def objective(self, setup: TaskSetup) -> Objective: ...


def _pad_id(tokenizer: Any) -> int:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return int(pad if pad is not None else 0)


def _quiet_from_pretrained(auto: Any, folder: Path, **kwargs: Any) -> Any:
    """Load weights without transformers' "newly initialized" notes (a new head is the point here)."""
    import torch
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return auto.from_pretrained(folder, dtype=torch.float32, **kwargs)
    finally:
        hf_logging.set_verbosity(level)


def _split(config: Any, items: list[Any], val_items: list[Any] | None) -> tuple[list[Any], list[Any]]:
    if val_items is not None:
        return items, val_items
    train, val = split_by_seed(items, config.val_fraction, config.seed)
    return train, val


Examples = Callable[[str, Any, TaskSetup], tuple[list[Any], dict[str, Any], list[str]]]
"""A task's reader of one data file: (examples, stats, problems)."""


@dataclass
class Split:
    """A task's examples read from --data (and --val, or split off by --val-fraction), batched."""

    items: list[Any]
    train: list[Any]
    val: list[Any]
    batches: Batches
    val_batches: Batches | None
    stats: dict[str, Any]
    problems: list[str]


def _read_split(
    examples: Examples, config: Any, setup: TaskSetup, collate: Callable[[Sequence[Any]], Any]
) -> Split:
    """--data read by `examples` (with --val's problems added), split into train and val, and batched."""
    items, stats, problems = examples(config.data, config, setup)
    val_items = None
    if config.val:
        val_items, _, val_problems = examples(config.val, config, setup)
        problems = problems + val_problems
    train, val = _split(config, items, val_items)
    batches = Batches(train, config.batch_size, collate, seed=config.seed)
    val_batches = Batches(val, config.batch_size, collate, shuffle=False) if val else None
    return Split(items, train, val, batches, val_batches, stats, problems)


def _encoder_only(config: Any, task: str, hint: str = "") -> tuple[Path, Any]:
    """(folder, Hugging Face config) of --model, which --task `task` needs to be encoder-only."""
    from transformers import AutoConfig

    from llmlab.models.loading import model_folder, transformer_kind

    folder, _, _ = model_folder(config.model)
    hf_config = AutoConfig.from_pretrained(folder)
    if transformer_kind(hf_config) != "encoder-only":
        raise ConfigError(
            f"--task {task} trains an encoder-only model (BERT, MiniLM); --model {config.model} is "
            f"{transformer_kind(hf_config)}{hint}"
        )
    return folder, hf_config


# ---- causal-lm: the decoder-only recipe of finetune.py --------------------------------------------------------


class CausalLMTask:
    name = "causal-lm"

    def setup(self, config: Any, resume_from: Path | None = None) -> TaskSetup:
        from llmlab.training.finetune import model_files, stop_ids

        folder, tokenizer, hf_config = model_files(config)
        return TaskSetup(folder, tokenizer, hf_config, stops=stop_ids(folder, tokenizer))

    def data(self, config: Any, setup: TaskSetup) -> TaskData:
        from llmlab.training.finetune import prepare_sft_data

        sft = prepare_sft_data(config, setup.tokenizer, setup.stops)
        return TaskData(sft.train, sft.val, sft.preview, max(len(r) for r in sft.train.rows))

    def build(self, config: Any, setup: TaskSetup) -> nn.Module:
        from transformers import AutoModelForCausalLM

        assert setup.folder is not None
        model: nn.Module = _quiet_from_pretrained(AutoModelForCausalLM, setup.folder)
        return model

    def objective(self, setup: TaskSetup) -> Objective:
        from llmlab.training.causal_lm import CausalLMObjective

        return CausalLMObjective()


# ---- classify: encoder-only + classification head ------------------------------------------------------------


class ClassifyTask:
    name = "classify"

    def setup(self, config: Any, resume_from: Path | None = None) -> TaskSetup:
        from transformers import AutoTokenizer

        from llmlab.training.classify import labels_in, parse_labels

        folder, hf_config = _encoder_only(config, self.name)
        labels = (
            parse_labels(config.labels)
            if config.labels
            else labels_in(load_records(config.data, "label").records)
        )
        hf_config.num_labels = len(labels)
        hf_config.id2label = dict(enumerate(labels))
        hf_config.label2id = {name: i for i, name in enumerate(labels)}
        return TaskSetup(folder, AutoTokenizer.from_pretrained(folder), hf_config, labels)

    def _examples(
        self, path: str, config: Any, setup: TaskSetup
    ) -> tuple[list[Any], dict[str, Any], list[str]]:
        from llmlab.training.classify import encode_labelled

        loaded = load_records(path, "label")
        items, problems = [], list(loaded.problems)
        for record in loaded.records:
            try:
                items.append(encode_labelled(setup.tokenizer, record, setup.labels, config.seq_len))
            except DataError as e:
                problems.append(str(e))
        if not items:
            raise DataError(f"{path}: no example left to train on ({'; '.join(problems[:3])})")
        stats = {
            "format": "label",
            "records": len(loaded.records),
            "truncated": sum(x.truncated for x in items),
        }
        return items, stats, problems

    def data(self, config: Any, setup: TaskSetup) -> TaskData:
        from llmlab.training.classify import collate_labelled

        pad = _pad_id(setup.tokenizer)
        split = _read_split(self._examples, config, setup, lambda xs: collate_labelled(xs, pad))
        items, train, val, batches, stats = split.items, split.train, split.val, split.batches, split.stats
        counts = [sum(x.label == i for x in train) for i in range(len(setup.labels))]
        stats |= {
            "labels": ", ".join(f"{name} {n}" for name, n in zip(setup.labels, counts, strict=True)),
            "train examples": len(train), "val examples": len(val), "tokens": sum(len(x) for x in train),
            "steps per epoch": steps_per_epoch(batches, config.grad_accum),
        }  # fmt: skip
        shown = []
        for i, x in enumerate(items[:2], start=1):
            shown.append(f"example {i} ({x.source}): {len(x)} tokens, label {setup.labels[x.label]}")
            shown.append(setup.tokenizer.decode(x.input_ids))
        preview = Preview([], stats, split.problems, shown=shown)
        return TaskData(batches, split.val_batches, preview, max(len(x) for x in train))

    def build(self, config: Any, setup: TaskSetup) -> nn.Module:
        from transformers import AutoModelForSequenceClassification

        assert setup.folder is not None
        model: nn.Module = _quiet_from_pretrained(
            AutoModelForSequenceClassification, setup.folder, config=setup.hf_config,
            ignore_mismatched_sizes=True,
        )  # fmt: skip
        return model

    def objective(self, setup: TaskSetup) -> Objective:
        from llmlab.training.classify import ClassificationObjective

        return ClassificationObjective()


# ---- seq2seq: encoder-decoder ------------------------------------------------------------------------------


class Seq2SeqTask:
    name = "seq2seq"

    def setup(self, config: Any, resume_from: Path | None = None) -> TaskSetup:
        from transformers import AutoConfig, AutoTokenizer

        from llmlab.models.loading import model_folder, transformer_kind
        from llmlab.models.presets import is_seq2seq_config, seq2seq_config

        if resume_from is not None and is_seq2seq_config(config.model):  # the run's own tokenizer and config
            return TaskSetup(
                None, AutoTokenizer.from_pretrained(resume_from), AutoConfig.from_pretrained(resume_from)
            )
        if is_seq2seq_config(config.model):
            tokenizer = self._tokenizer(config)
            return TaskSetup(None, tokenizer, seq2seq_config(config.model, tokenizer))
        folder, _, _ = model_folder(config.model)
        hf_config = AutoConfig.from_pretrained(folder)
        if transformer_kind(hf_config) != "encoder-decoder":
            raise ConfigError(
                f"--task seq2seq trains an encoder-decoder model (T5, BART); --model {config.model} is "
                f"{transformer_kind(hf_config)}; or build a new one with --model t5-tiny"
            )
        tokenizer = AutoTokenizer.from_pretrained(folder)
        return TaskSetup(folder, tokenizer, hf_config)

    @staticmethod
    def _tokenizer(config: Any) -> Any:
        from transformers import AutoTokenizer

        from llmlab.data.bpe import train_bpe
        from llmlab.models.loading import model_folder
        from llmlab.training.seq2seq import source_text

        if config.tokenizer not in ("", "train"):
            folder, _, _ = model_folder(config.tokenizer)
            tokenizer = AutoTokenizer.from_pretrained(folder)
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
            return tokenizer
        records = load_records(config.data).records
        texts = [t for r in records if r.format in ("seq2seq", "instruction") for t in source_text(r)]
        return train_bpe(texts, config.vocab_size)

    def _pairs(self, path: str, config: Any, setup: TaskSetup) -> tuple[list[Any], dict[str, Any], list[str]]:
        from llmlab.training.seq2seq import encode_pair

        loaded = load_records(path)
        items, problems = [], list(loaded.problems)
        for record in loaded.records:
            try:
                items.append(encode_pair(setup.tokenizer, record, config.seq_len))
            except DataError as e:
                problems.append(str(e))
        if not items:
            raise DataError(f"{path}: no example left to train on ({'; '.join(problems[:3])})")
        stats = {
            "format": loaded.format,
            "records": len(loaded.records),
            "truncated": sum(p.truncated for p in items),
        }
        return items, stats, problems

    def data(self, config: Any, setup: TaskSetup) -> TaskData:
        from llmlab.training.seq2seq import collate_pairs

        pad, start = _pad_id(setup.tokenizer), int(setup.hf_config.decoder_start_token_id)

        def collate(pairs: Sequence[Any]) -> Any:
            return collate_pairs(pairs, pad, start)

        split = _read_split(self._pairs, config, setup, collate)
        items, train, val, batches, stats = split.items, split.train, split.val, split.batches, split.stats
        stats |= {
            "train examples": len(train), "val examples": len(val), "tokens": sum(len(p) for p in train),
            "target tokens": sum(len(p.target_ids) for p in train),
            "steps per epoch": steps_per_epoch(batches, config.grad_accum),
        }  # fmt: skip
        if setup.folder is None:
            stats["vocab size"] = len(setup.tokenizer)
        decode = setup.tokenizer.decode
        shown = []
        for i, p in enumerate(items[:2], start=1):
            shown.append(
                f"example {i} ({p.source}): {len(p.source_ids)} source tokens -> {len(p.target_ids)} target tokens (learned)"
            )
            shown += [f"source: {decode(p.source_ids)}", f"target: {decode(p.target_ids)}"]
        preview = Preview([], stats, split.problems, shown=shown)
        longest = max(max(len(p.source_ids), len(p.target_ids)) for p in train)
        return TaskData(batches, split.val_batches, preview, longest)

    def build(self, config: Any, setup: TaskSetup) -> nn.Module:
        import torch
        from transformers import AutoModelForSeq2SeqLM

        if setup.folder is not None:
            model: nn.Module = _quiet_from_pretrained(AutoModelForSeq2SeqLM, setup.folder)
            return model
        torch.manual_seed(config.seed)
        new: nn.Module = AutoModelForSeq2SeqLM.from_config(setup.hf_config)
        return new

    def objective(self, setup: TaskSetup) -> Objective:
        from llmlab.training.seq2seq import Seq2SeqObjective

        return Seq2SeqObjective()


# ---- extractive-qa: encoder-only + a start/end span head (training/extractive_qa.py) -------------------------


class ExtractiveQATask:
    name = "extractive-qa"

    def setup(self, config: Any, resume_from: Path | None = None) -> TaskSetup:
        from transformers import AutoTokenizer

        folder, hf_config = _encoder_only(config, self.name, "; use --model minilm-l6")
        return TaskSetup(folder, AutoTokenizer.from_pretrained(folder), hf_config)

    def _windows(
        self, path: str, config: Any, setup: TaskSetup
    ) -> tuple[list[Any], dict[str, Any], list[str]]:
        from llmlab.training.extractive_qa import encode_qa, load_qa_records

        records, problems = load_qa_records(path)
        windows = [w for r in records for w in encode_qa(setup.tokenizer, r, config.seq_len)]
        stats = {
            "format": "extractive-qa",
            "records": len(records),
            "unanswerable records": sum(r.answer is None for r in records),
        }
        return windows, stats, problems

    def data(self, config: Any, setup: TaskSetup) -> TaskData:
        from llmlab.training.extractive_qa import collate_windows

        pad = _pad_id(setup.tokenizer)
        split = _read_split(self._windows, config, setup, lambda xs: collate_windows(xs, pad))
        items, train, val, batches, stats = split.items, split.train, split.val, split.batches, split.stats
        stats |= {
            "train windows": len(train), "windows with no answer": sum(x.start == 0 for x in train),
            "val windows": len(val), "tokens": sum(len(x) for x in train),
            "steps per epoch": steps_per_epoch(batches, config.grad_accum),
        }  # fmt: skip
        shown = []
        for i, x in enumerate(items[:2], start=1):
            span = setup.tokenizer.decode(x.input_ids[x.start : x.end + 1]) if x.start else "(none: [CLS])"
            shown.append(
                f"example {i} ({x.source}): {len(x)} tokens, answer tokens {x.start}..{x.end}: {span}"
            )
            shown.append(setup.tokenizer.decode(x.input_ids))
        preview = Preview([], stats, split.problems, shown=shown)
        return TaskData(batches, split.val_batches, preview, max(len(x) for x in train))

    def build(self, config: Any, setup: TaskSetup) -> nn.Module:
        from transformers import AutoModelForQuestionAnswering

        assert setup.folder is not None
        model: nn.Module = _quiet_from_pretrained(AutoModelForQuestionAnswering, setup.folder)
        return model

    def objective(self, setup: TaskSetup) -> Objective:
        from llmlab.training.extractive_qa import ExtractiveQAObjective

        return ExtractiveQAObjective()


TASKS: dict[str, Task] = {
    t.name: t for t in (CausalLMTask(), ClassifyTask(), Seq2SeqTask(), ExtractiveQATask())
}
KIND_TASKS = {"decoder-only": "causal-lm", "encoder-only": "classify", "encoder-decoder": "seq2seq"}


def task_name(config: Any) -> str:
    """The task `--task` names, or the one that fits the model's kind (`auto`)."""
    if config.task != "auto":
        return str(config.task)
    from llmlab.models.loading import load_config, transformer_kind
    from llmlab.models.presets import is_seq2seq_config

    if is_seq2seq_config(config.model):
        return "seq2seq"
    return KIND_TASKS[transformer_kind(load_config(config.model))]


def task_for(config: Any) -> Task:
    return TASKS[task_name(config)]
