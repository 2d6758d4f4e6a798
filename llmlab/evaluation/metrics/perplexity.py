"""Perplexity of a causal language model on a corpus.

    PPL = exp( -(1/N) * sum over the N predicted tokens t of log p(x_t | x_<t) )

N counts every predicted token of every text, so the corpus perplexity weights texts by length (it is not a
mean of per-text perplexities). Each text is tokenized alone; with `add_bos` (the default) it starts with the
tokenizer's BOS token (EOS when there is none) so that its first token is predicted too. A text longer than
`max_length` tokens is scored with a sliding window (the method of the transformers perplexity guide): each
window predicts the next `stride` tokens, with the up to `max_length - stride` tokens before them as extra
context, so every token is predicted exactly once. The default `stride = max_length - 1` is the fastest; a
smaller stride gives each token more context at more cost.

torch is imported inside the functions: `llmlab.evaluation.metrics` itself does not import this module.

Parity: tests/evaluation/test_perplexity.py::test_matches_independent_nll (exp of the mean token negative
log-likelihood computed with a plain forward pass and log_softmax).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llmlab.errors import ConfigError, DataError

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class PerplexityConfig:
    """How texts are cut and scored."""

    max_length: int | None = None
    """Longest window in tokens (default: the model's context length, at most 1024)."""
    stride: int | None = None
    """Tokens each window predicts, below max_length (default: max_length - 1)."""
    add_bos: bool = True
    """Start each text with the BOS token (EOS if there is none) so its first token is scored."""

    def __post_init__(self) -> None:
        if self.max_length is not None and self.max_length < 2:
            raise ConfigError(f"--max-length must be at least 2 tokens, got {self.max_length}")
        if self.stride is not None and self.stride < 1:
            raise ConfigError(f"--stride must be at least 1, got {self.stride}")
        if self.stride is not None and self.max_length is not None and self.stride >= self.max_length:
            raise ConfigError(f"--stride ({self.stride}) must be below --max-length ({self.max_length})")


@dataclass(frozen=True)
class PerplexityResult:
    """Corpus perplexity and the per-text statistics it comes from."""

    perplexity: float
    nll: float
    """Mean negative log-likelihood per predicted token (nats)."""
    tokens: int
    """Predicted tokens in total."""
    text_nll: list[float]
    """Sum of the token negative log-likelihoods of each text."""
    text_tokens: list[int]
    """Predicted tokens of each text."""


def _window_nll(model: Any, ids: torch.Tensor, first: int) -> float:
    """Sum of -log p over positions first..len-1 of one window (position p predicted from positions < p)."""
    import torch
    import torch.nn.functional as F

    with torch.inference_mode():
        logits = model(ids[None, :]).logits[0, first - 1 : -1].float()  # (T', V)
    return float(F.cross_entropy(logits, ids[first:], reduction="sum").double())


def sequence_nll(model: Any, ids: Sequence[int], max_length: int, stride: int) -> tuple[float, int]:
    """(sum of negative log-likelihoods, number of predicted tokens) of one token sequence.

    Tokens 1.. are predicted `stride` at a time; the window for tokens [done, end) starts at
    max(0, end - max_length), so each has at least max_length - stride tokens of context (or all before it).
    """
    import torch

    if not 1 <= stride < max_length:
        raise ConfigError(
            f"--stride must be in [1, {max_length - 1}] for --max-length {max_length}, got {stride}"
        )
    device = next(model.parameters()).device
    tensor = torch.tensor(list(ids), dtype=torch.long, device=device)
    total, done = 0.0, 1  # position 0 has no context and is never predicted
    while done < len(ids):
        end = min(done + stride, len(ids))
        begin = max(0, end - max_length)
        total += _window_nll(model, tensor[begin:end], done - begin)
        done = end
    return total, max(len(ids) - 1, 0)


def _context_length(model: Any) -> int:
    config = model.config
    for attr in ("max_position_embeddings", "n_positions", "n_ctx"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return min(value, 1024)
    return 1024


def _encode(tokenizer: Any, text: str, add_bos: bool) -> list[int]:
    ids: list[int] = tokenizer(text, add_special_tokens=False)["input_ids"]
    if add_bos:
        start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        if start is not None:
            ids = [start, *ids]
    return ids


def perplexity(
    model: Any, tokenizer: Any, texts: Sequence[str], config: PerplexityConfig | None = None
) -> PerplexityResult:
    """Corpus perplexity of `model` (a causal LM returning `.logits`) on `texts`.

    Raises:
        ConfigError: a window longer than the model's context.
        DataError: no text has a token to predict.
    """
    config = config or PerplexityConfig()
    context = _context_length(model)
    limit = getattr(model.config, "max_position_embeddings", None) or context
    max_length = config.max_length or context
    if max_length > limit:
        raise ConfigError(
            f"--max-length {max_length} exceeds the model's context of {limit} tokens; lower it"
        )
    stride = config.stride or max_length - 1
    nlls, counts = [], []
    for text in texts:
        nll, count = sequence_nll(model, _encode(tokenizer, text, config.add_bos), max_length, stride)
        nlls.append(nll)
        counts.append(count)
    total = sum(counts)
    if total == 0:
        raise DataError("no text has a token to predict; give texts of at least one token")
    mean = sum(nlls) / total
    return PerplexityResult(math.exp(mean), mean, total, nlls, counts)


def perplexity_from_statistics(nll_sum: float, tokens: float) -> float:
    """exp(total NLL / total tokens): the corpus perplexity from summed per-text statistics (for bootstrap)."""
    return math.exp(nll_sum / tokens) if tokens else math.inf
