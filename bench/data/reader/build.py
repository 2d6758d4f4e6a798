"""Build the span reader's training records (llmlab/rag/reader.py, `make reader`); see README.md.

Usage:
    python bench/data/reader/build.py --squad TRAIN_V2_JSON --fairytaleqa FAIRYTALEQA_DIR   (writes train.jsonl.xz)
    python bench/data/reader/build.py --split OUT_DIR      (the committed records -> OUT_DIR/train.jsonl, heldout.jsonl)
    python bench/data/reader/build.py --split OUT_DIR --adversarial   (and OUT_DIR/adversarial.jsonl; see below)

Records are {"question", "context", "answer": text or null, "answer_start": char offset, "group"}, the
extractive-qa format of `llmlab finetune lora --task extractive-qa`. Sources, training splits only:
- SQuAD 2.0 train (a JSON file; its own unanswerable questions are kept, answer null);
- FairytaleQA train: explicit questions whose answer occurs in a paragraph of their section;
- unanswerable records made by pairing a question with another paragraph of the same document that shares
  the most words with it and does not hold the answer (the retrieval miss that RAG meets).
`--split` holds out whole documents (`group`): the last SQuAD article and every tenth FairytaleQA story, for
choosing the reader's no-answer margin and comparing LoRA with full fine-tuning.

`--adversarial` adds questions made unanswerable by changing one thing the paragraph states, as SQuAD 2.0's
crowdworkers did (Rajpurkar et al., 2018, section 3: entity swap, number swap, antonym): a number of the
question that the paragraph holds is shifted to one the document never mentions, a name the paragraph holds
becomes a name (as many words) from another document, or a word such as "first" becomes its antonym when the
paragraph has the word and not the antonym. They are made from the committed records (no new public data:
the full SQuAD 2.0 train file, 40 MB, is not reachable from this project's machines), for ADVERSARIAL_RATE of
the answerable questions, seed 14. heldout-adversarial.jsonl is heldout.jsonl plus a made-unanswerable twin
of every held-out question that can be changed (the question over its own paragraph, answer null); the
training documents' go to adversarial.jsonl with SQuAD's own unanswerable questions and twice as many
records drawn from train.jsonl again (the second stage of `make reader-adversarial`, warm-started from the packaged reader; an experiment that
did not beat it: docs/rag.md).
"""

from __future__ import annotations

import argparse
import json
import lzma
import random
import re
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
ADVERSARIAL_RATE = 0.5
"""Answerable questions (of --split's records) that get a made-unanswerable twin with --adversarial."""
AGAIN = 2
"""Records of the first stage drawn again into the second, per made-unanswerable question."""
ANTONYMS = dict(
    pair
    for a, b in [("first", "last"), ("largest", "smallest"), ("most", "least"), ("highest", "lowest"),
                 ("before", "after"), ("earliest", "latest"), ("north", "south"), ("east", "west"),
                 ("oldest", "youngest"), ("older", "younger"), ("longest", "shortest"), ("larger", "smaller"),
                 ("higher", "lower"), ("increase", "decrease"), ("won", "lost"), ("began", "ended"),
                 ("best", "worst"), ("maximum", "minimum"), ("inside", "outside"), ("early", "late")]
    for pair in ((a, b), (b, a))
)  # fmt: skip
NUMBER = re.compile(r"\b\d+\b")
NAME = re.compile(r"\b[A-Z][\w'-]*(?:\s+[A-Z][\w'-]*)*")
WORD = re.compile(r"[A-Za-z]+")


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


def shifted_number(question: str, context: str, document: str, rng: random.Random) -> str | None:
    """`question` with one number that `context` holds changed to one `document` never mentions."""
    found = [m for m in NUMBER.finditer(question) if re.search(rf"\b{m.group()}\b", context)]
    if not found:
        return None
    m = rng.choice(found)
    value = int(m.group())
    for delta in rng.sample([1, 2, 3, 4, 5, 6, 7, 8, 9, -1, -2, -3, -4, -5], 14):
        new = str(value + delta)
        if value + delta > 0 and not re.search(rf"\b{new}\b", document):
            return question[: m.start()] + new + question[m.end() :]
    return None


def names_of(text: str, common: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """Capitalised word runs of `text` that do not start a sentence or a quote and have no word of `common`
    (words also written in lower case: "Your", "South"): names, roughly."""
    return [
        m.group() for m in NAME.finditer(text)
        if m.start() > 0 and text[: m.start()].rstrip()[-1:] not in ".!?\"'“‘:"
        and not any(w.lower() in common or "'" in w for w in m.group().split())
    ]  # fmt: skip


def swapped_name(
    question: str, context: str, document: str, pool: list[str], common: set[str], rng: random.Random
) -> str | None:
    """`question` with a name that `context` holds changed to a name of `pool` (as many words) that
    `document` never mentions."""
    found = [n for n in names_of(question, common) if n in context]
    if not found:
        return None
    name = rng.choice(found)
    same = [p for p in pool if len(p.split()) == len(name.split())]
    for other in rng.sample(same, min(len(same), 20)):
        if other.lower() not in document.lower():
            return question.replace(name, other, 1)
    return None


def antonym(question: str, context: str, document: str, rng: random.Random) -> str | None:
    """`question` with a word such as "first" changed to its antonym, when `context` has the word and
    `document` not the antonym."""
    words = {w.lower() for w in WORD.findall(document)}
    held = {w.lower() for w in WORD.findall(context)}
    found = [m for m in WORD.finditer(question) if m.group().lower() in ANTONYMS and m.group().lower() in held
             and ANTONYMS[m.group().lower()] not in words]  # fmt: skip
    if not found:
        return None
    m = rng.choice(found)
    other = ANTONYMS[m.group().lower()]
    other = other.capitalize() if m.group()[0].isupper() else other
    return question[: m.start()] + other + question[m.end() :]


def adversarial(records: list[dict[str, Any]], rate: float, seed: int) -> list[dict[str, Any]]:
    """Made-unanswerable twins of a `rate` share of the answerable `records`: the question with one fact changed
    (a number, a name or an antonym: see the module docstring) over its own paragraph, answer null."""
    rng = random.Random(seed)
    documents: dict[str, list[str]] = {}
    for r in records:
        if r["context"] not in documents.setdefault(r["group"], []):
            documents[r["group"]].append(r["context"])
    text = {g: "\n".join(ps) for g, ps in documents.items()}
    common = {w for t in text.values() for w in WORD.findall(t) if w.islower()}
    names = {g: sorted(set(names_of(t, common))) for g, t in text.items()}
    asked = {(r["group"], r["question"]) for r in records}
    pools: dict[str, list[str]] = {}
    out = []
    for r in records:
        if r["answer"] is None or rng.random() >= rate:
            continue
        source = r["group"].split(":", 1)[0]
        if r["group"] not in pools:
            pools[r["group"]] = [
                n for g, ns in names.items() if g != r["group"] and g.startswith(source) for n in ns
            ]
        pool = pools[r["group"]]
        doc, makers = text[r["group"]], ["number", "name", "antonym"]
        rng.shuffle(makers)
        for maker in makers:
            if maker == "number":
                question = shifted_number(r["question"], r["context"], doc, rng)
            elif maker == "name":
                question = swapped_name(r["question"], r["context"], doc, pool, common, rng)
            else:
                question = antonym(r["question"], r["context"], doc, rng)
            if question and (r["group"], question) not in asked:
                asked.add((r["group"], question))
                out.append(r | {"question": question, "answer": None, "answer_start": None})
                break
    return out


def heldout(group: str, groups: list[str]) -> bool:
    """Whole documents held out: the last SQuAD article and every tenth FairytaleQA story."""
    squad = [g for g in groups if g.startswith("squad:")]
    tales = [g for g in groups if g.startswith("fairytaleqa:")]
    return (bool(squad) and group == squad[-1]) or (group in tales and tales.index(group) % 10 == 9)


def split(out: Path, with_adversarial: bool = False, seed: int = 14) -> None:
    with lzma.open(RECORDS, "rt", encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    groups = list(dict.fromkeys(r["group"] for r in records))
    out.mkdir(parents=True, exist_ok=True)
    parts = {"train": [], "heldout": []}  # type: dict[str, list[dict[str, Any]]]
    for r in records:
        parts["heldout" if heldout(r["group"], groups) else "train"].append(r)
    if with_adversarial:
        # every held-out question that can be changed; heldout.jsonl stays as it was (the first stage's --val)
        parts["heldout-adversarial"] = parts["heldout"] + adversarial(parts["heldout"], 1.0, seed)
        parts["adversarial"] = second_stage(parts["train"], seed)
    for name, part in parts.items():
        with (out / f"{name}.jsonl").open("w", encoding="utf-8") as f:
            for r in part:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        print(
            f"{out / name}.jsonl: {len(part)} records, {sum(r['answer'] is None for r in part)} unanswerable"
        )


def second_stage(train: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """The warm-started second stage's records: the training documents' made-unanswerable questions, SQuAD's
    own unanswerable ones, and AGAIN times as many records drawn again from `train` (answerable ones and
    retrieval misses, so that answering is not forgotten)."""
    made = adversarial(train, ADVERSARIAL_RATE, seed)
    answerable = {(r["group"], r["question"]) for r in train if r["answer"] is not None}
    own = [r for r in train if r["answer"] is None and (r["group"], r["question"]) not in answerable]
    rng = random.Random(seed)
    pool = [r for r in train if r["answer"] is not None or (r["group"], r["question"]) in answerable]
    again = rng.sample(pool, min(len(pool), AGAIN * len(made)))
    stage = made + own + again
    rng.shuffle(stage)
    return stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--squad", type=Path, help="SQuAD 2.0 train JSON (never the dev split)")
    parser.add_argument(
        "--fairytaleqa", type=Path, help="a checkout of uci-soe/FairytaleQAData (train split)"
    )
    parser.add_argument("--split", type=Path, help="write the committed records as train/heldout JSONL here")
    parser.add_argument(
        "--adversarial", action="store_true", help="--split: add made-unanswerable questions (see above)"
    )
    parser.add_argument("--out", type=Path, default=RECORDS)
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    if args.split is not None:
        split(args.split, args.adversarial, args.seed)
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
