"""Tool calling with SmolLM2-135M: constrained vs unconstrained decoding, measured.

    python bench/agents.py [--parts project,dev,parallel,domain-train,speed,bfcl,...] [--limit N] [--json F]

- project: the project's 28 single-call tasks (bench/data/agents/tasks.jsonl; the only tasks prompts and
  decoding were tuned on), tool_choice "required": the rate of valid calls, of the right tool, and of fully
  correct calls, for unconstrained decoding and for constrained decoding with the tool chosen token by token
  (greedy), by direct scoring of each name, and by channel scoring, with argument values free or copied from
  the request (copy_arguments and optional_arguments="stated", the defaults for small models; see
  llmlab/agents/arguments.py), and with the copied values chosen by likelihood instead of greedily
  (value_choice="likelihood": the sum of the candidate's token log-probabilities; "likelihood-mean": per
  token).
- dev: the same set-ups on the 26 held-out project tasks (bench/data/agents/dev.jsonl), which only chose
  between options that tied on the 28 (copy_arguments on for small models).
- parallel: the 32 parallel-call project tasks (bench/data/agents/parallel.jsonl: requests that need one,
  two or three calls, "weather in Paris and in Rome"; a train split of 16 the rule and its margin were set
  on, a dev split of 16 only measured), parallel=True, tool_choice "required": valid calls, the right number
  of calls, and fully correct replies (every needed call matched, no extra one), overall and on the tasks that
  need several calls, for the greedy probe (does the model start another `<tool_call>`?) and the scored rule
  (next_call="score": another call of the same tool when the request holds an unused value for
  it that the model scores about as likely as the last one).
- answers: the agent (llmlab agent run's defaults) on the 28 train tasks (answers-dev: the 26 dev tasks): of
  the runs whose last step returned a result with values to quote (llmlab/agents/grounding.py), how often the
  final answer holds them verbatim, for each answer_style (free: the model's text; template; splice); the
  styles only rewrite the model's text, so one run scores all three.
- domain-train, domain-dev: the project's domain tasks in BFCL's style (bench/data/agents/domain.jsonl, 35
  per half: 42 domain functions with typed parameters, one to four offered), tool_choice "required", scored
  with BFCL's AST checker rules (bench/bfcl_checker.py) as the bfcl part scores BFCL: valid calls, the right
  function, fully correct calls; --show prints each failure and why. The train half chose the argument fixes;
  the dev half is measured only.
- speed: milliseconds the token masks cost per decoding step on SmolLM2's 49,152-token vocabulary, the
  first time each automaton state is seen (cold) and after (warm), beside the time of a decoding step itself.
- bfcl: a 20-per-category subset of the Berkeley Function Calling Leaderboard v4 (simple_python, multiple,
  parallel, irrelevance; built into the data cache by bench/data/bfcl/build.py, see its README), scored with
  BFCL's AST checker rules (the project's implementation, bench/bfcl_checker.py):
  valid calls (decoded and matching the schema), fully correct calls, and abstention when no function fits,
  with tool_choice "required" (argument values free, and copied: the default; with copied values, the
  next call decided by the greedy probe, the default, or by the scored rule) and "auto" (the model writes
  `<tool_call>` or not; or abstain="channel": a call when a tool explains the request better than no tool).
  Used only to report, never to tune. The functions are presented as BFCL presents them to function-calling
  models (types mapped to JSON Schema, "Note that the provided function is in Python 3 syntax.").

Numbers move with the machine's load; they are printed as measured.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from agent_tasks import DEV, TASKS, load_parallel, load_tasks, score_call, score_calls, task_tools
from bfcl_checker import check
from public_data import data_dir

CATEGORIES = ("simple_python", "multiple", "parallel", "irrelevance")
# BFCL's parameter types as JSON Schema types (BFCL's own table for function-calling models); others are strings
JSON_TYPES = {
    "integer": "integer", "number": "number", "float": "number", "double": "number", "string": "string",
    "char": "string", "any": "string", "boolean": "boolean", "bool": "boolean", "array": "array", "list": "array",
    "tuple": "array", "dict": "object", "object": "object", "byte": "integer", "short": "integer", "long": "integer",
}  # fmt: skip


def json_schema(spec: dict[str, Any], *, parameter: bool = True) -> dict[str, Any]:
    """One BFCL parameter spec as JSON Schema, the way BFCL presents functions to function-calling models.

    The type goes through JSON_TYPES (missing or unknown: "string"); a float parameter also gets
    `"format": "float"` and " This is a float type value." after its description; object properties and
    array items are converted the same way, at any depth (BFCL goes two levels deep, enough for its data).
    """
    out = dict(spec)
    kind = spec.get("type")
    out["type"] = JSON_TYPES.get(kind, "string") if isinstance(kind, str) else "string"
    if parameter and kind == "float":
        out["format"] = "float"
        out["description"] = spec.get("description", "") + " This is a float type value."
    if isinstance(spec.get("properties"), dict):
        out["properties"] = {k: json_schema(v) for k, v in spec["properties"].items()}
    if isinstance(spec.get("items"), dict):
        out["items"] = json_schema(spec["items"], parameter=False)
    return out


def bfcl_tools(functions: list[dict[str, Any]]) -> list[Any]:
    """BFCL function descriptions as llmlab tools (names kept, dots included)."""
    from llmlab.agents.tools import Tool

    tools = []
    for f in functions:
        params = json_schema(f["parameters"], parameter=False) | {"type": "object"}
        description = f.get("description", "") + " Note that the provided function is in Python 3 syntax."
        tools.append(Tool(f["name"], description, params))
    return tools


def load(name: str) -> list[dict[str, Any]]:
    """Records of one file of the BFCL subset in the data cache (stops with the build command if missing)."""
    path = data_dir("bfcl") / name
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def run_project(engine: Any, only: list[str] | None = None, dev: bool = False) -> dict[str, Any]:
    from llmlab.agents.caller import CallerConfig, ToolCaller

    tools, tasks = task_tools(), load_tasks(DEV if dev else TASKS)
    label = "dev" if dev else "project"
    configs = {
        "unconstrained": CallerConfig(constrain=False, max_text_tokens=64),
        "constrained, greedy choice": CallerConfig(
            selection="greedy", copy_arguments=False, optional_arguments="model"
        ),
        "constrained, direct scores": CallerConfig(
            selection="direct", copy_arguments=False, optional_arguments="model"
        ),
        "constrained, channel scores, free values": CallerConfig(
            copy_arguments=False, optional_arguments="model"
        ),
        "constrained, channel scores, copied values (default)": CallerConfig(),
        "constrained, channel scores, copied values, likelihood values": CallerConfig(
            value_choice="likelihood"
        ),
        "constrained, channel scores, copied values, likelihood-mean values": CallerConfig(
            value_choice="likelihood-mean"
        ),
    }
    out = {}
    configs = {k: v for k, v in configs.items() if only is None or any(o in k for o in only)}
    for name, config in configs.items():
        caller, started = ToolCaller(engine, tools, config), time.perf_counter()
        scores = [
            score_call(t, caller.reply([{"role": "user", "content": t["request"]}], "required").calls)
            for t in tasks
        ]
        out[name] = {k: sum(s[k] for s in scores) / len(tasks) for k in ("valid", "tool", "correct")}
        out[name]["seconds_per_task"] = (time.perf_counter() - started) / len(tasks)
        print(f"{label:8s} {name:52s} " + "  ".join(f"{k} {v:.0%}" for k, v in out[name].items() if k != "seconds_per_task")
              + f"  ({out[name]['seconds_per_task']:.1f} s/task)", flush=True)  # fmt: skip
    return out


def run_parallel(engine: Any, only: list[str] | None = None) -> dict[str, Any]:
    """The parallel-call project tasks (train and dev splits), tool_choice "required", parallel=True."""
    from llmlab.agents.caller import CallerConfig, ToolCaller

    tools = task_tools()
    configs = {
        "probe (greedy: the model starts another call; default)": CallerConfig(parallel=True),
        "scored next call": CallerConfig(parallel=True, next_call="score"),
    }
    out: dict[str, Any] = {}
    configs = {k: v for k, v in configs.items() if only is None or any(o in k for o in only)}
    for name, config in configs.items():
        caller = ToolCaller(engine, tools, config)
        for split in ("train", "dev"):
            tasks, started = load_parallel(split), time.perf_counter()
            scores = [
                score_calls(t, caller.reply([{"role": "user", "content": t["request"]}], "required").calls)
                for t in tasks
            ]
            row = {k: sum(s[k] for s in scores) / len(tasks) for k in ("valid", "count", "correct")}
            several = [s for s, t in zip(scores, tasks, strict=True) if len(t["calls"]) > 1]
            row["correct_several"] = sum(s["correct"] for s in several) / len(several)
            row["seconds_per_task"] = (time.perf_counter() - started) / len(tasks)
            out.setdefault(name, {})[split] = row
            print(f"parallel {split:5s} {name:48s} valid {row['valid']:.0%}  count {row['count']:.0%}  correct {row['correct']:.0%}"
                  f"  (several calls: {row['correct_several']:.0%})  ({row['seconds_per_task']:.1f} s/task)", flush=True)  # fmt: skip
    return out


def run_answers(engine: Any, dev: bool = False) -> dict[str, Any]:
    """How often the reply after the last tool result holds that result's values, per answer style, on
    three paths: the agent's plan policy (the default), its react policy, and the server's reply after a
    `tool` message (the plan's first call and its result, answered as AgentsToolCalling does)."""
    from llmlab.agents import Agent, AgentConfig
    from llmlab.agents.caller import CallerConfig, ToolCaller
    from llmlab.agents.grounding import ground, holds_results, values

    tasks, label = load_tasks(DEV if dev else TASKS), "answers-dev" if dev else "answers"
    tools, free = task_tools(), CallerConfig(answer_style="free")
    agents = {p: Agent(engine, tools, AgentConfig(policy=p, caller=free)) for p in ("plan", "react")}
    server = ToolCaller(engine, tools, CallerConfig(answer_style="free", max_text_tokens=64, abstain="model"))
    styles, started = ("free", "template", "splice"), time.perf_counter()
    held = {p: dict.fromkeys(styles, 0) for p in ("plan", "react", "server")}
    n = dict.fromkeys(held, 0)
    for task in tasks:
        replies: dict[str, tuple[str, list[str]]] = {}
        for policy, agent in agents.items():
            result = agent.run(task["request"])
            last = [s for s in result.steps if result.steps and s.index == result.steps[-1].index]
            replies[policy] = (result.answer, [s.observation for s in last if s.ok])
            if policy == "plan" and result.steps and result.steps[0].ok:
                step = result.steps[0]
                messages = [
                    {"role": "user", "content": task["request"]},
                    {"role": "assistant", "content": None, "tool_calls": [step.call.openai()]},
                    {"role": "tool", "tool_call_id": step.call.id, "content": step.observation},
                ]
                reply = server.reply(messages, "auto")
                replies["server"] = (reply.content if not reply.calls else "", [step.observation])
        for path, (answer, results) in replies.items():
            if not any(values(r) for r in results):
                continue
            n[path] += 1
            for style in styles:
                held[path][style] += holds_results(ground(answer, results, style, [task["request"]]), results)
            print(f"{label} {path}: {task['request']!r} -> {results!r}\n  free: {answer!r}\n  splice: "
                  f"{ground(answer, results, 'splice', [task['request']])!r}", flush=True)  # fmt: skip
    out: dict[str, Any] = {"tasks": len(tasks)}
    for path in held:
        out[path] = {"n": n[path], **{s: held[path][s] / max(n[path], 1) for s in styles}}
        print(f"{label:8s} {path:6s} {n[path]}/{len(tasks)} tasks end with a result to quote; the answer holds it: "
              + "  ".join(f"{s} {held[path][s]}/{n[path]}" for s in styles), flush=True)  # fmt: skip
    print(f"{label:8s} {(time.perf_counter() - started) / len(tasks):.1f} s/task", flush=True)
    return out


def run_speed(engine: Any) -> dict[str, float]:
    """ms per step of the masks, cold and warm, beside the decoding step itself (same calls, same run)."""
    import llmlab.agents.json_constraint as jc
    from llmlab.agents.json_constraint import tool_call_constraint
    from llmlab.agents.vocab import vocab_for
    from llmlab.generation import GenerationConfig

    tok, tools = engine.tokenizer, task_tools()
    started = time.perf_counter()
    vocab_for(tok)
    vocab_seconds = time.perf_counter() - started
    prompt = "<|im_start|>user\nWeather in Oslo and 2 + 2?<|im_end|>\n<|im_start|>assistant\n"
    config = GenerationConfig(max_new_tokens=80, temperature=1.0, top_p=1.0, seed=0)
    rows = {}
    for label in ("cold", "warm"):
        if label == "cold":
            jc._MASKERS.clear()
        hook = tool_call_constraint(tok, tools, "required", max_tokens=80, eos_ids=sorted(engine.eos_ids))
        outs = engine.generate([prompt], config, allowed_tokens=hook)
        step_ms = 1000 * outs[0].seconds / max(outs[0].completion_tokens, 1)
        rows[label] = {"mask_ms_per_step": hook.ms_per_step, "decode_ms_per_step": step_ms}
    free = engine.generate([prompt], config)[0]
    result = {
        "vocab_build_seconds": vocab_seconds,
        "cold_mask_ms": rows["cold"]["mask_ms_per_step"],
        "warm_mask_ms": rows["warm"]["mask_ms_per_step"],
        "constrained_decode_ms_per_token": rows["warm"]["decode_ms_per_step"],
        "unconstrained_decode_ms_per_token": 1000 * free.seconds / max(free.completion_tokens, 1),
    }
    print(
        f"speed    vocabulary index {result['vocab_build_seconds']:.2f} s once; masks {result['cold_mask_ms']:.2f} ms/step "
        f"cold, {result['warm_mask_ms']:.3f} ms/step warm; decoding {result['constrained_decode_ms_per_token']:.1f} "
        f"ms/token constrained vs {result['unconstrained_decode_ms_per_token']:.1f} unconstrained "
        f"(ratio {result['constrained_decode_ms_per_token'] / result['unconstrained_decode_ms_per_token']:.2f})",
        flush=True,
    )  # fmt: skip
    return result


def run_bfcl(
    engine: Any, limit: int, only: list[str] | None = None, categories: tuple[str, ...] = CATEGORIES
) -> dict[str, Any]:
    from llmlab.agents.caller import CallerConfig, ToolCaller

    configs = {
        "constrained, required, free values": (
            CallerConfig(parallel=True, copy_arguments=False, optional_arguments="model"),
            "required",
        ),
        "constrained, required, copied values": (CallerConfig(parallel=True), "required"),
        "constrained, required, copied values, scored next call": (
            CallerConfig(parallel=True, next_call="score"),
            "required",
        ),
        "constrained, auto, the model decides": (CallerConfig(parallel=True, max_text_tokens=96), "auto"),
        "constrained, auto, channel abstention": (
            CallerConfig(parallel=True, max_text_tokens=96, abstain="channel"),
            "auto",
        ),
        "unconstrained": (CallerConfig(constrain=False, parallel=True, max_text_tokens=96), "auto"),
    }
    out: dict[str, Any] = {}
    configs = {k: v for k, v in configs.items() if only is None or any(o in k for o in only)}
    for name, (config, choice) in configs.items():
        out[name] = {}
        for category in categories:
            if category == "irrelevance" and choice == "required":
                continue  # a call is forced: abstention is impossible by construction
            items = load(f"BFCL_v4_{category}.jsonl")[:limit]
            answers = (
                {a["id"]: a["ground_truth"] for a in load(f"possible_answer_{category}.jsonl")}
                if category != "irrelevance"
                else {}
            )
            counts = {"valid": 0, "correct": 0, "abstained": 0}
            for item in items:
                tools = bfcl_tools(item["function"])
                reply = ToolCaller(engine, tools, config).reply(item["question"][0], choice)
                decoded = [{c.name: c.arguments} for c in reply.calls if c.error is None]
                counts["valid"] += bool(reply.calls) and len(decoded) == len(reply.calls)
                counts["abstained"] += not reply.calls
                if category == "irrelevance":
                    counts["correct"] += not decoded  # BFCL: correct when no call decodes
                elif decoded:
                    counts["correct"] += (
                        check(item["function"], decoded, answers[item["id"]], category) is None
                    )
            out[name][category] = {k: v / len(items) for k, v in counts.items()} | {"n": len(items)}
            row = out[name][category]
            print(f"bfcl     {name:37s} {category:14s} n={row['n']:<3d} valid calls {row['valid']:.0%}  correct {row['correct']:.0%}"
                  f"  abstained {row['abstained']:.0%}", flush=True)  # fmt: skip
    return out


DOMAIN = Path(__file__).parent / "data" / "agents" / "domain.jsonl"
DOMAIN_FUNCTIONS = DOMAIN.with_name("domain_functions.json")


def run_domain(engine: Any, split: str, only: list[str] | None = None, show: bool = False) -> dict[str, Any]:
    """The project's domain tasks in BFCL's style (bench/data/agents/domain.jsonl, one split), tool_choice
    "required", scored with BFCL's AST checker rules: one function offered ("simple") or two to four
    ("multiple"); valid calls, the right function, fully correct calls. show: print each failure's reason."""
    from llmlab.agents.caller import CallerConfig, ToolCaller

    functions = {f["name"]: f for f in json.loads(DOMAIN_FUNCTIONS.read_text(encoding="utf-8"))}
    tasks = [t for t in load_tasks(DOMAIN) if t["split"] == split]
    configs = {
        "constrained, required, free values": CallerConfig(copy_arguments=False, optional_arguments="model"),
        "constrained, required, copied values (default)": CallerConfig(),
    }
    out: dict[str, Any] = {}
    configs = {k: v for k, v in configs.items() if only is None or any(o in k for o in only)}
    for name, config in configs.items():
        counts, started = {"valid": 0, "tool": 0, "correct": 0}, time.perf_counter()
        for task in tasks:
            offered = [functions[f] for f in task["functions"]]
            reply = ToolCaller(engine, bfcl_tools(offered), config).reply(
                [{"role": "user", "content": task["question"]}], "required"
            )
            decoded = [{c.name: c.arguments} for c in reply.calls if c.error is None]
            category = "simple_python" if len(offered) == 1 else "multiple"
            reason = check(offered, decoded, task["ground_truth"], category) if decoded else "no valid call"
            counts["valid"] += bool(decoded)
            counts["tool"] += bool(decoded) and next(iter(decoded[0])) == next(iter(task["ground_truth"][0]))
            counts["correct"] += reason is None
            if show and reason is not None:
                print(f"  {task['id']}: {task['question']!r}\n    got {decoded}\n    {reason}", flush=True)
        row = {k: v / len(tasks) for k, v in counts.items()} | {"n": len(tasks)}
        row["seconds_per_task"] = (time.perf_counter() - started) / len(tasks)
        out[name] = row
        print(f"domain-{split:5s} {name:48s} n={row['n']}  valid {row['valid']:.0%}  tool {row['tool']:.0%}  correct "
              f"{row['correct']:.0%}  ({row['seconds_per_task']:.1f} s/task)", flush=True)  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="speed,project,bfcl")
    parser.add_argument(
        "--limit", type=int, default=20, help="BFCL items per category (as many as the built subset holds)"
    )
    parser.add_argument(
        "--configs", help="only the decoding set-ups whose name contains one of these words (comma-separated)"
    )
    parser.add_argument(
        "--categories", default=",".join(CATEGORIES), help="BFCL categories (comma-separated)"
    )
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--show", action="store_true", help="domain parts: print each failed task and why")
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args()
    from llmlab.generation import Engine
    from llmlab.models import load_model

    engine = Engine.from_loaded(load_model(args.model, device="cpu"))
    print(f"model {args.model}, precision {engine.backend.__class__.__name__}", flush=True)
    results: dict[str, Any] = {}
    parts = args.parts.split(",")
    only = args.configs.split(",") if args.configs else None
    if "speed" in parts:
        results["speed"] = run_speed(engine)
    if "project" in parts:
        results["project"] = run_project(engine, only)
    if "dev" in parts:
        results["dev"] = run_project(engine, only, dev=True)
    if "answers" in parts:
        results["answers"] = run_answers(engine)
    if "answers-dev" in parts:
        results["answers-dev"] = run_answers(engine, dev=True)
    if "parallel" in parts:
        results["parallel"] = run_parallel(engine, only)
    for split in ("train", "dev"):
        if f"domain-{split}" in parts:
            results[f"domain-{split}"] = run_domain(engine, split, only, show=args.show)
    if "bfcl" in parts:
        results["bfcl"] = run_bfcl(engine, args.limit, only, tuple(args.categories.split(",")))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
