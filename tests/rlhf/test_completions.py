"""`llmlab feedback generate` on a tiny checkpoint: seeded, chat template applied, resumable, validated."""

from __future__ import annotations

import json

import pytest

from llmlab.cli import main
from llmlab.generation import Engine, GenerationConfig
from llmlab.models import load_model
from llmlab.rlhf.completions import prompt_seed, render_prompt
from llmlab.rlhf.records import read_completion_sets

PROMPTS = ["My house is too hot", "What is the capital of France?", "Name a colour."]
FLAGS = ["-n", "3", "--temperature", "1.0", "--top-p", "1.0", "--max-new-tokens", "6", "--precision", "fp32"]


@pytest.fixture(scope="module")
def prompts_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("prompts") / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    return path


def generate(capsys, tiny_folder, prompts_file, out, *extra: str) -> tuple[int, str, str]:
    code = main(["feedback", "generate", "--model", str(tiny_folder), "--prompts", str(prompts_file),
                 "--out", str(out), *FLAGS, *extra])  # fmt: skip
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def first_run(tiny_folder, prompts_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("gen") / "completions.jsonl"
    assert main(["feedback", "generate", "--model", str(tiny_folder), "--prompts", str(prompts_file),
                 "--out", str(out), *FLAGS, "--seed", "7"]) == 0  # fmt: skip
    return out


def test_equals_the_engine_with_the_chat_template_and_per_prompt_seeds(tiny_folder, first_run) -> None:
    """Prompt k's completions are the engine's batch of n copies of the chat-rendered prompt, seed 7 + 3k."""
    loaded = load_model(tiny_folder, device="cpu")
    engine = Engine.from_loaded(loaded, precision="fp32")
    sets = read_completion_sets(first_run)
    assert [s.prompt for s in sets] == PROMPTS
    for k, found in enumerate(sets):
        text = render_prompt(loaded.tokenizer, PROMPTS[k])
        assert text.startswith("<|im_start|>user\n" + PROMPTS[k])
        config = GenerationConfig(temperature=1.0, top_p=1.0, max_new_tokens=6, seed=prompt_seed(7, k, 3))
        assert found.completions == [c.text for c in engine.generate([text] * 3, config)]
    assert len({c for s in sets for c in s.completions}) > 3  # different seeds, different samples


def test_no_chat_sends_the_prompt_as_is(tiny_tok) -> None:
    assert render_prompt(tiny_tok, "Hi", chat=False) == "Hi"
    assert render_prompt(tiny_tok, "Hi", system="Be brief.") == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )


def test_resume_after_a_stop_writes_what_an_uninterrupted_run_writes(capsys, tiny_folder, prompts_file,
                                                                     first_run, tmp_path) -> None:  # fmt: skip
    out = tmp_path / "completions.jsonl"
    out.write_text(first_run.read_text().splitlines(keepends=True)[0])  # as if stopped after prompt 1
    code, stdout, err = generate(capsys, tiny_folder, prompts_file, out, "--seed", "7")
    assert code == 0 and "resuming: 1 of 3 prompts already in" in err
    assert "3 prompts, 3 completions each (seed 7), written to" in stdout
    assert out.read_text() == first_run.read_text()
    code, stdout, _ = generate(capsys, tiny_folder, prompts_file, out, "--seed", "7")
    assert code == 0 and "all 3 prompts already have completions" in stdout


def test_an_output_of_another_run_is_refused(capsys, tiny_folder, prompts_file, tmp_path) -> None:
    out = tmp_path / "completions.jsonl"
    out.write_text(json.dumps({"prompt": "something else", "completions": ["a", "b", "c"]}) + "\n")
    code, _, err = generate(capsys, tiny_folder, prompts_file, out)
    assert code == 2
    assert f"error: {out}:1: this record's prompt is not prompt 1 of the prompts file" in err


def test_bad_inputs_are_refused_before_the_model_loads(capsys, tmp_path) -> None:
    bad = tmp_path / "prompts.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"text": "no prompt"}\n')
    code = main(["feedback", "generate", "--model", "no-such-model", "--prompts", str(bad), "--out",
                 str(tmp_path / "o.jsonl")])  # fmt: skip
    assert code == 2 and f"error: {bad}:2: prompt record is missing 'prompt'" in capsys.readouterr().err
    code = main(["feedback", "generate", "--model", "no-such-model", "--prompts", str(bad), "--out",
                 str(tmp_path / "o.jsonl"), "-n", "1"])  # fmt: skip
    assert code == 2 and "-n must be at least 2" in capsys.readouterr().err
    code = main(
        ["feedback", "generate", "--prompts", str(bad), "--out", str(tmp_path / "o.jsonl"), "--greedy"]
    )
    assert (
        code == 2
        and "--greedy (or --temperature 0) would give the same completion n times" in capsys.readouterr().err
    )
