"""The guide store behind `llmlab ask`: built on first use from the docs folder (LLMLAB_DOCS in tests), then
brought up to date incrementally: unchanged pages skipped, changed replaced, deleted and foreign pruned."""

from __future__ import annotations

from pathlib import Path

import pytest

import llmlab
from llmlab.errors import ConfigError
from llmlab.rag.guide import docs_folder, guide_location, open_guide


def names(sources) -> list[str]:
    return sorted(Path(s).name for s in sources)


@pytest.fixture
def guide_env(tmp_path, monkeypatch):
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "a.md").write_text("# Apples\n\nApples grow in orchards.\n")
    (docs / "sub" / "b.md").write_text("# Bananas\n\nBananas are yellow.\n")
    (docs / "notes.txt").write_text("Not a guide page: only *.md pages are read.\n")
    monkeypatch.setenv("LLMLAB_DOCS", str(docs))
    monkeypatch.setenv("LLMLAB_HOME", str(tmp_path / "home"))
    return docs


def test_guide_is_built_then_updated_incrementally(guide_env, tiny_bert_folder, tmp_path):
    docs, embedder = guide_env, str(tiny_bert_folder)
    store, first = open_guide(embedder=embedder)
    with store:
        assert names(first.added) == ["a.md", "b.md"] and first.unchanged == []
        assert (
            store.location
            == str(tmp_path / "home" / "stores" / "llmlab-guide.sqlite")
            == str(guide_location())
        )
    store, again = open_guide()  # the embedder recorded in the store is used
    with store:
        assert (again.added, again.updated, names(again.unchanged)) == ([], [], ["a.md", "b.md"])
        assert again.chunks == 0
    (docs / "a.md").write_text("# Apples\n\nApples are picked in autumn.\n")
    (docs / "sub" / "b.md").unlink()
    (docs / "c.md").write_text("# Cherries\n\nCherries are red.\n")
    store, changed = open_guide()
    with store:
        assert (names(changed.added), names(changed.updated), names(changed.removed)) == (
            ["c.md"],
            ["a.md"],
            ["b.md"],
        )
        hits = store.search("apples autumn", mode="bm25", top_k=1)
        assert hits[0].chunk.text == "# Apples\n\nApples are picked in autumn."


def test_switching_docs_folder_removes_the_old_pages(guide_env, tiny_bert_folder, tmp_path, monkeypatch):
    store, _ = open_guide(embedder=str(tiny_bert_folder))
    store.close()
    other = tmp_path / "other-docs"
    other.mkdir()
    (other / "z.md").write_text("# Zebras\n\nZebras have stripes.\n")
    monkeypatch.setenv("LLMLAB_DOCS", str(other))
    store, report = open_guide()
    with store:
        assert names(report.added) == ["z.md"] and names(report.removed) == ["a.md", "b.md"]
        assert list(store.backend.document_hashes()) == [str((other / "z.md").resolve())]


def test_docs_folder_default_and_errors(monkeypatch, tmp_path):
    monkeypatch.delenv("LLMLAB_DOCS", raising=False)
    assert docs_folder() == Path(llmlab.__file__).resolve().parents[1] / "docs"
    monkeypatch.setenv("LLMLAB_DOCS", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match=r"LLMLAB_DOCS points to .*missing, which is not a folder"):
        docs_folder()
