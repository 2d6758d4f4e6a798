"""Draw the committed subset of ETHICS utilitarianism (Hendrycks et al., ICLR 2021) as preference pairs.

    python bench/data/ethics-utilitarianism/build.py util_train.csv util_test.csv

Reads the two CSV files of the dataset's `utilitarianism/` folder (each row: the more pleasant scenario,
then the less pleasant one), strips surrounding spaces, and writes train.jsonl (3,000 pairs drawn from the
training split) and test.jsonl (1,000 pairs drawn from the test split, none of which occurs in the training
split), one {"prompt": "", "chosen": ..., "rejected": ...} a line, in their original order.
"""

from __future__ import annotations

import csv
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # bench/, for public_data
from public_data import data_dir

SEED, TRAIN, TEST = 0, 3000, 1000


def read(path: str) -> list[tuple[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        rows = [(a.strip(), b.strip()) for a, b in csv.reader(handle)]
    return [(a, b) for a, b in rows if a and b and a != b]


def draw(rows: list[tuple[str, str]], k: int, rng: random.Random) -> list[tuple[str, str]]:
    return [rows[i] for i in sorted(rng.sample(range(len(rows)), k))]


def write(path: Path, pairs: list[tuple[str, str]]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for chosen, rejected in pairs:
            handle.write(
                json.dumps({"prompt": "", "chosen": chosen, "rejected": rejected}, ensure_ascii=False) + "\n"
            )


def main(train_csv: str, test_csv: str) -> None:
    train, test = read(train_csv), read(test_csv)
    seen = set(train) | {(b, a) for a, b in train}
    test = [pair for pair in test if pair not in seen]
    rng = random.Random(SEED)
    here = data_dir("ethics-utilitarianism", must_exist=False)
    here.mkdir(parents=True, exist_ok=True)
    write(here / "train.jsonl", draw(train, TRAIN, rng))
    write(here / "test.jsonl", draw(test, TEST, rng))
    print(
        f"train: {TRAIN} of {len(train)} pairs; test: {TEST} of {len(test)} pairs (after removing train pairs)"
    )


if __name__ == "__main__":
    main(*sys.argv[1:3])
