"""`llmlab pretrain` and `llmlab finetune full` end to end on tiny models (in-process CLI)."""

from __future__ import annotations

import json

import pytest
import yaml
from tiny import CORPUS

from llmlab.cli import main
from llmlab.models import load_model

RECORDS = [
    {"instruction": "Reverse the words", "input": "one two", "output": "two one"},
    "{oops",
    {"instruction": "Reverse the words", "input": "red blue green", "output": "green blue red"},
    {"instruction": "Answer", "output": 3},
] + [{"instruction": "Reverse the words", "input": f"w{i} x{i}", "output": f"x{i} w{i}"} for i in range(12)]


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    for i, text in enumerate(CORPUS[:12]):
        (folder / f"doc{i:02d}.txt").write_text(text * 3)
    return folder


def test_pretrain_writes_a_run_and_resumes(tmp_path, corpus, capsys):
    out = tmp_path / "runs" / "x"
    args = ["pretrain", "--data", str(corpus), "--vocab-size", "300", "--seq-len", "32", "--batch-size", "4"]
    args += ["--no-memory-check", "--eval-every", "3"]
    assert main([*args, "--max-steps", "6", "--out", str(out), "--precision", "fp32"]) == 0
    stdout = capsys.readouterr().out
    assert "unigram perplexity" in stdout and "trained 6 steps" in stdout
    assert f"model: {out} (best validation loss, step " in stdout
    for name in ("config.yaml", "metrics.jsonl", "loss.png", "model.safetensors", "tokenizer.json"):
        assert (out / name).is_file(), name
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["max_steps"] == 6 and saved["vocab_size"] == 300 and saved["data"] == [str(corpus)]
    loaded = load_model(out, device="cpu")
    assert loaded.kind == "decoder-only" and len(loaded.tokenizer) == 300

    assert main(["pretrain", "--resume", str(out), "--max-steps", "8"]) == 0
    assert "trained 8 steps" in capsys.readouterr().out
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and steps[-1] == 8

    assert main(["pretrain", "--resume", str(out), "--lr", "0.5"]) == 2
    assert (
        "--lr 0.5 differs from the run's 0.001; a resumed run keeps its settings" in capsys.readouterr().err
    )


def test_finetune_dry_run_marks_prompt_tokens(tmp_path, tiny_folder, capsys):
    data = tmp_path / "train.jsonl"
    data.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in RECORDS))
    code = main(
        ["finetune", "full", "--model", str(tiny_folder), "--data", str(data), "--dry-run", "--seq-len", "64"]
    )
    captured = capsys.readouterr()
    assert code == 0
    assert (
        f"{data}:2: invalid JSON" in captured.err
        and f"{data}:4: field 'output' must be a string" in captured.err
    )
    lines = captured.out.splitlines()
    assert lines[0].startswith(f"example 1 ({data}:1): ") and "prompt tokens ⟦not learned⟧" in lines[0]
    assert (
        "⟦<|im_start|>user\nReverse the words\n\none two<|im_end|>\n<|im_start|>assistant\n⟧two one<|im_end|>⟦\n⟧"
        in captured.out
    )
    assert (
        "format instruction, records 14, truncated 0, dropped 0, train examples 13, val examples 1"
        in captured.out
    )
    assert "memory estimate: " in captured.out


def test_finetune_full_trains_and_loads(tmp_path, tiny_folder, capsys):
    data = tmp_path / "train.jsonl"
    data.write_text(
        "".join(json.dumps(r) + "\n" for r in RECORDS if isinstance(r, dict) and r["output"] != 3)
    )
    out = tmp_path / "runs" / "y"
    args = ["finetune", "full", "--model", str(tiny_folder), "--data", str(data), "--out", str(out)]
    assert (
        main(
            [
                *args,
                "--max-steps",
                "3",
                "--batch-size",
                "4",
                "--precision",
                "fp32",
                "--pack",
                "--no-memory-check",
            ]
        )
        == 0
    )
    assert "trained 3 steps" in capsys.readouterr().out
    assert load_model(out, device="cpu").tokenizer.chat_template


def test_a_run_that_does_not_fit_is_refused(tmp_path, tiny_folder, capsys, monkeypatch):
    import llmlab.training.run as run

    monkeypatch.setattr(run, "available_bytes", lambda device: 1_000_000)
    data = tmp_path / "t.jsonl"
    data.write_text(json.dumps({"text": "hello world"}) + "\n")
    code = main(
        ["finetune", "full", "--model", str(tiny_folder), "--data", str(data), "--out", str(tmp_path / "o")]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert (
        "error: this run needs about " in err and "but only 0.00 GB is available; lower --batch-size" in err
    )
    assert not (tmp_path / "o").exists()


def test_continued_pretraining_and_a_config_file(tmp_path, corpus, tiny_folder, capsys):
    """--init-from starts from the model and its tokenizer; the perplexity before training is reported;
    --config FILE.yaml supplies settings, and a flag on the command line wins over it."""
    settings = tmp_path / "settings.yaml"
    settings.write_text("max-steps: 5\nseq_len: 32\nbatch-size: 4\nprecision: fp32\nmemory-check: false\n")
    out = tmp_path / "cont"
    args = [
        "pretrain",
        "--init-from",
        str(tiny_folder),
        "--data",
        str(corpus),
        "--lr",
        "1e-4",
        "--out",
        str(out),
    ]
    assert main([*args, "--config", str(settings), "--max-steps", "2"]) == 0
    stdout = capsys.readouterr().out
    assert "trained 2 steps" in stdout and "(before training " in stdout
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert (saved["seq_len"], saved["max_steps"], saved["init_from"]) == (32, 2, str(tiny_folder))
    assert len(load_model(out, device="cpu").tokenizer) == 320  # the model's own tokenizer, not a new one


def test_out_is_required_before_anything_loads(tmp_path, capsys):
    assert main(["finetune", "full", "--model", "no-such-model", "--data", str(tmp_path / "t.jsonl")]) == 2
    assert "error: --out is required" in capsys.readouterr().err
    assert main(["finetune", "full", "--data", "x.jsonl", "--out", "o"]) == 2
    assert "error: --model is required" in capsys.readouterr().err
