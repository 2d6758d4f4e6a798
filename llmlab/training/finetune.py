"""`llmlab finetune full`: supervised fine-tuning of every weight, for the three transformer kinds.

Recipe: pick the task (`--task`, default from the model's kind: causal-lm, classify or seq2seq; see
llmlab.training.tasks), load its records (bad lines reported and left out), tokenize them (for causal-lm
with loss masks exactly as generation renders the prompt, llmlab.data.tokenize), cut to --seq-len, hold out a
validation split by seed (or read --val), batch them, check the memory estimate, then run the shared loop with
the task's objective and an HF-format `FullModelSaver`. PEFT methods reuse the same task steps and swap the
trainable parameters and the saver (see the llmlab.training.tasks docstring); the decoder-only helpers
`model_files`, `stop_ids` and `prepare_sft_data` stay public for them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmlab.data.packing import pack_examples, single_rows, split_by_seed
from llmlab.data.records import load_records
from llmlab.data.tokenize import Tokenized, stop_token_ids, tokenize_record, truncate
from llmlab.errors import ConfigError, DataError
from llmlab.training.batches import RowBatches
from llmlab.training.checkpoint import FullModelSaver, list_checkpoints
from llmlab.training.config import TrainConfig
from llmlab.training.distributed import steps_per_epoch
from llmlab.training.loop import Event, Trainer, TrainResult
from llmlab.training.run import Preview, check_memory, prepare_out, require_out, seed_everything


@dataclass
class FinetuneConfig(TrainConfig):
    """Supervised fine-tuning."""

    model: str = ""
    """The model to fine-tune: a packaged model name, a Hugging Face checkpoint folder or a .gguf file; for
    --task seq2seq also a new T5-style model: t5-tiny, t5-small or a YAML file of T5Config fields."""
    data: str = ""
    """Training records, JSONL: {"text"}, {"instruction", "input"?, "output"} or {"messages"} (causal-lm);
    {"text", "label"} (classify); {"source", "target"} or instruction records (seq2seq)."""
    task: str = "auto"
    """causal-lm (decoder-only), classify (encoder-only + a classification head), seq2seq
    (encoder-decoder), extractive-qa (encoder-only + a start/end span head); auto: the one that fits the
    model's kind."""
    labels: str = ""
    """--task classify: the label names in order, comma-separated (default: the sorted labels of --data)."""
    tokenizer: str = ""
    """A new seq2seq model's tokenizer: train (a byte-level BPE learned on --data, the default) or a model
    whose tokenizer to use."""
    vocab_size: int = 4096
    """Vocabulary size of a tokenizer trained with --tokenizer train."""
    val: str = ""
    """Validation records in the same format (default: hold out --val-fraction of --data)."""
    val_fraction: float = 0.1
    """Share of --data held out for validation when --val is not given (0: no validation)."""
    pack: bool = False
    """Pack several examples into each --seq-len row (no attention across them) instead of one per row."""
    lr: float = 5e-5
    """Peak learning rate (AdamW), reached after the warmup, then cosine decay to --min-lr-ratio of it."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.model:
            raise ConfigError("--model is required: the model to fine-tune (e.g. smollm2-135m-instruct)")
        if not self.data:
            raise ConfigError("--data is required: a JSONL file of training records")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"--val-fraction must be in [0, 1), got {self.val_fraction}")
        from llmlab.training.tasks import TASK_NAMES

        if self.task not in TASK_NAMES:
            raise ConfigError(f"--task must be one of {', '.join(TASK_NAMES)}, got {self.task!r}")
        if self.labels and self.task not in ("auto", "classify"):
            raise ConfigError(f"--labels is for --task classify, not --task {self.task}")


@dataclass
class SFTData:
    train: RowBatches
    val: RowBatches | None
    preview: Preview


def tokenize_file(
    path: str, tokenizer: Any, stops: set[int], seq_len: int
) -> tuple[list[Tokenized], dict[str, Any], list[str]]:
    """Examples of a JSONL file (cut to seq_len; dropped when no completion token is left), counts, problems."""
    loaded = load_records(path)
    examples, truncated, dropped, problems = [], 0, 0, list(loaded.problems)
    for record in loaded.records:
        try:
            full = tokenize_record(tokenizer, record, stops)
        except DataError as e:
            problems.append(str(e))
            continue
        cut = truncate(full, seq_len)
        if cut is None:
            dropped += 1
            problems.append(f"{record.source}: no completion token within --seq-len {seq_len}; left out")
            continue
        truncated += cut.truncated
        examples.append(cut)
    if not examples:
        raise DataError(f"{path}: no example left to train on ({'; '.join(problems[:3])})")
    stats = {
        "format": loaded.format,
        "records": len(loaded.records),
        "truncated": truncated,
        "dropped": dropped,
    }
    return examples, stats, problems


def prepare_sft_data(config: FinetuneConfig, tokenizer: Any, stops: set[int]) -> SFTData:
    """Tokenized, split and batched records, and the preview of what will be learned."""
    examples, stats, problems = tokenize_file(config.data, tokenizer, stops, config.seq_len)
    if config.val:
        train, (val, _, val_problems) = examples, tokenize_file(config.val, tokenizer, stops, config.seq_len)
        problems += val_problems
    else:
        train, val = split_by_seed(examples, config.val_fraction, config.seed)
    rows = pack_examples if config.pack else lambda ex, _: single_rows(ex)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    train_rows = rows(train, config.seq_len)
    train_batches = RowBatches(train_rows, config.batch_size, pad, seed=config.seed)
    val_batches = (
        RowBatches(rows(val, config.seq_len), config.batch_size, pad, shuffle=False) if val else None
    )
    stats |= {
        "train_examples": len(train),
        "val_examples": len(val),
        "tokens": sum(len(e) for e in train),
        "loss_tokens": sum(e.loss_tokens for e in train),
        "rows": len(train_rows),
        "steps_per_epoch": steps_per_epoch(train_batches, config.grad_accum),
    }
    return SFTData(train_batches, val_batches, Preview(examples[:2], stats, problems))


def model_files(config: FinetuneConfig) -> tuple[Path, Any, Any]:
    """(folder, tokenizer, HF config) of the model, without loading the weights."""
    from transformers import AutoConfig, AutoTokenizer

    from llmlab.models.loading import model_folder, transformer_kind

    folder, _, _ = model_folder(config.model)
    hf_config = AutoConfig.from_pretrained(folder)
    if transformer_kind(hf_config) != "decoder-only":
        raise ConfigError(
            f"--model {config.model} is {transformer_kind(hf_config)}; --task causal-lm trains decoder-only "
            "models on text, instruction and chat records (use --task classify or seq2seq for this model)"
        )
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return folder, tokenizer, hf_config


def stop_ids(folder: Path, tokenizer: Any) -> set[int]:
    """The tokens that end a completion for this model (tokenizer EOS + generation_config EOS ids)."""
    from types import SimpleNamespace

    from transformers import GenerationConfig

    try:
        generation = GenerationConfig.from_pretrained(folder)
    except OSError:
        generation = None
    return stop_token_ids(tokenizer, SimpleNamespace(generation_config=generation))


def finetune(
    config: FinetuneConfig,
    on_event: Callable[[Event], None] | None = None,
    dry_run: bool = False,
    method: Any = None,
) -> tuple[Preview, TrainResult | None]:
    """Fine-tune every weight of `config.model` on its task; with `dry_run`, only prepare and report.

    `method` (a `llmlab.training.peft_finetune.PeftMethod`) trains a subset instead: it counts and estimates
    the run, then `method.prepare(model, tokenizer)` gives the trainable parameters and the checkpoint saver.
    """
    from transformers.utils import logging as hf_logging

    from llmlab.models.loading import resolve_device
    from llmlab.training.tasks import task_for

    hf_logging.disable_progress_bar()  # "Loading weights" bars would cut through the training progress bar
    require_out(config, dry_run)
    resume = bool(config.resume)
    found = list_checkpoints(Path(config.out)) if resume else []
    if resume and not found:
        raise ConfigError(
            f"--resume {config.out}: no checkpoint there yet; start the run again without --resume"
        )
    seed_everything(config.seed)
    task = task_for(config)
    if method is not None and task.name in ("classify", "extractive-qa") and method.method != "lora":
        head = "a classification head" if task.name == "classify" else "a span head"
        raise ConfigError(
            f"finetune {method.method} --task {task.name}: of the PEFT methods only LoRA trains {head} "
            f"(saved with the adapter) so far; use `llmlab finetune lora --task {task.name}` or `llmlab "
            f"finetune full --task {task.name}`"
        )
    setup = task.setup(config, found[-1][1] if found else None)
    data = task.data(config, setup)
    device = resolve_device(config.device)
    if method is None:
        data.preview.memory, data.preview.available = check_memory(
            setup.hf_config, config, device, data.longest
        )
    else:
        data.preview.stats |= method.parameter_stats(setup.hf_config, setup.tokenizer)
        data.preview.memory, data.preview.available = method.check_memory(
            setup.hf_config, config, device, data.longest, setup.tokenizer
        )
    data.preview.seq_len = data.longest
    data.preview.tokenizer = setup.tokenizer
    if dry_run:
        return data.preview, None
    prepare_out(config, resume)
    model = task.build(config, setup).to(device)
    if method is None:
        data.preview.stats["parameters"] = sum(p.numel() for p in model.parameters())
    trainable, saver = (
        (None, FullModelSaver(model, setup.tokenizer))
        if method is None
        else method.prepare(model, setup.tokenizer)
    )
    if on_event:
        on_event(Event("preview", 0, 0, {"preview": data.preview}))
    trainer = Trainer(
        model, task.objective(setup), data.train, config, trainable=trainable, val_data=data.val,
        saver=saver, on_event=on_event,
    )  # fmt: skip
    return data.preview, trainer.fit(resume=resume)
