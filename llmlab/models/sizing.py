"""How big a model is and how much memory it needs to run, fully fine-tune, LoRA-tune or prompt-tune.

Parameter counts are exact: the model class `load_model` would use is instantiated on the `meta` device (no
weights allocated) and `sum(p.numel())` is taken over its unique parameters, so tied embeddings count once.

Memory is the sum of parts, in bytes (b = bytes per value: 4 for fp32, 2 for bf16, 1 for int8):

    weights      = P · b
    KV cache     = 2 · L · B · T · H_kv · d_head · b            decoder-only (keys and values, every layer)
                 = 2 · 2 · L_dec · B · T · H · d_head · b       encoder-decoder (self- and cross-attention)
    gradients    = P_train · 4                                  fp32 training
    optimizer    = 2 · P_train · 4                              AdamW keeps two moments per trainable value
    activations  = peak − the parts above

The peak comes from a dry run on fake tensors (`dry_run.py`): one prefill of B prompts of T tokens for
inference, two AdamW steps for training, with every intermediate tensor's lifetime followed. Activations are
therefore what this implementation really keeps: the tensors saved for backward, the logits and their
gradients, optimizer temporaries. int8 rows take the bf16 dry run with weights at 1 byte each (weight-only
int8, bf16 KV cache and activations); no int8 model is run.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmlab.errors import ConfigError, ModelError
from llmlab.models import dry_run
from llmlab.models.gguf_cache import MANIFEST, cache_folder
from llmlab.models.loading import context_length, transformer_kind
from llmlab.models.registry import TransformerKind, resolve

if TYPE_CHECKING:
    from transformers import PretrainedConfig

BYTES_PER_VALUE = {"fp32": 4, "bf16": 2, "int8": 1}


@dataclass(frozen=True)
class ModelShape:
    """The numbers that decide a model's size and memory."""

    kind: TransformerKind
    model_type: str
    parameters: int
    """Unique parameters of the instantiated model (tied embeddings counted once)."""
    layers: int
    """Transformer blocks (the encoder's, for an encoder-decoder)."""
    decoder_layers: int
    """Blocks that keep a KV cache while generating (0 for encoder-only)."""
    hidden_size: int
    heads: int
    kv_heads: int
    """Key/value heads; fewer than `heads` means grouped-query attention."""
    head_dim: int
    intermediate_size: int | None
    vocab_size: int
    context_length: int
    tied_embeddings: bool


@dataclass
class SizingConfig:
    """What the memory estimates assume."""

    seq_len: int | None = None
    """Tokens per sequence (prompt + generated for inference; training example length); default 512, or
    the model's context length when that is shorter."""
    batch_size: int = 1
    """Sequences processed together."""
    lora_rank: int = 8
    """LoRA rank r."""
    lora_targets: list[str] = field(default_factory=list)
    """Module names LoRA adapts (default: the query and value projections, e.g. q_proj and v_proj)."""
    virtual_tokens: int = 20
    """Prompt tuning: number of trainable virtual tokens prepended to the input."""

    def __post_init__(self) -> None:
        for flag, value in (
            ("--seq-len", 1 if self.seq_len is None else self.seq_len),
            ("--batch-size", self.batch_size),
            ("--lora-rank", self.lora_rank),
            ("--virtual-tokens", self.virtual_tokens),
        ):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{flag} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class MemoryEstimate:
    """One scenario's memory, by part, in bytes."""

    scenario: str
    weights: int
    kv_cache: int = 0
    gradients: int = 0
    optimizer: int = 0
    activations: int = 0
    trainable: int = 0
    """Trainable parameters (0 for inference)."""
    detail: str = ""
    """What the scenario assumes, in words."""

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.gradients + self.optimizer + self.activations

    def as_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "weights": self.weights,
            "kv_cache": self.kv_cache,
            "gradients": self.gradients,
            "optimizer": self.optimizer,
            "activations": self.activations,
            "total": self.total,
            "trainable_parameters": self.trainable,
            "detail": self.detail,
        }


def count_parameters(config: PretrainedConfig) -> int:
    """Exact number of unique parameters, computed on the meta device (nothing allocated)."""
    import torch

    with torch.device("meta"):
        model = dry_run.build_model(config)
    return sum(p.numel() for p in model.parameters())


def _first(config: Any, names: tuple[str, ...], default: Any = None) -> Any:
    for name in names:
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return default


def model_shape(config: PretrainedConfig) -> ModelShape:
    """Read the shape from a config; the parameter count is exact (see `count_parameters`)."""
    kind = transformer_kind(config)
    hidden = _first(config, ("hidden_size", "d_model", "n_embd"), 0)
    heads = _first(config, ("num_attention_heads", "n_head", "encoder_attention_heads"), 1)
    layers = _first(config, ("num_hidden_layers", "n_layer", "encoder_layers"), 0)
    decoder_layers = _first(config, ("num_decoder_layers", "decoder_layers"), layers)
    return ModelShape(
        kind=kind,
        model_type=config.model_type,
        parameters=count_parameters(config),
        layers=layers,
        decoder_layers=0 if kind == "encoder-only" else decoder_layers,
        hidden_size=hidden,
        heads=heads,
        kv_heads=_first(config, ("num_key_value_heads",), heads),
        head_dim=_first(config, ("head_dim", "d_kv"), hidden // heads),
        intermediate_size=_first(config, ("intermediate_size", "d_ff", "n_inner", "encoder_ffn_dim")),
        vocab_size=_first(config, ("vocab_size",), 0),
        context_length=context_length(config),
        tied_embeddings=bool(getattr(config, "tie_word_embeddings", False)),
    )


def kv_cache_bytes(shape: ModelShape, seq_len: int, batch_size: int, bytes_per_value: int) -> int:
    """Keys and values of every decoder layer for `batch_size` sequences of `seq_len` tokens."""
    if shape.kind == "encoder-only":
        return 0
    if shape.kind == "encoder-decoder":  # self-attention over generated tokens + cross-attention over input
        return (
            2
            * 2
            * shape.decoder_layers
            * batch_size
            * seq_len
            * shape.heads
            * shape.head_dim
            * bytes_per_value
        )
    return 2 * shape.decoder_layers * batch_size * seq_len * shape.kv_heads * shape.head_dim * bytes_per_value


DEFAULT_SEQ_LEN = 512


def fit_sizing(sizing: SizingConfig, shape: ModelShape) -> SizingConfig:
    """The assumptions with `seq_len` set (default: 512, or the model's context length when shorter).

    Raises:
        ConfigError: --seq-len is longer than the model's context, or --virtual-tokens leave no room.
    """
    context = shape.context_length
    seq_len = min(DEFAULT_SEQ_LEN, context) if sizing.seq_len is None else sizing.seq_len
    if seq_len > context:
        raise ConfigError(
            f"--seq-len {seq_len} is longer than the model's context length {context}; use --seq-len "
            f"{context} or less"
        )
    if sizing.virtual_tokens >= context:
        raise ConfigError(
            f"--virtual-tokens {sizing.virtual_tokens} leave no room for text in the model's context length "
            f"{context}; use --virtual-tokens {context // 4} or less"
        )
    return replace(sizing, seq_len=seq_len)


def _text_tokens(sizing: SizingConfig, shape: ModelShape) -> int:
    """Tokens of text beside the virtual tokens in the prompt-tuning row: seq_len, shortened when the
    virtual tokens would not fit in the context with it."""
    assert sizing.seq_len is not None
    return min(sizing.seq_len, shape.context_length - sizing.virtual_tokens)


def inference_estimates(
    config: PretrainedConfig, shape: ModelShape, sizing: SizingConfig
) -> list[MemoryEstimate]:
    """fp32, bf16 and int8 weights + KV cache + working activations for one prefill."""
    import torch

    rows = []
    sizing = fit_sizing(sizing, shape)
    assert sizing.seq_len is not None
    for label, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        b = BYTES_PER_VALUE[label]
        run = dry_run.inference_peak(config, dtype, sizing.batch_size, sizing.seq_len)
        weights = shape.parameters * b
        kv = kv_cache_bytes(shape, sizing.seq_len, sizing.batch_size, b)
        rows.append(
            MemoryEstimate(f"inference {label}", weights, kv, activations=_rest(run.peak_bytes, weights, kv))
        )
    bf16 = rows[1]
    rows.append(
        MemoryEstimate("inference int8", shape.parameters, bf16.kv_cache, activations=bf16.activations)
    )
    return rows


def _rest(peak: int, *parts: int) -> int:
    return max(0, peak - sum(parts))


def training_estimates(
    config: PretrainedConfig, shape: ModelShape, sizing: SizingConfig
) -> list[MemoryEstimate]:
    """Full fine-tuning, LoRA and prompt tuning, fp32 with AdamW."""
    rows = []
    targets = ",".join(lora_target_names(config, sizing))
    sizing = fit_sizing(sizing, shape)
    assert sizing.seq_len is not None
    text = _text_tokens(sizing, shape)
    prompt_detail = f"{sizing.virtual_tokens} virtual tokens"
    if text < sizing.seq_len:
        prompt_detail += f" + {text} text tokens (the context holds {shape.context_length})"
    for method, label, detail, seq_len in (
        ("full", "full fine-tune", "all weights", sizing.seq_len),
        ("lora", f"LoRA r={sizing.lora_rank}", f"adapters on {targets}", sizing.seq_len),
        ("prompt", "prompt tuning", prompt_detail, text),
    ):
        run = dry_run.training_peak(
            config,
            method,  # type: ignore[arg-type]
            sizing.batch_size,
            seq_len,
            rank=sizing.lora_rank,
            targets=sizing.lora_targets,
            virtual_tokens=sizing.virtual_tokens,
        )
        adapters = 0 if method == "full" else run.trainable
        weights = (shape.parameters + adapters) * 4
        grads, optim = run.trainable * 4, run.trainable * 8
        rest = _rest(run.peak_bytes, weights, grads, optim)
        detail = f"fp32, AdamW, {detail}: {run.trainable:,} trainable parameters"
        rows.append(MemoryEstimate(label, weights, 0, grads, optim, rest, run.trainable, detail))
    return rows


def lora_target_names(config: PretrainedConfig, sizing: SizingConfig) -> tuple[str, ...]:
    """The module names LoRA will adapt for this config (the default is resolved per model family)."""
    import torch

    with torch.device("meta"):
        model = dry_run.build_model(config)
    return dry_run.lora_targets(model, sizing.lora_targets)


def estimate_memory(
    config: PretrainedConfig, sizing: SizingConfig, shape: ModelShape | None = None
) -> list[MemoryEstimate]:
    """All six scenarios: inference fp32/bf16/int8, full fine-tuning, LoRA, prompt tuning."""
    shape = shape or model_shape(config)
    sizing = fit_sizing(sizing, shape)
    return inference_estimates(config, shape, sizing) + training_estimates(config, shape, sizing)


def count_gguf_parameters(path: Path) -> int:
    """Parameters stored in a GGUF file: the sum of its tensors' element counts (read from the header).

    Equals `count_parameters` of the converted model for the architectures transformers converts (a tied
    output projection is not stored twice); slower than reading a cached config, but converts nothing.
    """
    from gguf import GGUFReader

    try:
        reader = GGUFReader(path)
    except (OSError, ValueError) as e:
        raise ModelError(f"{path} is not a readable GGUF file: {e}") from e
    return sum(math.prod(int(d) for d in tensor.shape) for tensor in reader.tensors)


def parameters_of(name_or_path: str | os.PathLike[str]) -> int:
    """Exact parameter count of a named or local model without loading weights or converting a GGUF file."""
    from transformers import AutoConfig

    resolved = resolve(name_or_path)
    if resolved.gguf_file is None:
        return count_parameters(AutoConfig.from_pretrained(resolved.folder))
    cached = cache_folder(resolved.path)
    if (cached / MANIFEST).exists():
        return count_parameters(AutoConfig.from_pretrained(cached))
    return count_gguf_parameters(resolved.path)
