"""Ingest: re-ingest by content hash (unchanged, changed, deleted with prune, never a duplicate), failures
that lose nothing, the Store API end to end, and a real SIGKILL in the middle of an ingest."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from llmlab.errors import ConfigError
from llmlab.rag import Store
from llmlab.rag.chunking import chunk_document
from llmlab.rag.embedding import EmbedderConfig, load_embedder
from llmlab.rag.ingest import IngestConfig, IngestProgress, ingest
from llmlab.rag.loaders import load_path
from llmlab.rag.stores import open_store

CFG = IngestConfig(chunk_tokens=40, overlap_tokens=8)


def write_corpus(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "a.md").write_text("# Apples\n\nApples grow in orchards.\n\n## Harvest\n\nPicked in autumn.\n")
    (root / "b.txt").write_text("Bananas are yellow. They grow in plantations in warm places.\n")
    (root / "sub" / "c.md").write_text("# Cherries\n\n" + "Cherry trees blossom in spring. " * 30 + "\n")
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    return root


def chunk_texts(store) -> list[tuple[str, str]]:
    """(source file name, chunk text) of every stored chunk, sorted."""
    ids = [i for i, _ in store.dense_search(_probe(store), 10_000)]
    return sorted((Path(c.source).name, c.text) for c in store.chunks(ids).values())


def _probe(store):
    import numpy as np

    dim = store.embedder()[1]
    return np.full(dim, 1 / np.sqrt(dim), dtype=np.float32)


def names(sources) -> list[str]:
    return sorted(Path(s if isinstance(s, str) else s[0]).name for s in sources)


def test_reingest_unchanged_changed_deleted(store_url, tiny_embedder, tmp_path):
    root = write_corpus(tmp_path / "docs")
    store = open_store(store_url)
    first = ingest(store, tiny_embedder, [root], CFG)
    assert (names(first.added), first.updated, first.unchanged, first.failed) == (
        ["a.md", "b.txt", "c.md"],
        [],
        [],
        [],
    )
    assert first.skipped == [(str((root / "logo.png").resolve()), "unsupported extension '.png'")]
    before = chunk_texts(store)
    assert first.chunks == len(before) == store.stats().chunks > 3  # c.md is long enough for several chunks

    again = ingest(store, tiny_embedder, [root], CFG)
    assert (again.added, again.updated, names(again.unchanged), again.chunks) == (
        [],
        [],
        ["a.md", "b.txt", "c.md"],
        0,
    )
    assert chunk_texts(store) == before  # no duplicates

    (root / "b.txt").write_text("Blueberries replaced the bananas.\n")
    (root / "sub" / "c.md").unlink()
    changed = ingest(store, tiny_embedder, [root], CFG)
    assert (names(changed.updated), names(changed.unchanged), changed.removed) == (["b.txt"], ["a.md"], [])
    assert [t for n, t in chunk_texts(store) if n == "b.txt"] == ["Blueberries replaced the bananas."]
    assert store.text_search("plantations", 5) == []  # the old text left the index
    assert "c.md" in {n for n, _ in chunk_texts(store)}  # kept without prune

    pruned = ingest(store, tiny_embedder, [root], IngestConfig(chunk_tokens=40, overlap_tokens=8, prune=True))
    assert (names(pruned.removed), names(pruned.unchanged)) == (["c.md"], ["a.md", "b.txt"])
    assert {n for n, _ in chunk_texts(store)} == {"a.md", "b.txt"}
    assert sorted(Path(s).name for s in store.document_hashes()) == ["a.md", "b.txt"]
    store.close()


def test_failures_lose_nothing(store_url, tiny_embedder, tmp_path):
    root = write_corpus(tmp_path / "docs")
    store = open_store(store_url)
    ingest(store, tiny_embedder, [root], CFG)
    stored = chunk_texts(store)
    (root / "a.md").write_bytes(b"")  # now unreadable as a document
    report = ingest(
        store, tiny_embedder, [root, tmp_path / "nope"], IngestConfig(prune=True, chunk_tokens=40)
    )
    reasons = dict(report.failed)
    assert "the file is empty (0 bytes)" in reasons[str((root / "a.md").resolve())]
    assert "no such file or folder" in reasons[str(tmp_path / "nope")]
    assert (report.removed, names(report.unchanged)) == ([], ["b.txt", "c.md"])
    assert chunk_texts(store) == stored  # a.md's previous version is still there, nothing pruned
    store.close()


def test_progress_reports_every_source(tmp_path, tiny_embedder):
    root = write_corpus(tmp_path / "docs")
    store = open_store(str(tmp_path / "s.sqlite"))
    events: list[IngestProgress] = []
    ingest(store, tiny_embedder, [root], CFG, progress=events.append)
    assert [(e.done, e.total, Path(e.source).name, e.status) for e in events] == [
        (1, 3, "a.md", "added"),
        (2, 3, "b.txt", "added"),
        (3, 3, "c.md", "added"),
    ]
    assert sum(e.chunks for e in events) == store.stats().chunks
    store.close()


def test_store_api_end_to_end(tmp_path, tiny_bert_folder):
    root = write_corpus(tmp_path / "docs")
    location = str(tmp_path / "kb.sqlite")
    with Store.open(
        location, embedder=EmbedderConfig(model=str(tiny_bert_folder), precision="fp32")
    ) as store:
        report = store.ingest([root], config=CFG)
        assert len(report.added) == 3 and report.chunks_per_second > 0
        hits = store.search("bananas plantations", mode="bm25", top_k=2)
        assert Path(hits[0].chunk.source).name == "b.txt" and hits[0].rank == 1
        hybrid = store.search("cherry blossom", top_k=3, path="sub/*")
        assert hybrid and {Path(h.chunk.source).name for h in hybrid} == {"c.md"}
        assert store.search("cherry", source_types=["text"], mode="bm25") == []
    with Store.open(location) as store:  # the embedder recorded in the store is used
        assert store.stats().embedder == str(tiny_bert_folder.resolve())
        assert store.search("apples orchards", mode="dense", top_k=1)[0].rank == 1
    with pytest.raises(ConfigError, match=r"built with embedder '.*' \(32-dim\) but 'minilm-l6' was given"):
        Store.open(location, embedder="minilm-l6")


def test_mismatched_embedder_writes_nothing(tmp_path, tiny_embedder):
    other = load_embedder(EmbedderConfig(model=str(_other_bert(tmp_path)), precision="fp32"))
    root = write_corpus(tmp_path / "docs")
    store = open_store(str(tmp_path / "s.sqlite"))
    ingest(store, tiny_embedder, [root / "a.md"], CFG)
    with pytest.raises(ConfigError, match="built with embedder"):
        ingest(store, other, [root], CFG)
    assert [Path(s).name for s in store.document_hashes()] == ["a.md"]
    store.close()


def _other_bert(tmp_path: Path) -> Path:
    from ragkit import save_tiny_bert

    return save_tiny_bert(tmp_path / "other-bert", seed=1, hidden=16)


CHILD = textwrap.dedent(
    """
    import sys
    from llmlab.rag.embedding import EmbedderConfig, load_embedder
    from llmlab.rag.ingest import IngestConfig, ingest
    from llmlab.rag.stores import open_store

    embedder = load_embedder(EmbedderConfig(model=sys.argv[1], precision="fp32"))
    store = open_store(sys.argv[2])
    config = IngestConfig(chunk_tokens=40, overlap_tokens=8, batch_chunks=1)
    ingest(store, embedder, [sys.argv[3]], config, lambda p: print(p.status, flush=True))
    """
)


def test_sigkill_leaves_consistent_store(tmp_path, tiny_bert_folder, tiny_embedder):
    """Kill -9 an ingest of 300 files after 20 are written: the file must pass SQLite's and FTS5's integrity
    checks, every stored document must have exactly its chunks, and the next ingest must complete the store
    to the same content as an uninterrupted ingest."""
    root = tmp_path / "many"
    root.mkdir()
    for i in range(300):
        (root / f"doc{i:03d}.md").write_text(f"# Note {i}\n\n" + f"Paragraph about topic {i} and more. " * 12)
    location = str(tmp_path / "killed.sqlite")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    args = [sys.executable, "-c", CHILD, str(tiny_bert_folder), location, str(root)]
    child = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    assert child.stdout is not None
    for _ in range(20):
        assert child.stdout.readline().strip() == "added"
    child.send_signal(signal.SIGKILL)
    assert child.wait(timeout=60) == -signal.SIGKILL

    with sqlite3.connect(location) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        raw.execute(
            "INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('integrity-check', 1)"
        )  # raises if broken
        per_doc = dict(
            raw.execute(
                "SELECT d.source, count(c.id) FROM documents d LEFT JOIN chunks c ON c.document_id = d.id GROUP BY 1"
            )
        )
        orphans = raw.execute(
            "SELECT count(*) FROM chunks WHERE document_id NOT IN (SELECT id FROM documents)"
        )
        assert orphans.fetchone() == (0,)
    assert 20 <= len(per_doc) < 300
    for source, count in per_doc.items():
        assert count == len(
            chunk_document(load_path(source), tiny_embedder.tokenizer, chunk_tokens=40, overlap_tokens=8)
        )

    store = open_store(location)
    report = ingest(store, tiny_embedder, [root], CFG)
    assert (len(report.unchanged), len(report.added), report.failed) == (len(per_doc), 300 - len(per_doc), [])
    clean = open_store(str(tmp_path / "clean.sqlite"))
    ingest(clean, tiny_embedder, [root], CFG)
    assert chunk_texts(store) == chunk_texts(clean)
    store.close()
    clean.close()


class _Pages:
    """A local website whose pages can change between crawls."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.pages: dict[str, str] = {}
        pages = self.pages

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = pages.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write((body or "<html><body>gone</body></html>").encode())

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _html(title: str, text: str, links: str = "") -> str:
    paragraph = f"<p>{text} " * 3
    return f"<html><head><title>{title}</title></head><body><main><h1>{title}</h1>{paragraph}{links}</main></body></html>"


def test_crawled_site_reingests_by_hash_and_prunes(tmp_path, tiny_embedder):
    site = _Pages()
    site.pages["/robots.txt"] = ""
    links = '<a href="/kettle">kettle</a> <a href="/radiator">radiator</a>'
    site.pages["/"] = _html("Home maintenance", "Guides for a warm and tidy home.", links)
    site.pages["/kettle"] = _html(
        "Kettle", "Descale the kettle with citric acid and rinse it well afterwards."
    )
    site.pages["/radiator"] = _html("Radiator", "Bleed the radiator with a key until water dribbles out.")
    store = open_store(str(tmp_path / "web.sqlite"))
    cfg = IngestConfig(chunk_tokens=40, overlap_tokens=8, delay=0, max_depth=1)
    first = ingest(store, tiny_embedder, [site.url], cfg)
    assert sorted(first.added) == [site.url, site.url + "kettle", site.url + "radiator"]
    assert store.stats().by_type == {"web": 3}
    again = ingest(store, tiny_embedder, [site.url], cfg)
    assert (again.added, sorted(again.unchanged)) == ([], sorted(first.added))
    site.pages["/"] = _html("Home maintenance", "Guides for a warm and tidy home.", '<a href="/kettle">k</a>')
    del site.pages["/radiator"]
    pruned = ingest(
        store, tiny_embedder, [site.url], IngestConfig(chunk_tokens=40, delay=0, max_depth=1, prune=True)
    )
    assert (pruned.updated, pruned.removed) == ([site.url], [site.url + "radiator"])
    assert sorted(store.document_hashes()) == [site.url, site.url + "kettle"]
    site.server.shutdown()
    store.close()


def test_loader_crash_is_reported_not_fatal(tmp_path, tiny_embedder, monkeypatch):
    """A bug in one loader (any exception) fails that file with its name; the other files are ingested."""
    import llmlab.rag.loaders as loaders

    root = write_corpus(tmp_path / "docs")
    real = loaders.load_path

    def flaky(path, **kw):
        if Path(path).name == "b.txt":
            raise RuntimeError("boom")
        return real(path, **kw)

    monkeypatch.setattr(loaders, "load_path", flaky)
    store = open_store(str(tmp_path / "s.sqlite"))
    report = ingest(store, tiny_embedder, [root], CFG)
    assert names(report.added) == ["a.md", "c.md"]
    assert report.failed == [
        (
            str((root / "b.txt").resolve()),
            f"{(root / 'b.txt').resolve()}: unexpected RuntimeError while loading: boom",
        )
    ]
    store.close()


def test_bad_chunk_sizes_fail_before_any_work():
    with pytest.raises(ConfigError, match="--chunk-tokens must be at least 8, got 4"):
        IngestConfig(chunk_tokens=4)
    with pytest.raises(ConfigError, match="--batch-chunks must be at least 1"):
        IngestConfig(batch_chunks=0)
