"""Choose the span reader's no-answer margin on held-out TRAINING documents (never a dev split).

Each held-out record (bench/data/reader/build.py --split: whole documents no training record came from) is
read as RAG reads it: its paragraph among `--chunks` − 1 other paragraphs of the same document that do not
hold its answer (the ones sharing most words with the question, as a retriever would bring them), in a
seeded random order. The reader (llmlab/rag/reader.py) gives its best span and margin over no-answer; for
each candidate margin the bench scores SQuAD 2.0's way: answerable records EM/F1 of the span (0 when it
refuses), unanswerable ones 1 when it refuses. The margin with the best mean F1 over all records is printed
(and written to the reader folder's reader.json with --write), with the refusal rates next to it.

Usage: python bench/reader_margin.py --reader runs/reader --heldout DIR/heldout.jsonl [--limit N] [--write]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llmlab.data.grounded_qa import _overlap
from llmlab.evaluation.metrics.exact_match import exact_match_score
from llmlab.evaluation.metrics.f1 import f1_score


def contexts_for(
    record: dict[str, Any], by_group: dict[str, list[str]], k: int, rng: random.Random
) -> list[str]:
    answer = (record["answer"] or "").lower()
    others = [
        p
        for p in by_group[record["group"]]
        if p != record["context"] and not (answer and answer in p.lower())
    ]
    others.sort(key=lambda p: -_overlap(record["question"], p))
    chosen = [record["context"], *others[: k - 1]]
    rng.shuffle(chosen)
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reader", default="auto", help="a reader folder (default: the packaged one)")
    parser.add_argument("--heldout", type=Path, required=True)
    parser.add_argument("--chunks", type=int, default=3)
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--write", action="store_true", help="write the chosen margin to READER/reader.json")
    args = parser.parse_args()
    from llmlab.rag.reader import load_reader

    records = [
        json.loads(line) for line in args.heldout.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    rng = random.Random(14)
    rng.shuffle(records)
    if args.limit:
        records = records[: args.limit]
    by_group: dict[str, list[str]] = {}
    for r in records:
        by_group.setdefault(r["group"], [])
    for r in (json.loads(x) for x in args.heldout.read_text(encoding="utf-8").splitlines() if x.strip()):
        if r["context"] not in by_group.setdefault(r["group"], []):
            by_group[r["group"]].append(r["context"])
    # the paragraphs are shuffled, not retrieved: read with the margin alone, without reader.json's rank bonus
    # and fitted refusal (bench/reader_decision.py fits those over a store, after this margin)
    reader = dataclasses.replace(load_reader(args.reader), decision=None)
    start = time.perf_counter()
    read = []
    for r in records:
        span = reader.read(r["question"], contexts_for(r, by_group, args.chunks, rng))
        read.append((r, span.text.strip() if span else "", span.margin if span else -1e9))
    seconds = (time.perf_counter() - start) / max(1, len(records))
    print(f"{len(records)} held-out records ({sum(r['answer'] is None for r in records)} unanswerable), "
          f"{args.chunks} paragraphs each, {seconds:.3f} s per question")  # fmt: skip
    best = (-1.0, 0.0)
    print("margin | EM (answerable) | F1 (answerable) | refuses unanswerable | refuses answerable | F1 all")
    for margin in [x / 2 for x in range(-8, 17)]:  # -4 to 8 in steps of 0.5
        em, f1, all_f1, refuse_u, refuse_a = [], [], [], [], []
        for r, text, m in read:
            answered = m > margin and bool(text)
            if r["answer"] is None:
                refuse_u.append(not answered)
                all_f1.append(float(not answered))
                continue
            refuse_a.append(not answered)
            em.append(exact_match_score(text, [r["answer"]]) if answered else 0.0)
            f1.append(f1_score(text, [r["answer"]]) if answered else 0.0)
            all_f1.append(f1[-1])
        mean = sum(all_f1) / len(all_f1)
        print(f"{margin:6.1f} | {100 * sum(em) / len(em):5.1f} | {100 * sum(f1) / len(f1):5.1f} | "
              f"{100 * sum(refuse_u) / max(1, len(refuse_u)):5.1f}% | {100 * sum(refuse_a) / len(refuse_a):5.1f}% | "
              f"{100 * mean:5.1f}")  # fmt: skip
        best = max(best, (mean, -margin))
    margin = -best[1]
    print(f"chosen margin: {margin} (best mean F1 over all held-out records, {100 * best[0]:.1f})")
    if args.write:
        folder = Path(args.reader)
        (folder / "reader.json").write_text(
            json.dumps({"null_margin": margin, "chosen_on": str(args.heldout.name), "records": len(records)})
            + "\n",
            encoding="utf-8",
        )
        print(f"wrote {folder / 'reader.json'}")


if __name__ == "__main__":
    main()
