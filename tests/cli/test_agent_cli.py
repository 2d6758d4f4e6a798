"""`llmlab agent run` through the real CLI entry point on a tiny random checkpoint: every call the random
model makes is valid (the grammar writes arithmetic from the task's numbers), the steps are printed as they
happen and the trace is written; bad flags are refused before a model loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmlab.agents.builtin.calculator import evaluate
from llmlab.cli import main


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> Path:
    """The tiny random Llama with room for an agent's prompt (the tools' listing and examples)."""
    from tiny import tiny_llama, tiny_tokenizer

    folder = tmp_path_factory.mktemp("tiny-agent")
    tok = tiny_tokenizer()
    tiny_llama(len(tok), max_position_embeddings=2048).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_agent_run_prints_steps_and_writes_the_trace(capsys, tiny_folder: Path, tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    code, out, err = run(
        capsys, "agent", "run", "What is 17 times 23?", "--model", str(tiny_folder), "--precision", "fp32",
        "--tools", "calculator", "--max-tokens", "200", "--trace", str(trace),
    )  # fmt: skip
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "thought: What is 17 times 23?"
    assert lines[1].startswith("action: calculator {")
    expression = json.loads(lines[1][len("action: calculator ") :])["expression"]
    assert set(expression) <= set("0123456789.+-*/%^() ,") or "(" in expression  # arithmetic, by grammar
    assert lines[-1].startswith("answer:") and "tool call(s)" in err
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    assert [e["type"] for e in events] == ["task", "plan", "thought", "action", "observation", "answer"]
    assert lines[2] == "observation: " + " ".join(events[4]["text"].split())
    assert events[3]["arguments"]["expression"] == expression
    numbers = {
        n for n in expression.replace("(", " ").replace(")", " ").split() if n.replace(".", "").isdigit()
    }
    assert numbers <= {"17", "23", "2"}  # only numbers the task mentions ("times" is not a number)
    if events[4]["ok"]:
        assert float(events[4]["text"]) == pytest.approx(float(evaluate(expression)))


def test_agent_json_output(capsys, tiny_folder: Path) -> None:
    code, out, _ = run(
        capsys, "agent", "run", "Add 2 and 3.", "--model", str(tiny_folder), "--precision", "fp32",
        "--tools", "calculator,now", "--max-tokens", "120", "--json", "--no-constrain", "--policy", "react",
    )  # fmt: skip
    data = json.loads(out)
    assert code == 0 and set(data) == {"answer", "stop_reason", "steps", "tokens"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tools", "calculator,oracle"], "--tools: unknown tool(s) oracle"),
        (["--tools", "rag_search"], "rag_search needs a store: pass --store NAME"),
        (["--tools", "read_file", "--root", "no/such/folder"], "--root no/such/folder: not a folder"),
        (["--tools", "http_get"], "pass --allow-host NAME"),
        (["--max-steps", "-1"], "--max-steps must be >= 0, got -1"),
        (["--tool-timeout", "0"], "--tool-timeout must be > 0 seconds, got 0.0"),
        (["--optional-arguments", "some"], "--optional-arguments must be one of stated, model, got 'some'"),
        (["--copy-arguments", "yes"], "--copy-arguments must be one of auto, on, off, got 'yes'"),
        (
            ["--value-choice", "best"],
            "--value-choice must be one of greedy, likelihood, likelihood-mean, got 'best'",
        ),
        (["--next-call", "often"], "--next-call must be one of probe, score, got 'often'"),
    ],
)
def test_bad_flags_are_refused_before_loading(capsys, argv: list[str], message: str) -> None:
    code, _, err = run(capsys, "agent", "run", "task", "--model", "no-such-model", *argv)
    assert code == 2 and message in err, err


def test_caller_flags_reach_the_caller_config() -> None:
    import argparse

    from llmlab.cli import agent

    parser = argparse.ArgumentParser()
    agent.register(parser.add_subparsers())
    args = parser.parse_args(
        ["agent", "run", "task", "--value-choice", "likelihood-mean", "--selection", "direct"]
    )
    caller = agent._config(args).caller
    assert (caller.value_choice, caller.selection) == ("likelihood-mean", "direct")
    default = agent._config(parser.parse_args(["agent", "run", "task"])).caller
    assert (default.value_choice, default.parallel) == ("greedy", False)  # one call per reply
    for rule in ("probe", "score"):
        caller = agent._config(parser.parse_args(["agent", "run", "task", "--next-call", rule])).caller
        assert (caller.parallel, caller.next_call) == (True, rule)
