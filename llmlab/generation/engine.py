"""The decoding loop: prefill, then one token per step from a KV cache, for a batch of prompts.

    prompts -> left-pad -> prefill (last logits) -> [penalty, temperature, top-k, top-p, min-p, mask] -> token
            -> detokenize incrementally -> stop token / stop string / max_new_tokens -> drop finished rows

Departures from transformers' `generate`: finished rows leave the batch (their KV cache rows are dropped),
stop strings are handled on text rather than tokens, and each row has its own seeded generator (row i uses
seed + i). Greedy output is token-identical to `generate(do_sample=False)`.
Parity: tests/generation/test_engine.py::test_greedy_matches_transformers_generate (fast, tiny Llama) and
tests/generation/test_engine_slow.py::test_greedy_matches_transformers_on_smollm2 (slow).

Hooks kept for later work: `allowed_tokens(row, generated_ids) -> bool mask (V,)` for constrained decoding of
tool calls, `prefix_embeds` (P, H) for prompt tuning's virtual tokens, per-token log-probs for RLHF, and
`stream_batch` (one event list per step) for serving.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from llmlab.errors import ConfigError, ModelError
from llmlab.generation.backends import Backend, PromptBatch, make_backend
from llmlab.generation.config import GenerationConfig
from llmlab.generation.sampling import choose_tokens, make_generators
from llmlab.generation.streaming import IncrementalDetokenizer, StopStrings

AllowedTokens = Callable[[int, Sequence[int]], "torch.Tensor | None"]
PRECISIONS = ("auto", "fp32", "bf16", "int8", "hf")


@dataclass
class Completion:
    """One prompt's result."""

    text: str
    token_ids: list[int]
    finish_reason: Literal["stop", "length"]
    prompt_tokens: int
    logprobs: list[float] | None = None
    seconds: float = 0.0

    @property
    def completion_tokens(self) -> int:
        return len(self.token_ids)


class _Row:
    """Per-sequence bookkeeping: tokens, visible text, stop handling."""

    def __init__(
        self, tokenizer: Any, stops: StopStrings, stop_ids: set[int], prompt_tokens: int, logprobs: bool
    ):
        self.detok = IncrementalDetokenizer(tokenizer)
        self.stops, self.stop_ids = stops, stop_ids
        self.prompt_tokens = prompt_tokens
        self.ids: list[int] = []
        self.logprobs: list[float] | None = [] if logprobs else None
        self.text = ""
        self.shown = 0
        self.finish: Literal["stop", "length"] | None = None

    def push(self, token: int, logprob: float | None) -> str:
        """Add a token; return the newly visible text."""
        self.ids.append(token)
        if self.logprobs is not None and logprob is not None:
            self.logprobs.append(logprob)
        if token in self.stop_ids:
            self.finish = "stop"
            return self._release()
        piece = self.detok.push(token)
        self.text += piece
        cut = self.stops.find(self.text, len(self.text) - len(piece))
        if cut >= 0:
            self.text = self.text[:cut]
            self.finish = "stop"
            return self._release()
        safe = self.stops.safe_length(self.text)
        out, self.shown = self.text[self.shown : safe], max(self.shown, safe)
        return out

    def end(self) -> str:
        """Out of budget: flush held-back text."""
        self.finish = "length"
        self.text += self.detok.flush()
        return self._release()

    def _release(self) -> str:
        out, self.shown = self.text[self.shown :], len(self.text)
        return out

    def completion(self, seconds: float) -> Completion:
        assert self.finish is not None
        return Completion(self.text, self.ids, self.finish, self.prompt_tokens, self.logprobs, seconds)


class TextStream:
    """Iterator of text pieces for one prompt; `.completion` is set once it is exhausted."""

    def __init__(self, events: Iterator[list[tuple[int, str]]], rows: list[_Row], started: float):
        self._events, self._rows, self._started = events, rows, started
        self.completion: Completion | None = None

    def __iter__(self) -> Iterator[str]:
        for step in self._events:
            for _, piece in step:
                if piece:
                    yield piece
        self.completion = self._rows[0].completion(time.perf_counter() - self._started)


class Engine:
    """Generates text from a decoder-only or encoder-decoder model with our own KV-cache loop."""

    def __init__(self, model: Any, tokenizer: Any, kind: str = "decoder-only", precision: str = "auto"):
        if precision not in PRECISIONS:
            raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.model, self.tokenizer, self.kind = model, tokenizer, kind
        self.backend: Backend = make_backend(model, kind, precision, tokenizer)
        self.context_length = self._context_length(model.config)
        self.eos_ids = self._eos_ids(model, tokenizer)
        self.pad_id = (
            tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.eos_ids or {0})
        )

    @classmethod
    def from_loaded(cls, loaded: Any, precision: str = "auto") -> Engine:
        """Build from `llmlab.models.load_model(...)`'s result."""
        if loaded.kind == "encoder-only":
            raise ModelError(f"{loaded.name} is an encoder-only model: it embeds text but cannot generate")
        return cls(loaded.model, loaded.tokenizer, loaded.kind, precision)

    @staticmethod
    def _context_length(config: Any) -> int:
        from llmlab.models.loading import context_length

        return context_length(config)

    @staticmethod
    def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
        ids: set[int] = set()
        gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        for value in (gen_eos, tokenizer.eos_token_id):
            if isinstance(value, int):
                ids.add(value)
            elif isinstance(value, list | tuple):
                ids.update(int(v) for v in value)
        return ids

    def encode(self, prompt: str | Sequence[int]) -> list[int]:
        """Token ids of a prompt; text that already starts with the BOS token (a rendered chat template)
        gets no second one."""
        if not isinstance(prompt, str):
            return [int(t) for t in prompt]
        bos = self.tokenizer.bos_token
        add_special = not (bos and prompt.startswith(bos))
        return list(self.tokenizer(prompt, add_special_tokens=add_special)["input_ids"])

    def generate(
        self,
        prompts: Sequence[str | Sequence[int]] | str,
        config: GenerationConfig | None = None,
        *,
        allowed_tokens: AllowedTokens | None = None,
        prefix_embeds: torch.Tensor | None = None,
    ) -> list[Completion]:
        """Complete every prompt (batched); returns one Completion per prompt, in order."""
        batch: list[str | Sequence[int]] = [prompts] if isinstance(prompts, str) else list(prompts)
        started = time.perf_counter()
        rows, events = self._start(batch, config or GenerationConfig(), allowed_tokens, prefix_embeds)
        for _ in events:
            pass
        seconds = time.perf_counter() - started
        return [row.completion(seconds) for row in rows]

    def stream(
        self, prompt: str | Sequence[int], config: GenerationConfig | None = None, **hooks: Any
    ) -> TextStream:
        """Stream one prompt's completion as text pieces (never splitting a character)."""
        started = time.perf_counter()
        rows, events = self._start([prompt], config or GenerationConfig(), **hooks)
        return TextStream(events, rows, started)

    def stream_batch(
        self, prompts: Sequence[str | Sequence[int]], config: GenerationConfig | None = None, **hooks: Any
    ) -> tuple[list[_Row], Iterator[list[tuple[int, str]]]]:
        """Rows plus an iterator of per-step events [(row index, new text)]; for servers."""
        return self._start(list(prompts), config or GenerationConfig(), **hooks)

    def _start(
        self,
        prompts: list[str | Sequence[int]],
        config: GenerationConfig,
        allowed_tokens: AllowedTokens | None = None,
        prefix_embeds: torch.Tensor | None = None,
    ) -> tuple[list[_Row], Iterator[list[tuple[int, str]]]]:
        if not prompts:
            raise ConfigError("no prompts given")
        ids = [self.encode(p) for p in prompts]
        budget = self._budget(ids, config, 0 if prefix_embeds is None else prefix_embeds.shape[0])
        stops = StopStrings(config.stop)
        stop_ids = set(config.stop_token_ids) | (set() if config.ignore_eos else self.eos_ids)
        rows = [_Row(self.tokenizer, stops, stop_ids, len(p), config.logprobs) for p in ids]
        loop = self._loop(ids, rows, config, budget, allowed_tokens, prefix_embeds)
        return rows, loop

    def _budget(self, ids: list[list[int]], config: GenerationConfig, prefix: int) -> int:
        if any(len(p) == 0 for p in ids) and self.kind != "encoder-decoder":
            raise ConfigError("a prompt is empty; give at least one token of text")
        longest = max(len(p) for p in ids) + prefix
        if self.kind != "encoder-decoder" and longest >= self.context_length:
            over = longest - self.context_length + 1
            raise ModelError(
                f"the prompt is {longest} tokens, {over} more than fit in the model's context window of "
                f"{self.context_length} (one position is needed for the answer); shorten the prompt"
            )
        room = self.context_length - (0 if self.kind == "encoder-decoder" else longest)
        return min(config.max_new_tokens, room)

    def _pad(self, ids: list[list[int]]) -> PromptBatch:
        width = max(len(p) for p in ids)
        input_ids = torch.full((len(ids), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.bool)
        for r, p in enumerate(ids):
            if p:
                input_ids[r, width - len(p) :] = torch.tensor(p)
                mask[r, width - len(p) :] = True
        return PromptBatch(input_ids, mask)

    def _loop(
        self,
        ids: list[list[int]],
        rows: list[_Row],
        config: GenerationConfig,
        budget: int,
        allowed_tokens: AllowedTokens | None,
        prefix_embeds: torch.Tensor | None,
    ) -> Iterator[list[tuple[int, str]]]:
        params = config.sampling()
        generators = make_generators(config.seed, len(rows))
        seen = self._seen_mask(ids) if params.repetition_penalty != 1.0 else None
        batch = self._pad(ids)
        batch.prefix_embeds = prefix_embeds
        logits, state = self.backend.prefill(batch, budget)
        active = list(range(len(rows)))  # row index of each state row
        for step in range(budget):
            masked = self._mask(logits.clone(), active, rows, allowed_tokens) if allowed_tokens else logits
            tokens = choose_tokens(masked, params, [generators[r] for r in active], seen)
            logps = self._logprobs(logits, tokens) if config.logprobs else [None] * len(active)
            events, keep = [], []
            for j, (r, tok) in enumerate(zip(active, tokens.tolist(), strict=True)):
                piece = rows[r].push(tok, logps[j])
                if rows[r].finish is None and step == budget - 1:
                    piece += rows[r].end()
                events.append((r, piece))
                if rows[r].finish is None:
                    keep.append(j)
            yield events
            if not keep:
                return
            if len(keep) < len(active):
                kept = torch.tensor(keep, dtype=torch.long)
                self.backend.select(state, kept)
                tokens = tokens.index_select(0, kept)
                seen = None if seen is None else seen.index_select(0, kept)
                active = [active[j] for j in keep]
            if seen is not None:
                seen[torch.arange(len(active)), tokens] = True
            logits = self.backend.step(state, tokens)

    def _seen_mask(self, ids: list[list[int]]) -> torch.Tensor:
        seen = torch.zeros(len(ids), self.backend.vocab_size, dtype=torch.bool)
        for r, p in enumerate(ids):
            seen[r, torch.tensor(p, dtype=torch.long)] = True
        return seen

    @staticmethod
    def _mask(
        logits: torch.Tensor, active: list[int], rows: list[_Row], allowed_tokens: AllowedTokens
    ) -> torch.Tensor:
        for j, r in enumerate(active):
            allowed = allowed_tokens(r, rows[r].ids)
            if allowed is not None:
                logits[j] = logits[j].masked_fill(~allowed.to(logits.device), float("-inf"))
        return logits

    @staticmethod
    def _logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> list[float | None]:
        logp = torch.log_softmax(logits.float(), dim=-1)
        return [float(v) for v in logp.gather(1, tokens[:, None]).squeeze(1)]
