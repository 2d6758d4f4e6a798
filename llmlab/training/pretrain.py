"""`llmlab pretrain`: a language model from scratch (or continued pretraining of an existing one) on plain text.

Recipe: read the documents (folders of .txt/.md, .jsonl text records), hold out validation documents by
seed (or read --val), get a tokenizer (train a byte-level BPE on the training documents, or take a model's),
build a Llama-style decoder from a preset or YAML (or load --init-from), pack the documents into rows of
--seq-len with no attention across documents, then run the shared loop with `CausalLMObjective`. Validation
runs before the first step too, so the result carries perplexity before and after, next to the unigram
baseline of the same tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmlab.data.corpus import Document, load_documents
from llmlab.data.packing import pack_documents, split_by_seed
from llmlab.data.tokenize import Tokenized, encode_prompt
from llmlab.errors import ConfigError
from llmlab.training.batches import RowBatches
from llmlab.training.causal_lm import CausalLMObjective
from llmlab.training.checkpoint import FullModelSaver, list_checkpoints
from llmlab.training.config import TrainConfig
from llmlab.training.distributed import steps_per_epoch
from llmlab.training.loop import Event, Trainer, TrainResult
from llmlab.training.run import Preview, check_memory, prepare_out, require_out, seed_everything
from llmlab.training.unigram import unigram_perplexity


@dataclass
class PretrainConfig(TrainConfig):
    """Pretraining (from scratch or continued)."""

    data: list[str] = field(default_factory=list)
    """Text to learn from: a folder of .txt/.md files or a .jsonl file of {"text"} records."""
    val: str = ""
    """Held-out text (same kinds of path; default: hold out --val-fraction of the documents)."""
    val_fraction: float = 0.1
    """Share of the documents held out for validation when --val is not given."""
    tokenizer: str = "train"
    """train: learn a byte-level BPE tokenizer on the training text; or a model whose tokenizer to use."""
    vocab_size: int = 4096
    """Vocabulary size of a trained tokenizer."""
    model_config: str = "tiny"
    """The new model: tiny, small, or a YAML file of LlamaConfig fields."""
    init_from: str = ""
    """Continue pretraining this model (its weights and tokenizer) instead of building a new one."""
    lr: float = 1e-3
    """Peak learning rate (AdamW); use about 1e-4 or less with --init-from."""
    seq_len: int = 256
    """Tokens per packed row."""
    weight_decay: float = 0.1
    """Decoupled weight decay (AdamW) on weight matrices; never on norms and biases."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.data, str):
            self.data = [self.data]
        if not self.data:
            raise ConfigError(
                "--data is required: a folder of .txt/.md files or a .jsonl file of text records"
            )
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"--val-fraction must be in [0, 1), got {self.val_fraction}")


def _tokenizer(config: PretrainConfig, train: list[Document], resume_from: Path | None) -> Any:
    from transformers import AutoTokenizer

    from llmlab.data.bpe import train_bpe
    from llmlab.models.loading import model_folder

    if resume_from is not None:  # the run's own tokenizer, as the checkpoint saved it
        return AutoTokenizer.from_pretrained(resume_from)
    if config.init_from or config.tokenizer != "train":
        folder, _, _ = model_folder(config.init_from or config.tokenizer)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        return tokenizer
    return train_bpe((d.text for d in train), config.vocab_size)


def _documents(docs: list[Document], tokenizer: Any) -> list[Tokenized]:
    """Each document encoded as a prompt is (BOS where the tokenizer adds one) and ended with EOS."""
    out = []
    for d in docs:
        ids = [*encode_prompt(tokenizer, d.text), tokenizer.eos_token_id]
        out.append(Tokenized(ids, [True] * len(ids), d.source))
    return out


def _model(config: PretrainConfig, tokenizer: Any, resume_from: Path | None) -> Any:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, LlamaForCausalLM

    from llmlab.models.loading import model_folder
    from llmlab.models.presets import decoder_config

    if config.init_from:
        folder, _, _ = model_folder(config.init_from)
        return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    hf_config = (
        AutoConfig.from_pretrained(resume_from)
        if resume_from
        else decoder_config(config.model_config, tokenizer, config.seq_len)
    )
    torch.manual_seed(config.seed)
    return LlamaForCausalLM(hf_config)


@dataclass
class PretrainData:
    train: RowBatches
    val: RowBatches | None
    preview: Preview
    tokenizer: Any


def prepare_pretrain_data(config: PretrainConfig, resume_from: Path | None = None) -> PretrainData:
    docs, problems = load_documents(config.data)
    if config.val:
        train_docs, (val_docs, val_problems) = docs, load_documents([config.val])
        problems += val_problems
    else:
        train_docs, val_docs = split_by_seed(docs, config.val_fraction, config.seed)
    tokenizer = _tokenizer(config, train_docs, resume_from)
    train, val = _documents(train_docs, tokenizer), _documents(val_docs, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    train_rows = pack_documents(train, config.seq_len)
    batches = RowBatches(train_rows, config.batch_size, pad, seed=config.seed)
    val_batches = None
    stats: dict[str, Any] = {
        "documents": len(train_docs), "val_documents": len(val_docs), "vocab_size": len(tokenizer),
        "tokens": sum(len(d) for d in train), "rows": len(train_rows),
        "steps_per_epoch": steps_per_epoch(batches, config.grad_accum),
    }  # fmt: skip
    if val:
        val_batches = RowBatches(pack_documents(val, config.seq_len), config.batch_size, pad, shuffle=False)
        stats["val_tokens"] = sum(len(d) for d in val)
        ids = ([d.input_ids for d in train], [d.input_ids for d in val])
        stats["unigram_perplexity"] = unigram_perplexity(*ids, len(tokenizer))
    return PretrainData(batches, val_batches, Preview(train[:2], stats, problems), tokenizer)


def pretrain(
    config: PretrainConfig, on_event: Callable[[Event], None] | None = None, dry_run: bool = False
) -> tuple[Preview, TrainResult | None]:
    """Pretrain (or continue pretraining); with `dry_run`, only prepare and report."""
    from transformers.utils import logging as hf_logging

    from llmlab.models.loading import resolve_device

    hf_logging.disable_progress_bar()  # "Loading weights" bars would cut through the training progress bar
    require_out(config, dry_run)
    resume = bool(config.resume)
    found = list_checkpoints(Path(config.out)) if resume else []
    if resume and not found:
        raise ConfigError(
            f"--resume {config.out}: no checkpoint there yet; start the run again without --resume"
        )
    resume_from = found[-1][1] if found else None
    seed_everything(config.seed)
    data = prepare_pretrain_data(config, resume_from)
    model = _model(config, data.tokenizer, resume_from)
    device = resolve_device(config.device)
    data.preview.stats["parameters"] = sum(p.numel() for p in model.parameters())
    longest = max(len(r) for r in data.train.rows)
    data.preview.memory, data.preview.available = check_memory(model.config, config, device, longest)
    data.preview.seq_len = longest
    data.preview.tokenizer = data.tokenizer
    if dry_run:
        return data.preview, None
    prepare_out(config, resume)
    model.to(device)
    if on_event:
        on_event(Event("preview", 0, 0, {"preview": data.preview}))
    trainer = Trainer(
        model, CausalLMObjective(), data.train, config, val_data=data.val,
        saver=FullModelSaver(model, data.tokenizer), on_event=on_event, eval_at_start=True,
    )  # fmt: skip
    return data.preview, trainer.fit(resume=resume)
