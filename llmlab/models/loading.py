"""Load a model and its tokenizer by registry name, checkpoint folder or GGUF file, as the right kind.

The three transformer kinds map to transformers' auto classes: decoder-only -> AutoModelForCausalLM,
encoder-decoder -> AutoModelForSeq2SeqLM, encoder-only -> AutoModel.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmlab.errors import ConfigError, ModelError
from llmlab.models.gguf_cache import MANIFEST, converted_folder, record_cached_load
from llmlab.models.registry import ModelSpec, TransformerKind, resolve

if TYPE_CHECKING:
    import torch
    from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

DTYPES = ("float32", "bfloat16", "float16")


@dataclass
class LoadedModel:
    """A model, its tokenizer, and what kind of transformer it is."""

    name: str
    kind: TransformerKind
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    folder: Path
    spec: ModelSpec | None
    load_seconds: float
    converted_now: bool = False
    """True when this load dequantized a GGUF file (the slow first load)."""

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def context_length(self) -> int:
        return context_length(self.model.config)


def resolve_device(device: str = "auto") -> str:
    """`auto` picks CUDA when present, else the CPU."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {device} asked for CUDA but none is available; use --device cpu")
    return device


def _torch_dtype(dtype: str) -> torch.dtype:
    import torch

    if dtype not in DTYPES:
        raise ConfigError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    dt: torch.dtype = getattr(torch, dtype)
    return dt


def model_folder(name_or_path: str | os.PathLike[str]) -> tuple[Path, ModelSpec | None, bool]:
    """The HF checkpoint folder for a model (converting a GGUF file on first use)."""
    resolved = resolve(name_or_path)
    if resolved.gguf_file is None:
        return resolved.folder, resolved.spec, False
    folder, from_cache = converted_folder(resolved.path)
    return folder, resolved.spec, not from_cache


def transformer_kind(config: PretrainedConfig) -> TransformerKind:
    """Classify a config as decoder-only, encoder-decoder or encoder-only."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    if getattr(config, "is_encoder_decoder", False):
        return "encoder-decoder"
    architectures = getattr(config, "architectures", None) or []
    if any(a.endswith("ForCausalLM") or a.endswith("LMHeadModel") for a in architectures):
        return "decoder-only"
    # A bare config (no architectures) of a family with a causal-LM class; BERT-like families have one too
    # but are encoders first.
    model_type = config.model_type
    if not architectures and model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return "encoder-only" if model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES else "decoder-only"
    return "encoder-only"


def context_length(config: Any) -> int:
    """The longest sequence the model's positions support."""
    for attr in ("max_position_embeddings", "n_positions", "max_sequence_length", "n_ctx"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    return 1024 if getattr(config, "relative_attention_num_buckets", None) else 2048


def load_config(name_or_path: str | os.PathLike[str]) -> PretrainedConfig:
    from transformers import AutoConfig

    folder, _, _ = model_folder(name_or_path)
    return AutoConfig.from_pretrained(folder)


def load_model(
    name_or_path: str | os.PathLike[str], device: str = "auto", dtype: str = "float32"
) -> LoadedModel:
    """Load model and tokenizer; the model is in eval mode on `device`.

    Raises:
        ModelError: unknown name, missing package, or a folder transformers cannot load.
        ConfigError: bad `device` or `dtype`.
    """
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Loading weights" bars would clutter every CLI verb's output
    start = time.perf_counter()
    torch_dtype = _torch_dtype(dtype)
    target = resolve_device(device)
    folder, spec, converted_now = model_folder(name_or_path)
    try:
        config = AutoConfig.from_pretrained(folder)
        kind = transformer_kind(config)
        auto = {
            "decoder-only": AutoModelForCausalLM,
            "encoder-decoder": AutoModelForSeq2SeqLM,
            "encoder-only": AutoModel,
        }[kind]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = auto.from_pretrained(folder, dtype=torch_dtype)
            tokenizer = AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot load model from {folder}: {e}") from e
    model.to(target).eval()
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    name = spec.name if spec else Path(str(name_or_path)).name
    seconds = time.perf_counter() - start
    if (folder / MANIFEST).exists() and not converted_now:
        record_cached_load(folder, seconds)  # a GGUF cache folder: `llmlab models info` shows it
    return LoadedModel(
        name=name,
        kind=kind,
        model=model,
        tokenizer=tokenizer,
        folder=folder,
        spec=spec,
        load_seconds=seconds,
        converted_now=converted_now,
    )
