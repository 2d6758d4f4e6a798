"""`llmlab generate` and `llmlab chat`, run through the real CLI entry point on a tiny checkpoint folder."""

from __future__ import annotations

import io
import json

import pytest

from llmlab.cli import main
from llmlab.generation import Engine, GenerationConfig
from llmlab.models import load_model


@pytest.fixture(scope="module")
def expected(tiny_folder):
    """What the library itself produces for the same prompt and settings (chat template applied)."""
    loaded = load_model(tiny_folder, device="cpu")
    engine = Engine.from_loaded(loaded, precision="fp32")
    from llmlab.prompting import render_chat

    text = render_chat(loaded.tokenizer, [{"role": "user", "content": "Hello"}])
    return engine.generate([text], GenerationConfig(greedy=True, max_new_tokens=8))[0]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_generate_json_equals_library_output(capsys, tiny_folder, expected) -> None:
    code, out, _ = run(
        capsys, "generate", "Hello", "--model", str(tiny_folder), "--greedy", "--max-new-tokens", "8",
        "--precision", "fp32", "--json",
    )  # fmt: skip
    assert code == 0
    data = json.loads(out)
    assert data["text"] == expected.text
    assert data["completion_tokens"] == expected.completion_tokens
    assert data["finish_reason"] == expected.finish_reason


def test_generate_streams_plain_text(capsys, tiny_folder, expected) -> None:
    code, out, err = run(
        capsys, "generate", "Hello", "--model", str(tiny_folder), "--greedy", "--max-new-tokens", "8",
        "--precision", "fp32",
    )  # fmt: skip
    assert code == 0 and out == expected.text + "\n"
    assert f"{expected.completion_tokens} tokens" in err


def test_config_file_and_flag_override(capsys, tmp_path, tiny_folder, expected) -> None:
    cfg = tmp_path / "decode.yaml"
    cfg.write_text("greedy: true\nmax-new-tokens: 3\n")
    code, out, _ = run(
        capsys, "generate", "Hello", "--model", str(tiny_folder), "--config", str(cfg), "--max-new-tokens", "8",
        "--precision", "fp32", "--json",
    )  # fmt: skip
    assert code == 0 and json.loads(out)["text"] == expected.text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--top-p", "1.5"], "error: --top-p must be in (0, 1], got 1.5"),
        (["--temperature", "-1"], "error: --temperature must be >= 0, got -1.0"),
        (["--max-new-tokens", "0"], "error: --max-new-tokens must be >= 1, got 0"),
    ],
)
def test_bad_values_exit_2_with_the_flag_named(capsys, tiny_folder, argv, message) -> None:
    code, _, err = run(capsys, "generate", "Hi", "--model", str(tiny_folder), *argv)
    assert code == 2 and message in err


def test_unknown_model_lists_known_ones(capsys) -> None:
    code, _, err = run(capsys, "generate", "Hi", "--model", "gpt-17")
    assert code == 2
    assert "unknown model 'gpt-17'; known models: minilm-l6, smollm2-135m-instruct" in err


def test_bad_shots_file_names_file_and_line(capsys, tmp_path, tiny_folder) -> None:
    shots = tmp_path / "shots.jsonl"
    shots.write_text('{"input": "a", "output": "b"}\n{"input": "c", "answer": "d"}\n')
    code, _, err = run(capsys, "generate", "Hi", "--model", str(tiny_folder), "--shots", str(shots))
    assert code == 2 and f"{shots}:2: example is missing 'output'" in err


def test_bad_shots_file_is_refused_before_the_model_loads(capsys, monkeypatch, tmp_path) -> None:
    """A GGUF model's first load takes half a minute; a typo in the examples file must not wait for it."""
    shots = tmp_path / "shots.jsonl"
    shots.write_text('{"input": "a", "output": "b"}\n{"input": "c"}\n')

    def load_engine(args):
        raise AssertionError("the model was loaded before the --shots file was read")

    monkeypatch.setattr("llmlab.cli.generate.load_engine", load_engine)
    code, _, err = run(capsys, "generate", "Hi", "--shots", str(shots))
    assert code == 2 and f"{shots}:2: example is missing 'output'" in err


def test_chat_repl_commands_and_turns(capsys, monkeypatch, tiny_folder, expected) -> None:
    script = "/set temperature 0\n/set top-p 2\nHello\n/show\n/reset\n/quit\n"
    monkeypatch.setattr("sys.stdin", io.StringIO(script))
    code, out, _ = run(
        capsys, "chat", "--model", str(tiny_folder), "--max-new-tokens", "8", "--precision", "fp32", "--json"
    )
    assert code == 0
    lines = [json.loads(chunk) for chunk in out.replace("}\n{", "}\x00{").split("\x00")]
    assert lines[0] == {"info": "temperature = 0.0"}
    assert lines[1]["info"].startswith("not changed: --top-p must be in (0, 1], got 2.0")
    assert lines[2]["user"] == "Hello" and lines[2]["text"] == expected.text
    assert "temperature=0.0" in lines[3]["info"]
    assert lines[4] == {"info": "conversation cleared"}
