"""Rebuild the reading-comprehension set in this folder from SQuAD 2.0's dev split (see README.md).

Writes articles.jsonl ({"title", "paragraphs": [...]}, every paragraph of each article, in order) and
questions.jsonl ({"id", "title", "question", "answers": [...], "answerable"}): a seeded sample of
answerable and unanswerable questions about those articles. Answers are the distinct gold texts.

Usage: python bench/data/squad/build.py DEV_JSON [--answerable 150] [--unanswerable 50]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # bench/, for public_data
from public_data import data_dir

OUT = data_dir("squad", must_exist=False)
SEED = 14


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dev", type=Path, help="SQuAD 2.0 dev JSON (e.g. the CS224N half with answers)")
    parser.add_argument("--answerable", type=int, default=150)
    parser.add_argument("--unanswerable", type=int, default=50)
    args = parser.parse_args()
    data = json.loads(args.dev.read_text(encoding="utf-8"))["data"]
    articles, answerable, unanswerable = [], [], []
    for article in data:
        title = article["title"].replace("_", " ")
        articles.append({"title": title, "paragraphs": [p["context"].strip() for p in article["paragraphs"]]})
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                answers = list(dict.fromkeys(a["text"].strip() for a in qa["answers"]))
                item = {"id": qa["id"], "title": title, "question": qa["question"].strip()}
                (answerable if answers else unanswerable).append(
                    item | {"answers": answers, "answerable": bool(answers)}
                )
    rng = random.Random(SEED)
    picked = rng.sample(answerable, args.answerable) + rng.sample(unanswerable, args.unanswerable)
    rng.shuffle(picked)
    OUT.mkdir(parents=True, exist_ok=True)
    with (OUT / "articles.jsonl").open("w", encoding="utf-8") as f:
        for article in articles:
            f.write(json.dumps(article, ensure_ascii=False) + "\n")
    with (OUT / "questions.jsonl").open("w", encoding="utf-8") as f:
        for item in picked:
            f.write(json.dumps(item, ensure_ascii=False) + "\n")
    print(
        f"{len(articles)} articles, {sum(len(a['paragraphs']) for a in articles)} paragraphs; "
        f"{args.answerable} answerable and {args.unanswerable} unanswerable questions"
    )


if __name__ == "__main__":
    main()
