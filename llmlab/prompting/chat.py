"""Chat messages rendered with the tokenizer's own chat template (Jinja, as shipped with the model).

A tokenizer without a template (a base model) gets a plain transcript that ends with "Assistant:".
"""

from __future__ import annotations

from collections.abc import Sequence
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
