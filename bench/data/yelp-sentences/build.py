"""Split the Yelp half of "Sentiment Labelled Sentences" (Kotzias et al., KDD 2015) into train and test sets.

    python bench/data/yelp-sentences/build.py yelp_labelled.txt

Reads the 1,000 restaurant-review sentences (`sentence<TAB>0|1`, 500 of each label), drops surrounding
spaces, shuffles them with a fixed seed and writes test.jsonl (the first 200 positive and 200 negative) and
train.jsonl (the other 600), one {"text": ..., "label": "positive" | "negative"} a line, to the data cache.
The source has no split of its own; this one is fixed by the seed, and only train.jsonl is ever trained on.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # bench/, for public_data
from public_data import data_dir

SEED, TEST_PER_LABEL = 0, 200
LABELS = {"0": "negative", "1": "positive"}


def read(path: str) -> list[dict[str, str]]:
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        text, _, score = line.rpartition("\t")
        if text.strip() and score.strip() in LABELS:
            rows.append({"text": text.strip(), "label": LABELS[score.strip()]})
    return rows


def write(path: Path, rows: list[dict[str, str]]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def main(source: str) -> None:
    rows = read(source)
    random.Random(SEED).shuffle(rows)
    test: list[dict[str, str]] = []
    for label in ("negative", "positive"):
        test += [r for r in rows if r["label"] == label][:TEST_PER_LABEL]
    chosen = {id(r) for r in test}
    train = [r for r in rows if id(r) not in chosen]
    test.sort(key=rows.index)
    here = data_dir("yelp-sentences", must_exist=False)
    here.mkdir(parents=True, exist_ok=True)
    write(here / "train.jsonl", train)
    write(here / "test.jsonl", test)
    print(f"{len(rows)} sentences: train {len(train)}, test {len(test)} -> {here}")


if __name__ == "__main__":
    main(sys.argv[1])
