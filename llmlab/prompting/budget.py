"""Fitting a prompt into a token budget: render it with k pieces, and drop pieces until it fits.

    k = most, most - 1, ..., least:  text = render(k);  if tokens(text) <= budget: return text

Every prompt llmlab builds shrinks this way, each with its own pieces and order: few-shot examples (the last
ones go first, fewshot.py), a grounded prompt's context blocks (the lowest-ranked first, rag/answer.py), a
chat's history (the oldest turns first, chat.py), and a follow-up rewrite's context (grounded.py). The
token count of a rendered prompt grows with k, so the first k that fits is the largest.
Tests: tests/prompting/test_budget.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llmlab.errors import ConfigError


@dataclass
class Fitted:
    """A rendered prompt that fits."""

    text: str
    tokens: int
    kept: int
    """Pieces kept (k)."""


def count_tokens(tokenizer: Any, text: str) -> int:
    """Tokens of rendered text (a chat template writes its own special tokens, so none are added)."""
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def fit_to_budget(
    render: Callable[[int], str],
    most: int,
    budget: int | None,
    count: Callable[[str], int],
    least: int = 0,
    too_long: Callable[[int, int], str] | None = None,
) -> Fitted:
    """The prompt with the most pieces (at most `most`, at least `least`) whose tokens fit `budget`.

    Args:
        render: k -> the prompt text with k pieces.
        budget: the most tokens allowed; None renders all `most` pieces.
        count: text -> number of tokens.
        too_long: (tokens with `least` pieces, least) -> the error message when even that is too long.

    Raises:
        ConfigError: the prompt with `least` pieces is over the budget.
    """
    tokens = 0
    for k in range(most, least - 1, -1):
        text = render(k)
        tokens = count(text)
        if budget is None or tokens <= budget:
            return Fitted(text, tokens, k)
    message = too_long(tokens, least) if too_long else None
    raise ConfigError(message or f"the prompt needs {tokens} tokens, over the budget of {budget}; shorten it")
