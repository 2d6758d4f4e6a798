"""`llmlab finetune lora | adapters | prompt-tuning | selective`: fine-tuning where a PEFT method decides which
parameters train and how they are saved.

Recipe: the full fine-tuning recipe (`llmlab.training.finetune.finetune`: the same data formats, validation
split, dry run, memory check, loop, metrics, plots and resume) with a `PeftMethod` plugged in. The method
- counts trainable vs total parameters on a weightless (meta-device) copy of the model, so the dry run prints
  them too, and estimates the run's peak memory with the method applied (a dry run on fake tensors of the
  real step: the adapter, the objective, gradient checkpointing, AdamW on the trained tensors only);
- injects itself into the loaded model (`llmlab.peft`: apply_lora, apply_adapters, apply_prompt_tuning,
  select_parameters), freezing everything else (no gradient buffers, no optimizer state for the base);
  with bf16 autocast the frozen linear weights are held in bf16 (`hold_frozen_linears`: the values autocast
  computes with anyway, half the memory, no cast per step), and --gradient-checkpointing recomputes each
  block's activations in the backward pass;
- saves only the trained tensors at every checkpoint, as an adapter folder (`AdapterSaver`: `save_adapter`,
  peft's format for LoRA and prompt tuning), restored in place on `--resume` (`restore_adapter`), so the
  optimizer's state still points at the live tensors.

The run folder's top gets the best (or last) checkpoint's adapter files, so `llmlab generate --adapter RUN`,
`llmlab peft merge RUN` and peft's `PeftModel.from_pretrained(base, RUN)` (LoRA, prompt tuning) load it.
Tests: tests/training/test_peft_finetune.py (each method learns through the recipe; resume after SIGKILL
equals the uninterrupted run, for LoRA).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmlab.errors import ConfigError
from llmlab.models.sizing import MemoryEstimate
from llmlab.training.config import TrainConfig
from llmlab.training.finetune import FinetuneConfig, finetune
from llmlab.training.loop import Event, TrainResult
from llmlab.training.run import Preview

ADAPTER_NAME = "default"


@dataclass
class PeftFinetuneConfig(FinetuneConfig):
    """What every PEFT fine-tuning verb adds to full fine-tuning."""

    gradient_checkpointing: bool = False
    """Recompute each block's activations during the backward pass instead of keeping them: far less memory
    for about a third more compute."""

    def __post_init__(self) -> None:
        super().__post_init__()

    def method_config(self) -> Any:
        """The PEFT method's own config (LoraConfig, ...), validated; each verb's config defines it."""
        raise NotImplementedError(f"{type(self).__name__} names no PEFT method")


@dataclass
class LoraFinetuneConfig(PeftFinetuneConfig):
    """`llmlab finetune lora`."""

    lr: float = 2e-4
    """Peak learning rate (AdamW), reached after the warmup, then cosine decay to --min-lr-ratio of it."""
    rank: int = 8
    """LoRA rank r: the inner size of the update B @ A."""
    alpha: float = 16.0
    """LoRA alpha: the update is scaled by alpha / rank (alpha / sqrt(rank) with --rslora)."""
    dropout: float = 0.05
    """Dropout on the adapter's input during training."""
    targets: str = ""
    """Linear layers to adapt: names (q_proj,v_proj), a regex, or all-linear (default: the query and value
    projections as the model family names them)."""
    rslora: bool = False
    """Rank-stabilised scaling alpha / sqrt(rank) (rsLoRA)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.method_config()

    def method_config(self) -> Any:
        from llmlab.peft.lora import LoraConfig

        return LoraConfig(self.rank, self.alpha, self.dropout, parse_targets(self.targets), self.rslora)


@dataclass
class AdaptersFinetuneConfig(PeftFinetuneConfig):
    """`llmlab finetune adapters`."""

    lr: float = 5e-4
    """Peak learning rate (AdamW), reached after the warmup, then cosine decay to --min-lr-ratio of it."""
    bottleneck: int = 0
    """Inner size m of each adapter (d -> m -> d); 0: d / 16, AdapterHub's reduction factor (36 for
    SmolLM2-135M, whose adapters then weigh 1.9% of its checkpoint)."""
    activation: str = "silu"
    """Nonlinearity between the two projections: silu, relu, gelu or tanh."""
    targets: str = ""
    """Modules whose output each adapter follows (default: every attention and feed-forward output
    projection)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.method_config()

    def method_config(self) -> Any:
        from llmlab.peft.adapters import BottleneckConfig

        return BottleneckConfig(self.bottleneck, self.activation, parse_targets(self.targets))


@dataclass
class PromptTuningFinetuneConfig(PeftFinetuneConfig):
    """`llmlab finetune prompt-tuning`."""

    lr: float = 3e-2
    """Peak learning rate (AdamW), reached after the warmup, then cosine decay to --min-lr-ratio of it."""
    virtual_tokens: int = 20
    """Number of trainable virtual tokens put before every input."""
    init: str = "vocab"
    """How the virtual tokens start: random, vocab (embeddings of random tokens), or text:TEXT (embeddings
    of TEXT's tokens, repeated or cut to length)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.pack:
            raise ConfigError(
                "--pack cannot be used with prompt tuning: the virtual tokens go before every example, and "
                "packed rows hold several; leave --pack out"
            )
        self.method_config()

    def method_config(self) -> Any:
        from llmlab.peft.prompt_tuning import PromptTuningConfig

        return PromptTuningConfig(self.virtual_tokens, self.init)


@dataclass
class SelectiveFinetuneConfig(PeftFinetuneConfig):
    """`llmlab finetune selective`."""

    lr: float = 2e-4
    """Peak learning rate (AdamW), reached after the warmup, then cosine decay to --min-lr-ratio of it."""
    train: list[str] = field(default_factory=lambda: ["norms"])
    """What trains: bias (BitFit), norms, last-layers:N, or a regex on parameter names."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.train, str):
            self.train = [self.train]
        self.method_config()

    def method_config(self) -> Any:
        from llmlab.peft.selective import SelectiveConfig

        return SelectiveConfig(tuple(self.train))


CONFIGS: dict[str, type[PeftFinetuneConfig]] = {
    "lora": LoraFinetuneConfig,
    "adapters": AdaptersFinetuneConfig,
    "prompt-tuning": PromptTuningFinetuneConfig,
    "selective": SelectiveFinetuneConfig,
}


def parse_targets(text: str) -> tuple[str, ...] | str | None:
    """--targets: "" (the method's default), "all-linear", or comma-separated names or regexes."""
    from llmlab.peft.inject import ALL_LINEAR

    text = text.strip()
    if not text:
        return None
    if text.lower() == ALL_LINEAR:
        return ALL_LINEAR
    return tuple(t.strip() for t in text.split(",") if t.strip())


def method_of(config: PeftFinetuneConfig) -> str:
    for method, cls in CONFIGS.items():
        if type(config) is cls:
            return method
    raise ConfigError(f"{type(config).__name__} is not a PEFT fine-tuning config")


# ---- the adapter as a checkpoint's model part ----------------------------------------------------------------


class AdapterSaver:
    """A `ModelSaver` that writes only the adapter (an adapter folder) and restores it in place on resume."""

    def __init__(self, model: Any, name: str = ADAPTER_NAME, base_model: str | None = None):
        self.model, self.name, self.base_model = model, name, base_model

    def save(self, folder: Path) -> None:
        from llmlab.peft.checkpoint import save_adapter

        save_adapter(self.model, folder, self.name, self.base_model)

    def load(self, folder: Path) -> None:
        from llmlab.peft.checkpoint import restore_adapter

        restore_adapter(self.model, folder, self.name)


# ---- the method, as the fine-tuning recipe calls it -----------------------------------------------------------


def _inject(model: Any, method: str, config: Any, tokenizer: Any, name: str) -> None:
    from llmlab.peft.adapters import add_adapters
    from llmlab.peft.inject import add_lora
    from llmlab.peft.prompt_tuning import add_prompt, init_prompt
    from llmlab.peft.selective import add_selective

    if method == "lora":
        add_lora(model, config, name=name)
    elif method == "adapters":
        add_adapters(model, config, name=name)
    elif method == "prompt-tuning":
        values = init_prompt(model.get_input_embeddings(), config, tokenizer)
        add_prompt(model, config, values, name=name)
    else:
        add_selective(model, config, name=name)


def enable_gradient_checkpointing(model: Any) -> None:
    """Recompute each transformer block in the backward pass. Non-reentrant checkpointing: with a frozen base,
    the blocks' inputs need no requires_grad for the adapters inside them to get gradients."""
    if not getattr(model, "supports_gradient_checkpointing", False):
        raise ConfigError(
            f"--gradient-checkpointing: {type(model).__name__} does not support it; leave the flag out"
        )
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if getattr(model, "config", None) is not None:
        model.config.use_cache = False


@dataclass
class PeftMethod:
    """What a PEFT verb plugs into `finetune`: the parameter count and memory estimate, then the set-up."""

    method: str
    config: Any
    """The method's own config (LoraConfig, BottleneckConfig, PromptTuningConfig, SelectiveConfig)."""
    base_model: str
    gradient_checkpointing: bool = False
    precision: str = "fp32"
    """The run's --precision: with bf16 autocast the frozen linear weights are held in bf16."""
    name: str = ADAPTER_NAME
    counts: dict[str, int] = field(default_factory=dict)

    def prepare(self, model: Any, tokenizer: Any) -> tuple[dict[str, Any], AdapterSaver]:
        """Inject the method into the loaded model; (trainable parameters by name, the checkpoint saver)."""
        from llmlab.peft.registry import adapter_parameters
        from llmlab.training.loop import resolve_precision

        _inject(model, self.method, self.config, tokenizer, self.name)
        if self.gradient_checkpointing:
            enable_gradient_checkpointing(model)
        trainable = adapter_parameters(model, self.name) | train_heads(model, self.name)
        self.counts = _counts(model, trainable)
        dtype = resolve_precision(self.precision, next(model.parameters()).device)
        if dtype is not None:
            hold_frozen_linears(model, dtype)
        return trainable, AdapterSaver(model, self.name, self.base_model)

    def parameter_stats(self, hf_config: Any, tokenizer: Any) -> dict[str, str]:
        """`trainable parameters N of M (p%)`, counted on a weightless copy of the model."""
        import torch

        from llmlab.models.dry_run import build_model
        from llmlab.peft.registry import adapter_parameters

        with torch.device("meta"):
            model = build_model(hf_config)
            _inject(model, self.method, self.config, tokenizer, self.name)
        self.counts = _counts(model, adapter_parameters(model, self.name))
        return {"trainable_parameters": describe_counts(self.counts)}

    def check_memory(
        self, hf_config: Any, config: TrainConfig, device: str, seq_len: int, tokenizer: Any
    ) -> tuple[MemoryEstimate | None, int | None]:
        """The run's peak memory with the method applied (refused when it cannot fit), and what is available."""
        from llmlab.training.memory import available_bytes, check_fits

        available = available_bytes(device)
        if not config.memory_check:
            return None, available
        estimate = estimate_peft_training(
            hf_config, config.batch_size, seq_len, lambda model: self._fake_setup(model, tokenizer)
        )
        check_fits(estimate, available)
        return estimate, available

    def _fake_setup(self, model: Any, tokenizer: Any) -> list[Any]:
        from llmlab.peft.registry import adapter_parameters

        _inject(model, self.method, self.config, tokenizer, self.name)
        if self.gradient_checkpointing:
            enable_gradient_checkpointing(model)
        return list(adapter_parameters(model, self.name).values())


def train_heads(model: Any, name: str) -> dict[str, Any]:
    """A sequence classifier's or span reader's new head trains in full next to the adapter and is saved with
    it (peft's modules_to_save for its SEQ_CLS and QUESTION_ANS tasks): {parameter name: parameter}; {} for
    other models."""
    from llmlab.peft.peft_format import classifier_heads
    from llmlab.peft.registry import list_adapters

    heads = classifier_heads(model)
    list_adapters(model)[name].modules_to_save = heads
    out = {}
    for head in heads:
        for key, param in model.get_submodule(head).named_parameters():
            param.requires_grad_(True)
            out[f"{head}.{key}"] = param
    return out


def hold_frozen_linears(model: Any, dtype: Any) -> int:
    """Store the frozen weights of linear layers in the autocast dtype; returns how many.

    Under autocast every matmul casts its fp32 weight to `dtype` anyway, so the values the model computes
    with are the same; holding them there saves that cast at every forward (and every recomputation) and
    half of their memory. Trained tensors, and weights shared with an embedding (a tied output layer), stay
    fp32. The model then runs under autocast only (as the training loop runs it).
    """
    from torch import nn

    embedded = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    count = 0
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if not (isinstance(module, nn.Linear) and isinstance(weight, nn.Parameter)):
            continue
        if not weight.requires_grad and id(weight) not in embedded and weight.dtype != dtype:
            weight.data = weight.data.to(dtype)
            count += 1
    return count


def _counts(model: Any, trainable: dict[str, Any]) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())  # distinct tensors: tied weights once
    return {"trainable": sum(p.numel() for p in trainable.values()), "total": total}


def describe_counts(counts: dict[str, int]) -> str:
    """`460,800 of 134,975,808 (0.3414%)`: the total includes the adapter's own tensors, as peft counts."""
    share = 100 * counts["trainable"] / max(counts["total"], 1)
    return f"{counts['trainable']:,} of {counts['total']:,} ({share:.4g}%)"


def estimate_peft_training(
    hf_config: Any, batch_size: int, seq_len: int, setup: Callable[[Any], list[Any]]
) -> MemoryEstimate:
    """Peak memory of two training steps of a PEFT method (`memory.training_dry_run`): `setup` injects the
    method and returns the trained tensors; AdamW on those only, fp32."""
    from llmlab.training.memory import estimate_training

    return estimate_training(hf_config, batch_size, seq_len, setup, "peft fine-tune", "frozen base")


def finetune_peft(
    config: PeftFinetuneConfig, on_event: Callable[[Event], None] | None = None, dry_run: bool = False
) -> tuple[Preview, TrainResult | None]:
    """Fine-tune `config.model` with the PEFT method of the config's type; only the adapter is saved."""
    method = PeftMethod(
        method_of(config), config.method_config(), config.model, config.gradient_checkpointing,
        config.precision,
    )  # fmt: skip
    return finetune(config, on_event=on_event, dry_run=dry_run, method=method)
