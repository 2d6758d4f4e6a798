"""Restaurant-review sentiment with SmolLM2-135M: LoRA vs zero-shot, few-shot and a frozen-encoder baseline.

    python bench/peft_sentiment.py [--steps 150] [--threads 2] [--limit 400]

Data: bench/data/yelp-sentences (build it first; 600 training and 400 test sentences from Yelp restaurant
reviews, labelled positive or negative). Every generating row asks SmolLM2 the same question through its chat
template (llmlab.prompting): the instruction below, then the review; the answer counts as right when its first
word is the label. Rows:
- zero-shot: the base model, the question alone;
- few-shot: the base model with 4 answered training sentences (2 of each label) in front (FewShotPrompt);
- frozen encoder: MiniLM's mean-pooled sentence embeddings + logistic regression fitted on the training set
  (nothing of MiniLM trains);
- LoRA: `llmlab finetune lora` (r 8, alpha 16, q_proj and v_proj) on the training sentences as instruction
  records answering `positive` / `negative`, then the base model with the adapter, unmerged (`--adapter`).
Target (issue 10): LoRA >= 85% on the test set. Also printed: the adapter file's size next to the full
checkpoint's (fp32 model.safetensors).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from public_data import data_dir  # noqa: E402

MODEL = "smollm2-135m-instruct"
INSTRUCTION = "Is this restaurant review positive or negative? Answer with one word: positive or negative."
LABELS = ("positive", "negative")
TARGET = 0.85


def read(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def answer(text: str) -> str | None:
    """The label an answer gives: its first word, when that is positive or negative."""
    words = re.findall(r"[a-z]+", text.lower())
    return words[0] if words and words[0] in LABELS else None


def accuracy(
    engine: Any, tokenizer: Any, test: list[dict[str, str]], shots: list[Any], batch: int = 16
) -> float:
    from llmlab.generation import GenerationConfig
    from llmlab.prompting import FewShotPrompt, render

    prompts = [render(FewShotPrompt(r["text"], INSTRUCTION, shots), tokenizer).text for r in test]
    config = GenerationConfig(greedy=True, max_new_tokens=3)
    right = 0
    for start in range(0, len(prompts), batch):
        completions = engine.generate(prompts[start : start + batch], config)
        right += sum(
            answer(c.text) == r["label"]
            for c, r in zip(completions, test[start : start + batch], strict=True)
        )
    return right / len(test)


def few_shot_examples(train: list[dict[str, str]], k: int = 4) -> list[Any]:
    from llmlab.prompting import Example

    rng = random.Random(0)
    chosen = []
    for label in LABELS * (k // 2):
        pool = [r for r in train if r["label"] == label and r not in chosen]
        chosen.append(rng.choice(pool))
    rng.shuffle(chosen)
    return [Example(r["text"], r["label"]) for r in chosen]


def frozen_encoder(train: list[dict[str, str]], test: list[dict[str, str]]) -> float:
    """MiniLM sentence embeddings (frozen) + logistic regression on the training set."""
    from sklearn.linear_model import LogisticRegression

    from llmlab.rag.embedding import load_embedder

    embedder = load_embedder()
    x_train = embedder.embed([r["text"] for r in train])
    x_test = embedder.embed([r["text"] for r in test])
    classifier = LogisticRegression(max_iter=2000, C=1.0).fit(x_train, [r["label"] for r in train])
    return float((classifier.predict(x_test) == [r["label"] for r in test]).mean())


def train_lora(train_file: Path, out: Path, steps: int) -> Any:
    from llmlab.training.peft_finetune import LoraFinetuneConfig, finetune_peft

    config = LoraFinetuneConfig(
        model=MODEL, data=str(train_file), out=str(out), max_steps=steps, batch_size=8, seq_len=128, lr=1e-3,
        val_fraction=0.0, memory_check=False, keep_last=1, targets="q_proj,v_proj", rank=8, alpha=16,
    )  # fmt: skip
    _, result = finetune_peft(config)
    return result


def main() -> None:
    import torch

    from llmlab.generation import Engine
    from llmlab.models import load_model
    from llmlab.models.gguf_cache import cache_folder
    from llmlab.models.registry import resolve
    from llmlab.peft.checkpoint import load_adapter

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=150, help="LoRA optimizer steps of 8 sentences")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int, default=400, help="test sentences scored (default: all 400)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    folder = data_dir("yelp-sentences")
    train, test = read(folder / "train.jsonl"), read(folder / "test.jsonl")[: args.limit]
    rows: list[tuple[str, float, str]] = []

    loaded = load_model(MODEL, device="cpu")
    engine = Engine.from_loaded(loaded)
    t = time.perf_counter()
    rows.append(
        (
            "zero-shot (SmolLM2)",
            accuracy(engine, loaded.tokenizer, test, []),
            f"{time.perf_counter() - t:.0f} s",
        )
    )
    t = time.perf_counter()
    shots = few_shot_examples(train)
    rows.append(
        (
            "4-shot (SmolLM2)",
            accuracy(engine, loaded.tokenizer, test, shots),
            f"{time.perf_counter() - t:.0f} s",
        )
    )
    t = time.perf_counter()
    rows.append(
        (
            "frozen MiniLM + logistic regression",
            frozen_encoder(train, test),
            f"{time.perf_counter() - t:.0f} s",
        )
    )

    with tempfile.TemporaryDirectory() as tmp:
        records = Path(tmp) / "train.jsonl"
        records.write_text(
            "".join(
                json.dumps({"instruction": INSTRUCTION, "input": r["text"], "output": r["label"]}) + "\n"
                for r in train
            )
        )
        t = time.perf_counter()
        train_lora(records, Path(tmp) / "run", args.steps)
        trained = time.perf_counter() - t
        load_adapter(loaded.model, Path(tmp) / "run")
        adapted = Engine.from_loaded(loaded)
        t = time.perf_counter()
        lora = accuracy(adapted, loaded.tokenizer, test, [])
        rows.append(
            (f"LoRA r=8 q,v ({args.steps} steps, {trained:.0f} s)", lora, f"{time.perf_counter() - t:.0f} s")
        )
        adapter_bytes = (Path(tmp) / "run" / "adapter_model.safetensors").stat().st_size
    full_bytes = (cache_folder(resolve(MODEL).path) / "model.safetensors").stat().st_size

    print(
        f"\nYelp restaurant-review sentences, {len(test)} test sentences ({sum(r['label'] == 'positive' for r in test)} positive), trained on {len(train)}"
    )
    for name, acc, took in rows:
        print(f"{name:<44} accuracy {100 * acc:5.1f}%   ({took} to score)")
    print(f"LoRA vs target {100 * TARGET:.0f}%: {'met' if lora >= TARGET else 'NOT met'}")
    print(
        f"adapter file {adapter_bytes / 1e6:.2f} MB vs full checkpoint {full_bytes / 1e6:.0f} MB "
        f"({100 * adapter_bytes / full_bytes:.2f}%)"
    )


if __name__ == "__main__":
    main()
