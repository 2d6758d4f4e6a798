"""Build the span reader's training records (llmlab/rag/reader.py, `make reader`); see README.md.

Usage:
    python bench/data/reader/build.py --squad TRAIN_V2_JSON --fairytaleqa FAIRYTALEQA_DIR   (writes train.jsonl.xz)
    python bench/data/reader/build.py --split OUT_DIR      (the committed records -> OUT_DIR/train.jsonl, heldout.jsonl)

Records are {"question", "context", "answer": text or null, "answer_start": char offset, "group"}, the
extractive-qa format of `llmlab finetune lora --task extractive-qa`. Sources, training splits only:
- SQuAD 2.0 train (a JSON file; its own unanswerable questions are kept, answer null);
- FairytaleQA train: explicit questions whose answer occurs in a paragraph of their section;
- unanswerable records made by pairing a question with another paragraph of the same document that shares
  the most words with it and does not hold the answer (the retrieval miss that RAG meets).
`--split` holds out whole documents (`group`): the last SQuAD article and every tenth FairytaleQA story, for
choosing the reader's no-answer margin and comparing LoRA with full fine-tuning.
"""

from __future__ import annotations

import argparse
import json
import lzma
import random
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the repository, for llmlab

from llmlab.data.grounded_qa import Article, _overlap, read_fairytaleqa

RECORDS = Path(__file__).parent / "train.jsonl.xz"
MISS_RATE = 0.3
"""Made-up unanswerable records per answerable question (a question with a neighbouring paragraph)."""
MAX_FAIRYTALE_ANSWER_WORDS = 8


def squad_records(path: Path) -> Iterator[dict[str, Any]]:
    """SQuAD 2.0 records with the annotators' offsets (the first answer; unanswerable: null)."""
    if "dev" in path.name or "test" in path.name:
        raise SystemExit(f"{path} looks like a dev/test split; the reader trains on training splits only")
    for article in json.loads(path.read_text(encoding="utf-8"))["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                first = (qa.get("answers") or [None])[0]
                yield {
                    "question": qa["question"].strip(), "context": paragraph["context"],
                    "answer": first["text"] if first else None,
                    "answer_start": first["answer_start"] if first else None,
                    "group": f"squad:{article['title']}",
                }  # fmt: skip


def fairytale_records(articles: Iterable[Article]) -> Iterator[dict[str, Any]]:
    for article in articles:
        for paragraph in article.paragraphs:
            for q in paragraph.questions:
                answer = q.answers[0]
                start = paragraph.context.find(answer)
                if start >= 0:
                    yield {
                        "question": q.text, "context": paragraph.context, "answer": answer,
                        "answer_start": start, "group": f"fairytaleqa:{article.title}",
                    }  # fmt: skip


def with_misses(records: list[dict[str, Any]], rate: float, seed: int) -> list[dict[str, Any]]:
    """`records` plus, for a `rate` share of the answerable ones, the question over the other paragraph of its
    document that shares most words with it and does not contain the answer (answer null)."""
    rng = random.Random(seed)
    paragraphs: dict[str, list[str]] = {}
    for r in records:
        group = paragraphs.setdefault(r["group"], [])
        if r["context"] not in group:
            group.append(r["context"])
    out = list(records)
    for r in records:
        if r["answer"] is None or rng.random() >= rate:
            continue
        others = [
            p for p in paragraphs[r["group"]]
            if p != r["context"] and r["answer"].lower() not in p.lower()
        ]  # fmt: skip
        if others:
            best = max(others, key=lambda p: (_overlap(r["question"], p), rng.random()))
            out.append(r | {"context": best, "answer": None, "answer_start": None})
    rng.shuffle(out)
    return out


def heldout(group: str, groups: list[str]) -> bool:
    """Whole documents held out: the last SQuAD article and every tenth FairytaleQA story."""
    squad = [g for g in groups if g.startswith("squad:")]
    tales = [g for g in groups if g.startswith("fairytaleqa:")]
    return (bool(squad) and group == squad[-1]) or (group in tales and tales.index(group) % 10 == 9)


def split(out: Path) -> None:
    with lzma.open(RECORDS, "rt", encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    groups = list(dict.fromkeys(r["group"] for r in records))
    out.mkdir(parents=True, exist_ok=True)
    parts = {"train": [], "heldout": []}  # type: dict[str, list[dict[str, Any]]]
    for r in records:
        parts["heldout" if heldout(r["group"], groups) else "train"].append(r)
    for name, part in parts.items():
        with (out / f"{name}.jsonl").open("w", encoding="utf-8") as f:
            for r in part:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        print(
            f"{out / name}.jsonl: {len(part)} records, {sum(r['answer'] is None for r in part)} unanswerable"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--squad", type=Path, help="SQuAD 2.0 train JSON (never the dev split)")
    parser.add_argument(
        "--fairytaleqa", type=Path, help="a checkout of uci-soe/FairytaleQAData (train split)"
    )
    parser.add_argument("--split", type=Path, help="write the committed records as train/heldout JSONL here")
    parser.add_argument("--out", type=Path, default=RECORDS)
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    if args.split is not None:
        split(args.split)
        return
    if args.squad is None and args.fairytaleqa is None:
        parser.error("give --squad and/or --fairytaleqa (or --split OUT_DIR)")
    records: list[dict[str, Any]] = []
    if args.squad is not None:
        records += squad_records(args.squad)
    if args.fairytaleqa is not None:
        tales = read_fairytaleqa(args.fairytaleqa, "train", max_answer_words=MAX_FAIRYTALE_ANSWER_WORDS)
        records += fairytale_records(tales)
    records = with_misses(records, MISS_RATE, args.seed)
    with lzma.open(args.out, "wt", encoding="utf-8", preset=9) as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    kinds = Counter(
        ("squad" if r["group"].startswith("squad:") else "fairytaleqa")
        + (" unanswerable" if r["answer"] is None else "")
        for r in records
    )
    print(f"{args.out}: {len(records)} records {dict(sorted(kinds.items()))}")


if __name__ == "__main__":
    main()
