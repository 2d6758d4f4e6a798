"""Sentence embeddings from a local encoder: mean pooling over the last hidden states, then L2 normalisation.

    e = normalize( sum_t mask_t * h_t / sum_t mask_t )          h: (B, T, H) last hidden state, mask: (B, T)

This is Sentence-BERT's recipe (Reimers & Gurevych, 2019, arXiv:1908.10084) as shipped with all-MiniLM-L6-v2:
Transformer -> Pooling(mean) -> Normalize. A folder whose `1_Pooling/config.json` asks for the CLS token is
pooled that way instead. Parity: tests/rag/test_embedding.py::test_minilm_matches_sentence_transformers (slow,
cosine >= 0.999 to sentence-transformers' `encode`).

Where it departs from sentence-transformers, for speed on a CPU (bench/rag.py measures both in one run):
- Precision `bf16` (the default) runs the encoder in bfloat16 and pools in float32. On this project's CPU
  (AVX-512 bf16) it embeds 1.4-3x as many chunks per second as sentence-transformers in fp32 (bench/rag.py,
  a shared machine), with cosine >= 0.9999 to fp32 and the same retrieval quality (nDCG@10 equal to 0.1
  point on bench/data/retrieval). `fp32` is exact.
  int8 dynamic quantization was measured too and rejected: as fast as bf16, but cosine to fp32 fell to 0.85.
- Texts are tokenized once, sorted by length and batched, so each batch pads only to its own longest text.
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
    batch_size: int = 64
    """Texts per forward pass (64 measured faster than 32 in bf16: fewer, larger matrix products)."""
    max_tokens: int | None = None
    """Truncate inputs to this many tokens; default: the model's sentence-transformers max_seq_length."""
    device: str = "cpu"
    """cpu, cuda or auto."""

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {self.batch_size}")
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


def length_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (longest first), so padding is small."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


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
        batch_size: int = 64,
    ) -> None:
        self.name = name
        self.model = model
        self.tokenizer = tokenizer
        self.pooling = pooling
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        self.dim = int(model.config.hidden_size)
        self._backend: Any = None

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
        for batch in length_batches([len(ids) for ids in encoded], self.batch_size):
            width = len(encoded[batch[0]])
            ids = torch.full((len(batch), width), pad_id, dtype=torch.long)  # (B, T)
            mask = torch.zeros((len(batch), width), dtype=torch.long)  # (B, T)
            for row, index in enumerate(batch):
                ids[row, : len(encoded[index])] = torch.tensor(encoded[index])
                mask[row, : len(encoded[index])] = 1
            with torch.inference_mode():
                hidden = self.model(
                    input_ids=ids.to(device), attention_mask=mask.to(device)
                ).last_hidden_state
            out[batch] = pool(hidden, mask.to(device), self.pooling).cpu().numpy()
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
    )
