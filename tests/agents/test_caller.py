"""ToolCaller with a scripted engine: text replies, calls, tool choice by score, the grammar overriding a
model that writes a bad call, parallel calls, and the unconstrained path."""

from __future__ import annotations

import pytest
from fakes import ScriptedEngine

from llmlab.agents.caller import CallerConfig, ToolCaller
from llmlab.agents.selection import CHANNEL_TEMPLATE, channel_scores, continuation_logprobs
from llmlab.agents.tools import tool
from llmlab.errors import ConfigError


@tool
def calculator(expression: str) -> str:
    """Compute arithmetic."""
    return expression


@tool
def weather(city: str, days: int = 1) -> str:
    """Weather forecast."""
    return city


TOOLS = [calculator, weather]
USER = [{"role": "user", "content": "What is 2+3?"}]
CALL = '<tool_call>\n{"name": "calculator", "arguments": {"expression": "2+3"}}\n</tool_call>'


def prefer(name: str):
    """Log-probabilities that make the channel score pick tool `name`."""
    return lambda prompt, token: 0.0 if prompt.startswith(f"Tool: {name}\n") else -1.0


def test_text_reply_without_a_call(tiny_tok) -> None:
    engine = ScriptedEngine(tiny_tok, lambda p: "Five.")
    reply = ToolCaller(engine, TOOLS).reply(USER)
    assert (reply.text, reply.content, reply.calls) == ("Five.", "Five.", [])
    assert reply.completion_tokens > 0 and reply.prompt_tokens > 0


def test_call_with_the_tool_chosen_by_channel_score(tiny_tok) -> None:
    engine = ScriptedEngine(tiny_tok, lambda p: "Let me compute.\n" + CALL, score=prefer("calculator"))
    reply = ToolCaller(engine, TOOLS).reply(USER)
    assert reply.content == "Let me compute."
    assert [(c.name, c.arguments, c.error) for c in reply.calls] == [
        ("calculator", {"expression": "2+3"}, None)
    ]
    assert reply.text == "Let me compute.\n" + CALL
    assert reply.scores["calculator"] > reply.scores["weather"]
    channel_prompts = [p for p in engine.prompts if p.startswith("Tool: ")]
    assert sorted(channel_prompts) == sorted(
        CHANNEL_TEMPLATE.format(name=t.name, description=t.description) for t in TOOLS
    )


def test_the_score_overrules_the_name_the_model_writes(tiny_tok) -> None:
    """The model would write weather, but the channel score prefers calculator: the grammar then writes the
    calculator's arguments, and the model's weather-shaped arguments are masked into a valid call."""
    wrong = '<tool_call>\n{"name": "weather", "arguments": {"city": "Rome", "days": 2}}\n</tool_call>'
    engine = ScriptedEngine(tiny_tok, lambda p: wrong, score=prefer("calculator"))
    reply = ToolCaller(engine, TOOLS).reply(USER, "required")
    (call,) = reply.calls
    assert call.name == "calculator" and call.error is None and isinstance(call.arguments["expression"], str)


def test_grammar_repairs_a_broken_call(tiny_tok) -> None:
    broken = '<tool_call>\n{"name": "weather", "arguments": {"city": Rome, "days": "two"'
    engine = ScriptedEngine(tiny_tok, lambda p: broken, score=prefer("weather"))
    reply = ToolCaller(engine, TOOLS).reply(USER, "required")
    (call,) = reply.calls
    assert call.name == "weather" and call.error is None
    free = ToolCaller(engine, TOOLS, CallerConfig(constrain=False)).reply(USER, "required")
    assert free.calls[0].error is not None and "not valid JSON" in free.calls[0].error


@pytest.mark.parametrize("selection", ["direct", "greedy"])
def test_other_selections(tiny_tok, selection: str) -> None:
    def score(
        prompt: str, token: int
    ) -> float:  # the letters of "weather" that "calculator" lacks are unlikely
        return -5.0 if set(tiny_tok.decode([token])) & set("wh") else -0.1

    engine = ScriptedEngine(tiny_tok, lambda p: CALL, score=score)
    reply = ToolCaller(engine, TOOLS, CallerConfig(selection=selection)).reply(USER, "required")
    assert [c.name for c in reply.calls] == ["calculator"] and reply.calls[0].error is None


def test_parallel_calls(tiny_tok) -> None:
    two = CALL + '\n<tool_call>\n{"name": "weather", "arguments": {"city": "Oslo"}}\n</tool_call>'

    def score(prompt: str, token: int) -> float:
        """Channel prefers calculator (the first call); direct scoring, used for the next, prefers weather."""
        if prompt.startswith("Tool: "):
            return 0.0 if prompt.startswith("Tool: calculator") else -1.0
        return -5.0 if set(tiny_tok.decode([token])) & set("clu") else -0.1

    engine = ScriptedEngine(tiny_tok, lambda p: two, score=score)
    config = CallerConfig(parallel=True, next_call="probe", copy_arguments=False)  # Oslo: not copied
    caller = ToolCaller(engine, TOOLS, config)
    reply = caller.reply(USER, "required")
    assert [(c.name, c.arguments, c.error) for c in reply.calls] == [
        ("calculator", {"expression": "2+3"}, None),
        ("weather", {"city": "Oslo"}, None),
    ]
    assert reply.text == two
    single = ToolCaller(engine, TOOLS).reply(USER, "required")
    assert len(single.calls) == 1


def test_unconstrained_parses_what_the_model_wrote(tiny_tok) -> None:
    engine = ScriptedEngine(tiny_tok, lambda p: "Sure. " + CALL + " And more text.")
    reply = ToolCaller(engine, TOOLS, CallerConfig(constrain=False)).reply(USER)
    assert [(c.name, c.error) for c in reply.calls] == [("calculator", None)]
    assert reply.text.endswith("</tool_call>")  # generation stops at the end of the call


def test_tool_choice_none_and_named(tiny_tok) -> None:
    engine = ScriptedEngine(tiny_tok, lambda p: CALL)
    assert ToolCaller(engine, TOOLS).reply(USER, "none").calls == []
    named = {"type": "function", "function": {"name": "weather"}}
    reply = ToolCaller(engine, TOOLS).reply(USER, named)
    assert [c.name for c in reply.calls] == ["weather"] and reply.calls[0].error is None
    assert not [p for p in engine.prompts if p.startswith("Tool: ")]  # one tool: nothing to score


def test_forced_logprobs_equal_a_transformers_forward(tiny_tok, tiny_model) -> None:
    import torch

    from llmlab.generation import Engine

    engine = Engine(tiny_model, tiny_tok, precision="fp32")
    prompts, conts = ["The capital of", "Language models"], [" France is Paris.", " predict"]
    got = continuation_logprobs(engine, prompts, conts)
    for prompt, cont, value in zip(prompts, conts, got, strict=True):
        a = engine.encode(prompt)
        b = tiny_tok(cont, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logp = torch.log_softmax(tiny_model(torch.tensor([a + b])).logits[0].float(), -1)
        want = sum(logp[len(a) - 1 + i, t].item() for i, t in enumerate(b))
        assert value == pytest.approx(want, abs=1e-4)
    scores = channel_scores(engine, "What is 2+3?", TOOLS)
    assert set(scores) == {"calculator", "weather"} and all(v < 0 for v in scores.values())


def test_bad_config_names_the_flag() -> None:
    with pytest.raises(ConfigError, match="--selection must be one of channel, direct, greedy"):
        CallerConfig(selection="best")
    with pytest.raises(ConfigError, match="--max-call-tokens must be >= 1"):
        CallerConfig(max_call_tokens=0)


@pytest.mark.parametrize(("best", "calls"), [("none", 0), ("calculator", 1)])
def test_channel_abstention_under_auto(tiny_tok, best: str, calls: int) -> None:
    """abstain="channel": the model never writes `<tool_call>` here, yet it calls when a tool explains the
    request better than the no-tool description, and answers in text when none does."""
    engine = ScriptedEngine(tiny_tok, lambda p: "Five.", score=prefer(best))
    reply = ToolCaller(engine, TOOLS, CallerConfig(abstain="channel")).reply(USER, "auto")
    assert len(reply.calls) == calls and all(c.error is None for c in reply.calls)
    assert set(reply.scores) == {"calculator", "weather"}
    if not calls:
        assert reply.text == "Five."
    else:
        assert reply.calls[0].name == "calculator"
    assert ToolCaller(engine, TOOLS).reply(USER, "auto").calls == []  # abstain="model": the model decides
    with pytest.raises(ConfigError, match="--abstain must be one of model, channel, got 'always'"):
        CallerConfig(abstain="always")


def test_the_channel_description_names_the_enum_values() -> None:
    """A request that names an enum value ("assists") is explained by the tool that takes it (chosen on the
    train half of bench/data/agents/domain.jsonl); tools without enums keep their description alone."""
    from llmlab.agents.selection import described
    from llmlab.agents.tools import Tool

    stats = Tool(
        "player_stats",
        "Get a player's statistics for a season. ",
        {
            "type": "object",
            "properties": {
                "player_name": {"type": "string"},
                "stat": {"type": "string", "enum": ["points", "assists", "rebounds"]},
            },
        },
    )
    assert described(stats) == "Get a player's statistics for a season.\nstat: points, assists, rebounds"
    assert [described(t) for t in TOOLS] == [t.description.strip() for t in TOOLS]
