"""Sources under an answer name who wrote the page, where and when (issue 17: metadata kept from loading to
the answer), and `rag search --json` carries the same fields."""

from __future__ import annotations

import json

from cli.test_rag_cli import fake_engine, run
from rag.answer_fakes import write_docs
from rag.ragkit import tiny_bert_folder  # noqa: F401 - fixture

PAGE = """<html lang="en"><head><title>Harbour bridge | The Coast Herald</title>
<meta name="author" content="Mara Jensen"><meta property="og:site_name" content="The Coast Herald">
<meta property="article:published_time" content="2024-03-12T08:30:00Z"></head>
<body><article><h1>Harbour bridge</h1><p>The harbour bridge reopened to traffic on Tuesday after eight months of
repairs to its steel deck.</p></article></body></html>"""


def test_sources_show_author_site_and_date(capsys, tmp_path, monkeypatch, tiny_tok, tiny_bert_folder):  # noqa: F811
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LLMLAB_HOME", str(tmp_path / "home"))
    write_docs(tmp_path / "docs", {"bridge.html": PAGE, "plain.md": "# Trains\n\nTrains run every hour.\n"})
    code, _, _ = run(capsys, "rag", "ingest", "docs", "--store", "kb", "--embedder", str(tiny_bert_folder))
    assert code == 0
    fake_engine(monkeypatch, tiny_tok, ["The harbour bridge reopened to traffic on Tuesday [1]."])
    code, out, _ = run(capsys, "rag", "ask", "When did the bridge reopen?", "--store", "kb", "--mode", "bm25")
    assert code == 0
    assert "\n [1] docs/bridge.html › Harbour bridge (Mara Jensen, The Coast Herald, 2024-03-12)\n" in out
    code, out, _ = run(
        capsys, "rag", "search", "bridge reopened", "--store", "kb", "--mode", "bm25", "--json"
    )
    hits = json.loads(out)
    assert hits[0]["metadata"] == {
        "author": "Mara Jensen",
        "date": "2024-03-12",
        "site_name": "The Coast Herald",
        "language": "en",
    }
