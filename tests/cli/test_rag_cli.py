"""`llmlab rag ingest | ask | chat | search | list`, `llmlab ask` and `llmlab demo` through the real CLI entry
point, on a temp store embedded by a tiny random BERT, with a scripted engine (and once with a tiny Llama
checkpoint folder passed as --model).

A scripted answer that repeats a document sentence word for word embeds exactly like that passage (cosine 1),
so even a random encoder attributes it to the right source."""

from __future__ import annotations

import builtins
import json
from pathlib import Path

import pytest
from rag.answer_fakes import FakeEngine, write_docs
from rag.ragkit import tiny_bert_folder  # noqa: F401 - fixture

from llmlab.cli import build_parser, main
from llmlab.rag.answer import NOT_FOUND

BREAD = "Bread bakes in the oven for 40 minutes [1]."
FREE = ("--answer-style", "free")
"""The scripted fake engine writes free answers; without this the packaged model's default (auto) is the span
reader, which needs no generator."""


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def kb(tmp_path, monkeypatch, capsys, tiny_bert_folder):  # noqa: F811
    """cwd = tmp_path, LLMLAB_HOME inside it, docs/ ingested into the store named `kb`."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LLMLAB_HOME", str(tmp_path / "home"))
    write_docs(tmp_path / "docs")
    code, _, _ = run(capsys, "rag", "ingest", "docs", "--store", "kb", "--embedder", str(tiny_bert_folder))
    assert code == 0
    return tmp_path


def fake_engine(monkeypatch, tokenizer, replies: list[str]) -> FakeEngine:
    engine = FakeEngine(tokenizer, replies)
    monkeypatch.setattr("llmlab.cli.rag._load_engine", lambda args: engine)
    return engine


def test_ingest_report_json_and_table(capsys, kb):
    (kb / "docs" / "empty.md").write_text("")
    (kb / "docs" / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (kb / "docs" / "bakery.md").write_text("# Bakery\n\nRye bread bakes for an hour.\n")
    code, out, _ = run(capsys, "rag", "ingest", "docs", "--store", "kb", "--json")
    data = json.loads(out)
    assert code == 0 and data["store"] == str(kb / "home" / "stores" / "kb.sqlite")
    assert [Path(s).name for s in data["updated"]] == ["bakery.md"]
    assert sorted(Path(s).name for s in data["unchanged"]) == ["garden.md", "trains.md"]
    assert [(Path(f["source"]).name, f["reason"].split(": ", 1)[1]) for f in data["failed"]] == [
        ("empty.md", "the file is empty (0 bytes); nothing to load")
    ]
    assert [(Path(s["source"]).name, s["reason"]) for s in data["skipped"]] == [
        ("logo.png", "unsupported extension '.png'")
    ]
    code, out, _ = run(capsys, "rag", "ingest", "docs", "--store", "kb", "--exclude", "empty.md")
    assert code == 0
    assert "│ unchanged │       3 │" in out and "│ failed    │       0 │" in out and "status" in out
    assert "skipped docs/logo.png: unsupported extension '.png'" in out


def test_ingest_that_loads_nothing_exits_1(capsys, kb):
    code, out, _ = run(capsys, "rag", "ingest", "missing-folder", "--store", "kb")
    assert code == 1 and "failed missing-folder: no such file or folder" in out


def test_search_table_and_json(capsys, kb):
    code, out, _ = run(capsys, "rag", "search", "bread oven", "--store", "kb", "--mode", "bm25", "--json")
    hits = json.loads(out)
    assert code == 0 and Path(hits[0]["source"]).name == "bakery.md" and hits[0]["rank"] == 1
    assert set(hits[0]["scores"]) == {"bm25", "bm25_rank"}
    code, out, _ = run(capsys, "rag", "search", "bread oven", "--store", "kb", "--chunks", "1")
    assert code == 0 and "1 result(s), mode hybrid" in out and "docs/bakery.md › Bakery" in out
    code, _, err = run(capsys, "rag", "search", "x", "--store", "kb", "--mode", "fuzzy")
    assert code == 2 and "error: --mode must be one of hybrid, dense, bm25, got 'fuzzy'" in err


def test_search_table_stays_readable_at_80_columns(capsys, kb, monkeypatch, tiny_bert_folder):  # noqa: F811
    """Long source paths used to take the whole width (rank, score and text squeezed to nothing): now the
    source keeps its end within a third of the width and every column keeps its content."""
    from llmlab.cli.output import console

    deep = kb / "a" / "very" / "long" / "path" / "to" / "some" / "project" / "documentation" / "folder"
    write_docs(deep)
    code, _, _ = run(
        capsys, "rag", "ingest", str(kb / "a"), "--store", "deep", "--embedder", str(tiny_bert_folder)
    )
    monkeypatch.setattr(console, "width", 80)
    code, out, _ = run(capsys, "rag", "search", "bread oven flour", "--store", "deep")
    lines = out.splitlines()
    assert code == 0 and max(len(line) for line in lines) <= 80
    assert all(name in lines[2] for name in ("#", "score", "source", "text"))
    first = "\n".join(lines[4:9])
    assert "│ …/folder/bakery.md ›" in first and "│ Bakery " in first and "bm25 #1" in first
    text_column = [line.split("│")[4] for line in lines[4:9] if line.count("│") == 5]
    assert len(text_column[0].strip()) >= 24 and "Bread bakes" in text_column[0]


def test_list_stores_and_documents(capsys, kb):
    code, out, _ = run(capsys, "rag", "list", "--json")
    (row,) = json.loads(out)
    assert code == 0 and (row["name"], row["documents"], row["chunks"]) == ("kb", 3, 3)
    code, out, _ = run(capsys, "rag", "list", "--store", "kb")
    assert code == 0 and all(f"docs/{n}.md" in out for n in ("bakery", "garden", "trains"))


def test_ask_streams_the_answer_then_sources(capsys, kb, monkeypatch, tiny_tok):
    engine = fake_engine(monkeypatch, tiny_tok, ["  " + BREAD.replace(" for", "\nfor") + "\n \n"])
    code, out, _ = run(
        capsys, "rag", "ask", *FREE, "How long does bread bake?", "--store", "kb", "--mode", "bm25"
    )
    assert code == 0
    answer, sources = out.split("\n\n", 1)
    assert answer == BREAD.replace(" for", "\nfor")  # streamed as generated, without the outer whitespace
    assert (
        sources == 'Sources\n [1] docs/bakery.md › Bakery\n     "Bread bakes in the oven for 40 minutes."\n'
    )
    assert engine.configs[0].greedy and engine.configs[0].max_new_tokens == 64


def test_ask_json_show_context_and_decoding_flags(capsys, kb, monkeypatch, tiny_tok):
    engine = fake_engine(monkeypatch, tiny_tok, [BREAD + " Also [5]."])
    code, out, _ = run(
        capsys, "rag", "ask", *FREE, "How long does bread bake?", "--store", "kb", "--json", "--chunks", "2",
        "--prompt", "zero-shot", "--temperature", "0.3", "--no-greedy", "--seed", "4", "--max-new-tokens", "20",
    )  # fmt: skip
    data = json.loads(out)
    assert code == 0 and data["answer"] == BREAD + " Also [5]."
    assert (data["citations"], data["invalid_citations"], len(data["context"])) == ([1], [5], 2)
    assert data["sources"][0]["snippet"] == "Bread bakes in the oven for 40 minutes."
    config = engine.configs[0]
    assert (config.temperature, config.greedy, config.seed, config.max_new_tokens) == (0.3, False, 4, 20)
    assert "<|im_start|>assistant\nAt 9 am [1].<|im_end|>" not in engine.prompts[0]  # zero-shot
    fake_engine(monkeypatch, tiny_tok, [BREAD])
    code, out, _ = run(
        capsys,
        "rag",
        "ask",
        *FREE,
        "bread?",
        "--store",
        "kb",
        "--show-context",
        "--chunks",
        "1",
        "--mode",
        "bm25",
    )
    assert code == 0 and out.startswith("context [1] docs/bakery.md › Bakery  (score ")
    assert "# Bakery\n\nBread bakes in the oven for 40 minutes. Use strong flour for bread.\n" in out


def test_ask_not_found_and_unsupported(capsys, kb, monkeypatch, tiny_tok):
    fake_engine(monkeypatch, tiny_tok, [NOT_FOUND, "Paris is the capital of France."])
    code, out, err = run(capsys, "rag", "ask", *FREE, "Capital of France?", "--store", "kb")
    assert code == 0 and out == NOT_FOUND + "\n" and "the model was not asked" not in err
    code, out, err = run(
        capsys, "rag", "ask", *FREE, "Capital of France?", "--store", "kb", "--min-relevance", "1"
    )
    assert code == 0 and out == NOT_FOUND + "\n" and "under --min-relevance); the model was not asked" in err
    # A random encoder finds every sentence similar to everything; 0.99 demands a word-for-word passage.
    code, out, _ = run(
        capsys, "rag", "ask", *FREE, "Capital of France?", "--store", "kb", "--min-support", "0.99"
    )
    assert out.endswith("\n\nNo passage in the documents supports this answer; treat it with care.\n")


def test_a_sentence_no_passage_supports_is_said_so_not_given_a_source(capsys, kb, monkeypatch, tiny_tok):
    """The second sentence states a number no passage holds: it gets no quote; the CLI names it instead."""
    fake_engine(
        monkeypatch, tiny_tok, [BREAD + " The oven runs at 220 degrees [1].", "It bakes at 220 degrees [1]."]
    )
    code, out, _ = run(
        capsys, "rag", "ask", *FREE, "How long does bread bake?", "--store", "kb", "--mode", "bm25"
    )
    assert code == 0 and out.endswith(
        'Sources\n [1] docs/bakery.md › Bakery\n     "Bread bakes in the oven for 40 minutes."\n'
        'No passage supports:\n     "The oven runs at 220 degrees [1]."\n'
    ), out
    code, out, _ = run(capsys, "rag", "ask", *FREE, "How hot is the oven?", "--store", "kb", "--mode", "bm25")
    assert out.endswith("\n\nNo passage in the documents supports this answer; treat it with care.\n")
    assert "Sources" not in out


def test_chunks_and_sampling_top_k_are_two_flags(capsys, kb, monkeypatch, tiny_tok):
    """--chunks sets how many chunks are retrieved, --top-k only sampling's top-k; neither touches the other,
    and an answer's decoding settings are exactly the answering defaults unless a decoding flag is given."""
    from llmlab.rag.answer import answer_generation

    for verb in (
        ["rag", "ask", *FREE, "How long does bread bake?", "--store", "kb"],
        ["ask", *FREE, "How long does bread bake?"],
    ):
        if verb[0] == "ask":
            monkeypatch.setenv("LLMLAB_DOCS", str(kb / "docs"))
        engine = fake_engine(monkeypatch, tiny_tok, [BREAD] * 3)
        code, out, err = run(capsys, *verb, "--json", "--top-k", "5")
        data = json.loads(out)
        assert code == 0 and len(data["context"]) == 3, err  # the default number of chunks
        assert engine.configs[0] == answer_generation(top_k=5)
        code, out, _ = run(capsys, *verb, "--json", "--chunks", "1")
        assert len(json.loads(out)["context"]) == 1 and engine.configs[1] == answer_generation()
        assert engine.configs[1].top_k == 0 and engine.configs[1].top_p == 0.9
    code, _, err = run(capsys, "rag", "ask", *FREE, "q?", "--store", "kb", "--chunks", "0")
    assert code == 2 and "error: --chunks must be at least 1, got 0" in err
    code, out, _ = run(capsys, "rag", "search", "bread", "--store", "kb", "--chunks", "2", "--json")
    assert code == 0 and len(json.loads(out)) == 2


def test_reading_commands_never_create_a_store(capsys, kb, monkeypatch, tiny_tok):
    fake_engine(monkeypatch, tiny_tok, [])
    monkeypatch.setattr(builtins, "input", lambda prompt="": "/quit")
    stores = kb / "home" / "stores"
    for argv in (
        ["rag", "ask", "anything?", "--store", "nope"],
        ["rag", "chat", "--store", "nope"],
        ["rag", "search", "anything", "--store", "nope"],
        ["rag", "list", "--store", "nope"],
    ):
        code, _, err = run(capsys, *argv)
        assert code == 2 and err == (
            "error: no store named nope; create it with: llmlab rag ingest PATH --store nope "
            "(the stores there are: kb)\n"
        ), err
    code, _, err = run(capsys, "rag", "search", "x", "--store", str(kb / "nothing.sqlite"))
    assert code == 2 and f"error: no store at {kb / 'nothing.sqlite'}; create it with" in err
    assert sorted(p.name for p in stores.iterdir() if p.suffix == ".sqlite") == ["kb.sqlite"]
    assert not (kb / "nothing.sqlite").exists()


def test_ask_errors(capsys, kb, monkeypatch, tiny_tok):
    fake_engine(monkeypatch, tiny_tok, [])
    (kb / "home" / "stores" / "empty.sqlite").touch()
    code, _, err = run(capsys, "rag", "ask", "anything?", "--store", "empty")
    assert code == 2 and "holds no documents; add some with: llmlab rag ingest PATH --store NAME" in err
    code, _, err = run(capsys, "rag", "ask", "q?", "--store", "kb", "--prompt", "ten-shot")
    assert code == 2 and "error: --prompt must be one of auto, few-shot, zero-shot, got 'ten-shot'" in err


def test_chat_rewrites_follow_ups_and_resets(capsys, kb, monkeypatch, tiny_tok):
    replies = [BREAD, "How long does rye bread bake in the oven?", BREAD, "Buy a ticket at the station."]
    engine = fake_engine(monkeypatch, tiny_tok, replies)
    lines = iter(
        ["How long does bread bake?", "And rye?", "/reset", "/help", "How do I board a train?", "/quit"]
    )
    monkeypatch.setattr(builtins, "input", lambda prompt="": next(lines))
    code, out, err = run(capsys, "rag", "chat", *FREE, "--store", "kb", "--mode", "bm25")
    assert code == 0 and engine.replies == []
    assert "searching (rewritten): How long does rye bread bake in the oven?" in err
    assert "conversation cleared" in err and "commands: /reset" in err
    assert "Follow-up question: How do I board a train?" not in "".join(
        engine.prompts
    )  # no rewrite after /reset
    assert out.count("Sources\n") == 3 and "docs/trains.md › Trains" in out


def test_chat_json_lines(capsys, kb, monkeypatch, tiny_tok):
    fake_engine(monkeypatch, tiny_tok, [BREAD, "", BREAD])
    type_lines(monkeypatch, ["How long does bread bake?", "Why?"])
    code, out, _ = run(capsys, "rag", "chat", *FREE, "--store", "kb", "--json")
    first, second = _json_objects(out)
    assert code == 0 and first["query"] == "How long does bread bake?"
    assert second["query"] == "How long does bread bake? Why?"  # empty rewrite: the deterministic fallback


def type_lines(monkeypatch, typed: list[str]) -> None:
    """The user types these lines at the chat prompt, then ends the input (Ctrl-D)."""
    lines = iter(typed)

    def read(prompt=""):
        try:
            return next(lines)
        except StopIteration:
            raise EOFError from None

    monkeypatch.setattr(builtins, "input", read)


def _json_objects(text: str) -> list[dict]:
    """Parse concatenated pretty-printed JSON objects."""
    decoder, objects, i = json.JSONDecoder(), [], 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        obj, i = decoder.raw_decode(text, i)
        objects.append(obj)
    return objects


def test_llmlab_ask_builds_the_guide_store(capsys, kb, monkeypatch, tiny_tok, tiny_bert_folder):  # noqa: F811
    from llmlab.rag.guide import open_guide

    monkeypatch.setenv("LLMLAB_DOCS", str(kb / "docs"))
    store, _ = open_guide(embedder=str(tiny_bert_folder))  # the tiny encoder instead of MiniLM
    store.close()
    (kb / "docs" / "bakery.md").write_text("# Bakery\n\nBread bakes in the oven for 40 minutes.\n")
    fake_engine(monkeypatch, tiny_tok, [BREAD, BREAD])
    code, out, err = run(capsys, "ask", *FREE, "How long does bread bake?", "--chunks", "1")
    assert code == 0 and out.startswith(BREAD + "\n\nSources\n [1] docs/bakery.md › Bakery\n")
    assert "guide store updated: 1 page(s) changed" in err
    # the demo answers extractively by default, which needs llmlab's engine; the scripted fake writes freely
    demo_args = build_parser().parse_args(["demo"])
    assert (demo_args.answer_style, demo_args.adapter) == ("extractive", "none")
    code, out, _ = run(
        capsys, "demo", "--question", "How long does bread bake?", "--chunks", "1", "--answer-style", "free"
    )
    assert code == 0 and out.startswith(
        "llmlab demo: asking the user guide (docs/) — How long does bread bake?"
    )
    assert "[1] docs/bakery.md › Bakery" in out


def _flag_help(capsys, argv: list[str], flag: str, next_flag: str) -> str:
    with pytest.raises(SystemExit):
        build_parser().parse_args([*argv, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    return text.split(f"{flag} ", 1)[1].split(next_flag, 1)[0].strip()


def test_demo_help_shows_the_demos_own_defaults(capsys):
    # the answer flags are rag ask's (free, adapter auto); the demo's help states its own defaults
    adapter = _flag_help(capsys, ["demo"], "--adapter ADAPTER", "--max-prompt-tokens")
    style = _flag_help(capsys, ["demo"], "--answer-style STYLE", "--span-choice")
    assert adapter.endswith("(default: none)") and style.endswith("(default: extractive)")
    ask = _flag_help(capsys, ["rag", "ask"], "--adapter ADAPTER", "--max-prompt-tokens")
    assert ask.endswith("(default: auto)")


def test_ingest_progress_bar_counts_sources():
    from llmlab.cli.rag_output import IngestBar
    from llmlab.rag.ingest import IngestProgress

    with IngestBar() as bar:
        bar(IngestProgress(1, 3, "/x/a.md", "added", 2))
        bar(IngestProgress(2, 3, "/x/b.md", "unchanged"))
        task = bar.progress.tasks[0]
        assert (task.completed, task.total, task.description) == (2, 3, "b.md")


def test_ask_with_a_tiny_checkpoint_folder(capsys, kb, tmp_path):
    """--model takes a local checkpoint folder: a tiny random Llama (4096 positions) answers end to end."""
    from tiny import tiny_llama, tiny_tokenizer

    tok = tiny_tokenizer()
    folder = tmp_path / "tiny-llama-long"
    tiny_llama(len(tok), max_position_embeddings=4096).save_pretrained(folder)
    tok.save_pretrained(folder)
    code, out, err = run(
        capsys, "rag", "ask", *FREE, "bread?", "--store", "kb", "--model", str(folder), "--precision", "fp32",
        "--device", "cpu", "--max-new-tokens", "4", "--chunks", "1", "--json",
    )  # fmt: skip
    data = json.loads(out)
    assert code == 0, err
    assert isinstance(data["answer"], str) and data["prompt_tokens"] > 100
    assert [Path(c["source"]).name for c in data["context"]] == ["bakery.md"]


def test_ingest_a_website_reports_skipped_pages(capsys, kb, tmp_path):
    """A local site (http.server in a thread): two HTML pages are added, the linked PDF is reported as
    skipped with the crawler's reason."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text(
        "<html><head><title>Home</title></head><body><h1>Home</h1><p>Welcome to the bakery site.</p>"
        '<a href="guide.html">guide</a> <a href="manual.pdf">manual</a></body></html>'
    )
    (site / "guide.html").write_text(
        "<html><head><title>Guide</title></head><body><h1>Guide</h1><p>Bread needs flour.</p></body></html>"
    )
    (site / "manual.pdf").write_bytes(b"%PDF-1.4\n%%EOF\n")

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/index.html"
    try:
        code, out, _ = run(capsys, "rag", "ingest", url, "--store", "kb", "--delay", "0", "--json")
    finally:
        server.shutdown()
        server.server_close()
    data = json.loads(out)
    assert code == 0 and sorted(s.rsplit("/", 1)[1] for s in data["added"]) == ["guide.html", "index.html"]
    assert [(s["source"].rsplit("/", 1)[1], s["reason"]) for s in data["skipped"]] == [
        ("manual.pdf", "not an HTML page (application/pdf)")
    ]


def test_locations_are_shown_short_and_without_passwords(monkeypatch, tmp_path):
    from llmlab.cli.rag_output import display_path, hide_password

    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    assert display_path(str(home / ".llmlab/stores/notes.sqlite")) == "~/.llmlab/stores/notes.sqlite"
    assert display_path(str(tmp_path / "work/docs/a.md")) == "docs/a.md"  # under the working folder
    assert display_path("/srv/x.pdf") == "/srv/x.pdf"
    url = "postgresql://me:s3cr:et@db:5432/kb?options=-csearch_path%3Dnotes"
    assert (
        display_path(url)
        == hide_password(url)
        == "postgresql://me:***@db:5432/kb?options=-csearch_path%3Dnotes"
    )
    assert hide_password("postgresql://me@db/kb") == "postgresql://me@db/kb"
    assert display_path("https://example.org/a?b=c") == "https://example.org/a?b=c"


def test_ask_extractive_quotes_the_cited_block(capsys, kb, monkeypatch, tiny_tok):
    """A tiny random Llama through the CLI: --answer-style extractive prints a quote of the block it cites."""
    from tiny import tiny_llama

    from llmlab.generation import Engine

    engine = Engine(tiny_llama(len(tiny_tok), max_position_embeddings=4096), tiny_tok)
    monkeypatch.setattr("llmlab.cli.rag._load_engine", lambda args: engine)
    argv = ("rag", "ask", "How long does bread bake?", "--store", "kb", "--answer-style", "extractive")
    code, out, _ = run(capsys, *argv, "--json", "--prompt", "zero-shot")
    assert code == 0
    reply = json.loads(out)
    if not reply["not_found"]:
        (block,) = reply["citations"]
        assert reply["answer"] and reply["answer"] in reply["context"][block - 1]["text"]
        assert [s["block"] for s in reply["sources"]] == [block]
    code, _, err = run(capsys, *argv[:-1], "quote")
    assert (
        code == 2
        and "error: --answer-style must be one of free, extractive, reader, auto, got 'quote'" in err
    )


def test_the_default_answer_style_is_the_span_reader_with_the_packaged_model(capsys, kb, monkeypatch):
    """No --answer-style and no --model: auto is the span reader, and no generating model is loaded."""
    from rag.test_reader import READER

    def no_engine(args):
        raise AssertionError("the reader needs no generator")

    names: list[str] = []
    monkeypatch.setattr("llmlab.cli.rag._load_engine", no_engine)
    monkeypatch.setattr("llmlab.rag.reader.load_reader", lambda name: names.append(name) or READER)
    code, out, err = run(capsys, "rag", "ask", "Where is the gold?", "--store", "kb", "--json")
    data = json.loads(out)
    assert code == 0 and names == ["auto"], err
    assert data["not_found"] and data["answer"] == NOT_FOUND  # the rule reader finds no "gold" in the bakery


def test_rag_chat_with_the_default_span_reader(capsys, kb, monkeypatch):
    """rag chat with the default style: no generator is loaded, so a follow-up is searched as the previous
    question followed by it (no model to rewrite with), and each turn is the reader's answer."""
    from rag.test_reader import READER

    def no_engine(args):
        raise AssertionError("the reader needs no generator")

    monkeypatch.setattr("llmlab.cli.rag._load_engine", no_engine)
    monkeypatch.setattr("llmlab.rag.reader.load_reader", lambda name: READER)
    type_lines(monkeypatch, ["Where is the gold?", "And the bread?"])
    code, out, err = run(capsys, "rag", "chat", "--store", "kb", "--json")
    first, second = _json_objects(out)
    assert code == 0, err
    assert first["query"] == "Where is the gold?" and first["answer"] == NOT_FOUND
    assert second["query"] == "Where is the gold? And the bread?" and second["not_found"]
