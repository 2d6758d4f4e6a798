"""Zero-, one- and few-shot prompts (in-context learning, Brown et al., 2020, arXiv:2005.14165).

A prompt is an instruction, k worked examples (input -> output pairs) and the query; k = 0, 1, or more.
For chat models the examples become alternating user / assistant turns rendered with the tokenizer's chat
template; for base models they are laid out as plain text:

    {instruction}

    Input: {example input}
    Output: {example output}

    Input: {query}
    Output:

When the rendered prompt would not fit the token budget, examples are dropped from the end, one at a time,
never the instruction or the query (budget.py); `Rendered.dropped` reports how many.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmlab.prompting.budget import count_tokens, fit_to_budget
from llmlab.prompting.chat import Message, has_chat_template, render_chat


@dataclass(frozen=True)
class Example:
    """One demonstration: what the model is given and what it should answer."""

    input: str
    output: str


@dataclass
class FewShotPrompt:
    """Instruction + examples + query; zero-shot when `examples` is empty."""

    query: str
    instruction: str = ""
    examples: Sequence[Example] = field(default_factory=list)
    system: str | None = None
    """System message for chat models (None keeps the template's default)."""

    def messages(self, k: int | None = None) -> list[Message]:
        """Chat layout: instruction in the first user turn, one user/assistant pair per example."""
        shots = list(self.examples)[: len(self.examples) if k is None else k]
        out: list[Message] = [] if self.system is None else [{"role": "system", "content": self.system}]
        first = True
        for ex in shots:
            out.append({"role": "user", "content": self._with_instruction(ex.input, first)})
            out.append({"role": "assistant", "content": ex.output})
            first = False
        out.append({"role": "user", "content": self._with_instruction(self.query, first)})
        return out

    def _with_instruction(self, text: str, first: bool) -> str:
        return f"{self.instruction}\n\n{text}" if first and self.instruction else text

    def plain_text(self, k: int | None = None) -> str:
        """Base-model layout (see module docstring)."""
        shots = list(self.examples)[: len(self.examples) if k is None else k]
        parts = [self.instruction] if self.instruction else []
        parts += [f"Input: {ex.input}\nOutput: {ex.output}" for ex in shots]
        parts.append(f"Input: {self.query}\nOutput:")
        return "\n\n".join(parts)


@dataclass
class Rendered:
    """A prompt ready for the engine."""

    text: str
    tokens: int
    shots: int
    """Examples kept."""
    dropped: int
    """Examples dropped to fit the budget."""


def render(
    prompt: FewShotPrompt, tokenizer: Any, max_tokens: int | None = None, chat: bool | None = None
) -> Rendered:
    """Render for a tokenizer (chat template when it has one, unless `chat=False`) within `max_tokens`.

    Raises:
        ConfigError: even the zero-shot prompt (instruction + query) is longer than `max_tokens`.
    """
    use_chat = has_chat_template(tokenizer) if chat is None else chat
    total = len(prompt.examples)
    fitted = fit_to_budget(
        lambda k: render_chat(tokenizer, prompt.messages(k)) if use_chat else prompt.plain_text(k),
        total,
        max_tokens,
        lambda text: count_tokens(tokenizer, text),
        too_long=lambda tokens, _: (
            f"the instruction and query alone are {tokens} tokens, more than the budget of {max_tokens}; "
            "shorten them or raise the budget"
        ),
    )
    return Rendered(fitted.text, fitted.tokens, fitted.kept, total - fitted.kept)


def load_examples(path: str | Path) -> list[Example]:
    """Read few-shot examples from JSONL: one {"input": ..., "output": ...} per line."""
    from llmlab.data.jsonl import read_records

    return [Example(r["input"], r["output"]) for r in read_records(path, ("input", "output"), kind="example")]
