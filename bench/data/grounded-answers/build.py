"""Build train.jsonl (grounded-answer training examples) from SQuAD 2.0's TRAINING split; see README.md.

Usage: python bench/data/grounded-answers/build.py TRAIN_V2_JSON [--count 4000] [--blocks 3] [--seed 14]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # bench/, for public_data
from public_data import data_dir

from llmlab.data.grounded_qa import grounded_examples, read_squad

OUT = data_dir("grounded-answers", must_exist=False) / "train.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("train", type=Path, help="SQuAD 2.0 train-v2.0.json (never the dev split)")
    parser.add_argument("--count", type=int, default=4000)
    parser.add_argument(
        "--blocks", type=int, default=3, help="context blocks per example (AnswerConfig.top_k)"
    )
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    if "dev" in args.train.name:
        parser.error(f"{args.train} looks like a dev split; the adapter trains on training splits only")
    examples = grounded_examples(read_squad(args.train), args.count, blocks=args.blocks, seed=args.seed)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("w", encoding="utf-8") as f:
        for example in examples:
            f.write(json.dumps(example, ensure_ascii=False) + "\n")
    print(f"{OUT}: {len(examples)} examples {dict(Counter(e['kind'] for e in examples))}")


if __name__ == "__main__":
    main()
