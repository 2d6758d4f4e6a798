"""N sampled completions per prompt with the decoding engine: the raw material people rank.

Chat models get each prompt as a user message through their own chat template (as `llmlab generate` does);
other models, or `chat=False`, get the prompt text as is. Sampling is seeded per prompt: prompt k (0-based,
in file order) uses seeds seed + k*n ... seed + k*n + n-1, one per completion (the engine gives batch row i
seed + i), so a run that is stopped and resumed writes exactly what an uninterrupted run writes.

Tests: tests/rlhf/test_completions.py (seeded, resumable, chat template applied).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from llmlab.errors import ConfigError, DataError
from llmlab.rlhf.records import CompletionSet


@dataclass
class CompletionsConfig:
    """What `llmlab feedback generate` samples, besides the decoding settings."""

    n: int = 4
    """Completions per prompt (at least 2, so that there is something to rank)."""
    chat: bool = True
    """Send each prompt through the model's chat template as a user message (chat models; --no-chat: as is)."""
    system: str | None = None
    """System message for chat models (default: the model's own)."""

    def __post_init__(self) -> None:
        if self.n < 2:
            raise ConfigError(f"-n must be at least 2 (completions to rank against each other), got {self.n}")


def render_prompt(tokenizer: Any, prompt: str, chat: bool = True, system: str | None = None) -> str:
    """The text the model completes: the chat template's rendering for chat models, else the prompt as is."""
    from llmlab.prompting.chat import has_chat_template, render_chat

    if not chat or not has_chat_template(tokenizer):
        return prompt
    head = [] if system is None else [{"role": "system", "content": system}]
    return render_chat(tokenizer, [*head, {"role": "user", "content": prompt}])


def prompt_seed(seed: int, index: int, n: int) -> int:
    """The first sampling seed of prompt `index` (0-based); its n completions use this seed and the next n-1."""
    return seed + index * n


def sample_completions(
    engine: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    config: CompletionsConfig,
    generation: Any,
    start: int = 0,
) -> Iterator[CompletionSet]:
    """Yield one CompletionSet per prompt from `prompts[start:]`, sampled in a batch of n per prompt.

    Args:
        engine: an `llmlab.generation.Engine`.
        tokenizer: the model's tokenizer (for the chat template).
        prompts: the prompt texts, in file order.
        config: n, chat template, system message.
        generation: a `GenerationConfig`; its seed (0 when unset) is the run's base seed.
        start: the number of prompts already done (a resumed run).
    """
    base = 0 if generation.seed is None else generation.seed
    for index in range(start, len(prompts)):
        text = render_prompt(tokenizer, prompts[index], config.chat, config.system)
        settings = dataclasses.replace(generation, seed=prompt_seed(base, index, config.n))
        results = engine.generate([text] * config.n, settings)
        yield CompletionSet(prompts[index], [r.text for r in results])


def check_prefix(done: Sequence[CompletionSet], prompts: Sequence[str], n: int, out: str) -> None:
    """An existing completions file can be continued only if it holds the first prompts, in order, n each.

    Raises:
        DataError: at the first record that does not match, with how to fix it.
    """
    if len(done) > len(prompts):
        raise DataError(
            f"{out} holds {len(done)} prompts but the prompts file has {len(prompts)}; it belongs to another "
            "prompts file: choose another --out or delete it"
        )
    for number, (record, prompt) in enumerate(zip(done, prompts, strict=False), start=1):
        if record.prompt != prompt:
            raise DataError(
                f"this record's prompt is not prompt {number} of the prompts file, so {out} belongs to another "
                "run; choose another --out or delete it",
                record.where,
            )
        if len(record.completions) != n:
            raise DataError(
                f"{len(record.completions)} completions here but -n is {n}; continue with -n "
                f"{len(record.completions)}, or choose another --out",
                record.where,
            )
