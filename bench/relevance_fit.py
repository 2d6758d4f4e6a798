"""Fit the relevance gate (llmlab/rag/relevance.py) on FairytaleQA's train split; measure it on public data
and the guide, which the fit never sees.

Fit: the train split's stories (llmlab.data.grounded_qa.read_fairytaleqa: sections cut into blocks of about 90
words) are shuffled with --seed; --stores groups of --stories stories each become one SQLite store (one
Markdown file per story, ingested with the default settings, MiniLM-L6). Each store is asked --questions of
its own stories' questions (on topic) and as many questions about stories in no store (off topic: the same
genre, its words and names, so the hard case). The features of the default search's hits
(relevance_features) train a logistic regression (class-balanced, Newton's method, a small L2 penalty), and
the threshold is the largest that lets --keep (99.5%) of the on-topic training questions through.

Measure (with the printed weights, or with the module's FITTED ones under --measure-only):
- SQuAD 2.0 dev (bench/data/squad, built by bench/data/squad/build.py): a store of half the 16 articles;
  on topic: their answerable questions; on topic, unanswerable: their unanswerable ones (the gate is not
  meant to catch these: they are about the articles); off topic: answerable questions about the other half.
- The guide (docs/*.md, the QA set bench/data/qa/guide.jsonl, all on topic) with the SQuAD questions of all
  16 articles asked of it as off-topic questions.
The table gives the share of questions the gate lets through: on-topic ones should pass, off-topic ones not.

Usage: python bench/relevance_fit.py --fairytaleqa DIR [--seed 0] [--stores 12] [--stories 10]
       [--questions 25] [--keep 0.995] [--measure-only]
DIR: a checkout of github.com/uci-soe/FairytaleQAData (the folder that holds data-by-train-split/).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from public_data import data_dir

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]


def features_of(store: Any, questions: list[str]) -> list[dict[str, float]]:
    from llmlab.rag.answer import AnswerConfig
    from llmlab.rag.relevance import relevance_features

    defaults = AnswerConfig()
    out = []
    for q in questions:
        hits = store.search(q, mode=defaults.mode, top_k=defaults.chunks)
        f = relevance_features(q, hits)
        if f is not None:
            out.append(f)
    return out


def build_store(folder: Path, documents: dict[str, str]) -> Any:
    from llmlab.rag.store import Store

    docs = folder / "docs"
    docs.mkdir(parents=True)
    for n, (title, body) in enumerate(documents.items()):
        (docs / f"{n:03d}.md").write_text(f"# {title}\n\n{body}\n", encoding="utf-8")
    store = Store.open(str(folder / "store.sqlite"))
    store.ingest([docs])
    return store


def fairytale_features(args: argparse.Namespace) -> tuple[list[dict[str, float]], list[dict[str, float]]]:
    from llmlab.data.grounded_qa import read_fairytaleqa

    stories = read_fairytaleqa(args.fairytaleqa, "train", max_answer_words=None)
    random.Random(args.seed).shuffle(stories)
    used = args.stores * args.stories
    if len(stories) < used + 10:
        raise SystemExit(f"{len(stories)} stories: too few for {args.stores} stores of {args.stories}")
    outside = [q.text for s in stories[used:] for p in s.paragraphs for q in p.questions]
    random.Random(args.seed + 1).shuffle(outside)
    on, off = [], []
    for g in range(args.stores):
        group = stories[g * args.stories : (g + 1) * args.stories]
        asked = [q.text for s in group for p in s.paragraphs for q in p.questions]
        random.Random(args.seed + 2 + g).shuffle(asked)
        with tempfile.TemporaryDirectory() as tmp:
            store = build_store(
                Path(tmp), {s.title: "\n\n".join(p.context for p in s.paragraphs) for s in group}
            )
            on += features_of(store, asked[: args.questions])
            off += features_of(store, outside[g * args.questions : (g + 1) * args.questions])
            store.close()
        print(f"store {g + 1}/{args.stores}: {len(on)} on-topic, {len(off)} off-topic questions", flush=True)
    return on, off


def fit(on: list[dict[str, float]], off: list[dict[str, float]], l2: float = 1e-3) -> dict[str, float]:
    """Class-balanced logistic regression on (cosine, coverage) by Newton's method."""
    rows = on + off
    x = np.array([[1.0, f["cosine"], f["coverage"]] for f in rows])
    y = np.array([1.0] * len(on) + [0.0] * len(off))
    weight = np.where(y == 1, len(rows) / (2 * len(on)), len(rows) / (2 * len(off)))
    w = np.zeros(3)
    for _ in range(50):
        p = 1 / (1 + np.exp(-x @ w))
        grad = x.T @ (weight * (p - y)) + l2 * w
        hess = (x * (weight * p * (1 - p))[:, None]).T @ x + l2 * np.eye(3)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return {"intercept": float(w[0]), "cosine": float(w[1]), "coverage": float(w[2])}


def passing(features: list[dict[str, float]], weights: dict[str, float], threshold: float) -> float:
    from llmlab.rag.relevance import on_topic_probability

    if not features:
        return float("nan")
    return sum(on_topic_probability(f, weights) >= threshold for f in features) / len(features)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def measure(weights: dict[str, float], threshold: float) -> list[tuple[str, int, float]]:
    squad = data_dir("squad")
    articles = sorted(read_jsonl(squad / "articles.jsonl"), key=lambda a: a["title"])
    questions = read_jsonl(squad / "questions.jsonl")
    half = {a["title"] for a in articles[: len(articles) // 2]}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        store = build_store(
            Path(tmp), {a["title"]: "\n\n".join(a["paragraphs"]) for a in articles if a["title"] in half}
        )
        for name, picked in (
            ("SQuAD dev, on topic (answerable)", [q for q in questions if q["title"] in half and q["answerable"]]),
            ("SQuAD dev, on topic (unanswerable)", [q for q in questions if q["title"] in half and not q["answerable"]]),
            ("SQuAD dev, off topic (other articles)", [q for q in questions if q["title"] not in half and q["answerable"]]),
        ):  # fmt: skip
            f = features_of(store, [q["question"] for q in picked])
            rows.append((name, len(f), passing(f, weights, threshold)))
        store.close()
    from llmlab.rag.store import Store

    guide = [q["question"] for q in read_jsonl(ROOT / "bench" / "data" / "qa" / "guide.jsonl")]
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(str(Path(tmp) / "guide.sqlite"))
        from llmlab.rag.ingest import IngestConfig

        store.ingest([ROOT / "docs"], config=IngestConfig(include=("*.md",)))
        f = features_of(store, guide)
        rows.append(("the guide, its QA set (on topic)", len(f), passing(f, weights, threshold)))
        f = features_of(store, [q["question"] for q in questions])
        rows.append(("the guide, SQuAD's questions (off topic)", len(f), passing(f, weights, threshold)))
        store.close()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fairytaleqa", type=Path, help="checkout of uci-soe/FairytaleQAData")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stores", type=int, default=12)
    parser.add_argument("--stories", type=int, default=10)
    parser.add_argument("--questions", type=int, default=25)
    parser.add_argument(
        "--keep", type=float, default=0.995, help="share of on-topic training questions let through"
    )
    parser.add_argument("--measure-only", action="store_true", help="measure the module's FITTED weights")
    args = parser.parse_args()
    from llmlab.rag.relevance import FITTED, THRESHOLD

    if args.measure_only:
        weights, threshold = FITTED, THRESHOLD
    else:
        if args.fairytaleqa is None:
            parser.error("--fairytaleqa DIR is needed to fit (or --measure-only)")
        on, off = fairytale_features(args)
        weights = fit(on, off)
        from llmlab.rag.relevance import on_topic_probability

        probs = sorted(on_topic_probability(f, weights) for f in on)
        threshold = round(float(probs[int((1 - args.keep) * len(probs))]), 3)
        print(f"fitted on {len(on)} on-topic and {len(off)} off-topic training questions")
        print("FITTED =", json.dumps({k: round(v, 3) for k, v in weights.items()}))
        print(f"THRESHOLD = {threshold}")
        weights = {k: round(v, 3) for k, v in weights.items()}
        print(f"training: on topic pass {passing(on, weights, threshold):.3f}, "
              f"off topic pass {passing(off, weights, threshold):.3f}")  # fmt: skip
    print("\n| questions | n | let through by the gate |\n|---|---|---|")
    for name, n, share in measure(weights, threshold):
        print(f"| {name} | {n} | {share:.1%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
