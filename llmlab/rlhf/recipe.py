"""What the reward-model, DPO and PPO recipes share around the training loop: LoRA settings, the adapter saver,
the pairs files with their held-out split, the resume check.

    LoraSettings     --lora/--no-lora, --rank, --alpha, --targets (a mixin of the recipes' configs)
    AdapterSaver     a checkpoint's model part for a LoRA policy: the adapter in peft's format (so
                     `llmlab generate --adapter RUN` runs it) + the trained tensors by name for resume
    load_pair_split  pairs.jsonl -> (train, held-out) pairs, by seed or from --val
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from llmlab.data.packing import split_by_seed
from llmlab.errors import ConfigError
from llmlab.peft.lora import LoraConfig
from llmlab.rlhf.preferences import PreferencePair
from llmlab.training.checkpoint import ModelSaver, SubsetSaver, list_checkpoints
from llmlab.training.config import TrainConfig


@dataclass
class LoraSettings:
    """LoRA on the trained model (mixed into a recipe's config)."""

    lora: bool = True
    """Train LoRA adapters (--no-lora: every weight)."""
    rank: int = 8
    """LoRA rank r: the inner size of the update B @ A."""
    alpha: float = 16.0
    """LoRA alpha: the update is scaled by alpha / rank."""
    targets: str = ""
    """Linear layers to adapt: comma-separated names, a regex or all-linear (default: the query and value
    projections)."""

    def __post_init__(self) -> None:
        parent = getattr(super(), "__post_init__", None)
        if parent is not None:
            parent()
        if self.lora:
            self.lora_config()  # validates --rank and --alpha

    def lora_config(self) -> LoraConfig:
        return LoraConfig(rank=self.rank, alpha=self.alpha, targets=parse_targets(self.targets))


def parse_targets(text: str) -> tuple[str, ...] | str | None:
    """--targets: "" -> the model's defaults, "all-linear" or a regex as is, "q_proj,v_proj" -> names."""
    text = text.strip()
    if not text:
        return None
    if "," in text:
        return tuple(t.strip() for t in text.split(",") if t.strip())
    return text


def add_lora(model: nn.Module, settings: LoraSettings) -> dict[str, Any]:
    """Put a LoRA adapter on `model` (only its matrices train); returns its settings for the run's files."""
    from llmlab.peft.inject import add_lora as inject
    from llmlab.peft.registry import list_adapters

    config = settings.lora_config()
    inject(model, config, name="default", train=True)
    info = list_adapters(model)["default"]
    return {"rank": config.rank, "alpha": config.alpha, "targets": list(info.targets)}


class AdapterSaver:
    """A LoRA run's checkpoint: peft-format adapter files + `trainable.safetensors` (+ `extra`'s files)."""

    def __init__(
        self,
        adapted: nn.Module,
        owner: nn.Module,
        names: Sequence[str],
        tokenizer: Any,
        base: str,
        extra: ModelSaver | None = None,
    ):
        """`adapted` holds the adapter; `owner` the trained parameters `names` (e.g. policy + value head)."""
        self.adapted, self.base, self.extra = adapted, base, extra
        self.subset = SubsetSaver(owner, names, tokenizer, base)

    def save(self, folder: Path) -> None:
        from llmlab.peft.checkpoint import save_adapter

        self.subset.save(folder)
        save_adapter(self.adapted, folder, base_model=self.base)
        if self.extra is not None:
            self.extra.save(folder)

    def load(self, folder: Path) -> None:
        self.subset.load(folder)
        if self.extra is not None:
            self.extra.load(folder)


def decoder_files(model: str, flag: str) -> tuple[Path, Any, Any, set[int]]:
    """(folder, tokenizer, transformers config, stop token ids) of a decoder-only model, weights not loaded.

    Raises:
        ConfigError: the model is an encoder or an encoder-decoder.
    """
    from transformers import AutoConfig, AutoTokenizer

    from llmlab.models.loading import model_folder, transformer_kind
    from llmlab.training.finetune import stop_ids

    folder, _, _ = model_folder(model)
    hf_config = AutoConfig.from_pretrained(folder)
    kind = transformer_kind(hf_config)
    if kind != "decoder-only":
        raise ConfigError(
            f"{flag} {model} is {kind}; alignment trains decoder-only models that generate text "
            "(e.g. smollm2-135m-instruct)"
        )
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return folder, tokenizer, hf_config, stop_ids(folder, tokenizer)


def resume_from(config: TrainConfig) -> bool:
    """Whether the run resumes; a resume without a checkpoint is refused before anything loads."""
    if config.resume and not list_checkpoints(Path(config.out)):
        raise ConfigError(
            f"--resume {config.out}: no checkpoint there yet; start the run again without --resume"
        )
    return bool(config.resume)


def load_pair_split(
    pairs: str, val: str, val_fraction: float, seed: int
) -> tuple[list[tuple[PreferencePair, str]], list[tuple[PreferencePair, str]]]:
    """(train, held-out) pairs with their `file:line`: --val's pairs, or --val-fraction held out by seed."""
    from llmlab.rlhf.records import read_pairs

    def located(path: str) -> list[tuple[PreferencePair, str]]:
        from llmlab.data.jsonl import iter_jsonl

        lines = [number for number, _ in iter_jsonl(path)]
        return [(p, f"{path}:{n}") for p, n in zip(read_pairs(path), lines, strict=True)]

    train = located(pairs)
    if val:
        return train, located(val)
    return split_by_seed(train, val_fraction, seed)


def check_val_fraction(value: float) -> None:
    if not 0 <= value < 1:
        raise ConfigError(f"--val-fraction must be in [0, 1), got {value}")


def check_pair_inputs(model: str, pairs: str, val_fraction: float, model_hint: str) -> None:
    """The checks every trainer on preference pairs shares: --model and --pairs given, --val-fraction valid."""
    if not model:
        raise ConfigError(f"--model is required: {model_hint}")
    if not pairs:
        raise ConfigError("--pairs is required: a JSONL file of {prompt, chosen, rejected} pairs")
    check_val_fraction(val_fraction)


def replace_config(config: Any, **changes: Any) -> Any:
    """A copy of a config with fields changed (validated again)."""
    return dataclasses.replace(config, **changes)
