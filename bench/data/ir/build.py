"""Rebuild the retrieval test collections in this folder from the public originals (see README.md).

Each collection is written in the BEIR layout: corpus.jsonl ({"_id", "title", "text"}), queries.jsonl
({"_id", "text"}), qrels/test.tsv and, where the source has training queries, qrels/train.tsv
(`query-id<TAB>corpus-id<TAB>score` with a header line). Sampling is seeded, so the same sources give the
same files.

Usage: python bench/data/ir/build.py --nfcorpus DIR --nfcorpus-beir DIR --cranfield DIR --cisi DIR --squad FILE
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
import sys
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # bench/, for public_data
from public_data import data_dir

OUT = data_dir("ir", must_exist=False)
SEED = 14


def write_collection(
    name: str,
    corpus: dict[str, tuple[str, str]],
    queries: dict[str, str],
    qrels: dict[str, dict[str, dict[str, int]]],
) -> None:
    """corpus: id -> (title, text); qrels: split -> query id -> doc id -> graded relevance (> 0)."""
    folder = OUT / name
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    used = {q for split in qrels.values() for q in split}
    with (folder / "corpus.jsonl").open("w", encoding="utf-8") as f:
        for doc_id in sorted(corpus):
            title, text = corpus[doc_id]
            f.write(json.dumps({"_id": doc_id, "title": title, "text": text}, ensure_ascii=False) + "\n")
    with (folder / "queries.jsonl").open("w", encoding="utf-8") as f:
        for qid in sorted(used):
            f.write(json.dumps({"_id": qid, "text": queries[qid]}, ensure_ascii=False) + "\n")
    for split, judged in qrels.items():
        with (folder / "qrels" / f"{split}.tsv").open("w", encoding="utf-8") as f:
            f.write("query-id\tcorpus-id\tscore\n")
            for qid in sorted(judged):
                for doc_id, rel in sorted(judged[qid].items()):
                    if doc_id in corpus and rel > 0:
                        f.write(f"{qid}\t{doc_id}\t{rel}\n")
    sizes = {s: len(j) for s, j in qrels.items()}
    print(f"{name}: {len(corpus)} documents, queries {sizes}")


def sample_with_distractors(
    pool: dict[str, tuple[str, str]], judged: set[str], distractors: int, rng: random.Random
) -> dict[str, tuple[str, str]]:
    """Every judged document that the pool holds, plus `distractors` random others."""
    keep = judged & set(pool)
    others = sorted(set(pool) - keep)
    keep |= set(rng.sample(others, min(distractors, len(others))))
    return {d: pool[d] for d in keep}


# -- NFCorpus (BEIR's queries and qrels; documents from the original release) -------------------------------


def read_beir_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["score"])
    return qrels


def build_nfcorpus(original: Path, beir: Path, rng: random.Random) -> None:
    pool: dict[str, tuple[str, str]] = {}
    for name in ("test.docs", "dev.docs"):
        for line in (original / name).read_text(encoding="utf-8").splitlines():
            doc_id, text = line.split("\t", 1)
            pool[doc_id] = ("", text.strip())
    with (beir / "queries.csv").open(encoding="utf-8") as f:
        queries = {row["_id"]: row["text"] for row in csv.DictReader(f)}
    qrels = {}
    for split, count in (("test", 100), ("train", 400)):
        judged = read_beir_qrels(beir / f"{split}.csv")
        usable = sorted(q for q, docs in judged.items() if any(d in pool for d in docs))
        qrels[split] = {q: judged[q] for q in rng.sample(usable, count)}
    needed = {d for split in qrels.values() for docs in split.values() for d in docs}
    write_collection("nfcorpus", sample_with_distractors(pool, needed, 200, rng), queries, qrels)


# -- Cranfield and CISI (SMART format: .I id, then .T/.A/.B/.W/.X fields) ---------------------------------


def smart_records(path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """(id, {field letter: text}) for each `.I` record of a SMART-format file."""
    text = path.read_text(encoding="latin-1")
    for block in re.split(r"^\.I\s+", text, flags=re.MULTILINE)[1:]:
        head, _, body = block.partition("\n")
        fields: dict[str, str] = {}
        parts = re.split(r"^\.([A-Z])[ \t]*\n?", body, flags=re.MULTILINE)
        for letter, value in zip(parts[1::2], parts[2::2], strict=True):
            fields[letter] = " ".join(value.split())
        yield head.strip(), fields


def split_queries(ids: list[str], train_share: float, rng: random.Random) -> tuple[set[str], set[str]]:
    """A seeded split of a collection that has no training queries of its own: (train, test)."""
    shuffled = sorted(ids)
    rng.shuffle(shuffled)
    cut = round(len(shuffled) * train_share)
    return set(shuffled[:cut]), set(shuffled[cut:])


def build_cranfield(folder: Path, rng: random.Random) -> None:
    corpus = {i: (f.get("T", ""), f.get("W", "")) for i, f in smart_records(folder / "cran.all.1400")}
    # The query file numbers its queries 001, 002, 004, ...; the qrels number them 1..225 in file order.
    queries = {str(n): f["W"] for n, (_, f) in enumerate(smart_records(folder / "cran.qry"), start=1)}
    judged: dict[str, dict[str, int]] = {}
    for line in (folder / "cranqrel").read_text().splitlines():
        qid, doc_id, code = line.split()
        if int(code) in (1, 2, 3, 4):  # 1 = complete answer ... 4 = minimal interest; -1: none relevant
            judged.setdefault(qid, {})[doc_id] = 5 - int(code)
    train, test = split_queries(sorted(judged), 1 / 3, rng)
    qrels = {"test": {q: judged[q] for q in test}, "train": {q: judged[q] for q in train}}
    write_collection("cranfield", corpus, queries, qrels)


def build_cisi(folder: Path, rng: random.Random) -> None:
    corpus = {i: (f.get("T", ""), f.get("W", "")) for i, f in smart_records(folder / "CISI.ALL")}
    queries = {i: f["W"] for i, f in smart_records(folder / "CISI.QRY") if "W" in f}
    judged: dict[str, dict[str, int]] = {}
    for line in (folder / "CISI.REL").read_text().splitlines():
        qid, doc_id = line.split()[:2]
        judged.setdefault(qid, {})[doc_id] = 1
    train, test = split_queries(sorted(q for q in judged if q in queries), 1 / 3, rng)
    qrels = {"test": {q: judged[q] for q in test}, "train": {q: judged[q] for q in train}}
    write_collection("cisi", corpus, queries, qrels)


# -- SQuAD 2.0 dev paragraphs as a passage-retrieval collection ----------------------------------------------


def build_squad_passages(path: Path, rng: random.Random) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    corpus: dict[str, tuple[str, str]] = {}
    questions: list[tuple[str, str, str]] = []
    for article in data:
        title = article["title"].replace("_", " ")
        for n, paragraph in enumerate(article["paragraphs"]):
            doc_id = f"{article['title']}-{n}"
            corpus[doc_id] = (title, paragraph["context"])
            questions += [(qa["id"], qa["question"], doc_id) for qa in paragraph["qas"] if qa["answers"]]
    picked = rng.sample(sorted(questions), 300)
    queries = {qid: text.strip() for qid, text, _ in picked}
    qrels = {"test": {qid: {doc_id: 1} for qid, _, doc_id in picked}}
    write_collection("squad-dev", corpus, queries, qrels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nfcorpus", type=Path, required=True, help="folder with test.docs and dev.docs")
    parser.add_argument(
        "--nfcorpus-beir",
        type=Path,
        required=True,
        help="folder with BEIR's queries.csv, test.csv, train.csv",
    )
    parser.add_argument(
        "--cranfield", type=Path, required=True, help="folder with cran.all.1400, cran.qry, cranqrel"
    )
    parser.add_argument("--cisi", type=Path, required=True, help="folder with CISI.ALL, CISI.QRY, CISI.REL")
    parser.add_argument("--squad", type=Path, required=True, help="SQuAD 2.0 dev JSON (the CS224N half)")
    args = parser.parse_args()
    build_nfcorpus(args.nfcorpus, args.nfcorpus_beir, random.Random(SEED))
    build_cranfield(args.cranfield, random.Random(SEED))
    build_cisi(args.cisi, random.Random(SEED))
    build_squad_passages(args.squad, random.Random(SEED))


if __name__ == "__main__":
    main()
