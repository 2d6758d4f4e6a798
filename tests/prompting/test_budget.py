"""Fitting prompts into a token budget: the generic fitter, a chat's history, and a follow-up rewrite."""

from __future__ import annotations

import pytest

from llmlab.errors import ConfigError
from llmlab.prompting import count_tokens, fit_chat, fit_to_budget, render_chat
from llmlab.prompting.grounded import render_rewrite


def test_fit_keeps_the_most_pieces_that_fit() -> None:
    """render(k) is k words; a budget of 3 keeps 3 of 5, rendering 5, 4, then 3."""
    calls: list[int] = []

    def render(k: int) -> str:
        calls.append(k)
        return " ".join(["w"] * k)

    fitted = fit_to_budget(render, 5, 3, lambda t: len(t.split()))
    assert (fitted.text, fitted.tokens, fitted.kept, calls) == ("w w w", 3, 3, [5, 4, 3])
    assert fit_to_budget(render, 2, None, len).kept == 2
    with pytest.raises(ConfigError, match="needs 2 with 2"):
        fit_to_budget(
            render, 5, 1, lambda t: len(t.split()), least=2, too_long=lambda n, k: f"needs {n} with {k}"
        )


def test_chat_drops_the_oldest_turns_first(tiny_tok) -> None:
    history = [
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "second question"},
        {"role": "assistant", "content": "second answer"},
    ]
    full, dropped = fit_chat(tiny_tok, history, "third?", 10_000, system="Be brief.")
    assert dropped == 0 and full == render_chat(
        tiny_tok,
        [{"role": "system", "content": "Be brief."}, *history, {"role": "user", "content": "third?"}],
    )
    last = render_chat(tiny_tok, [*history[2:], {"role": "user", "content": "third?"}])
    text, dropped = fit_chat(tiny_tok, history, "third?", count_tokens(tiny_tok, last))
    assert (text, dropped) == (last, 1)
    alone = count_tokens(tiny_tok, render_chat(tiny_tok, [{"role": "user", "content": "third?"}]))
    with pytest.raises(
        ConfigError, match=rf"the message is {alone} tokens with the chat template, over the 3"
    ):
        fit_chat(tiny_tok, history, "third?", 3)


def test_rewrite_prompt_sheds_its_example_then_the_previous_answer(tiny_tok) -> None:
    """A follow-up after a long answer in a small context window: the rewrite is still asked, without the
    worked example and then without the answer, instead of overflowing the model."""
    from rag.answer_fakes import FakeEngine

    from llmlab.rag.conversation import REWRITE_TOKENS, rewrite_query

    answer = "The garden opens at nine. " * 40
    full = render_rewrite(tiny_tok, "When does the garden open?", answer, "And closes?")
    no_answer = render_rewrite(
        tiny_tok, "When does the garden open?", None, "And closes?", with_example=False
    )
    assert "Does installing the app need admin rights?" in full and "opens at nine" in full
    assert "admin rights" not in no_answer and "opens at nine" not in no_answer
    window = count_tokens(tiny_tok, no_answer) + REWRITE_TOKENS
    engine = FakeEngine(tiny_tok, ["When does the garden close?"], context_length=window)
    query, rewritten = rewrite_query(engine, "When does the garden open?", answer, "And closes?")
    assert (query, rewritten, engine.prompts) == ("When does the garden close?", True, [no_answer])
    tight = FakeEngine(tiny_tok, [], context_length=REWRITE_TOKENS + 5)
    assert rewrite_query(tight, "When does the garden open?", answer, "And closes?") == (
        "When does the garden open? And closes?",
        False,
    )
