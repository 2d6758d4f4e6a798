"""Argument values chosen by likelihood (value_choice) and the scored rule for another parallel call
(next_call="score"): a scripted engine for each decision, a tiny random model for the scores themselves
and for calls that stay valid."""

from __future__ import annotations

from typing import Literal

import pytest
from fakes import ScriptedEngine

from llmlab.agents.arguments import spans
from llmlab.agents.builtin import builtin_tools
from llmlab.agents.caller import CallerConfig, ToolCaller
from llmlab.agents.selection import shared_prefix_logprobs
from llmlab.agents.tools import tool
from llmlab.errors import ConfigError


@tool
def weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius") -> str:
    """Weather forecast."""
    return city


REQUEST = "Is it warmer in Paris or in Rome?"
USER = [{"role": "user", "content": REQUEST}]
PARIS = '<tool_call>\n{"name": "weather", "arguments": {"city": "Paris"}}\n</tool_call>'


def test_shared_prefix_scores_equal_a_transformers_forward(tiny_tok, tiny_model) -> None:
    """One prefill shared by every continuation gives each one's exact log-probability (batched or one at a
    time); with keep=2 only the two whose first token is likeliest are scored, the others get -inf."""
    import torch

    from llmlab.generation import Engine

    engine = Engine(tiny_model, tiny_tok, precision="fp32")
    prefix, conts = "The weather in", [' "Paris"}', ' "Rome"}', " Oslo", ' "the weather in Paris"}']
    a = engine.encode(prefix)
    with torch.no_grad():
        want = []
        for cont in conts:
            b = tiny_tok(cont, add_special_tokens=False)["input_ids"]
            logp = torch.log_softmax(tiny_model(torch.tensor([a + b])).logits[0].float(), -1)
            want.append(sum(logp[len(a) - 1 + i, t].item() for i, t in enumerate(b)))
    for chunk in (1, 3):
        got = shared_prefix_logprobs(engine, prefix, conts, chunk=chunk)
        assert [s for s, _ in got] == pytest.approx(want, abs=1e-4)
        assert [n for _, n in got] == [len(tiny_tok(c, add_special_tokens=False)["input_ids"]) for c in conts]
    kept = shared_prefix_logprobs(engine, prefix, conts, keep=2)
    assert sum(s == float("-inf") for s, _ in kept) == 2
    assert all(
        s == pytest.approx(w, abs=1e-4) for (s, _), w in zip(kept, want, strict=True) if s > float("-inf")
    )


def _likes(tokenizer, letters: str):
    """Log-probabilities under which a value spelt only with `letters` (and JSON's punctuation) is the
    likeliest: every other token costs 3."""
    allowed = set(letters + '"} ')
    return lambda prompt, token: 0.0 if set(tokenizer.decode([token])) <= allowed else -3.0


def test_likelihood_writes_the_candidate_the_model_scores_best(tiny_tok) -> None:
    """The model would write Paris token by token; scored as whole values, the request's spans make Rome
    the likeliest, so Rome is written, and the call still validates."""
    engine = ScriptedEngine(tiny_tok, lambda p: PARIS, score=_likes(tiny_tok, "Rome"))
    greedy = ToolCaller(engine, [weather], CallerConfig(copy_arguments=True)).reply(USER, "required")
    assert [(c.arguments, c.error) for c in greedy.calls] == [({"city": "Paris"}, None)]
    for choice in ("likelihood", "likelihood-mean"):
        config = CallerConfig(copy_arguments=True, value_choice=choice)
        reply = ToolCaller(engine, [weather], config).reply(USER, "required")
        assert [(c.name, c.arguments, c.error) for c in reply.calls] == [("weather", {"city": "Rome"}, None)]
        assert reply.text == PARIS.replace("Paris", "Rome")


class ShortPrompt(ToolCaller):
    """The tiny model's context (256 tokens) holds no tool listing: the request alone as the prompt."""

    def prompt(self, messages):  # type: ignore[no-untyped-def]
        return f"<|im_start|>user\n{messages[-1]['content']}<|im_end|>\n<|im_start|>assistant\n"


def test_likelihood_values_are_valid_candidates_with_a_tiny_model(tiny_tok, tiny_model) -> None:
    """A random model: every value written is one of the parameter's candidates (a span of the request,
    an enum value), and the call validates against the tool's own schema."""
    from llmlab.generation import Engine

    engine = Engine(tiny_model, tiny_tok, precision="fp32")
    config = CallerConfig(copy_arguments=True, value_choice="likelihood", max_call_tokens=48)
    for request in (REQUEST, "Weather in Oslo in fahrenheit please", "Tell me the unit for Lima"):
        reply = ShortPrompt(engine, [weather], config).reply(
            [{"role": "user", "content": request}], "required"
        )
        (call,) = reply.calls
        assert call.error is None and call.arguments["city"] in spans([request])
        assert call.arguments.get("unit", "celsius") in ("celsius", "fahrenheit")


def test_bad_value_choice_and_next_call_name_the_setting() -> None:
    with pytest.raises(
        ConfigError, match="--value-choice must be one of greedy, likelihood, likelihood-mean, got 'best'"
    ):
        CallerConfig(value_choice="best")
    with pytest.raises(ConfigError, match="--next-call must be one of probe, score, got 'always'"):
        CallerConfig(next_call="always")


@pytest.mark.parametrize(("rome", "calls"), [(0.0, 2), (-20.0, 1)])
def test_scored_next_call(tiny_tok, rome: float, calls: int) -> None:
    """next_call="score": the model never starts a second call itself (a probe stops after one), yet a
    second call of the same tool follows when an unused value of the request (Rome) scores, at the start of
    a new call, no more than NEXT_CALL_MARGIN below the value the first call wrote, and not otherwise. The
    second call's city leaves out the first call's value and every span that overlaps it."""
    letters = set('Rome"')

    def score(prompt: str, token: int) -> float:
        if not prompt.rsplit("<tool_call>", 1)[0].endswith("</tool_call>\n"):  # not after a call: -1 a token
            return -1.0
        return rome if set(tiny_tok.decode([token])) <= letters else -20.0

    engine = ScriptedEngine(tiny_tok, lambda p: PARIS, score=score)
    config = CallerConfig(parallel=True, next_call="score", copy_arguments=True, max_calls=2)
    reply = ToolCaller(engine, [weather], config).reply(USER, "required")
    assert [c.name for c in reply.calls] == ["weather"] * calls and all(c.error is None for c in reply.calls)
    assert reply.calls[0].arguments == {"city": "Paris"}
    if calls == 2:
        second = reply.calls[1].arguments["city"]
        assert second in spans([REQUEST]) and "paris" not in second.lower()
        assert reply.text.count("<tool_call>") == 2
    probe = ToolCaller(engine, [weather], CallerConfig(parallel=True, next_call="probe", copy_arguments=True))
    assert len(probe.reply(USER, "required").calls) == 1


@pytest.mark.parametrize(
    ("request_text", "calls"), [("What is 12 times 4, and 100 minus 37?", 2), ("What is 12 times 4?", 1)]
)
def test_scored_next_call_for_arithmetic(tiny_tok, request_text: str, calls: int) -> None:
    """An expression has no candidate list: another call follows while a number of the request is unused,
    and the next expression may only hold numbers the earlier calls left (the model would repeat 12 * 4)."""
    import re

    wants = '<tool_call>\n{"name": "calculator", "arguments": {"expression": "12 * 4"}}\n</tool_call>'
    engine = ScriptedEngine(tiny_tok, lambda p: wants)
    config = CallerConfig(parallel=True, next_call="score")
    reply = ToolCaller(engine, builtin_tools(["calculator"]), config).reply(
        [{"role": "user", "content": request_text}], "required"
    )
    assert len(reply.calls) == calls and all(c.error is None for c in reply.calls)
    assert reply.calls[0].arguments == {"expression": "12 * 4"}
    if calls == 2:
        assert set(re.findall(r"\d+", reply.calls[1].arguments["expression"])) <= {"100", "37"}
