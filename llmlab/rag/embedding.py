"""Sentence embeddings from a local encoder: mean pooling over the last hidden states, then L2 normalisation.

    e = normalize( sum_t mask_t * h_t / sum_t mask_t )          h: (B, T, H) last hidden state, mask: (B, T)

This is Sentence-BERT's recipe (Reimers & Gurevych, 2019, arXiv:1908.10084) as shipped with all-MiniLM-L6-v2:
Transformer -> Pooling(mean) -> Normalize. A folder whose `1_Pooling/config.json` asks for the CLS token is
pooled that way instead. Parity: tests/rag/test_embedding.py::test_minilm_matches_sentence_transformers (slow,
cosine >= 0.999 to sentence-transformers' `encode`).

Where it departs from sentence-transformers, for speed on a CPU (bench/rag.py measures both in one run):
- BERT models (MiniLM among them) run through a fused forward (fused_bert.py): one QKV matmul, and in bf16
  oneDNN linears with the bias, GELU and residual add fused in. Other encoders run transformers' module
  (`fused=False` forces that for BERT too).
- Precision `bf16` (the default) runs the encoder in bfloat16 and pools in float32. `fp32` is exact.
- Texts are tokenized once, sorted by length and batched by a token budget (2048 padded tokens: 8 chunks
  of 256 tokens, or up to 256 short queries), so each batch pads only to its own longest text.

Measured on this project's 2-core AMD EPYC (Zen 4, AVX-512 bf16 and VNNI), idle, bench/rag.py: bf16 embeds
2.28x as many ingest chunks (mean 146 tokens) per second as sentence-transformers' fp32 `encode`, 2.19x as
many 256-token chunks and 2.05x as many queries; transformers' module on the same bf16 weights and batches
gives 2.24x and 2.14x (the fused forward gained about a third under load, 2-9% idle). Cosine >= 0.9999 to
fp32, nDCG@10 on bench/data/retrieval equal to fp32's to 0.1 point. What is left is the attention kernel
(about a quarter of the time at 256 tokens; its softmax does not get faster in bf16) and the bf16 matmuls.
Rejected after measuring: int8, on speed before quality (torch dynamic quantization gave cosine 0.85 to
fp32; fbgemm `linear_dynamic` and `torch._int_mm` take 0.6-1.3x the time of the bf16 matmul at MiniLM's
shapes, and 2.5-5x once activations are quantized per token as models/int8.py does for SmoothQuant),
and attention as explicit bf16 matmuls (3-5x slower than torch's flash kernel).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from llmlab.errors import ConfigError, ModelError
from llmlab.models.registry import DEFAULT_EMBEDDER

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from llmlab.models.fused_bert import FusedBert

Precision = Literal["bf16", "fp32"]
PRECISIONS: tuple[str, ...] = ("bf16", "fp32")


class Embedder(Protocol):
    """Anything that turns texts into unit-norm float32 vectors; stores record `name` and `dim`."""

    name: str
    """Identity recorded in a store; a store refuses vectors from an embedder with another name."""
    dim: int
    max_tokens: int
    """Longest input in tokens (special tokens included); longer texts are truncated."""
    tokenizer: PreTrainedTokenizerBase
    """The tokenizer the chunker counts tokens with."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(N, dim) float32, each row of unit L2 norm."""
        ...


@dataclass
class EmbedderConfig:
    """Which encoder embeds chunks and queries, and how."""

    model: str = DEFAULT_EMBEDDER
    """Registry name (minilm-l6) or a local Hugging Face encoder folder."""
    precision: str = "bf16"
    """bf16 (fast, default) or fp32 (exact)."""
    batch_size: int = 256
    """Most texts per forward pass."""
    batch_tokens: int = 2048
    """Most tokens per forward pass, padding included: 8 chunks of 256 tokens, or up to 256 short queries.
    Measured on the quiet 2-core machine, bf16, ingest chunks: 2048 tokens 2.34x sentence-transformers, 4096
    2.28x, 8192 1.91x (activations that fit the cache); 256-token chunks 1.9x at any budget."""
    fused: bool = True
    """Run BERT encoders through the fused forward (fused_bert.py); False: transformers' own module."""
    max_tokens: int | None = None
    """Truncate inputs to this many tokens; default: the model's sentence-transformers max_seq_length."""
    device: str = "cpu"
    """cpu, cuda or auto."""

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.batch_tokens < 1:
            raise ConfigError(f"--batch-tokens must be at least 1, got {self.batch_tokens}")
        if self.max_tokens is not None and self.max_tokens < 2:
            raise ConfigError(f"--max-tokens must be at least 2, got {self.max_tokens}")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def pooling_mode(folder: Path) -> str:
    """`mean` unless the folder's sentence-transformers pooling config asks for `cls`."""
    config = _read_json(folder / "1_Pooling" / "config.json")
    if config.get("pooling_mode_cls_token") and not config.get("pooling_mode_mean_tokens"):
        return "cls"
    return "mean"


def default_max_tokens(folder: Path, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> int:
    """sentence-transformers' max_seq_length if the folder has one, else what the positions allow."""
    st = _read_json(folder / "sentence_bert_config.json").get("max_seq_length")
    if isinstance(st, int) and st > 0:
        return st
    limits = [getattr(model.config, "max_position_embeddings", 512), 512]
    if isinstance(tokenizer.model_max_length, int):
        limits.append(tokenizer.model_max_length)
    return int(min(limits))


def pool(hidden: torch.Tensor, mask: torch.Tensor, mode: str = "mean") -> torch.Tensor:
    """Pool (B, T, H) hidden states under a (B, T) attention mask to unit-norm (B, H) float32 vectors."""
    import torch

    hidden = hidden.float()
    if mode == "cls":
        pooled = hidden[:, 0]
    else:
        weights = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2.0, dim=-1)


def length_batches(
    lengths: Sequence[int], batch_size: int, batch_tokens: int | None = None
) -> list[list[int]]:
    """Indices grouped into batches of similar length (longest first), so padding is small.

    A batch holds at most `batch_size` texts and, if `batch_tokens` is given, at most that many tokens once
    padded (texts x its longest text); a text longer than the budget still gets a batch of its own."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for index in order:
        batch = batches[-1] if batches else None
        if (
            batch is None
            or len(batch) >= batch_size
            or (batch_tokens is not None and (len(batch) + 1) * lengths[batch[0]] > batch_tokens)
        ):
            batches.append([index])
        else:
            batch.append(index)
    return batches


def _fused_forward(model: PreTrainedModel) -> FusedBert | None:
    """The fused forward in the model's precision for a BERT model; None for other encoders."""
    import torch

    from llmlab.models.fused_bert import FusedBert, supports

    if not supports(model):
        return None
    bf16 = next(model.parameters()).dtype == torch.bfloat16
    return FusedBert(model, "bf16" if bf16 else "fp32")


class HFEmbedder:
    """A local Hugging Face encoder as an `Embedder` (see the module docstring for the maths)."""

    def __init__(
        self,
        name: str,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        pooling: str = "mean",
        max_tokens: int = 256,
        batch_size: int = 256,
        batch_tokens: int | None = 2048,
        fused: bool = True,
    ) -> None:
        self.name = name
        self.model = model
        self.tokenizer = tokenizer
        self.pooling = pooling
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        self.batch_tokens = batch_tokens
        self.dim = int(model.config.hidden_size)
        self._backend: Any = None
        self.fused = _fused_forward(model) if fused else None

    def _encode(self, texts: list[str]) -> list[list[int]]:
        """Token ids with special tokens, truncated to max_tokens.

        A fast tokenizer's backend is cloned once and truncated there: calling the shared tokenizer with
        truncation=True would switch truncation on in the backend that the chunker also counts with."""
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is None:
            return list(self.tokenizer(texts, truncation=True, max_length=self.max_tokens)["input_ids"])
        if self._backend is None:
            from tokenizers import Tokenizer

            self._backend = Tokenizer.from_str(backend.to_str())
            self._backend.no_padding()
            self._backend.enable_truncation(self.max_tokens)
        return [e.ids for e in self._backend.encode_batch(texts)]

    def count_tokens(self, text: str) -> int:
        """Tokens `text` takes in the encoder, special tokens excluded."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts in length-sorted batches; returns (N, dim) float32 unit vectors in input order."""
        import torch

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        encoded = self._encode(list(texts))
        pad_id = self.tokenizer.pad_token_id or 0
        device = next(self.model.parameters()).device
        for batch in length_batches([len(ids) for ids in encoded], self.batch_size, self.batch_tokens):
            width = len(encoded[batch[0]])
            ids = torch.full((len(batch), width), pad_id, dtype=torch.long)  # (B, T)
            mask = torch.zeros((len(batch), width), dtype=torch.long)  # (B, T)
            for row, index in enumerate(batch):
                ids[row, : len(encoded[index])] = torch.tensor(encoded[index])
                mask[row, : len(encoded[index])] = 1
            ids, mask = ids.to(device), mask.to(device)
            with torch.inference_mode():
                if self.fused is not None:
                    hidden = self.fused(ids, mask)
                else:
                    hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
            out[batch] = pool(hidden, mask, self.pooling).cpu().numpy()
        return out


def load_embedder(config: EmbedderConfig | None = None) -> HFEmbedder:
    """Load the encoder named in `config` (default: the packaged minilm-l6 in bf16).

    Raises:
        ModelError: the model is not an encoder-only model, or cannot be loaded.
    """
    from llmlab.models import load_model

    config = config or EmbedderConfig()
    dtype = "bfloat16" if config.precision == "bf16" else "float32"
    loaded = load_model(config.model, device=config.device, dtype=dtype)
    if loaded.kind != "encoder-only":
        raise ModelError(
            f"embedder {config.model!r} is a {loaded.kind} model; use an encoder such as minilm-l6 "
            "(a sentence-transformers or BERT-style folder)"
        )
    name = loaded.spec.name if loaded.spec else str(Path(loaded.folder).resolve())
    max_tokens = config.max_tokens or default_max_tokens(loaded.folder, loaded.model, loaded.tokenizer)
    return HFEmbedder(
        name,
        loaded.model,
        loaded.tokenizer,
        pooling=pooling_mode(loaded.folder),
        max_tokens=max_tokens,
        batch_size=config.batch_size,
        batch_tokens=config.batch_tokens,
        fused=config.fused,
    )
