"""Instruction tuning SmolLM2-135M teaches a checkable behaviour: answering in one JSON shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

DATA = Path(__file__).parents[1] / "fixtures" / "training" / "json-answers"


def json_answer_rate(loaded, questions: list[str]) -> float:
    """Share of greedy replies that are a JSON object whose only key is "answer" with a string value."""
    from llmlab.generation import Engine, GenerationConfig
    from llmlab.prompting import FewShotPrompt, render

    engine = Engine.from_loaded(loaded, precision="bf16")
    prompts = [render(FewShotPrompt(query=q), loaded.tokenizer).text for q in questions]
    good = 0
    for completion in engine.generate(prompts, GenerationConfig(max_new_tokens=24, temperature=0)):
        try:
            reply = json.loads(completion.text)
        except json.JSONDecodeError:
            continue
        good += isinstance(reply, dict) and set(reply) == {"answer"} and isinstance(reply["answer"], str)
    return good / len(prompts)


@pytest.mark.slow
def test_instruction_tuning_teaches_the_json_shape(smollm, tmp_path):
    """8 full fine-tuning steps (batch 6, lr 1e-4, bf16 autocast) on 48 records: on 16 held-out questions the
    rate of replies in the trained shape goes from ≤ 0.25 to ≥ 0.75 (measured: 0/16 before, 16/16 after)."""
    from llmlab.models import load_model
    from llmlab.training.finetune import FinetuneConfig, finetune

    questions = [
        json.loads(line)["instruction"] for line in (DATA / "heldout.jsonl").read_text().splitlines()
    ]
    before = json_answer_rate(smollm, questions)
    config = FinetuneConfig(
        model="smollm2-135m-instruct", data=str(DATA / "train.jsonl"), out=str(tmp_path / "run"), max_steps=8,
        batch_size=6, seq_len=128, lr=1e-4, val_fraction=0, precision="bf16", memory_check=False, keep_last=1,
    )  # fmt: skip
    preview, result = finetune(config)
    assert result is not None and result.steps == 8 and result.skipped_steps == 0
    assert preview.stats["train_examples"] == 48 and preview.stats["truncated"] == 0
    after = json_answer_rate(load_model(tmp_path / "run", device="cpu"), questions)
    print(f"JSON-shape reply rate on 16 held-out questions: before {before:.2f}, after {after:.2f}")
    assert before <= 0.25 and after >= 0.75
