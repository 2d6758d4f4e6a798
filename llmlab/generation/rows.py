"""One sequence being decoded (`Row`), what a decode step reports about it (`Event`), and its result
(`Completion`).

A row holds everything that is its own in a running batch: its prompt, its decoding settings (sampling
knobs, seed, stop strings and tokens, token budget, log-probs, token-mask hook, virtual-token prefix), the
tokens and visible text so far, and how it ended. `push` adds a token and returns the text that became safe to
show: a stop string is never shown in part (streaming.py holds back text that could still become one), and a
multi-byte character split across byte-level tokens is never shown in half.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from llmlab.generation.config import GenerationConfig, SamplingParams
from llmlab.generation.streaming import IncrementalDetokenizer, StopStrings

if TYPE_CHECKING:
    import torch

FinishReason = Literal["stop", "length", "cancelled"]
AllowedTokens = Callable[[int, Sequence[int]], "torch.Tensor | None"]
"""Token-mask hook: (row handle, generated ids so far) -> (V,) bool tensor of allowed tokens, or None for all."""


@dataclass
class Completion:
    """One prompt's result."""

    text: str
    token_ids: list[int]
    finish_reason: FinishReason
    """"stop" (end-of-sequence token or stop string), "length" (token budget) or "cancelled"."""
    prompt_tokens: int
    logprobs: list[float] | None = None
    seconds: float = 0.0

    @property
    def completion_tokens(self) -> int:
        return len(self.token_ids)


class Event(NamedTuple):
    """What one decode step did to one row."""

    row: int
    """The row's handle (its index in `Engine.generate`'s prompts; `Batcher.add`'s return value)."""
    text: str
    """Text that became visible at this step (often "", e.g. while a stop string might be starting)."""
    token: int | None
    """The token chosen at this step (None when the row was cancelled)."""
    logprob: float | None
    """The token's log-probability under the model, when the row asked for log-probs."""
    finish_reason: FinishReason | None
    """Set on the row's last event: it has left the batch."""


class Row:
    """Per-sequence state in a batch: settings, tokens, visible text, stop handling.

    Args:
        handle: the row's id in its batch.
        prompt_ids: the prompt's token ids.
        config: the row's decoding settings.
        stop_ids: token ids that end the row (the model's end-of-sequence tokens unless `ignore_eos`).
        budget: new tokens allowed (max_new_tokens, capped by the room left in the context window).
    """

    def __init__(
        self,
        handle: int,
        tokenizer: Any,
        prompt_ids: list[int],
        config: GenerationConfig,
        stop_ids: set[int],
        budget: int,
        allowed_tokens: AllowedTokens | None = None,
        prefix_embeds: torch.Tensor | None = None,
    ):
        self.handle, self.prompt_ids, self.config = handle, prompt_ids, config
        self.params: SamplingParams = config.sampling()
        self.stops, self.stop_ids, self.budget = StopStrings(config.stop), stop_ids, budget
        self.allowed_tokens, self.prefix_embeds = allowed_tokens, prefix_embeds
        self.detok = IncrementalDetokenizer(tokenizer)
        self.ids: list[int] = []
        self.logprobs: list[float] | None = [] if config.logprobs else None
        self.text = ""
        self.shown = 0
        self.finish: FinishReason | None = None
        self.generator: torch.Generator | None = None
        """The row's own random stream (sampled rows; set when it joins a batch, on the model's device)."""
        self.started = time.perf_counter()
        self.seconds = 0.0

    @property
    def prompt_tokens(self) -> int:
        return len(self.prompt_ids)

    @property
    def remaining(self) -> int:
        """Tokens this row may still generate."""
        return self.budget - len(self.ids)

    def push(self, token: int, logprob: float | None) -> str:
        """Add a token; return the newly visible text. Ends the row on a stop token, a stop string, or
        when the budget is spent."""
        self.ids.append(token)
        if self.logprobs is not None and logprob is not None:
            self.logprobs.append(logprob)
        if token in self.stop_ids:
            return self._close("stop")
        piece = self.detok.push(token)
        self.text += piece
        cut = self.stops.find(self.text, len(self.text) - len(piece))
        if cut >= 0:
            self.text = self.text[:cut]
            return self._close("stop")
        if len(self.ids) >= self.budget:
            self.text += self.detok.flush()
            return self._close("length")
        safe = self.stops.safe_length(self.text)
        out, self.shown = self.text[self.shown : safe], max(self.shown, safe)
        return out

    def cancel(self) -> str:
        """Leave without finishing; the text held back so far is not shown."""
        self._close("cancelled")
        return ""

    def _close(self, reason: FinishReason) -> str:
        self.finish = reason
        self.seconds = time.perf_counter() - self.started
        out, self.shown = self.text[self.shown :], len(self.text)
        return out

    def completion(self) -> Completion:
        if self.finish is None:
            raise RuntimeError(f"row {self.handle} has not finished")
        return Completion(self.text, self.ids, self.finish, self.prompt_tokens, self.logprobs, self.seconds)
