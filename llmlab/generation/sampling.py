"""From next-token logits to a token: greedy, random sampling, temperature, top-k, top-p, min-p, repetition penalty.

    p(x) = softmax(z / T)                     temperature T > 0 (T = 0 means greedy)
    top-k: keep tokens whose logit >= the k-th largest (ties kept)
    top-p (nucleus, Holtzman et al., 2019, arXiv:1904.09751): keep the smallest set of most likely tokens whose
           probability mass reaches p; min-p (Nguyen et al., 2024, arXiv:2407.01082): keep p(x) >= min_p * max p
    repetition penalty (Keskar et al., 2019, CTRL): a seen token's logit z becomes z / r if z > 0 else z * r

The order is the one transformers applies: repetition penalty, temperature, top-k, top-p, min-p. Each filter is a
pure function on a (B, V) logits tensor that sets removed entries to -inf, matching transformers'
`RepetitionPenaltyLogitsProcessor`, `TemperatureLogitsWarper`, `TopKLogitsWarper`, `TopPLogitsWarper` and
`MinPLogitsWarper` exactly. Randomness only comes from explicit, seeded `torch.Generator`s, one per row and on the
logits' device, so a row samples the same tokens whether it runs alone or in a batch.
Parity: tests/generation/test_sampling.py::test_filters_match_transformers_processors
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from llmlab.generation.config import SamplingParams

NEG_INF = float("-inf")


def apply_repetition_penalty(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """Penalise tokens marked in `seen` (B, V) bool: z / r if z > 0 else z * r."""
    if penalty == 1.0:
        return logits
    penalised = torch.where(logits < 0, logits * penalty, logits / penalty)
    return torch.where(seen, penalised, logits)


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    return logits if temperature == 1.0 else logits / temperature


def top_k_filter(logits: torch.Tensor, top_k: int) -> torch.Tensor:
    """Keep logits >= the k-th largest in each row (ties with the k-th are kept, as in transformers)."""
    if top_k <= 0 or top_k >= logits.shape[-1]:
        return logits
    kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]  # (B, 1)
    return logits.masked_fill(logits < kth, NEG_INF)


def top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Nucleus filter: drop the least likely tokens whose cumulative mass is <= 1 - top_p; keep the top one."""
    if top_p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, dim=-1)  # ascending, (B, V)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    remove_sorted = cumulative <= (1 - top_p)
    remove_sorted[..., -1:] = False
    remove = remove_sorted.scatter(-1, order, remove_sorted)
    return logits.masked_fill(remove, NEG_INF)


def min_p_filter(logits: torch.Tensor, min_p: float) -> torch.Tensor:
    """Drop tokens with probability < min_p * (probability of the most likely token)."""
    if min_p <= 0.0:
        return logits
    probs = logits.softmax(dim=-1)
    remove = probs < min_p * probs.amax(dim=-1, keepdim=True)
    remove.scatter_(-1, probs.argmax(dim=-1, keepdim=True), False)
    return logits.masked_fill(remove, NEG_INF)


def process_logits(
    logits: torch.Tensor, params: SamplingParams, seen: torch.Tensor | None = None
) -> torch.Tensor:
    """Apply the penalty and every enabled filter, in transformers' order, to (B, V) float logits."""
    if seen is not None:
        logits = apply_repetition_penalty(logits, seen, params.repetition_penalty)
    if params.is_greedy:
        return logits
    logits = apply_temperature(logits, params.temperature)
    logits = top_k_filter(logits, params.top_k)
    logits = top_p_filter(logits, params.top_p)
    return min_p_filter(logits, params.min_p)


def greedy(logits: torch.Tensor) -> torch.Tensor:
    """(B, V) -> (B,) argmax ids."""
    return logits.argmax(dim=-1)


def sample(logits: torch.Tensor, generators: Sequence[torch.Generator]) -> torch.Tensor:
    """(B, V) processed logits -> (B,) ids drawn from softmax(logits), row i with generators[i]."""
    probs = logits.float().softmax(dim=-1)
    rows = [torch.multinomial(probs[i], 1, generator=g) for i, g in enumerate(generators)]
    return torch.cat(rows)


def choose_tokens(
    logits: torch.Tensor,
    params: SamplingParams,
    generators: Sequence[torch.Generator],
    seen: torch.Tensor | None = None,
) -> torch.Tensor:
    """The next token for each row: (B, V) raw logits -> (B,) ids."""
    processed = process_logits(logits, params, seen)
    return greedy(processed) if params.is_greedy else sample(processed, generators)


def make_generator(seed: int | None, device: str | torch.device = "cpu") -> torch.Generator:
    """A generator on the logits' device (torch.multinomial needs both on one device), seeded with `seed`,
    or from the OS's entropy when None."""
    g = torch.Generator(device=device)
    if seed is None:
        g.seed()
    else:
        g.manual_seed(seed)
    return g


def make_generators(
    seed: int | None, batch_size: int, device: str | torch.device = "cpu"
) -> list[torch.Generator]:
    """One generator per row; row i is seeded with seed + i, so a batch row draws what a single run with
    that seed draws."""
    return [make_generator(None if seed is None else seed + row, device) for row in range(batch_size)]
