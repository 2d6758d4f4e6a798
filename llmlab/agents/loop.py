"""The agent loop: reason -> act -> observe, until the model answers or a limit is reached.

    react (the model decides):
    messages = [task]
    repeat up to max_steps:  reply = model(messages, tools)              (caller.py: constrained calls)
                             no call  -> that text is the answer, stop
                             call     -> observation = tool(arguments)   (timeout; errors become text)
                             messages += [reply with its call, observation]
    out of steps or tokens:  one last reply without tools -> the answer

    plan (for small models, the default): the task's sentences are routed to tools first (planning.py),
    then each planned call is made in turn (the model writes its arguments), then the answer.

This is ReAct (Yao et al., "ReAct: Synergizing Reasoning and Acting in Language Models", ICLR 2023,
arXiv:2210.03629) in the form chat models are trained on: the thought is the text before a call, the action
a structured tool call, the observation a `tool` message. Departures: a call that does not validate, an
unknown tool, a tool that raises or runs past its timeout all become an observation for the model, never an
exception; a call repeated with the same arguments is not run again (its earlier result is returned, saying
so); a tool that never returns is abandoned in its thread.
Tests: tests/agents/test_agent_loop.py (scripted model: each path, limits, trace), tests/agents/test_agents_slow.py.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from llmlab.agents.caller import CallerConfig, ToolCaller
from llmlab.agents.grounding import ERROR, REPEATED
from llmlab.agents.parsing import ToolCall
from llmlab.agents.planning import make_plan
from llmlab.agents.tools import Tool, as_tool
from llmlab.agents.validation import bind_arguments
from llmlab.errors import ConfigError
from llmlab.generation.config import GenerationConfig

FINAL_REQUEST = "Now answer my request in one or two sentences, using the tool results above."
POLICIES = ("plan", "react")
Event = dict[str, Any]


@dataclass
class AgentConfig:
    """Limits of an agent run and how its tool calls are decoded."""

    max_steps: int = 8
    """Tool calls the agent may make before it must answer."""
    max_tokens: int = 2048
    """Tokens the model may generate over the whole run."""
    tool_timeout: float | None = None
    """Seconds one tool call may take (default: each tool's own timeout)."""
    max_observation_chars: int = 1500
    """Longer tool results are cut to this many characters before the model reads them."""
    policy: str = "plan"
    """plan: route each sentence of the task to a tool first (planning.py; for small models); react: the
    model decides at every step whether to call a tool or answer."""
    caller: CallerConfig = field(default_factory=CallerConfig)

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ConfigError(f"--policy must be one of {', '.join(POLICIES)}, got {self.policy!r}")
        if self.max_steps < 0:
            raise ConfigError(f"--max-steps must be >= 0, got {self.max_steps}")
        if self.max_tokens < 1:
            raise ConfigError(f"--max-tokens must be >= 1, got {self.max_tokens}")
        if self.tool_timeout is not None and not self.tool_timeout > 0:
            raise ConfigError(f"--tool-timeout must be > 0 seconds, got {self.tool_timeout}")


@dataclass
class Step:
    """One action and what came of it."""

    index: int
    thought: str
    call: ToolCall
    observation: str
    ok: bool
    """True when the tool ran and returned; False for refused calls, errors and timeouts."""
    seconds: float
    tokens: int


@dataclass
class AgentResult:
    task: str
    answer: str
    steps: list[Step]
    stop_reason: Literal["answer", "max_steps", "token_budget"]
    tokens: int
    seconds: float
    events: list[Event] = field(default_factory=list)
    """The trace: every event as it happened (what `--trace` writes, one JSON object per line)."""


class Agent:
    """A model with tools. `Agent(engine, [calculator, ...]).run("task")` returns the answer and the trace.

    Args:
        model: an Engine, a loaded model (`llmlab.models.load_model`), or a model name or path.
        tools: Tools, typed functions or OpenAI tool dicts with functions (schema-only tools cannot run).
        system: an optional system message put before the tool listing.
    """

    def __init__(
        self,
        model: Any,
        tools: Sequence[Tool | Any],
        config: AgentConfig | None = None,
        *,
        system: str | None = None,
        generation: GenerationConfig | None = None,
    ):
        self.engine = _engine(model)
        self.tools = {t.name: t for t in (as_tool(x) for x in tools)}
        self.config = config or AgentConfig()
        self.system = system
        self.caller = ToolCaller(self.engine, list(self.tools.values()), self.config.caller, generation)

    def run(self, task: str, on_event: Callable[[Event], None] | None = None) -> AgentResult:
        """Work on `task` until an answer; `on_event` sees each thought, action, observation and the answer."""
        run = _Run(self, task, on_event)
        return run.go()

    def call_tool(self, call: ToolCall) -> tuple[str, bool]:
        """(observation, ok) for a parsed call: its result, or the reason it was not run or failed."""
        if call.error is not None:
            return f"{ERROR} {call.error}", False
        tool = self.tools[call.name]
        if tool.fn is None:
            return f"{ERROR} {tool.name} has no implementation here", False
        try:
            arguments = bind_arguments(tool.fn, call.arguments)
        except (TypeError, ValueError) as e:
            return f"{ERROR} the arguments of {tool.name} do not fit: {e}", False
        timeout = self.config.tool_timeout or tool.timeout
        outcome: dict[str, Any] = {}

        def target() -> None:
            try:
                outcome["value"] = tool.fn(**arguments)  # type: ignore[misc]
            except BaseException as e:  # the model must see every failure, whatever it is
                outcome["error"] = e

        worker = threading.Thread(target=target, name=f"tool-{tool.name}", daemon=True)
        worker.start()
        worker.join(timeout)
        if worker.is_alive():
            return f"{ERROR} {tool.name} did not finish within {timeout:g} s", False
        if "error" in outcome:
            failure = outcome["error"]
            return f"{ERROR} {type(failure).__name__}: {failure}", False
        return self._text(outcome.get("value")), True

    def _text(self, value: Any) -> str:
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
        limit = self.config.max_observation_chars
        return text if len(text) <= limit else text[:limit] + f" [... cut at {limit} characters]"


class _Run:
    """The state of one `Agent.run`."""

    def __init__(self, agent: Agent, task: str, on_event: Callable[[Event], None] | None):
        self.agent, self.task, self.on_event = agent, task, on_event
        self.messages: list[dict[str, Any]] = (
            [] if agent.system is None else [{"role": "system", "content": agent.system}]
        )
        self.messages.append({"role": "user", "content": task})
        self.steps: list[Step] = []
        self.events: list[Event] = []
        self.tokens = 0
        self.started = time.perf_counter()
        self.seen: dict[str, int] = {}

    def emit(self, kind: str, **data: Any) -> None:
        event = {"type": kind, **data, "t": round(time.perf_counter() - self.started, 3)}
        self.events.append(event)
        if self.on_event is not None:
            self.on_event(event)

    def go(self) -> AgentResult:
        config = self.agent.config
        self.emit("task", text=self.task, tools=list(self.agent.tools))
        if config.policy == "plan":
            return self._planned()
        stop: Literal["answer", "max_steps", "token_budget"] = "max_steps"
        for index in range(1, config.max_steps + 1):
            left = config.max_tokens - self.tokens
            if left <= 0:
                stop = "token_budget"
                break
            reply = self._reply("auto", left)
            if not reply.calls:
                return self._finish(reply, "answer")
            self._act(index, reply)
        return self._finish(self._reply("none", max(config.max_tokens - self.tokens, 1), final=True), stop)

    def _planned(self) -> AgentResult:
        config = self.agent.config
        plan = (
            make_plan(self.agent.engine, self.task, list(self.agent.tools.values()))
            if config.max_steps
            else []
        )
        self.emit("plan", steps=[{"request": s.request, "tool": s.tool} for s in plan])
        stop: Literal["answer", "max_steps", "token_budget"] = (
            "answer" if len(plan) <= config.max_steps else "max_steps"
        )
        for index, step in enumerate(plan[: config.max_steps], start=1):
            left = config.max_tokens - self.tokens
            if left <= 0:
                stop = "token_budget"
                break
            choice = {"type": "function", "function": {"name": step.tool}}
            self._act(index, self._reply(choice, left, thought=step.request))
        return self._finish(self._reply("none", max(config.max_tokens - self.tokens, 1)), stop)

    def _reply(
        self, tool_choice: str | dict[str, Any], left: int, final: bool = False, thought: str = ""
    ) -> Any:
        caller = self.agent.caller
        c = caller.config
        caller.config = dataclasses.replace(c, max_text_tokens=min(c.max_text_tokens, left))
        try:
            messages = self.messages + ([{"role": "user", "content": FINAL_REQUEST}] if final else [])
            last = [s for s in self.steps if self.steps and s.index == self.steps[-1].index]
            results = [s.observation for s in last if s.ok] if final else None
            reply = caller.reply(messages, tool_choice, request=self.task, thought=thought, results=results)
        finally:
            caller.config = c
        self.tokens += reply.completion_tokens
        return reply

    def _act(self, index: int, reply: Any) -> None:
        """Run the reply's calls (several with CallerConfig.parallel), each an action and an observation of
        step `index`, and add the reply and the results to the conversation."""
        if reply.content:
            self.emit("thought", step=index, text=reply.content)
        results = []
        for k, call in enumerate(reply.calls):
            self.emit(
                "action", step=index, tool=call.name, arguments=call.arguments, id=call.id, error=call.error
            )
            started = time.perf_counter()
            key = json.dumps([call.name, call.arguments], sort_keys=True, default=str)
            if call.error is None and key in self.seen:
                earlier = self.steps[self.seen[key]]
                observation, ok = REPEATED.format(index=earlier.index) + earlier.observation, earlier.ok
            else:
                observation, ok = self.agent.call_tool(call)
                if call.error is None:
                    self.seen[key] = len(self.steps)
            self.emit("observation", step=index, text=observation, ok=ok)
            seconds, tokens = time.perf_counter() - started, reply.completion_tokens if k == 0 else 0
            self.steps.append(Step(index, reply.content, call, observation, ok, seconds, tokens))
            results.append({"role": "tool", "tool_call_id": call.id, "content": observation})
        calls = [call.openai() for call in reply.calls]
        self.messages += [{"role": "assistant", "content": reply.content, "tool_calls": calls}, *results]

    def _finish(self, reply: Any, stop: Literal["answer", "max_steps", "token_budget"]) -> AgentResult:
        """The result, answering with the reply's text (the model's own words are in the answer event's
        `free` when a grounded answer replaced them, CallerConfig.answer_style)."""
        seconds, answer = time.perf_counter() - self.started, reply.content
        grounded = {} if reply.free is None else {"free": reply.free}
        self.emit("answer", text=answer, stop_reason=stop, tokens=self.tokens, **grounded)
        return AgentResult(self.task, answer, self.steps, stop, self.tokens, seconds, self.events)


def _engine(model: Any) -> Any:
    """An Engine from an Engine, a LoadedModel or a model name."""
    from llmlab.generation.engine import Engine

    if isinstance(model, Engine) or (hasattr(model, "generate") and hasattr(model, "tokenizer")):
        return model
    if isinstance(model, str):
        from llmlab.models import load_model

        model = load_model(model)
    if hasattr(model, "kind") and hasattr(model, "tokenizer"):
        return Engine.from_loaded(model)
    raise ConfigError(f"Agent needs an Engine, a loaded model or a model name, got {type(model).__name__}")


def write_trace(path: str, events: Sequence[Mapping[str, Any]]) -> None:
    """The trace as JSONL (one event per line), written atomically."""
    import os
    import tempfile

    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".trace-", suffix=".jsonl")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        for event in events:
            f.write(json.dumps(event, ensure_ascii=False, default=str) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
