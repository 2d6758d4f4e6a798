"""Chat messages rendered with the tokenizer's own chat template (Jinja, as shipped with the model), and a
conversation fitted into the context window (the oldest turns dropped first; budget.py).

A tokenizer without a template (a base model) gets a plain transcript that ends with "Assistant:".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from llmlab.errors import ConfigError

Message = dict[str, str]
ROLES = ("system", "user", "assistant", "tool")


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def validate_messages(messages: Sequence[Message]) -> None:
    for i, m in enumerate(messages):
        if m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise ConfigError(
                f"message {i} must be {{'role': one of {', '.join(ROLES)}, 'content': str}}, got {m!r}"
            )


def render_chat(tokenizer: Any, messages: Sequence[Message], add_generation_prompt: bool = True) -> str:
    """The prompt text for a conversation, ending where the assistant's reply begins."""
    validate_messages(messages)
    if has_chat_template(tokenizer):
        return str(
            tokenizer.apply_chat_template(
                list(messages), add_generation_prompt=add_generation_prompt, tokenize=False
            )
        )
    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
    if add_generation_prompt:
        lines.append("Assistant:")
    return "\n".join(lines)


def fit_chat(
    tokenizer: Any,
    history: Sequence[Message],
    user: str,
    budget: int,
    system: str | None = None,
    count: Callable[[str], int] | None = None,
) -> tuple[str, int]:
    """Render a conversation's next prompt within `budget` tokens, dropping the oldest turns first.

    Args:
        history: earlier messages, in user/assistant pairs.
        user: the new user message (always kept).
        system: a system message (None keeps the template's default).
        count: text -> tokens (default: the tokenizer, no special tokens added).

    Returns:
        (prompt text, user/assistant pairs dropped).

    Raises:
        ConfigError: the new message alone (with the system message) is over the budget.
    """
    from llmlab.prompting.budget import count_tokens, fit_to_budget

    head: list[Message] = [] if system is None else [{"role": "system", "content": system}]
    pairs = len(history) // 2

    def render(k: int) -> str:
        kept = list(history[len(history) - 2 * k :]) if k else []
        return render_chat(tokenizer, [*head, *kept, {"role": "user", "content": user}])

    fitted = fit_to_budget(
        render,
        pairs,
        budget,
        count or (lambda text: count_tokens(tokenizer, text)),
        too_long=lambda tokens, _: (
            f"the message is {tokens} tokens with the chat template, over the {budget} left for the prompt "
            "(the context window minus --max-new-tokens); shorten it or lower --max-new-tokens"
        ),
    )
    return fitted.text, pairs - fitted.kept
