"""Synthetic preferences for the learning tests: completions that contain a target word are preferred.

Prompts and completions are random words of the tiny tokenizer's corpus (tests/tiny.py); every chosen
completion contains the target word, no rejected one does. Deterministic for a seed.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

WORDS = [
    "the",
    "capital",
    "of",
    "france",
    "is",
    "italy",
    "rome",
    "language",
    "models",
    "predict",
    "next",
    "token",
    "greedy",
    "decoding",
    "picks",
    "most",
    "likely",
    "question",
    "what",
    "plus",
    "answer",
    "four",
]


def prompts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["Question: " + " ".join(rng.choice(WORDS) for _ in range(3)) for _ in range(n)]


def pairs(n: int, seed: int, target: str) -> list[dict[str, str]]:
    rng = random.Random(seed)
    out = []
    for prompt in prompts(n, seed + 1):
        words = [w for w in WORDS if w != target.lower()]
        chosen = [rng.choice(words) for _ in range(rng.randint(2, 6))]
        chosen.insert(rng.randint(0, len(chosen)), target)
        rejected = [rng.choice(words) for _ in range(rng.randint(3, 7))]
        out.append({"prompt": prompt, "chosen": " ".join(chosen), "rejected": " ".join(rejected)})
    return out


def write_jsonl(path: Path, records: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def step_losses(run: Path) -> list[float]:
    """The training loss of every optimizer step in a run folder's metrics.jsonl."""
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["loss"] for line in lines if '"loss"' in line]
