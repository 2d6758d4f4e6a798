"""Prompt-lookup decoding: greedy speculative decoding whose draft is copied from the context.

Speculative decoding (Leviathan et al., 2023, arXiv:2211.17192), greedy case, with the draft model replaced by a
lookup in the text already there (Saxena, 2023, "Prompt Lookup Decoding", github apoorvumang/prompt-lookup-decoding):

    draft:   among the earlier occurrences of the context's last token, the one whose preceding tokens match the
             context's longest (m tokens matched, latest on ties); propose the min(m, K) tokens that followed it
    verify:  one forward pass over [t, d_1, .., d_k] gives the greedy choices g_0 .. g_k (g_i follows d_i)
    accept:  the longest prefix with d_i = g_(i-1) for i = 1 .. n; the logits at position n give the token after
             (so a pass yields n + 1 tokens, and never fewer than the plain step's one)

Exact by construction: a token is emitted only if it is the argmax of the model's logits for its own prefix, which
is what plain greedy decoding emits. The verify pass runs several positions in one matmul, so its logits differ
from a one-position step's in the last bits of float rounding, as a prefill's do. With fp32 weights that stays
at ~1e-5 on SmolLM2's logits, and a token could only change where two logits tie to that precision (none in the
tests). With int8 (or bf16) weights it does not stay small: a rounding-level difference moves an activation
across a quantization step, and through 30 layers the logits of the same tokens differ by about 1 (measured on
SmolLM2 int8: max 1.3 between a prefill and steps), which flips near ties (3 of 20 guide answers changed
somewhere). So by default (`GenerationConfig.prompt_lookup` unset) prompt lookup runs only where the backend's
verify pass is exact (fp32: `DecoderBackend.exact_verify`); `prompt_lookup=True` forces it on int8 and bf16 too.
Where it pays: answers that quote their prompt (RAG over documents, code edits, summaries); where nothing
matches, the step is the plain one.

Departure from transformers' `PromptLookupCandidateGenerator` (the earliest occurrence of the last 1..N tokens,
always K tokens drafted): the longest match, and a draft as long as the match. A long match predicts a long
copy, a one-token match rarely predicts more than a token, and each drafted token costs a position of compute in
the verify pass. On the guide's RAG answers (SmolLM2, bench/speculative.py's prompts, replayed offline with a
verify pass costing 1 + 0.2 k steps, as measured on 2 busy cores) that gave 1.38x fewer step-equivalents
against 1.08x for transformers' rule with N = 3, K = 4 (and 0.83x with K = 8).
Tests: tests/generation/test_speculative.py (hand-derived drafts; greedy output identical with and without on
tiny random models, fp32 and transformers' forward, batch 1 and batches; SmolLM2 RAG prompts, slow).
The engine side (verify, roll back, hand out the accepted tokens one step at a time) is in batcher.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

DRAFT_TOKENS = 8
"""Most tokens drafted per verify pass (and the longest match looked for)."""
CANDIDATES = 256
"""Earlier occurrences of the last token examined, latest first (bounds the lookup's cost per step)."""


class PromptLookup:
    """The token positions of one sequence (prompt + generated tokens) and its drafts.

    Args:
        ids: the tokens so far; `extend` adds generated ones.
        num_tokens: most tokens a draft proposes (also the longest match measured).
    """

    def __init__(self, ids: Iterable[int] = (), num_tokens: int = DRAFT_TOKENS):
        if num_tokens < 1:
            raise ValueError(f"num_tokens must be >= 1, got {num_tokens}")
        self.num_tokens = num_tokens
        self.ids: list[int] = []
        self._where: dict[int, list[int]] = {}  # token -> its positions, in order
        self.extend(ids)

    def extend(self, ids: Iterable[int]) -> None:
        for token in ids:
            self._where.setdefault(int(token), []).append(len(self.ids))
            self.ids.append(int(token))

    def match(self) -> tuple[int, int]:
        """(position, length) of the earlier occurrence of the last token whose preceding tokens match the
        context's longest (length counts the token itself, at most `num_tokens`; latest on ties); (-1, 0)
        when the last token did not occur before."""
        ids, end = self.ids, len(self.ids)
        if not ids:
            return -1, 0
        best, best_len = -1, 0
        for p in reversed(self._where[ids[-1]][-CANDIDATES - 1 : -1]):
            n = 1
            while n < self.num_tokens and p - n >= 0 and ids[p - n] == ids[end - 1 - n]:
                n += 1
            if n > best_len:
                best, best_len = p, n
                if n == self.num_tokens:
                    break
        return best, best_len

    def draft(self, limit: int | None = None) -> list[int]:
        """The tokens after the best match, as many as it matched (at most `limit`); [] when none."""
        position, length = self.match()
        most = length if limit is None else min(length, limit)
        return self.ids[position + 1 : position + 1 + most] if most > 0 else []


@dataclass
class SpeculationStats:
    """Counts over a batcher's life, for benchmarks and tests (how much the drafts paid)."""

    passes: int = 0
    """Verify passes run (forward passes over a drafted step)."""
    drafted: int = 0
    """Draft tokens verified (per row)."""
    accepted: int = 0
    """Draft tokens accepted (per row; each saved one forward pass)."""


def draft_batch(drafts: Sequence[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad per-row drafts to one (B, K) tensor of ids and a (B, K) bool mask of real draft positions."""
    width = max(len(d) for d in drafts)
    ids = torch.full((len(drafts), width), pad_id, dtype=torch.long)
    valid = torch.zeros((len(drafts), width), dtype=torch.bool)
    for r, d in enumerate(drafts):
        if d:
            ids[r, : len(d)] = torch.tensor(d, dtype=torch.long)
            valid[r, : len(d)] = True
    return ids, valid


def accepted_length(logits: torch.Tensor, drafts: torch.Tensor, valid: torch.Tensor) -> int:
    """Draft tokens every row accepts: the longest prefix where each draft token is the greedy choice after
    the one before it, the minimum over rows (rows share the KV cache's column count).

    Args:
        logits: (B, 1 + K, V) the verify pass's logits; position i predicts the token after input i.
        drafts: (B, K) drafted ids; valid: (B, K) bool, False at padding.
    """
    predicted = logits[:, :-1].argmax(dim=-1)  # (B, K), the same argmax as sampling.greedy
    match = (predicted == drafts.to(predicted.device)) & valid.to(predicted.device)
    return int(match.long().cumprod(dim=1).sum(dim=1).min())
