"""The decoding playground's chart: the next-token distribution after each step of the sampler.

    p_model = softmax(z)                  the model's distribution (temperature 1, nothing removed)
    p_T     = softmax(z / T)              after temperature
    p_k     = softmax(top_k(z / T))       after top-k (tokens below the k-th logit get -inf)
    p_p     = softmax(top_p(...))         after top-p (nucleus)
    p_min   = softmax(min_p(...))         after min-p: what `sample` draws from

Each stage is computed with llmlab.generation.sampling's own filters, in the order `process_logits` applies
them, so the chart shows exactly what decoding samples from (repetition penalty aside: it depends on the
text so far and is off in the playground). Greedy decoding is one stage more: all mass on the argmax.
The tokens shown are the `top` most likely under the model; `kept` counts every token a stage leaves,
shown or not. Tests: tests/serving/test_serve_playground.py (stages equal process_logits; hand-checked top-k).
"""

from __future__ import annotations

from typing import Any

import torch

from llmlab.generation.config import SamplingParams
from llmlab.generation.sampling import apply_temperature, min_p_filter, top_k_filter, top_p_filter


def filter_stages(logits: torch.Tensor, params: SamplingParams, top: int = 12) -> dict[str, Any]:
    """(V,) next-token logits -> {"ids": top token ids, "stages": [{"name", "probs", "kept"}]}.

    `probs[i]` is the probability of `ids[i]` at that stage; a filter that removes a token gives it 0.
    """
    z = logits.float().reshape(1, -1)  # (1, V)
    order = torch.topk(z[0], min(top, z.shape[1])).indices  # the model's most likely tokens
    stages: list[tuple[str, torch.Tensor]] = [("model", z)]
    if params.is_greedy:
        greedy = torch.full_like(z, float("-inf"))
        greedy[0, z[0].argmax()] = 0.0
        stages.append(("greedy", greedy))
    else:
        current = apply_temperature(z, params.temperature)
        stages.append((f"temperature {params.temperature:g}", current))
        for name, active, step in (
            (f"top-k {params.top_k}", params.top_k > 0, lambda x: top_k_filter(x, params.top_k)),
            (f"top-p {params.top_p:g}", params.top_p < 1.0, lambda x: top_p_filter(x, params.top_p)),
            (f"min-p {params.min_p:g}", params.min_p > 0.0, lambda x: min_p_filter(x, params.min_p)),
        ):
            if active:
                current = step(current)
                stages.append((name, current))
    out = []
    for name, values in stages:
        probs = values.softmax(dim=-1)[0]
        out.append(
            {
                "name": name,
                "probs": [round(float(p), 6) for p in probs[order]],
                "kept": int(torch.isfinite(values).sum()),
            }
        )
    return {"ids": [int(i) for i in order], "stages": out}


def next_token_logits(engine: Any, ids: list[int], prefix_embeds: torch.Tensor | None = None) -> torch.Tensor:
    """(V,) logits for the token after `ids` (after `prefix_embeds` virtual tokens, if any), through the
    backend decoding uses (same weights and kernels)."""
    from llmlab.generation.batcher import pad_prompts

    batch = pad_prompts([ids], engine.pad_id)
    batch.prefix_embeds = prefix_embeds
    with torch.inference_mode():
        logits, _ = engine.backend.prefill(batch, 1)
    return logits[0].float().cpu()
