"""`llmlab agent run "task"`: an agent with built-in tools, printing each thought, action and observation."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from llmlab.cli.output import err_console
from llmlab.cli.session import add_model_arguments, load_engine
from llmlab.errors import ConfigError

DEFAULT_TOOLS = "calculator,now"


def register(subparsers: Any) -> None:
    agent = subparsers.add_parser(
        "agent",
        help="run an agent that calls tools (calculator, rag_search, read_file, http_get, ...)",
        description="Agents: a model that calls tools in a loop (reason, act, observe) until it can answer.",
    )
    sub = agent.add_subparsers(dest="agent_command", metavar="COMMAND")
    run = sub.add_parser(
        "run",
        help="work on a task with tools and print each step as it happens",
        description="Work on TASK: the model calls tools (each call decoded under a grammar built from the "
        "tools' JSON schemas, so every call is valid), reads their results and answers. Prints each thought, "
        "action and observation as it happens, then the answer.",
    )
    run.add_argument("task", help='what to do, e.g. "What is 17 times 23?"')
    add_model_arguments(run)
    run.add_argument(
        "--tools",
        default=DEFAULT_TOOLS,
        help="comma-separated built-in tools: calculator, now, rag_search, read_file, list_dir, http_get "
        f"(default: {DEFAULT_TOOLS})",
    )
    run.add_argument("--max-steps", type=int, default=8, help="tool calls before it must answer (default: 8)")
    run.add_argument(
        "--max-tokens", type=int, default=2048, help="tokens generated over the whole run (default: 2048)"
    )
    run.add_argument("--store", help="the RAG store rag_search searches (a name, a path or a URL)")
    run.add_argument("--root", help="the folder read_file and list_dir may read (default: the current one)")
    run.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="HOST",
        help="a host http_get may fetch from, e.g. example.com or 127.0.0.1:8000 (repeatable)",
    )
    run.add_argument("--tool-timeout", type=float, help="seconds one tool call may take (default: per tool)")
    run.add_argument(
        "--no-constrain",
        action="store_true",
        help="let the model write tool calls freely (parsed afterwards) instead of under the grammar",
    )
    run.add_argument(
        "--policy",
        default="plan",
        choices=["plan", "react"],
        help="plan: route each sentence of the task to a tool first, then make those calls (default; for "
        "small models); react: the model decides at every step whether to call a tool or answer",
    )
    run.add_argument(
        "--selection",
        default="channel",
        choices=["channel", "direct", "greedy"],
        help="how the tool is chosen: channel (score the task against each tool's description; default), "
        "direct (score each tool name) or greedy (token by token)",
    )
    run.add_argument(
        "--copy-arguments",
        default="auto",
        help="string and number arguments only as written in the task or a tool's result: auto (on for "
        "models under a billion parameters; default), on, off",
    )
    run.add_argument(
        "--optional-arguments",
        default="stated",
        help="stated: write an optional parameter the task states, leave out optional choices it does not "
        "(default); model: the model decides",
    )
    run.add_argument(
        "--value-choice",
        default="greedy",
        help="how an argument's value is chosen among its candidates (an enum, or the spans and numbers the "
        "task writes): greedy (token by token under the grammar; default), likelihood (the candidate the model "
        "scores likeliest) or likelihood-mean (the same per token); see docs/agents.md",
    )
    run.add_argument(
        "--next-call",
        help="let a reply hold several calls, another one following when: probe (the model starts one "
        "itself) or score (the task holds a value for the same tool that no call used yet and that the model "
        "scores about as likely); default: one call per reply; see docs/agents.md",
    )
    run.add_argument("--trace", metavar="FILE.jsonl", help="write every event of the run as JSON lines")
    run.add_argument(
        "--json", action="store_true", help="print one JSON object (answer and steps) at the end"
    )
    run.set_defaults(func=run_agent)
    agent.set_defaults(func=lambda args: agent.print_help() or 0)


def _copy_setting(value: str) -> bool | None:
    settings = {"auto": None, "on": True, "off": False}
    if value not in settings:
        raise ConfigError(f"--copy-arguments must be one of auto, on, off, got {value!r}")
    return settings[value]


def _config(args: argparse.Namespace) -> Any:
    from llmlab.agents.caller import CallerConfig
    from llmlab.agents.loop import AgentConfig

    caller = CallerConfig(
        constrain=not args.no_constrain,
        selection=args.selection,
        copy_arguments=_copy_setting(args.copy_arguments),
        optional_arguments=args.optional_arguments,
        value_choice=args.value_choice,
        parallel=args.next_call is not None,
        next_call=args.next_call or "probe",
    )
    return AgentConfig(
        max_steps=args.max_steps,
        max_tokens=args.max_tokens,
        tool_timeout=args.tool_timeout,
        policy=args.policy,
        caller=caller,
    )


def run_agent(args: argparse.Namespace) -> int:
    from llmlab.agents.builtin import builtin_tools
    from llmlab.agents.loop import Agent, write_trace

    config = _config(args)  # bad flags are refused before the model loads
    names = [n.strip() for n in args.tools.split(",") if n.strip()]
    tools = builtin_tools(names, store=args.store, root=args.root, allow_hosts=args.allow_host)
    _, engine = load_engine(args)
    agent = Agent(engine, tools, config)
    result = agent.run(args.task, on_event=None if args.json else _print_event)
    if args.trace:
        write_trace(args.trace, result.events)
    if args.json:
        steps = [
            {"tool": s.call.name, "arguments": s.call.arguments, "observation": s.observation, "ok": s.ok}
            for s in result.steps
        ]
        data = {
            "answer": result.answer,
            "stop_reason": result.stop_reason,
            "steps": steps,
            "tokens": result.tokens,
        }
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    else:
        err_console.print(
            f"[dim]{len(result.steps)} tool call(s), {result.tokens} tokens, {result.seconds:.1f} s, "
            f"{result.stop_reason}[/dim]"
        )
    return 0


def _print_event(event: dict[str, Any]) -> None:
    kind = event["type"]
    if kind == "thought":
        _line(f"thought: {event['text']}")
    elif kind == "action":
        arguments = json.dumps(event["arguments"], ensure_ascii=False)
        _line(
            f"action: {event['tool'] or '?'} {arguments}"
            if not event.get("error")
            else f"action: {event['tool'] or '?'} (invalid call)"
        )
    elif kind == "observation":
        _line(f"observation: {_short(event['text'])}")
    elif kind == "answer":
        _line(f"answer: {event['text']}")


def _short(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _line(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
