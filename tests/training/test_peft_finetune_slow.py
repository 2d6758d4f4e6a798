"""PEFT on the real SmolLM2-135M: each method (LoRA, prompt tuning, bottleneck adapters, selective norms)
teaches the JSON answer shape of the instruction set (tests/fixtures/training/json-answers), and LoRA teaches
restaurant-review sentiment answers."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

DATA = Path(__file__).parents[1] / "fixtures" / "training" / "json-answers"

# Restaurant reviews written for this project: a review is one to three clauses about what a diner noticed.
ASPECTS = ["the food", "the pasta", "the service", "our waiter", "the pizza", "the dessert", "the staff",
           "the soup", "the coffee", "the atmosphere", "the steak", "the portions"]  # fmt: skip
GOOD = ["was delicious", "was excellent", "was friendly and quick", "was perfect", "was wonderful",
        "was fresh and tasty", "was generous", "was superb", "made our evening"]  # fmt: skip
BAD = ["was cold", "was terrible", "was rude and slow", "was bland", "was awful", "was stale",
       "was tiny for the price", "was a disappointment", "ruined our evening"]  # fmt: skip
CLOSERS = {
    "positive": ["We will be back.", "Highly recommended.", "Best meal in weeks.", ""],
    "negative": ["Never again.", "Avoid this place.", "What a waste of money.", ""],
}
INSTRUCTION = "Is this restaurant review positive or negative? Answer with one word: positive or negative."


def reviews(n: int, seed: int) -> list[dict[str, str]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        label = rng.choice(["positive", "negative"])
        phrases = GOOD if label == "positive" else BAD
        clauses = [f"{a} {rng.choice(phrases)}" for a in rng.sample(ASPECTS, rng.randint(1, 3))]
        text = ", and ".join(clauses).capitalize() + ". " + rng.choice(CLOSERS[label])
        out.append({"instruction": INSTRUCTION, "input": text.strip(), "output": label})
    return out


def sentiment_accuracy(loaded, records: list[dict[str, str]]) -> float:
    """Share of greedy answers whose first word is the right label."""
    from llmlab.generation import Engine, GenerationConfig
    from llmlab.prompting import FewShotPrompt, render

    engine = Engine.from_loaded(loaded, precision="bf16")
    prompts = [render(FewShotPrompt(r["input"], INSTRUCTION), loaded.tokenizer).text for r in records]
    right = 0
    for completion, record in zip(
        engine.generate(prompts, GenerationConfig(max_new_tokens=3, temperature=0)), records, strict=True
    ):
        words = re.findall(r"[a-z]+", completion.text.lower())
        right += bool(words) and words[0] == record["output"]
    return right / len(records)


@pytest.fixture(scope="module")
def questions() -> list[str]:
    return [json.loads(line)["instruction"] for line in (DATA / "heldout.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def rate_before(smollm, questions) -> float:
    from test_finetune_slow import json_answer_rate

    return json_answer_rate(smollm, questions)


def adapted(run: Path):
    from llmlab.models import load_model
    from llmlab.peft.checkpoint import load_adapter

    loaded = load_model("smollm2-135m-instruct", device="cpu")
    load_adapter(loaded.model, run)
    return loaded


@pytest.mark.slow
@pytest.mark.parametrize(
    ("method", "steps", "lr", "settings"),
    [
        ("lora", 10, 2e-3, {}),
        ("prompt-tuning", 16, 3e-2, {}),
        ("adapters", 10, 1e-3, {}),
        ("selective", 16, 1e-2, {"train": ["norms"]}),
    ],
)
def test_peft_teaches_the_json_shape(smollm, questions, rate_before, tmp_path, method, steps, lr, settings):
    """Each method on the frozen model, batch 6, bf16 autocast, on the 48 training records: `finetune lora`
    (r 8, alpha 16, q and v) for 10 steps, `finetune prompt-tuning` (20 virtual tokens from vocabulary
    embeddings) for 16, `finetune adapters` (the default bottleneck, 36, after every sublayer) for 10 and `finetune
    selective --train norms` (the 61 RMSNorm weights, 35,136 numbers) for 16: on the 16 held-out questions the
    rate of replies in the trained JSON shape goes from <= 0.25 to >= 0.75 (measured: 0/16 before; LoRA 15/16,
    prompt tuning, adapters and norms 16/16 after)."""
    from test_finetune_slow import json_answer_rate

    from llmlab.training.peft_finetune import CONFIGS, finetune_peft

    config = CONFIGS[method](
        model="smollm2-135m-instruct", data=str(DATA / "train.jsonl"), out=str(tmp_path / "run"), max_steps=steps,
        batch_size=6, seq_len=128, lr=lr, val_fraction=0, precision="bf16", memory_check=False, keep_last=1,
        warmup_ratio=0.1, **settings,
    )  # fmt: skip
    _preview, result = finetune_peft(config)
    assert result is not None and result.steps == steps and result.skipped_steps == 0
    after = json_answer_rate(adapted(tmp_path / "run"), questions)
    print(
        f"{method}: JSON-shape reply rate on 16 held-out questions: before {rate_before:.2f}, after {after:.2f}"
    )
    assert rate_before <= 0.25 and after >= 0.75


@pytest.mark.slow
def test_lora_answers_restaurant_review_sentiment(smollm, tmp_path):
    """LoRA (r 8, q and v, 16 steps of 8) on 128 restaurant reviews written for the project (templated
    clauses about food and service, `reviews` above): on 48 other reviews the first word of the greedy
    answer is the right label (positive or negative) for >= 85% of them, and for more than before training
    (measured: 0.67 before, 1.00 after)."""
    from llmlab.training.peft_finetune import LoraFinetuneConfig, finetune_peft

    train, test = reviews(128, seed=0), reviews(48, seed=1)
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in train))
    config = LoraFinetuneConfig(
        model="smollm2-135m-instruct", data=str(data), out=str(tmp_path / "run"), max_steps=16, batch_size=8,
        seq_len=128, lr=1e-3, val_fraction=0, precision="bf16", memory_check=False, keep_last=1,
    )  # fmt: skip
    before = sentiment_accuracy(smollm, test)
    finetune_peft(config)
    after = sentiment_accuracy(adapted(tmp_path / "run"), test)
    print(
        f"restaurant-review sentiment, 48 held-out reviews: accuracy before {before:.2f}, after LoRA {after:.2f}"
    )
    assert after >= 0.85 and after > before
