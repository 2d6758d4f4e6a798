"""`llmlab finetune lora | adapters | prompt-tuning | selective`: each method learns through the recipe, saves only
its adapter, and resumes after SIGKILL exactly."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from llmlab.cli import main
from llmlab.training.checkpoint import list_checkpoints
from llmlab.training.peft_finetune import CONFIGS, finetune_peft

CHILD = Path(__file__).with_name("peft_resume_child.py")
GROUPS = [
    ["one", "two", "three", "four"],
    ["red", "blue", "green", "pink"],
    ["cat", "dog", "fish", "bird"],
    ["sun", "rain", "snow", "wind"],
]
LABELS = ["numbers", "colours", "animals", "weather"]


def topic_records(n: int, seed: int, k: int) -> list[dict[str, str]]:
    """Five words of one of k topics; the answer names the topic."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        t = rng.randrange(k)
        words = " ".join(rng.choice(GROUPS[t]) for _ in range(5))
        out.append({"instruction": "Topic?", "input": words, "output": LABELS[t]})
    return out


def write_jsonl(path: Path, records: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory) -> Path:
    from tiny import save_tiny_llama

    return save_tiny_llama(tmp_path_factory.mktemp("base") / "tiny", seed=1)


@pytest.mark.parametrize(
    ("method", "k", "lr", "settings", "bound"),
    [
        ("lora", 4, 2e-2, {}, 0.85),
        ("adapters", 4, 1e-2, {"bottleneck": 64}, 0.85),
        ("selective", 2, 1e-1, {"train": ["norms"]}, 0.8),
        ("prompt-tuning", 2, 1e-1, {}, 0.85),
    ],
)
def test_each_method_learns_through_the_recipe(tiny_base, tmp_path, method, k, lr, settings, bound):
    """40 steps of 16 topic records (k topics) on a frozen tiny random Llama: next-token accuracy on the
    completion tokens (the topic's name and the end token) of 64 held-out records reaches the bound; a random
    model gets about 1/320. Adapters of 64 units (the default, 64 / 16 = 4, is too narrow for this model).
    Measured (fp32, and ATEN_CPU_CAPABILITY=avx2 alike): LoRA 0.93, adapters 0.97, norms 0.88, prompt tuning
    0.94. Only the adapter is saved, and it holds exactly the trained tensors."""
    train = write_jsonl(tmp_path / "train.jsonl", topic_records(512, 0, k))
    val = write_jsonl(tmp_path / "val.jsonl", topic_records(64, 1, k))
    config = CONFIGS[method](
        model=str(tiny_base), data=str(train), val=str(val), out=str(tmp_path / "run"), max_steps=40,
        batch_size=16, seq_len=64, lr=lr, precision="fp32", memory_check=False, eval_every=40, keep_last=1,
        warmup_ratio=0.1, **settings,
    )  # fmt: skip
    preview, result = finetune_peft(config)
    assert result is not None and result.steps == 40 and result.last_eval is not None
    assert result.last_eval["val_accuracy"] >= bound, result.last_eval
    trainable = int(preview.stats["trainable_parameters"].split(" of ")[0].replace(",", ""))
    files = {p.name for p in (tmp_path / "run").iterdir() if p.is_file()}
    assert "model.safetensors" not in files and "llmlab_adapter.json" in files
    weights = (
        "llmlab_adapter.safetensors" if method in ("adapters", "selective") else "adapter_model.safetensors"
    )
    saved = load_file(str(tmp_path / "run" / weights))
    assert sum(t.numel() for t in saved.values()) == trainable


def test_lora_verb_prints_counts_saves_an_adapter_that_runs_and_merges(tiny_base, tmp_path, capsys):
    """Counts by hand: the tiny Llama (hidden 64, 2 KV heads of 16, 2 layers, 115,008 parameters) with LoRA
    rank r on q (64 -> 64), v (64 -> 32) and o (64 -> 64) trains 2 layers × r × ((64 + 64) + (64 + 32) +
    (64 + 64)) = 704 r: 5,632 at r = 8 and 2,816 at r = 4."""
    data = write_jsonl(tmp_path / "train.jsonl", topic_records(48, 0, 2))
    run = tmp_path / "run"
    args = ["finetune", "lora", "--model", str(tiny_base), "--data", str(data), "--batch-size", "8"]
    args += [
        "--seq-len",
        "64",
        "--precision",
        "fp32",
        "--no-memory-check",
        "--targets",
        "q_proj,v_proj,o_proj",
    ]
    assert main([*args, "--dry-run"]) == 0
    assert "trainable parameters 5,632 of 120,640 (4.668%)" in capsys.readouterr().out
    assert main([*args, "--max-steps", "4", "--out", str(run), "--rank", "4", "--alpha", "8"]) == 0
    out = capsys.readouterr().out
    assert "trainable parameters 2,816 of 117,824 (2.39%)" in out and "trained 4 steps" in out
    assert f"run it with: llmlab generate --model {tiny_base} --adapter {run}" in out
    config = json.loads((run / "adapter_config.json").read_text())
    assert (
        config["r"] == 4
        and config["lora_alpha"] == 8
        and config["target_modules"] == ["o_proj", "q_proj", "v_proj"]
    )
    assert json.loads((run / "llmlab_adapter.json").read_text())["base_model"] == str(tiny_base)

    assert main(["generate", "--model", str(tiny_base), "--adapter", str(run), "--raw", "one two", "--max-new-tokens", "3", "--greedy"]) == 0  # fmt: skip
    assert main(["peft", "merge", str(run), "--out", str(tmp_path / "merged")]) == 0
    assert (tmp_path / "merged" / "model.safetensors").is_file()
    assert main(["finetune", "lora", "--resume", str(run), "--max-steps", "6"]) == 0
    assert "trained 6 steps" in capsys.readouterr().out


def test_bad_settings_name_the_flag(tiny_base, tmp_path, capsys):
    data = write_jsonl(tmp_path / "train.jsonl", topic_records(8, 0, 2))
    base = ["--model", str(tiny_base), "--data", str(data), "--dry-run"]
    assert main(["finetune", "lora", *base, "--rank", "0"]) == 2
    assert "--rank must be a positive integer, got 0" in capsys.readouterr().err
    assert main(["finetune", "prompt-tuning", *base, "--pack"]) == 2
    assert "--pack cannot be used with prompt tuning" in capsys.readouterr().err
    assert main(["finetune", "lora", *base, "--targets", "q_prj"]) == 2
    assert "--targets 'q_prj' matches no module of this model" in capsys.readouterr().err


def test_lora_resume_after_sigkill_equals_uninterrupted(tmp_path):
    """As tests/training/test_resume.py for full training, with only a LoRA adapter trained and saved: the
    run killed inside step 13 resumes from the step-10 checkpoint (adapter restored in place, AdamW moments,
    RNG for the adapter's dropout, data position) and ends with the same adapter bytes and the same losses."""
    from peft_resume_child import build

    env = os.environ | {"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    killed = subprocess.run(
        [sys.executable, str(CHILD), str(tmp_path / "killed"), "--kill-at", "25"],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert [s for s, _ in list_checkpoints(tmp_path / "killed")] == [5, 10]
    build(str(tmp_path / "killed")).fit(resume=True)
    build(str(tmp_path / "whole")).fit()
    name = "adapter_model.safetensors"
    assert (tmp_path / "whole" / name).read_bytes() == (tmp_path / "killed" / name).read_bytes()
    assert not (tmp_path / "whole" / "model.safetensors").exists()
    lines = [(tmp_path / r / "metrics.jsonl").read_text().splitlines() for r in ("whole", "killed")]
    strip = lambda line: {k: v for k, v in json.loads(line).items() if k not in ("tokens_per_s", "elapsed_s")}  # noqa: E731
    assert [strip(x) for x in lines[0]] == [strip(x) for x in lines[1]]
    losses = [row["loss"] for row in map(json.loads, lines[0]) if "loss" in row]
    assert losses[-1] < losses[0]  # it trained (the weights are checked bit for bit above)
