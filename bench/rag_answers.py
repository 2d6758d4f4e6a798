"""RAG answer quality on llmlab's own guide: zero-shot vs few-shot grounded prompts, in one run.

The QA set (bench/data/qa/guide.jsonl) was written for the project over the pages of docs/: questions with a
short reference answer (plus accepted aliases) and the pages that hold it, and questions the guide cannot
answer (answer null). The guide keeps changing, so each run builds a fresh store from the current docs/ and
first checks every question's evidence (the answer, or an `evidence` phrase) against its page: questions
whose evidence is gone are reported and left out.

Metrics, per prompt style (same retrieval, same decoding settings):
- EM and token F1, SQuAD-normalized (lower case, no punctuation or articles), best over the answer and its
  aliases, after citation markers are removed; `contains`: the normalized answer occurs in the reply.
- citation (page): the first source shown (attributed by embedding, llmlab/rag/citations.py) is one of the
  question's pages; citation (chunk): a source shown holds the evidence itself.
- not-found: the share of unanswerable questions answered with the fixed NOT_FOUND phrase; false refusals:
  the share of answerable questions answered that way. no source: the share of answers (not NOT_FOUND)
  that no passage supports, which the CLI flags under the answer.
- overall correct: answerable questions whose reply contains the answer plus unanswerable ones answered
  NOT_FOUND, over all questions (the one number the default prompt is chosen by).
- retrieval@k: the share of answerable questions whose evidence is in a retrieved chunk (an upper bound for
  the generator).
EM and F1 are llmlab.evaluation.metrics' (parity-tested against the official SQuAD v1.1 script).

The table prints zero-shot as the reference and few-shot as ours, with the ratio few-shot / zero-shot.

`--set squad` measures reading comprehension on public data instead (bench/data/squad: the 16 articles of
SQuAD 2.0's dev half, each article one Markdown document of its paragraphs, and 150 answerable + 50
unanswerable questions). Each question is asked with `llmlab.rag.answer.ask` and today's defaults, and
scored with SQuAD's normalisation: EM and token F1 (answerable questions; the best over the gold answers,
citation markers removed), the share whose gold answer is in the retrieved context (an upper bound for an
extractive reader), citation precision (of the answers that cite or are attributed to a block: the first
such block contains a gold answer), and for unanswerable questions the not-found rate.
`--answer-styles free,extractive` compares the answer styles on the squad set, one column each (extractive:
decoding may only copy a span of one retrieved block, llmlab/rag/extractive.py; reader: the trained span
reader, llmlab/rag/reader.py, which loads no generator); the guide set uses the first style listed.
Usage: python bench/rag_answers.py [--set guide|squad] [--limit N] [--prompts few-shot,zero-shot]
       [--answer-styles free,extractive] [--verbose] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from public_data import data_dir

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
warnings.filterwarnings("ignore")

ROOT = Path(__file__).resolve().parents[1]
QA = Path(__file__).parent / "data" / "qa" / "guide.jsonl"
SQUAD = data_dir("squad", must_exist=False)  # built by bench/data/squad/build.py


# -- the QA set ----------------------------------------------------------------------------------------------


def squash(text: str) -> str:
    return " ".join(text.split())


def load_qa(path: Path, docs: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """(questions whose evidence is on a listed page of the current docs, ids left out with the reason)."""
    pages = {p.name: squash(p.read_text(encoding="utf-8")) for p in docs.glob("*.md")}
    kept, stale = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        if item["answer"] is not None:
            evidence = squash(item.get("evidence") or item["answer"])
            missing = [d for d in item["docs"] if d not in pages]
            if missing or not any(evidence in pages[d] for d in item["docs"]):
                stale.append(f"{item['id']} ({', '.join(missing) or 'evidence'} not in docs/)")
                continue
            item["evidence_text"] = evidence
        kept.append(item)
    return kept, stale


# -- running -------------------------------------------------------------------------------------------------


def score(item: dict[str, Any], answer: Any) -> dict[str, Any]:
    from llmlab.evaluation.metrics import normalize_answer
    from llmlab.evaluation.metrics.exact_match import exact_match_score
    from llmlab.evaluation.metrics.f1 import f1_score
    from llmlab.rag.citations import strip_citations

    text = strip_citations(answer.text)
    row: dict[str, Any] = {"id": item["id"], "answer": answer.text, "not_found": answer.not_found}
    row["sources"] = [Path(s.hit.chunk.source).name for s in answer.sources]
    row["words"] = len(text.split())
    row["unsupported"] = not answer.not_found and not answer.sources
    if item["answer"] is None:
        return row
    references = [item["answer"], *item.get("aliases", [])]
    row["em"] = exact_match_score(text, references)
    row["f1"] = f1_score(text, references)
    row["contains"] = float(any(normalize_answer(r) in normalize_answer(text) for r in references))
    row["cite_page"] = float(bool(row["sources"]) and row["sources"][0] in item["docs"])
    evidence = item["evidence_text"]
    row["cite_chunk"] = float(any(evidence in squash(s.hit.chunk.text) for s in answer.sources))
    row["retrieved"] = float(any(evidence in squash(h.chunk.text) for h in answer.hits))
    return row


def mean(rows: list[dict[str, Any]], key: str) -> float:
    values = [r[key] for r in rows if key in r]
    return sum(values) / len(values) if values else float("nan")


def share(rows: list[dict[str, Any]], key: str) -> float:
    return sum(bool(r.get(key)) for r in rows) / len(rows) if rows else float("nan")


def summarize(rows: list[dict[str, Any]]) -> dict[str, float]:
    answerable = [r for r in rows if "em" in r]
    unanswerable = [r for r in rows if "em" not in r]
    correct = sum(r["contains"] for r in answerable) + sum(r["not_found"] for r in unanswerable)
    return {
        "overall correct": correct / len(rows) if rows else float("nan"),
        "exact match": mean(answerable, "em"),
        "token F1": mean(answerable, "f1"),
        "contains answer": mean(answerable, "contains"),
        "citation (page)": mean(answerable, "cite_page"),
        "citation (chunk)": mean(answerable, "cite_chunk"),
        "not-found (unanswerable)": share(unanswerable, "not_found"),
        "no source (unanswerable)": share(unanswerable, "unsupported"),
        "false refusals": share(answerable, "not_found"),
        "no source (answerable)": share(answerable, "unsupported"),
        "retrieval@k": mean(answerable, "retrieved"),
        "words per answer": mean(rows, "words"),
        "seconds per answer": mean(rows, "seconds"),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from llmlab.rag.answer import AnswerConfig, Answerer, answer_generation, load_engine
    from llmlab.rag.ingest import IngestConfig
    from llmlab.rag.store import Store

    docs = Path(args.docs)
    items, stale = load_qa(Path(args.qa), docs)
    if args.limit:  # the first N answerable questions and a quarter as many unanswerable ones
        answerable = [i for i in items if i["answer"] is not None][: args.limit]
        items = answerable + [i for i in items if i["answer"] is None][: max(1, args.limit // 4)]
    print(f"{len(items)} questions ({sum(i['answer'] is None for i in items)} unanswerable) over {docs}")
    for reason in stale:
        print(f"  left out: {reason}")
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(str(Path(tmp) / "guide.sqlite"))
        report = store.ingest([docs], config=IngestConfig(include=("*.md",)))
        loading = "the span reader" if args.styles[0] == "reader" else args.model
        print(f"store: {len(report.added)} pages, {report.chunks} chunks; loading {loading}", flush=True)
        adapter = args.adapter if args.styles[0].startswith("adapter:") else None
        engine = (
            load_engine(args.model, device="cpu", adapter=adapter) if args.styles[0] != "reader" else None
        )
        generation = answer_generation()
        results: dict[str, list[dict[str, Any]]] = {p: [] for p in args.prompts}
        for n, item in enumerate(items, start=1):
            hits = store.search(item["question"], mode="hybrid", top_k=args.chunks)
            for prompt in args.prompts:
                config = AnswerConfig(  # an adapter: style asks zero-shot, as the adapter was trained
                    **{"chunks": args.chunks, "prompt": prompt, "min_relevance": args.min_relevance}
                    | style_options(args.styles[0])
                    | {"reader": args.reader}
                )
                answerer = Answerer(store, engine, config, generation)
                start = time.perf_counter()
                answer = answerer.stream(item["question"], hits=hits).result()
                row = score(item, answer) | {"seconds": time.perf_counter() - start}
                results[prompt].append(row)
                if args.verbose:
                    print(
                        f"[{n}/{len(items)} {prompt}] {item['question']}\n    -> {answer.text!r} {row['sources']}"
                    )
            if not args.verbose:
                print(f"\r{n}/{len(items)} questions", end="", file=sys.stderr, flush=True)
        store.close()
    print(file=sys.stderr)
    return {
        "results": results,
        "summary": {p: summarize(rows) for p, rows in results.items()},
        "stale": stale,
    }


# -- reading comprehension on SQuAD 2.0 dev (--set squad) ---------------------------------------------------


def load_squad(folder: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(articles, questions) of the committed SQuAD subset."""

    def read(name: str) -> list[dict[str, Any]]:
        lines = (folder / name).read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    return read("articles.jsonl"), read("questions.jsonl")


def write_articles(articles: list[dict[str, Any]], folder: Path) -> None:
    """One Markdown file per article: the title as a heading, then its paragraphs."""
    folder.mkdir(parents=True, exist_ok=True)
    for n, article in enumerate(articles):
        body = "\n\n".join(article["paragraphs"])
        (folder / f"{n:02d}-{article['title'].replace(' ', '_')}.md").write_text(
            f"# {article['title']}\n\n{body}\n", encoding="utf-8"
        )


def contains_answer(text: str, answers: list[str]) -> bool:
    from llmlab.evaluation.metrics import normalize_answer

    haystack = f" {normalize_answer(text)} "
    return any(f" {normalize_answer(a)} " in haystack for a in answers if normalize_answer(a))


def score_squad(item: dict[str, Any], answer: Any) -> dict[str, Any]:
    from llmlab.evaluation.metrics.exact_match import exact_match_score
    from llmlab.evaluation.metrics.f1 import f1_score
    from llmlab.rag.citations import strip_citations

    row: dict[str, Any] = {"id": item["id"], "answer": answer.text, "not_found": answer.not_found}
    if not item["answerable"]:
        return row
    text = "" if answer.not_found else strip_citations(answer.text)
    row["em"] = exact_match_score(text, item["answers"])
    row["f1"] = f1_score(text, item["answers"])
    row["retrieved"] = float(any(contains_answer(h.chunk.text, item["answers"]) for h in answer.hits))
    blocks = list(answer.citations) or [s.block for s in answer.sources]
    if blocks and not answer.not_found:
        cited = answer.hits[blocks[0] - 1].chunk.text
        row["cited_block_has_answer"] = float(contains_answer(cited, item["answers"]))
        row["quoted"] = float(text in cited)
    return row


def summarize_squad(rows: list[dict[str, Any]]) -> dict[str, float]:
    answerable = [r for r in rows if "em" in r]
    unanswerable = [r for r in rows if "em" not in r]
    return {
        "exact match (answerable)": 100 * mean(answerable, "em"),
        "token F1 (answerable)": 100 * mean(answerable, "f1"),
        "answer in retrieved context": 100 * mean(answerable, "retrieved"),
        "citation precision": 100 * mean(answerable, "cited_block_has_answer"),
        "quoted from the cited block": 100 * mean(answerable, "quoted"),
        "answers with a cited block": 100
        * sum("cited_block_has_answer" in r for r in answerable)
        / max(1, len(answerable)),
        "not found (unanswerable)": 100 * share(unanswerable, "not_found"),
        "false not found (answerable)": 100 * share(answerable, "not_found"),
        "of them by the relevance gate": 100 * share(answerable, "gated"),
        "not found by the gate (unanswerable)": 100 * share(unanswerable, "gated"),
        "seconds per answer": mean(rows, "seconds"),
    }


def style_options(style: str) -> dict[str, str]:
    """AnswerConfig fields for a style as --answer-styles names it: `extractive+likelihood` is
    answer_style="extractive" with span_choice="likelihood"; an `adapter:` prefix (the --adapter engine)
    asks zero-shot, as the adapter was trained."""
    adapter, _, style = style.rpartition(":")
    answer_style, _, span_choice = style.partition("+")
    options = {"answer_style": answer_style} | ({"span_choice": span_choice} if span_choice else {})
    return options | ({"prompt": "zero-shot"} if adapter else {})


def run_squad(args: argparse.Namespace) -> dict[str, Any]:
    from llmlab.rag.answer import AnswerConfig, Answerer, load_engine
    from llmlab.rag.store import Store

    articles, items = load_squad(Path(args.squad))
    if args.limit:
        items = items[: args.limit]
    n_unanswerable = sum(not i["answerable"] for i in items)
    print(
        f"{len(items)} questions ({n_unanswerable} unanswerable) over {len(articles)} SQuAD 2.0 dev articles"
    )
    columns = [*args.styles, *(f"{style}, gate off" for style in args.styles)]
    rows: dict[str, list[dict[str, Any]]] = {column: [] for column in columns}
    with tempfile.TemporaryDirectory() as tmp:
        write_articles(articles, Path(tmp) / "articles")
        store = Store.open(str(Path(tmp) / "squad.sqlite"))
        report = store.ingest([Path(tmp) / "articles"])
        print(f"store: {len(report.added)} articles, {report.chunks} chunks", flush=True)
        retrieval = retrieval_upper_bound(store, [i for i in items if i["answerable"]], args.chunks)
        if args.only_gated:  # the questions the relevance gate stops: what the gate costs or saves
            from llmlab.rag.relevance import THRESHOLD, on_topic_probability, relevance_features

            defaults = AnswerConfig()

            def stopped(item: dict[str, Any]) -> bool:
                hits = store.search(item["question"], mode=defaults.mode, top_k=defaults.chunks)
                features = relevance_features(item["question"], hits)
                return features is not None and on_topic_probability(features) < THRESHOLD

            items = [i for i in items if stopped(i)]
            print(f"the relevance gate stops {len(items)} of them: {[i['id'] for i in items]}", flush=True)
        generators = [s for s in args.styles if s != "reader"]  # the span reader needs no generator
        print(f"loading {args.model if generators else 'the span reader'}", flush=True)
        engines = {"": load_engine(args.model, device="cpu") if generators else None}
        if any(style.startswith("adapter:") for style in args.styles):
            if not args.adapter:
                raise SystemExit("an adapter: answer style needs --adapter DIR")
            print(f"loading {args.model} with the adapter {args.adapter}", flush=True)
            engines["adapter"] = load_engine(args.model, device="cpu", adapter=args.adapter)
        for n, item in enumerate(items, start=1):
            defaults = AnswerConfig()  # retrieve as ask() does, once for all the styles
            hits = store.search(item["question"], mode=defaults.mode, top_k=defaults.chunks)
            for style in args.styles:
                engine = engines[style.rpartition(":")[0]]
                answerer = Answerer(store, engine, AnswerConfig(**style_options(style), reader=args.reader))
                start = time.perf_counter()
                answer = answerer.stream(item["question"], hits=hits).result()
                row = score_squad(item, answer) | {"seconds": time.perf_counter() - start}
                rows[style].append(row | {"gated": float(answer.gated)})
                if answer.gated:  # what the model says without the relevance gate (the rest is the same)
                    ungated = AnswerConfig(**style_options(style), relevance_gate="off", reader=args.reader)
                    start = time.perf_counter()
                    answer = Answerer(store, engine, ungated).stream(item["question"], hits=hits).result()
                    row = score_squad(item, answer) | {"seconds": time.perf_counter() - start}
                rows[f"{style}, gate off"].append(row)
                if args.verbose:
                    gold = item["answers"] or ["(unanswerable)"]
                    print(
                        f"[{n}/{len(items)} {style}] {item['question']}\n    -> {answer.text!r}  gold {gold[0]!r}"
                    )
            if not args.verbose:
                print(f"\r{n}/{len(items)} questions", end="", file=sys.stderr, flush=True)
        store.close()
    print(file=sys.stderr)
    summary = {style: summarize_squad(style_rows) for style, style_rows in rows.items()}
    return {"results": rows, "summary": summary, "retrieval": retrieval}


def retrieval_upper_bound(store: Any, items: list[dict[str, Any]], top_k: int) -> dict[str, float]:
    """Share of answerable questions with a gold answer in the top_k chunks, default search vs plain RRF."""
    from llmlab.rag.retrieval import SearchConfig

    out = {}
    for label, config in (
        ("default", SearchConfig(top_k=top_k)),
        ("rrf", SearchConfig(top_k=top_k, fusion="rrf")),
    ):
        found = [
            any(
                contains_answer(h.chunk.text, i["answers"])
                for h in store.search(i["question"], config=config)
            )
            for i in items
        ]
        out[f"answer in top-{top_k} chunks, {label} search"] = 100 * sum(found) / max(1, len(found))
    return out


def print_squad(summary: dict[str, dict[str, float]], retrieval: dict[str, float]) -> None:
    """One column per answer style (ask() defaults otherwise); the ratio is the last style over the first."""
    styles = list(summary)
    ratio = len(styles) > 1
    header = "".join(f"{'--answer-style ' + s:>26}" for s in styles)
    print(f"\n{'metric':32} {header}" + (f" {'ratio':>7}" if ratio else ""))
    for metric in summary[styles[0]]:
        values = [summary[s][metric] for s in styles]
        line = f"{metric:32} " + "".join(f"{v:26.1f}" for v in values)
        if ratio:
            line += f" {values[-1] / values[0]:7.2f}" if values[0] else f" {'-':>7}"
        print(line)
    for metric, value in retrieval.items():
        print(f"{metric:32} {value:26.1f}")


def print_table(summary: dict[str, dict[str, float]]) -> None:
    names = list(summary)
    reference = "zero-shot" if "zero-shot" in summary else names[0]
    ours = "few-shot" if "few-shot" in summary else names[-1]
    print(f"\n{'metric':26} {reference + ' (ref)':>16} {ours + ' (ours)':>16} {'ratio':>7}")
    for metric in summary[ours]:
        ref, our = summary[reference][metric], summary[ours][metric]
        ratio = f"{our / ref:.2f}" if ref else "-"
        print(f"{metric:26} {ref:16.3f} {our:16.3f} {ratio:>7}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--set", choices=("guide", "squad"), default="guide", help="the question set")
    parser.add_argument("--qa", default=str(QA), help="the QA set (JSONL)")
    parser.add_argument("--squad", default=str(SQUAD), help="folder of the SQuAD subset (--set squad)")
    parser.add_argument("--docs", default=str(ROOT / "docs"), help="the guide's folder")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--prompts", default="zero-shot,few-shot", help="comma-separated prompt styles")
    parser.add_argument("--chunks", type=int, default=3, help="chunks in the prompt (AnswerConfig's default)")
    parser.add_argument(
        "--answer-styles",
        default="free",
        help="comma-separated answer styles (free, extractive, auto; extractive+likelihood chooses the span by "
        "likelihood; adapter:STYLE answers with the --adapter engine); --set squad compares them, the guide "
        "set uses the first",
    )
    parser.add_argument("--adapter", help="a LoRA adapter (or run folder) for the adapter: styles")
    parser.add_argument(
        "--reader",
        default="auto",
        help="the span reader of the reader style (auto: the packaged one; or a folder)",
    )
    parser.add_argument("--min-relevance", type=float, default=0.0, help="the relevance gate (0: off)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N questions")
    parser.add_argument(
        "--only-gated",
        action="store_true",
        help="--set squad: answer only the questions the relevance gate stops (with and without the gate)",
    )
    parser.add_argument("--verbose", action="store_true", help="print every answer")
    parser.add_argument("--json", help="also write every answer and the summary to this file")
    args = parser.parse_args()
    args.prompts = [p.strip() for p in args.prompts.split(",") if p.strip()]
    args.styles = [s.strip() for s in args.answer_styles.split(",") if s.strip()]
    started = time.perf_counter()
    if args.set == "squad":
        out = run_squad(args)
        print_squad(out["summary"], out["retrieval"])
    else:
        out = run(args)
        print_table(out["summary"])
    load = os.getloadavg()[0]
    print(
        f"\n{time.perf_counter() - started:.0f} s in all; load average {load:.1f} (timings are noisy when busy)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
