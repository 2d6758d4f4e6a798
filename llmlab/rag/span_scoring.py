"""Choosing an extractive answer's span by likelihood instead of greedily (--span-choice likelihood).

    score(span) = log p(t_1 .. t_k, EOS | prompt) = sum_i log p(t_i | prompt, t_<i) + log p(EOS | prompt, t_1..t_k)
    candidates  = the `starts` most likely first tokens among the spans' starts (extractive.py), each continued
                  along its block up to `max_tokens` tokens or the sentence's end; every word end is a candidate
    answer      = argmax score over the candidates (spans only: see `candidates` on NOT_FOUND)

Greedy decoding under the span mask (the default) commits to its first token: "The" is the likeliest opening
of any answer, so it tends to quote a whole sentence that starts with "The". Scoring whole spans, end token
included, compares "a paper jam in the duplex unit" with "A radiator that is cold ..." as answers. The prompt
is run once; the candidates are scored in one batch on copies of its KV cache (transformers' forward, the
model's own weights). bench/rag_answers.py --answer-styles extractive,extractive+likelihood compares the two.
Tests: tests/rag/test_extractive.py::test_likelihood_choice_is_the_best_scoring_candidate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from llmlab.rag.extractive import SpanConstraint


def candidates(
    constraint: SpanConstraint, first_logps: torch.Tensor, starts: int, max_tokens: int
) -> list[tuple[float, list[int]]]:
    """(log p of the first token, token ids) for the `starts` best starts. Whole-only sequences (NOT_FOUND) are
    left out: a copy of the few-shot example's reply, it was the likeliest sequence for every question tried on
    the guide's notes example, answerable or not; refusing is left to the relevance gate (--min-relevance)."""
    scored: dict[tuple[int, ...], float] = {}
    for token, places in constraint.first.items():
        for b, p in places:
            block = constraint.blocks[b]
            length = len(block.ids) - p if block.whole else max_tokens
            ids = [token]
            for q in range(p + 1, min(len(block.ids), p + length)):
                if block.closes[q]:
                    break
                ids.append(block.ids[q])
            key = tuple(ids)
            scored[key] = max(scored.get(key, -float("inf")), float(first_logps[token]))
    ranked = sorted(scored.items(), key=lambda kv: -kv[1])
    return [(s, list(k)) for k, s in ranked if not constraint.is_whole(list(k))][:starts]


@torch.inference_mode()
def choose_span(
    model: Any,
    prompt_ids: Sequence[int],
    constraint: SpanConstraint,
    starts: int = 16,
    max_tokens: int = 24,
) -> list[int]:
    """The token ids (EOS last) of the candidate span with the highest log p(span, EOS | prompt)."""
    device = next(model.parameters()).device
    out = model(input_ids=torch.tensor([list(prompt_ids)], device=device), use_cache=True)
    first = torch.log_softmax(out.logits[0, -1].float(), dim=-1)  # (V,)
    found = candidates(constraint, first, starts, max_tokens)
    width = max(len(ids) for _, ids in found)
    batch = torch.full((len(found), width), 0, dtype=torch.long, device=device)  # right-padded (M, L)
    for i, (_, ids) in enumerate(found):
        batch[i, : len(ids)] = torch.tensor(ids)
    cache = out.cache
    cache.batch_repeat_interleave(len(found))
    mask = torch.ones(len(found), len(prompt_ids) + width, dtype=torch.long, device=device)
    logps = torch.log_softmax(model(input_ids=batch, cache=cache, attention_mask=mask).logits.float(), -1)
    stops = torch.tensor(constraint.stop_ids, device=device)
    end = torch.logsumexp(logps[:, :, stops], dim=-1)  # (M, L) log p(EOS) after token j
    best, chosen = -float("inf"), found[0][1]
    for i, (first_logp, ids) in enumerate(found):
        score = first_logp
        for j in range(len(ids)):
            if j:
                score += float(logps[i, j - 1, ids[j]])
            if constraint.may_stop(ids[: j + 1]) and score + float(end[i, j]) > best:
                best, chosen = score + float(end[i, j]), ids[: j + 1]
    return [*chosen, constraint.stop_ids[0]]
