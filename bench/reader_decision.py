"""Fit how the span reader's outputs are used (which chunk's span wins, when to refuse) on held-out TRAINING
documents, read through a real store as `rag ask` reads them (never a dev split).

The held-out part of the reader's data (bench/data/reader/build.py --split: whole documents no training
record came from) is put in a store, one Markdown file per document, and each distinct question is asked
twice, as llmlab.rag.answer's reader path asks it (hybrid search, AnswerConfig's default top-k chunks):
  answerable   its top-k chunks from the store;
  unanswerable the top-k chunks that do not hold any gold answer (the answer removed from the store: the
               retrieval miss RAG meets).
A question that no record of its document answers (SQuAD's own unanswerable ones; the made-unanswerable ones
of build.py --split --adversarial, written to look answerable as SQuAD's are) is asked once, with its top-k
chunks from the whole store: unanswerable.
Every chunk's best span and no-answer score is read once and cached (--reads). Then, on one half of the
questions (split by their gold paragraph, seed 14), it fits
  rank_bonus  a score added to a span by its chunk's retrieval rank (grid search, best token F1 of the chosen
              span on answerable questions),
  refusal     a logistic regression over llmlab.rag.reader.span_features of the chosen span (label: the
              question is answerable), with the probability threshold of the best mean F1 over all questions
              (SQuAD 2.0's score: an unanswerable question scores 1 when refused),
and reports both halves against today's rule (the best raw span score, the single margin of reader.json).
With --write the weights, refit on all questions, go to the reader folder's reader.json.

Usage: python bench/reader_decision.py --heldout DIR/heldout.jsonl [--reads reads.json] [--hold-refused PCT] [--write]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rag_answers import contains_answer  # bench/rag_answers.py: the SQuAD bench's rule, shared

from llmlab.evaluation.metrics.exact_match import exact_match_score
from llmlab.evaluation.metrics.f1 import f1_score


def questions_of(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Distinct (document, question) with their gold answers and gold paragraph: the answerable questions, and
    the questions no record of their document answers (SQuAD's own unanswerable ones, build.py
    --adversarial's made-unanswerable ones: `answers` empty, `paragraph` the one they were asked about)."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    # answerable records first: their paragraph is the question's gold one
    for r in sorted(records, key=lambda r: r["answer"] is None):
        q = found.setdefault((r["group"], r["question"]), {"group": r["group"], "question": r["question"],
                                                           "answers": [], "paragraph": r["context"]})  # fmt: skip
        if r["answer"] is not None and r["answer"] not in q["answers"]:
            q["answers"].append(r["answer"])
    answerable = [q for q in found.values() if q["answers"]]
    return answerable + [q | {"adversarial": True} for q in found.values() if not q["answers"]]


def read_all(heldout: Path, reader_folder: str, depth: int) -> dict[str, Any]:
    """Build the store over the held-out documents and read every question's chunks (both variants)."""
    from llmlab.rag.answer import AnswerConfig
    from llmlab.rag.reader import load_reader
    from llmlab.rag.store import Store

    records = [json.loads(x) for x in heldout.read_text(encoding="utf-8").splitlines() if x.strip()]
    documents: dict[str, list[str]] = {}
    for r in records:
        if r["context"] not in documents.setdefault(r["group"], []):
            documents[r["group"]].append(r["context"])
    questions = questions_of(records)
    k = AnswerConfig().chunks
    reader = load_reader(reader_folder)
    out: list[dict[str, Any]] = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "docs"
        folder.mkdir()
        for n, (group, paragraphs) in enumerate(documents.items()):
            title = group.split(":", 1)[1]
            body = "\n\n".join(paragraphs)
            (folder / f"{n:02d}.md").write_text(f"# {title}\n\n{body}\n", encoding="utf-8")
        store = Store.open(str(Path(tmp) / "heldout.sqlite"))
        report = store.ingest([folder])
        print(
            f"store: {len(report.added)} held-out documents, {report.chunks} chunks; {len(questions)} questions"
        )
        for i, q in enumerate(questions):
            hits = store.search(q["question"], mode=AnswerConfig().mode, top_k=depth)
            chunks = [{"text": h.chunk.text, "score": h.score, "dense": h.scores.get("dense"),
                       "gold": contains_answer(h.chunk.text, q["answers"])} for h in hits]  # fmt: skip
            answerable = list(range(min(k, len(chunks))))
            missing = [c for c, ch in enumerate(chunks) if not ch["gold"]][:k]
            needed = sorted(set(answerable) | set(missing))
            spans = reader.spans(q["question"], [chunks[c]["text"] for c in needed])  # as Reader.read reads
            for c, s in zip(needed, spans, strict=True):
                if s is not None:
                    chunks[c].update(span=[s.score, s.start, s.end, s.null_score])
            if q.get("adversarial"):  # asked once, over the whole store: its top-k chunks, none answers
                missing, answerable = answerable, []
            out.append(q | {"chunks": chunks, "answerable": answerable, "missing": missing})
            if (i + 1) % 50 == 0:
                print(
                    f"  {i + 1} questions, {(time.perf_counter() - start) / (i + 1):.2f} s each", flush=True
                )
    return {"heldout": heldout.name, "k": k, "questions": out}


def variants(read: dict[str, Any], part: set[int] | None) -> list[dict[str, Any]]:
    """The asked questions of `read` (both variants; only the indices in `part`), as Reader.decide sees them."""
    from llmlab.training.extractive_qa import SpanChoice

    asked = []
    for i, q in enumerate(read["questions"]):
        if part is not None and i not in part:
            continue
        for kind in ("answerable", "missing"):
            if kind == "answerable" and q.get("adversarial"):
                continue
            chunks = [q["chunks"][c] for c in q[kind]]
            spans = [SpanChoice(*c["span"]) if "span" in c else None for c in chunks]
            texts = [c["text"] for c in chunks]
            asked.append({"question": q["question"], "answers": q["answers"] if kind == "answerable" else None,
                          "adversarial": bool(q.get("adversarial")),
                          "spans": spans, "texts": texts, "gold": [c["gold"] for c in chunks],
                          "dense": [c["dense"] for c in chunks]})  # fmt: skip
    return asked


def score(asked: list[dict[str, Any]], decision: Any) -> dict[str, float]:
    """EM/F1 on answerable (0 when refused), citation precision, refusal rates, mean F1 over all."""
    from llmlab.rag.reader import decide

    em, f1, cited, chosen_f1, refuse_u, refuse_a, all_f1, refuse_made = [], [], [], [], [], [], [], []
    for a in asked:
        span = decide(a["question"], a["texts"], a["spans"], decision)
        answered = decision.answers(span)
        if a["answers"] is None:
            refuse_u.append(not answered)
            if a.get("adversarial"):
                refuse_made.append(not answered)
            all_f1.append(float(not answered))
            continue
        text = span.text.strip() if span is not None else ""
        chosen_f1.append(f1_score(text, a["answers"]) if span is not None else 0.0)
        refuse_a.append(not answered)
        em.append(exact_match_score(text, a["answers"]) if answered else 0.0)
        f1.append(f1_score(text, a["answers"]) if answered else 0.0)
        all_f1.append(f1[-1])
        if answered and span is not None:
            cited.append(a["gold"][span.chunk])

    def pct(xs: list[Any]) -> float:
        return 100 * sum(xs) / max(1, len(xs))

    return {"EM": pct(em), "F1": pct(f1), "cited": pct(cited), "span F1": pct(chosen_f1),
            "refuses unanswerable": pct(refuse_u), "refuses answerable": pct(refuse_a), "F1 all": pct(all_f1),
            "refuses made-unanswerable": pct(refuse_made)}  # fmt: skip


def fit_rank_bonus(asked: list[dict[str, Any]], k: int) -> tuple[float, ...]:
    """The per-rank bonus (rank 1 fixed at 0) with the best F1 of the chosen span on answerable questions."""
    from llmlab.rag.reader import Decision

    grid = [x / 2 for x in range(-2, 13)]  # 0 down to -6 for later ranks, in steps of 0.5 (negated)
    best = (-1.0, (0.0,) * k)
    answerable = [a for a in asked if a["answers"] is not None]
    for b2 in grid:
        for b3 in grid:
            if k > 2 and b3 < b2:
                continue
            bonus = (0.0, -b2, -b3)[:k]
            got = score(answerable, Decision(rank_bonus=bonus, margin=-1e9))["span F1"]
            best = max(best, (got, bonus))
    return best[1]


def fit_logistic(x: list[list[float]], y: list[float], l2: float = 1e-2, steps: int = 3000) -> list[float]:
    """Weights (last: intercept) of an L2-regularised logistic regression, by gradient descent on standardised
    features, returned on the raw features."""
    import torch

    X = torch.tensor(x, dtype=torch.float64)
    Y = torch.tensor(y, dtype=torch.float64)
    mean, std = X.mean(0), X.std(0).clamp_min(1e-6)
    Z = (X - mean) / std
    w = torch.zeros(X.shape[1] + 1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w], max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> Any:
        opt.zero_grad()
        logits = Z @ w[:-1] + w[-1]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, Y) + l2 * (w[:-1] ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    raw = (w[:-1] / std).detach()
    bias = float(w[-1].detach() - (raw * mean).sum())
    return [*raw.tolist(), bias]


def fit_refusal(
    asked: list[dict[str, Any]], bonus: tuple[float, ...], names: list[str], refused: float
) -> Any:
    """The logistic refusal over `names` (label: the question is answerable) and the threshold that refuses
    the most unanswerable questions of `asked` while refusing at most `refused` % of the answerable ones."""
    from llmlab.rag.reader import Decision, decide, span_features

    x, y = [], []
    for a in asked:
        span = decide(a["question"], a["texts"], a["spans"], Decision(rank_bonus=bonus, margin=-1e9))
        if span is None:
            continue
        f = span_features(a["question"], span)
        x.append([f[n] for n in names])
        y.append(float(a["answers"] is not None))
    weights = dict(zip([*names, "intercept"], fit_logistic(x, y), strict=True))
    return Decision(rank_bonus=bonus, weights=weights, threshold=held(asked, lambda t: Decision(
        rank_bonus=bonus, weights=weights, threshold=t), [i / 100 for i in range(1, 100)], refused))  # fmt: skip


def held(asked: list[dict[str, Any]], rule: Any, grid: list[float], refused: float) -> float:
    """The largest value in `grid` at which rule(value) refuses at most `refused` % of the answerable
    questions of `asked` (answerable accuracy held: no more false refusals than today)."""
    ok = [v for v in grid if score(asked, rule(v))["refuses answerable"] <= refused + 1e-9]
    return max(ok) if ok else min(grid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reader", default="auto", help="a reader folder (default: the packaged one)")
    parser.add_argument("--heldout", type=Path, required=True)
    parser.add_argument("--reads", type=Path, help="cache of the reads (read and written here when given)")
    parser.add_argument(
        "--hold-refused",
        type=float,
        help="the %% of answerable questions the fitted rules may refuse (default: as many as the margin refuses)",
    )
    parser.add_argument("--depth", type=int, default=10, help="chunks retrieved to find k without the answer")
    parser.add_argument(
        "--write", action="store_true", help="write the fitted decision to READER/reader.json"
    )
    args = parser.parse_args()
    from llmlab.rag.reader import READER_DIR, Decision, load_reader

    if args.reads and args.reads.is_file():
        read = json.loads(args.reads.read_text(encoding="utf-8"))
    else:
        read = read_all(args.heldout, args.reader, args.depth)
        if args.reads:
            args.reads.write_text(json.dumps(read), encoding="utf-8")
    k = read["k"]
    paragraphs = sorted({q["paragraph"] for q in read["questions"]})
    random.Random(14).shuffle(paragraphs)
    half = set(paragraphs[: len(paragraphs) // 2])
    a_part = {i for i, q in enumerate(read["questions"]) if q["paragraph"] in half}
    b_part = set(range(len(read["questions"]))) - a_part
    fit, val, every = variants(read, a_part), variants(read, b_part), variants(read, None)
    made = sum(bool(q.get("adversarial")) for q in read["questions"])
    print(f"{len(read['questions']) - made} questions asked answerable and with their answer removed from the "
          f"store, {made} unanswerable ones asked over the whole store ({k} chunks); fit half {len(a_part)}, "
          f"validation half {len(b_part)}")  # fmt: skip
    today = Decision(margin=load_reader(args.reader).margin)
    bonus = fit_rank_bonus(fit, k)
    print(f"rank bonus (fit half): {bonus}")
    names = ["margin", "chunk_margin", "score", "words", "number_missing", "rank"]
    # today's false refusals on the fit half (or --hold-refused): held
    refused = args.hold_refused if args.hold_refused is not None else score(fit, today)["refuses answerable"]
    margins = [m / 4 for m in range(-16, 33)]

    def at_margin(bonus: tuple[float, ...]) -> Any:
        return lambda m: Decision(rank_bonus=bonus, margin=m)

    rows = [
        ("as in the reader's reader.json", load_reader(args.reader).rule),
        ("today: best span score, margin", today),
        ("rank bonus, same margin", Decision(rank_bonus=bonus, margin=today.margin)),
        ("rank bonus, margin at today's false refusals", Decision(rank_bonus=bonus, margin=held(fit, at_margin(bonus), margins, refused))),
        ("rank bonus, logistic refusal at today's false refusals", fit_refusal(fit, bonus, names, refused)),
        ("rank bonus, margin refusing 70% of unanswerable", Decision(rank_bonus=bonus, margin=min(
            m for m in margins if score(fit, Decision(rank_bonus=bonus, margin=m))["refuses unanswerable"] >= 70))),
        ("rank bonus, logistic refusing 70% of unanswerable", fit_refusal(fit, bonus, names, 100.0)),
    ]  # fmt: skip
    logistic = rows[4][1]
    rows[6] = (rows[6][0], Decision(rank_bonus=bonus, weights=logistic.weights, threshold=min(
        t / 100 for t in range(1, 100) if score(fit, Decision(rank_bonus=bonus, weights=logistic.weights,
                                                                 threshold=t / 100))["refuses unanswerable"] >= 70)))  # fmt: skip
    keys = [
        "EM",
        "F1",
        "cited",
        "refuses unanswerable",
        "refuses made-unanswerable",
        "refuses answerable",
        "F1 all",
    ]
    print("| rule | half | " + " | ".join(keys) + " |")
    print("|---|---|" + "---|" * len(keys))
    for name, decision in rows:
        for half_name, asked in (("fit", fit), ("validation", val)):
            got = score(asked, decision)
            print(f"| {name} | {half_name} | " + " | ".join(f"{got[key]:.1f}" for key in keys) + " |")
    for name, decision in rows:
        print(f"{name}: {decision}")
    if args.write:
        held_every = (
            args.hold_refused if args.hold_refused is not None else score(every, today)["refuses answerable"]
        )
        final = fit_refusal(every, fit_rank_bonus(every, k), names, held_every)
        folder = READER_DIR if args.reader == "auto" else Path(args.reader)
        config = json.loads((folder / "reader.json").read_text(encoding="utf-8"))
        weights = {name: round(w, 4) for name, w in (final.weights or {}).items()}
        config |= {"rank_bonus": list(final.rank_bonus), "refusal": weights, "threshold": final.threshold,
                   "decision_fitted_on": f"{read['heldout']} in a store, {len(read['questions'])} questions"}  # fmt: skip
        (folder / "reader.json").write_text(json.dumps(config) + "\n", encoding="utf-8")
        print(f"wrote {folder / 'reader.json'}: {final}")
        print("all questions:", score(every, final), "today:", score(every, today))


if __name__ == "__main__":
    main()
