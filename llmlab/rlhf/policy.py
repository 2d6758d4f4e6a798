"""Scoring completions with a causal LM: per-token log-probs, entropies and values at the completion positions.

    h      = body(input_ids)                          (B, T, H) last hidden states, one forward
    keep   = completion_mask[:, 1:]                   position t-1 predicts token t
    logits = lm_head(h[:, :-1][keep]) / temperature   (N, V): only the N completion tokens, never B·T·V
    log pi(y_t | x, y_<t) = logits[y_t] - logsumexp(logits)                    (float32)
    H_t    = logsumexp(logits) - Σ_v softmax(logits)_v logits_v               (entropy, nats)
    V_t    = value_head(h_{t-1})                      the state before token t is chosen

The maths are those of `llmlab.rlhf.logprobs` on the full (B, T, V) logits; the projection runs only on the
completion positions, as `llmlab.training.causal_lm` does for the language-modelling loss: prompt tokens and
padding cost no vocabulary-sized logits (for SmolLM2, V = 49,152, the full float32 logits of a DPO batch are
its largest tensor). Sequences are right-padded, so a causal model needs no attention mask: real tokens never
attend to the pads after them. Models whose logits are more than `lm_head(hidden)` take the full forward.
The value head reads the same hidden states as the policy, as trl's `AutoModelForCausalLMWithValueHead`.

Without entropies (DPO, the reference and rollout scoring) the (N, V) logits are never held at once either:
the projection and its logsumexp run on `CHUNK` positions at a time, and under autograd each chunk is
checkpointed, so the backward pass recomputes its logits instead of keeping them (one (CHUNK, V) block alive
instead of about three (N, V) tensors: the logits, their float32 scaled copy and logsumexp's saved input).
Parity: tests/rlhf/test_policy.py::test_equals_full_logits (against `completion_token_logprobs`) and
test_chunked_gradients_equal_the_full_ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from llmlab.training.causal_lm import split_head

CHUNK = 64
"""Completion positions projected onto the vocabulary at once when no entropy is needed: (64, V) float32 is
12.6 MB for SmolLM2's 49,152 tokens."""


@dataclass
class CompletionScores:
    """Per-token results of `score_completions`, each (B, T-1) float32 aligned with `mask`, 0 outside it."""

    logprobs: torch.Tensor
    mask: torch.Tensor
    """(B, T-1) bool: token t+1 of the sequence is a completion token."""
    entropy: torch.Tensor | None = None
    values: torch.Tensor | None = None

    def sequence_logprobs(self) -> torch.Tensor:
        """(B,) log pi(completion | prompt): the sum over the completion tokens."""
        return self.logprobs.sum(dim=-1)


def _scatter(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(N,) values into a (B, T-1) float32 grid at the mask's true positions (differentiable)."""
    grid = torch.zeros(mask.shape, dtype=torch.float32, device=values.device)
    return grid.masked_scatter(mask, values.float())


def completion_hidden(
    model: Any, input_ids: torch.Tensor, keep: torch.Tensor, attention_mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """((N, H) hidden states that predict the completion tokens, (N, V) their logits).

    Args:
        model: a transformers causal LM (LoRA or other adapters may be injected).
        input_ids: (B, T) right-padded prompt + completion.
        keep: (B, T-1) bool, true where the next token is a completion token.
        attention_mask: (B, T) or None (right padding needs none).
    """
    parts = split_head(model)
    if parts is not None:
        body, head = parts
        out = body(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        hidden = (out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0])[:, :-1][keep]
        return hidden, head(hidden)
    out = model(
        input_ids=input_ids, attention_mask=attention_mask, use_cache=False, output_hidden_states=True
    )
    return out.hidden_states[-1][:, :-1][keep], out.logits[:, :-1][keep]


def score_completions(
    model: Any,
    input_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    temperature: float = 1.0,
    entropy: bool = False,
    value_head: nn.Module | None = None,
    attention_mask: torch.Tensor | None = None,
) -> CompletionScores:
    """Log-probs of the completion tokens of whole sequences (and optionally entropies and values).

    Args:
        model: a causal LM.
        input_ids: (B, T) prompt + completion, right-padded.
        completion_mask: (B, T) true on the completion tokens (false on the prompt and the padding).
        temperature: the logits are divided by it first, as at sampling time.
        entropy: also return each completion position's entropy (nats).
        value_head: a module mapping (N, H) hidden states to (N, 1) values, or None.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    keep = completion_mask[:, 1:].bool()  # (B, T-1)
    labels = input_ids[:, 1:][keep]  # (N,)
    parts = None if entropy else split_head(model)
    if parts is not None:  # the lean path: never the whole (N, V) logits
        body, head = parts
        out = body(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        hidden = (out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0])[:, :-1][keep]
        scores = CompletionScores(_scatter(chunked_logprobs(head, hidden, labels, temperature), keep), keep)
        if value_head is not None:
            scores.values = _scatter(value_head(hidden).squeeze(-1), keep)
        return scores
    hidden, logits = completion_hidden(model, input_ids, keep, attention_mask)
    scaled = logits.float() / temperature  # (N, V)
    logz = torch.logsumexp(scaled, dim=-1)  # (N,)
    logp = scaled.gather(-1, labels.unsqueeze(-1)).squeeze(-1) - logz
    scores = CompletionScores(_scatter(logp, keep), keep)
    if entropy:
        probs = torch.softmax(scaled, dim=-1)
        scores.entropy = _scatter(logz - (probs * scaled).sum(dim=-1), keep)
    if value_head is not None:
        scores.values = _scatter(value_head(hidden).squeeze(-1), keep)
    return scores


def _logprobs(
    head: nn.Module, hidden: torch.Tensor, labels: torch.Tensor, temperature: float
) -> torch.Tensor:
    """(n,) log softmax(head(hidden) / temperature) at `labels`, in float32."""
    scaled = head(hidden).float() / temperature  # (n, V)
    return scaled.gather(-1, labels.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(scaled, dim=-1)


def chunked_logprobs(
    head: nn.Module, hidden: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0, chunk: int = CHUNK
) -> torch.Tensor:
    """log pi(labels) from the hidden states that predict them, `chunk` positions at a time.

    Equal to log_softmax(head(hidden) / temperature) gathered at `labels`, but the peak holds one (chunk, V)
    block of logits. Under autograd each chunk is checkpointed: the backward pass recomputes the chunk's
    logits from its (chunk, H) hidden states (one extra projection, about 1/3 of its cost with the backward)
    rather than keeping (N, V) floats alive until the loss is differentiated.

    Args:
        head: the output projection, (n, H) -> (n, V).
        hidden: (N, H) hidden states.
        labels: (N,) the tokens they predict.

    Returns:
        (N,) float32 log-probabilities.
    """
    from torch.utils.checkpoint import checkpoint

    track = torch.is_grad_enabled() and (
        hidden.requires_grad or any(p.requires_grad for p in head.parameters())
    )
    pieces = []
    for start in range(0, hidden.shape[0], chunk):
        h, y = hidden[start : start + chunk], labels[start : start + chunk]  # (n, H), (n,)
        if track:
            piece = checkpoint(
                _logprobs, head, h, y, temperature, use_reentrant=False, preserve_rng_state=False
            )
        else:
            piece = _logprobs(head, h, y, temperature)
        pieces.append(piece)
    return torch.cat(pieces) if pieces else hidden.new_zeros(0, dtype=torch.float32)


class ValueHead(nn.Module):
    """V(h) = w·h + b: a scalar estimate of the return from a hidden state; zero at init (trl's `ValueHead`
    without its dropout), so the first advantages are the returns themselves."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.summary = nn.Linear(hidden_size, 1)
        nn.init.zeros_(self.summary.weight)
        nn.init.zeros_(self.summary.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.summary(hidden.to(self.summary.weight.dtype))
        return out


def hidden_size(config: Any) -> int:
    """The width of a model's last hidden states."""
    for attr in ("hidden_size", "d_model", "n_embd", "dim"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    raise ValueError(f"cannot tell the hidden size of a {type(config).__name__}")
