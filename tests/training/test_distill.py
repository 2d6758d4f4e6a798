"""Distillation learns: a teacher trained here first, then a student with a quarter of its parameters
distilled from it through `llmlab distill`, scored on held-out prompts."""

from __future__ import annotations

import json

import pytest
from task_data import reverse_instructions, reverse_records, save_word_llama, write_jsonl

from llmlab.cli import main
from llmlab.errors import ConfigError
from llmlab.training.distill import DistillConfig

STUDENT = "hidden_size: 32\nintermediate_size: 64\nnum_hidden_layers: 2\nnum_attention_heads: 4\nnum_key_value_heads: 2\n"


def test_student_reaches_the_teachers_accuracy(tmp_path, capsys):
    """Task: reverse 4 letters of 8 ("a b c d" -> "d c b a"). The teacher (Llama, hidden 64, 76k parameters)
    is fine-tuned for 150 steps first; the student (hidden 32, 19k parameters: 25%) is built from a config
    with the teacher's tokenizer, so distillation is token-level (KL at T = 2 mixed with the cross-entropy on
    the teacher's answers). Exact-match accuracy on 150 held-out prompts with references: teacher ≥ 0.9,
    student ≥ 80% of the teacher's after 350 steps (measured: 0.57 after 250 steps, 1.0 after 300 to 400)."""
    teacher_base = save_word_llama(tmp_path / "base")
    data = write_jsonl(tmp_path / "teach.jsonl", reverse_instructions(2000, seed=0))
    teacher = tmp_path / "teacher"
    common = ["--batch-size", "32", "--precision", "fp32", "--no-memory-check"]
    args = ["finetune", "full", "--model", str(teacher_base), "--data", str(data), "--out", str(teacher)]
    assert main([*args, "--lr", "5e-3", "--max-steps", "150", "--val-fraction", "0.05", *common]) == 0
    prompts = [{"prompt": r["source"], "reference": r["target"]} for r in reverse_records(1500, seed=5)]
    write_jsonl(tmp_path / "prompts.jsonl", prompts)
    (tmp_path / "student.yaml").write_text(STUDENT)
    capsys.readouterr()
    args = ["distill", "--teacher", str(teacher), "--student", str(tmp_path / "student.yaml")]
    args += [
        "--prompts",
        str(tmp_path / "prompts.jsonl"),
        "--out",
        str(tmp_path / "d"),
        "--max-new-tokens",
        "8",
    ]
    assert main([*args, "--lr", "1e-2", "--max-steps", "350", *common]) == 0
    stdout = capsys.readouterr().out
    assert "level token" in stdout and "token-level distillation, 150 held-out prompts" in stdout
    report = json.loads((tmp_path / "d" / "distill.json").read_text())
    teacher_score, student_score = report["teacher"]["score"], report["student"]["score"]
    assert report["metric"] == "accuracy" and report["items"] == 150
    assert report["student"]["parameters"] <= 0.3 * report["teacher"]["parameters"]
    assert teacher_score >= 0.9
    assert student_score >= 0.8 * teacher_score
    assert "student: 25.1% of the teacher's parameters" in stdout
    assert (tmp_path / "d" / "model.safetensors").is_file()


def test_config_is_checked():
    with pytest.raises(ConfigError, match="--teacher is required"):
        DistillConfig(student="tiny", prompts="p.jsonl")
    with pytest.raises(ConfigError, match="--level must be one of auto, sequence, token"):
        DistillConfig(teacher="t", student="tiny", prompts="p.jsonl", level="word")
    with pytest.raises(ConfigError, match=r"--alpha must be in \[0, 1\], got 1.5"):
        DistillConfig(teacher="t", student="tiny", prompts="p.jsonl", alpha=1.5)
