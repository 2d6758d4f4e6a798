"""Read a retrieval test collection in the BEIR layout (Thakur et al., 2021, "BEIR: A Heterogeneous Benchmark
for Zero-shot Evaluation of Information Retrieval Models", NeurIPS Datasets and Benchmarks).

    folder/corpus.jsonl      {"_id": ..., "title": ..., "text": ...} per line
    folder/queries.jsonl     {"_id": ..., "text": ...} per line
    folder/qrels/SPLIT.tsv   query-id <TAB> corpus-id <TAB> score, after one header line

Relevance scores are graded integers (0 = judged not relevant); they feed `metrics.retrieval` as they are,
which is what BEIR's evaluation (pytrec_eval's ndcg_cut) does. As in BEIR's `GenericDataLoader`, only the
queries that have judgements in the split are kept, and a qrels line whose document is not in the corpus is
an error here (BEIR silently scores it as never retrieved; a subset that lost a judged document would then
understate every method alike, so we refuse it).
Tests: tests/evaluation/test_beir.py
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from llmlab.errors import DataError
from llmlab.evaluation.metrics.retrieval import Qrels


@dataclass
class TestCollection:
    """Documents, queries and graded judgements of one split of a test collection."""

    __test__ = False  # not a pytest class, despite the name

    name: str
    corpus: dict[str, tuple[str, str]]
    """document id -> (title, text)."""
    queries: dict[str, str]
    """query id -> text, only the queries judged in this split."""
    qrels: Qrels
    """query id -> document id -> relevance."""


def _jsonl(path: Path, fields: tuple[str, ...]) -> list[dict[str, str]]:
    if not path.is_file():
        raise DataError(
            f"{path.name} is missing; a BEIR folder holds corpus.jsonl, queries.jsonl and qrels/", str(path)
        )
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"not JSON ({e.msg}); write one JSON object per line", where) from None
        if not isinstance(record, dict) or any(not isinstance(record.get(f), str) for f in fields):
            raise DataError(f"expected an object with string fields {', '.join(fields)}", where)
        records.append(record)
    return records


def read_qrels_tsv(path: Path) -> Qrels:
    """BEIR qrels: a header line, then `query-id<TAB>corpus-id<TAB>score` lines."""
    if not path.is_file():
        raise DataError("qrels file is missing; give a split that has qrels/SPLIT.tsv", str(path))
    qrels: Qrels = {}
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        fields = line.split("\t")
        if len(fields) != 3:
            raise DataError(
                f"expected 3 tab-separated columns (query-id, corpus-id, score), found {len(fields)}", where
            )
        qid, doc_id, score = fields
        try:
            qrels.setdefault(qid, {})[doc_id] = int(float(score))
        except ValueError:
            raise DataError(f"score {score!r} is not a number", where) from None
    return qrels


def load_beir(folder: str | Path, split: str = "test") -> TestCollection:
    """The corpus, the queries judged in `split` and their qrels from a BEIR-format folder."""
    folder = Path(folder)
    corpus: dict[str, tuple[str, str]] = {}
    for record in _jsonl(folder / "corpus.jsonl", ("_id", "text")):
        corpus[record["_id"]] = (record.get("title") or "", record["text"])
    qrels = read_qrels_tsv(folder / "qrels" / f"{split}.tsv")
    texts = {r["_id"]: r["text"] for r in _jsonl(folder / "queries.jsonl", ("_id", "text"))}
    missing_queries = sorted(q for q in qrels if q not in texts)
    if missing_queries:
        raise DataError(f"qrels judge query {missing_queries[0]!r}, which queries.jsonl lacks", str(folder))
    missing_docs = sorted({d for judged in qrels.values() for d in judged if d not in corpus})
    if missing_docs:
        raise DataError(
            f"qrels judge document {missing_docs[0]!r} ({len(missing_docs)} in all), which corpus.jsonl lacks; "
            "a subset must keep every judged document",
            str(folder),
        )
    return TestCollection(folder.name, corpus, {q: texts[q] for q in sorted(qrels)}, qrels)
