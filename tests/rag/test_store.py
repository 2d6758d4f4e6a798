"""Store behaviour, the same tests on SQLite and on a real PostgreSQL + pgvector server (parametrized)."""

from __future__ import annotations

import numpy as np
import pytest
from ragkit import unit

from llmlab.errors import ConfigError, DataError
from llmlab.rag.stores import Filters, open_store, store_location
from llmlab.rag.types import Chunk, Document, Unit


def make_doc(source: str, texts: list[str], source_type: str = "markdown", digest: str = "h1"):
    doc = Document(source, source_type, f"title of {source}", [Unit(t) for t in texts], digest)  # type: ignore[arg-type]
    chunks = [
        Chunk(
            t,
            source,
            source_type,
            i,
            page=i + 1,
            heading_path=("A", "B"),
            start=0,
            end=len(t),
            title=doc.title,
        )  # type: ignore[arg-type]
        for i, t in enumerate(texts)
    ]
    return doc, chunks


def add(store, source, texts, vectors, **kw):
    doc, chunks = make_doc(source, texts, **kw)
    store.replace_document(doc, chunks, np.stack(vectors))
    return chunks


def test_round_trip_and_stats(backend):
    backend.bind_embedder("toy", 3)
    chunks = add(backend, "/d/a.md", ["alpha text", "beta text"], [unit(1, 0, 0), unit(0, 1, 0)])
    ids = [i for i, _ in backend.dense_search(unit(1, 0, 0), 10)]
    got = backend.chunks(ids)
    assert [got[i] for i in ids] == chunks  # every field survives, in similarity order
    stats = backend.stats()
    assert (stats.documents, stats.chunks, stats.embedder, stats.dim) == (1, 2, "toy", 3)
    assert stats.by_type == {"markdown": 1}
    assert backend.document_hashes() == {"/d/a.md": "h1"}


def test_reopen_keeps_everything(store_url):
    first = open_store(store_url)
    first.bind_embedder("toy", 3)
    add(first, "/d/a.md", ["alpha"], [unit(1, 0, 0)])
    first.close()
    again = open_store(store_url)
    assert again.embedder() == ("toy", 3)
    assert [again.chunks([i])[i].text for i, _ in again.dense_search(unit(1, 0, 0), 5)] == ["alpha"]
    again.close()


def test_replace_document_leaves_no_duplicates(backend):
    backend.bind_embedder("toy", 3)
    add(backend, "/d/a.md", ["old words one", "old words two"], [unit(1, 0, 0), unit(0, 1, 0)])
    add(backend, "/d/b.md", ["other doc"], [unit(0, 0, 1)])
    add(backend, "/d/a.md", ["new words"], [unit(1, 1, 0)], digest="h2")
    assert (backend.stats().documents, backend.stats().chunks) == (2, 2)
    assert backend.text_search("old", 10) == []  # the old chunks left the full-text index too
    hits = backend.dense_search(unit(1, 0, 0), 10)
    assert sorted(backend.chunks([i for i, _ in hits])[i].text for i, _ in hits) == ["new words", "other doc"]
    assert backend.document_hashes() == {"/d/a.md": "h2", "/d/b.md": "h1"}


def test_remove_documents(backend):
    backend.bind_embedder("toy", 3)
    add(backend, "/d/a.md", ["alpha"], [unit(1, 0, 0)])
    add(backend, "/d/b.md", ["beta"], [unit(0, 1, 0)])
    assert backend.remove_documents(["/d/a.md", "/d/missing.md"]) == 1
    assert backend.document_hashes() == {"/d/b.md": "h1"}
    assert [backend.chunks([i])[i].text for i, _ in backend.dense_search(unit(1, 0, 0), 5)] == ["beta"]
    assert backend.text_search("alpha", 5) == []


def test_dense_search_scores_are_cosines_in_order(backend):
    backend.bind_embedder("toy", 3)
    add(backend, "/d/a.md", ["x", "y", "z"], [unit(1, 0, 0), unit(1, 1, 0), unit(0, 0, 1)])
    hits = backend.dense_search(unit(1, 0, 0), 2)
    texts = [backend.chunks([i])[i].text for i, _ in hits]
    assert texts == ["x", "y"]
    np.testing.assert_allclose([s for _, s in hits], [1.0, 1 / np.sqrt(2)], rtol=1e-5)


def test_text_search_ranks_rarer_and_more_matches_first(backend):
    backend.bind_embedder("toy", 3)
    texts = ["the cat sat", "the dog sat", "a cat and a dog", "nothing relevant here"]
    add(backend, "/d/a.md", texts, [unit(1, 0, 0)] * 4)
    hits = backend.text_search("cat dog", 10)
    got = [backend.chunks([i])[i].text for i, _ in hits]
    assert got[0] == "a cat and a dog"  # matches both words
    assert sorted(got[1:]) == ["the cat sat", "the dog sat"]
    assert hits[0][1] > hits[1][1] > 0
    # stemming: "sitting cats" finds "cat"
    assert "the cat sat" in [backend.chunks([i])[i].text for i, _ in backend.text_search("cats", 10)]


CAT, RIVER = "cat and dog", "near the river not far"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ('"unbalanced cat', {CAT}),
        ("cat AND dog OR NEAR(river b)", {CAT, RIVER}),  # operators are plain words here
        ("cat*", {CAT}),
        ("-cat:dog^", {CAT}),
        ("))((", set()),
        ("c'a\"t river", {RIVER}),
        ("*", set()),
        ("!!!", set()),
        ("   ", set()),
    ],
)
def test_text_search_never_crashes_on_operators(backend, query, expected):
    backend.bind_embedder("toy", 3)
    add(backend, "/d/a.md", [CAT, RIVER], [unit(1, 0, 0)] * 2)
    hits = backend.text_search(query, 5)
    assert {backend.chunks([i])[i].text for i, _ in hits} == expected


def test_stopword_only_query(backend):
    """Stop words are dropped from a query unless nothing else is left; SQLite then matches them, while
    PostgreSQL's english configuration never indexes them (so it finds nothing, without an error)."""
    backend.bind_embedder("toy", 3)
    add(backend, "/d/a.md", [CAT, RIVER], [unit(1, 0, 0)] * 2)
    got = {backend.chunks([i])[i].text for i, _ in backend.text_search("NOT the", 5)}
    assert got == ({RIVER} if backend.backend == "sqlite" else set())


def test_filters_by_type_and_path_glob(backend):
    backend.bind_embedder("toy", 3)
    add(backend, "/home/u/docs/guide.md", ["shared words guide"], [unit(1, 0, 0)])
    add(backend, "/home/u/docs/api/ref.txt", ["shared words ref"], [unit(1, 0.1, 0)], source_type="text")
    add(backend, "https://example.com/page", ["shared words web"], [unit(1, 0.2, 0)], source_type="web")

    def texts(filters, dense=True):
        hits = (
            backend.dense_search(unit(1, 0, 0), 10, filters)
            if dense
            else backend.text_search("shared", 10, filters)
        )
        return sorted(backend.chunks([i])[i].text for i, _ in hits)

    for dense in (True, False):
        assert texts(Filters(source_types=("text", "web")), dense) == ["shared words ref", "shared words web"]
        assert texts(Filters(path="docs/*.md"), dense) == ["shared words guide"]  # relative: any folder
        assert texts(Filters(path="docs/*"), dense) == ["shared words guide", "shared words ref"]
        assert texts(Filters(path="/home/*/docs/api/*"), dense) == ["shared words ref"]
        assert texts(Filters(path="https://example.com/*"), dense) == ["shared words web"]
        assert texts(Filters(path="/docs/*"), dense) == []  # absolute: anchored at the start
        assert texts(Filters(path="*.md", source_types=("text",)), dense) == []


def test_embedder_mismatch_is_refused(backend):
    backend.bind_embedder("minilm-l6", 3)
    backend.bind_embedder("minilm-l6", 3)  # same one again: fine
    with pytest.raises(ConfigError, match=r"built with embedder 'minilm-l6' \(3-dim\) but 'other' \(3-dim\)"):
        backend.bind_embedder("other", 3)
    with pytest.raises(ConfigError, match=r"but 'minilm-l6' \(8-dim\).*--embedder minilm-l6"):
        backend.bind_embedder("minilm-l6", 8)
    doc, chunks = make_doc("/d/a.md", ["alpha"])
    with pytest.raises(ConfigError, match="dimension 4 but the store holds 3-dim"):
        backend.replace_document(doc, chunks, np.ones((1, 4), np.float32))
    with pytest.raises(ConfigError, match=r"one vector per chunk \(1\)"):
        backend.replace_document(doc, chunks, np.ones((2, 3), np.float32))
    assert backend.stats().chunks == 0


def test_write_before_binding_an_embedder_is_refused(backend):
    doc, chunks = make_doc("/d/a.md", ["alpha"])
    with pytest.raises(ConfigError, match="no embedder recorded"):
        backend.replace_document(doc, chunks, np.ones((1, 3), np.float32))
    assert backend.dense_search(unit(1, 0, 0), 5) == []


def test_sqlite_sees_writes_from_another_connection(tmp_path):
    reader, writer = open_store(str(tmp_path / "s.db")), open_store(str(tmp_path / "s.db"))
    writer.bind_embedder("toy", 3)
    add(writer, "/d/a.md", ["alpha"], [unit(1, 0, 0)])
    assert len(reader.dense_search(unit(1, 0, 0), 5)) == 1
    add(writer, "/d/b.md", ["beta"], [unit(0, 1, 0)])  # the reader's cached matrix must be refreshed
    assert len(reader.dense_search(unit(1, 0, 0), 5)) == 2
    reader.close()
    writer.close()


def test_store_location_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMLAB_HOME", str(tmp_path / "home"))
    assert store_location("notes") == ("sqlite", str(tmp_path / "home" / "stores" / "notes.sqlite"))
    assert store_location("x/y.db") == ("sqlite", "x/y.db")
    assert store_location("/a/b.sqlite") == ("sqlite", "/a/b.sqlite")
    assert store_location("postgresql://u@h/db") == ("postgres", "postgresql://u@h/db")
    with pytest.raises(ConfigError, match=r"--store must be a name .* got 'my notes/x'"):
        store_location("my notes/x")
    store = open_store("notes")
    assert store.location == str(tmp_path / "home" / "stores" / "notes.sqlite")
    store.close()


def test_not_a_store_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "junk.sqlite"
    bad.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(DataError, match=r"junk.sqlite: cannot open the store: file is not a database"):
        open_store(str(bad))
    assert bad.read_bytes() == b"this is not a database at all" * 100  # nothing overwritten


def test_unreachable_postgres_is_a_clear_error():
    with pytest.raises(ConfigError, match="cannot connect to PostgreSQL at postgresql://nobody@/x"):
        open_store("postgresql://nobody@/x?host=/nonexistent-socket-dir&connect_timeout=2")


def test_sqlite_drops_terms_in_most_chunks(tmp_path):
    """FTS5 clamps the IDF of a term in more than half the rows to 1e-6, so the store leaves such terms out of
    the query: "common rare" ranks exactly like "rare", and "common" alone (nothing rarer) still matches."""
    store = open_store(str(tmp_path / "s.sqlite"))
    store.bind_embedder("toy", 3)
    texts = ["common one", "common two", "common three rare", "other four"]
    add(store, "/d/a.md", texts, [unit(1, 0, 0)] * 4)
    found = [store.chunks([i])[i].text for i, _ in store.text_search("common rare", 10)]
    assert found == ["common three rare"]
    assert len(store.text_search("common", 10)) == 3
    assert store.text_search("absent words", 10) == []
    store.close()


def test_postgres_hnsw_settings_and_ef_search_from_the_url(pg_uri):
    from ragkit import fresh_pg_url

    from llmlab.rag.stores.postgres import EF_SEARCH

    url = fresh_pg_url(pg_uri)
    store = open_store(url)
    try:
        assert store.ef_search == EF_SEARCH == 200
        store.bind_embedder("e", 2)
        (index,) = store.conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'llmlab_chunks_hnsw'"
        ).fetchone()
        assert "m='16'" in index and "ef_construction='128'" in index, index
    finally:
        store.close()
    # a connection option above the default wins (`options=-c...` in the URL, combined with the search_path)
    raised = open_store(url.replace("options=", "options=-chnsw.ef_search%3D640%20"))
    try:
        assert raised.ef_search == 640
        add(raised, "/a.md", ["alpha", "beta"], [unit(1, 0), unit(0, 1)])
        assert [i for i, _ in raised.dense_search(unit(1, 0.1), 1)] == [1]
    finally:
        raised.close()


def test_document_metadata_comes_back_with_its_chunks(backend):
    """Author, date, site name and language (issue 17) are stored once per document and joined onto every
    chunk read back; other metadata (links, encoding) stays with the document."""
    backend.bind_embedder("toy", 3)
    doc, chunks = make_doc("https://news.example/bridge", ["bridge reopens", "cycle lane"], source_type="web")
    doc.metadata = {
        "title": "Bridge",
        "author": "Mara Jensen",
        "date": "2024-03-12",
        "site_name": "The Coast Herald",
        "language": "en-GB",
        "encoding": "utf-8",
        "links": "https://news.example/a\nhttps://news.example/b",
    }
    backend.replace_document(doc, chunks, np.stack([unit(1, 0, 0), unit(0, 1, 0)]))
    got = backend.chunks([i for i, _ in backend.dense_search(unit(1, 0, 0), 10)])
    expected = {
        "author": "Mara Jensen",
        "date": "2024-03-12",
        "site_name": "The Coast Herald",
        "language": "en-GB",
    }
    assert [c.metadata for c in got.values()] == [expected, expected]
    assert list(next(iter(got.values())).metadata) == ["author", "date", "site_name", "language"]


def test_opening_without_create_refuses_a_store_that_does_not_exist(store_url):
    """Reading commands open with create=False: nothing is created, and the error says how to create it."""
    with pytest.raises(
        ConfigError, match=r"no (llmlab )?store at .*; create it with: llmlab rag ingest PATH"
    ):
        open_store(store_url, create=False)
    open_store(store_url).close()  # created (empty) by a writing command
    open_store(store_url, create=False).close()
