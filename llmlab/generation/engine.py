"""The decoding engine: prefill, then one token per step from a KV cache, for a batch of prompts.

    prompts -> left-pad -> prefill (last logits) -> [penalty, temperature, top-k, top-p, min-p, mask] -> token
            -> detokenize incrementally -> stop token / stop string / max_new_tokens -> drop finished rows

`generate`, `stream` and `stream_batch` run on a `Batcher` (batcher.py), where requests can also join a
running batch between steps and leave it (continuous batching, for serving), each with its own settings.
Departures from transformers' `generate`: finished rows leave the batch (their KV cache rows are dropped),
stop strings are handled on text rather than tokens, and each row has its own seeded generator (row i of
`generate` uses seed + i). Greedy output is token-identical to `generate(do_sample=False)`.
Parity: tests/generation/test_engine.py::test_greedy_matches_transformers_generate (fast, tiny Llama) and
tests/generation/test_engine_slow.py::test_greedy_matches_transformers_on_smollm2 (slow).

Hooks kept for later work: `allowed_tokens(row, generated_ids) -> bool mask (V,)` for constrained decoding of
tool calls, `prefix_embeds` (P, H) for prompt tuning's virtual tokens, per-token log-probs for RLHF, and
`Batcher` (add / step / cancel) for serving.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from llmlab.errors import ConfigError, ModelError
from llmlab.generation.backends import Backend, make_backend
from llmlab.generation.batcher import Batcher
from llmlab.generation.config import GenerationConfig
from llmlab.generation.rows import AllowedTokens, Completion, Event, Row
from llmlab.generation.threads import DecodingThreads

__all__ = ["PRECISIONS", "AllowedTokens", "Completion", "Engine", "Event", "Row", "TextStream", "load_engine"]

PRECISIONS = ("auto", "fp32", "bf16", "int8", "hf")


class TextStream:
    """Iterator of text pieces for one prompt; `.completion` is set once it is exhausted."""

    def __init__(self, events: Iterator[list[Event]], row: Row):
        self._events, self._row = events, row
        self.completion: Completion | None = None

    def __iter__(self) -> Iterator[str]:
        for step in self._events:
            for event in step:
                if event.text:
                    yield event.text
        self.completion = self._row.completion()


class Engine:
    """Generates text from a decoder-only or encoder-decoder model with our own KV-cache loop."""

    def __init__(self, model: Any, tokenizer: Any, kind: str = "decoder-only", precision: str = "auto"):
        if precision not in PRECISIONS:
            raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.model, self.tokenizer, self.kind = model, tokenizer, kind
        self.adapter: Path | None = None
        """The adapter folder on the model when the engine was loaded with one (Engine.from_loaded records it;
        rag answers use it to choose their prompt)."""
        self.threads = DecodingThreads()  # follows the load: a busy machine must not stall decoding
        self.backend: Backend = make_backend(model, kind, precision, tokenizer)
        self.context_length = self._context_length(model.config)
        self.eos_ids = self._eos_ids(model, tokenizer)
        self.pad_id = (
            tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.eos_ids or {0})
        )

    @classmethod
    def from_loaded(cls, loaded: Any, precision: str = "auto", adapter: str | Path | None = None) -> Engine:
        """Build from `llmlab.models.load_model(...)`'s result; `adapter` is the folder of the adapter already
        on its model (put_adapter's result), recorded as `.adapter`: the one place that records it."""
        check_generates(loaded)
        engine = cls(loaded.model, loaded.tokenizer, loaded.kind, precision)
        engine.adapter = None if adapter is None else Path(adapter)
        return engine

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

    def budget(self, prompt_tokens: int, prefix: int, max_new_tokens: int) -> int:
        """New tokens a prompt may get: max_new_tokens, capped by the room left in the context window.

        Raises:
            ConfigError: the prompt is empty (decoder-only models need at least one token).
            ModelError: the prompt (with `prefix` virtual tokens) fills the context window.
        """
        if prompt_tokens == 0 and self.kind != "encoder-decoder":
            raise ConfigError("a prompt is empty; give at least one token of text")
        if self.kind == "encoder-decoder":
            return min(max_new_tokens, self.context_length)
        longest = prompt_tokens + prefix
        if longest >= self.context_length:
            over = longest - self.context_length + 1
            raise ModelError(
                f"the prompt is {longest} tokens, {over} more than fit in the model's context window of "
                f"{self.context_length} (one position is needed for the answer); shorten the prompt"
            )
        return min(max_new_tokens, self.context_length - longest)

    def batcher(self, max_batch: int = 8) -> Batcher:
        """A running batch that requests join and leave between steps (continuous batching; see batcher.py)."""
        return Batcher(self, max_batch)

    def generate(
        self,
        prompts: Sequence[str | Sequence[int]] | str,
        config: GenerationConfig | None = None,
        *,
        allowed_tokens: AllowedTokens | None = None,
        prefix_embeds: torch.Tensor | None = None,
    ) -> list[Completion]:
        """Complete every prompt (batched); returns one Completion per prompt, in order."""
        rows, events = self.stream_batch(
            [prompts] if isinstance(prompts, str) else prompts,
            config,
            allowed_tokens=allowed_tokens,
            prefix_embeds=prefix_embeds,
        )
        for _ in events:
            pass
        return [row.completion() for row in rows]

    def stream(
        self,
        prompt: str | Sequence[int],
        config: GenerationConfig | None = None,
        *,
        allowed_tokens: AllowedTokens | None = None,
        prefix_embeds: torch.Tensor | None = None,
    ) -> TextStream:
        """Stream one prompt's completion as text pieces (never splitting a character)."""
        rows, events = self.stream_batch(
            [prompt], config, allowed_tokens=allowed_tokens, prefix_embeds=prefix_embeds
        )
        return TextStream(events, rows[0])

    def stream_batch(
        self,
        prompts: Sequence[str | Sequence[int]],
        config: GenerationConfig | None = None,
        *,
        allowed_tokens: AllowedTokens | None = None,
        prefix_embeds: torch.Tensor | None = None,
    ) -> tuple[list[Row], Iterator[list[Event]]]:
        """The rows (one per prompt; row i's handle is i) and an iterator of each step's events.

        Every prompt is checked before anything runs; with a seed, row i samples with seed + i."""
        if not prompts:
            raise ConfigError("no prompts given")
        config = config or GenerationConfig()
        if prefix_embeds is None:  # the model's active soft prompt (prompt tuning), if it has one
            from llmlab.peft.prompt_tuning import soft_prompt

            prefix_embeds = soft_prompt(self.model)
        batcher = Batcher(self, max_batch=len(prompts))
        rows = []
        for i, prompt in enumerate(prompts):
            own = (
                config if config.seed is None or i == 0 else dataclasses.replace(config, seed=config.seed + i)
            )
            rows.append(batcher.add(prompt, own, allowed_tokens=allowed_tokens, prefix_embeds=prefix_embeds))
        return rows, batcher.run()


def check_generates(loaded: Any) -> None:
    """Raise ModelError unless a loaded model can generate text (decoder-only or encoder-decoder)."""
    if loaded.kind == "encoder-only":
        raise ModelError(f"{loaded.name} is an encoder-only model: it embeds text but cannot generate")


def put_adapter(model: Any, adapter: str | Path, merge: bool = True) -> Path:
    """Put the adapter in `adapter` (an adapter or training run folder) on `model`: merged into the weights (a
    LoRA; nothing per token), or with `merge=False` unmerged (any kind), except one that runs only merged
    (LoRA on embeddings, GPT-2's Conv1D). Returns the adapter folder, for Engine.from_loaded(adapter=)."""
    from llmlab.peft.checkpoint import load_adapter, resolve_adapter_folder
    from llmlab.peft.peft_format import merge_lora_adapter, runs_only_merged

    folder = resolve_adapter_folder(str(adapter))
    if merge or runs_only_merged(folder):
        merge_lora_adapter(model, folder, inplace=True)
    else:  # unmerged; the engine runs it (a soft prompt as a prefix)
        load_adapter(model, folder)
    return folder


def load_engine(
    model: str, device: str = "auto", precision: str = "auto", adapter: str | Path | None = None
) -> Engine:
    """A decoding Engine for a packaged model name, checkpoint folder or .gguf file; `adapter` (a LoRA
    adapter or training run folder) is merged into the weights first, so it costs nothing per token."""
    from llmlab.models import load_model

    loaded = load_model(model, device=device)
    folder = None if adapter is None else put_adapter(loaded.model, adapter)
    return Engine.from_loaded(loaded, precision=precision, adapter=folder)
