"""Answering on the real packaged models (slow tier): SmolLM2-135M-Instruct answers a question from llmlab's
guide (docs/) with the right source, an off-topic question is refused by the relevance gate with MiniLM, and
`llmlab demo` runs end to end in a fresh process with a fresh $LLMLAB_HOME.

The expected answers are what greedy decoding gives with the default precision (int8 on CPUs with VNNI);
bench/rag_answers.py measures the same model on the whole QA set."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmlab.cli.demo import DEMO_QUESTION
from llmlab.rag.answer import NOT_FOUND, AnswerConfig, Answerer
from llmlab.rag.guide import docs_folder
from llmlab.rag.ingest import IngestConfig
from llmlab.rag.store import Store

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def guide(tmp_path_factory):
    store = Store.open(str(tmp_path_factory.mktemp("guide") / "guide.sqlite"))
    report = store.ingest([docs_folder()], config=IngestConfig(include=("*.md",)))
    assert report.added and not report.failed
    yield store
    store.close()


@pytest.fixture(scope="module")
def engine(smollm):
    from llmlab.generation import Engine

    return Engine.from_loaded(smollm)


def test_smollm_answers_from_the_guide_with_the_right_source(guide, engine):
    free = AnswerConfig(answer_style="free")  # SmolLM2 writes (the default with a 135M model is the reader)
    answer = Answerer(guide, engine, free).answer("What is the default max_depth of the website crawler?")
    assert not answer.not_found and "2" in answer.text.split()[-1]
    assert Path(answer.sources[0].hit.chunk.source).name == "rag-documents.md"
    assert "max_depth" in answer.sources[0].hit.chunk.text


def test_relevance_gate_refuses_an_off_topic_question(guide, engine):
    """The fitted gate (the default) stops it before the model; so does a plain cosine threshold: MiniLM puts
    this question at cosine 0.17 from its nearest guide chunk (on-topic ones: 0.25 and up)."""
    from llmlab.rag.relevance import THRESHOLD

    question = "Which planet is closest to the sun?"
    answer = Answerer(guide, engine).answer(question)
    assert answer.gated and answer.text == NOT_FOUND and answer.on_topic is not None
    assert answer.on_topic < THRESHOLD / 10
    answer = Answerer(guide, engine, AnswerConfig(min_relevance=0.3, relevance_gate="off")).answer(question)
    assert answer.gated and answer.text == NOT_FOUND and answer.relevance is not None
    assert answer.relevance < 0.25 and answer.on_topic is None
    on_topic = Answerer(guide, engine).answer("How do I open an encrypted PDF?")
    assert not on_topic.gated and on_topic.on_topic is not None and on_topic.on_topic > 0.5


def test_demo_end_to_end_in_a_subprocess(tmp_path, llmlab_cache):
    env = dict(os.environ, LLMLAB_HOME=str(tmp_path / "home"), LLMLAB_CACHE=str(llmlab_cache))
    env.pop("LLMLAB_DOCS", None)
    done = subprocess.run(
        [sys.executable, "-m", "llmlab", "demo"], env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"llmlab demo: asking the user guide (docs/) — {DEMO_QUESTION}")
    answer, sources = done.stdout.split("\nSources\n", 1)
    quote = answer.strip().splitlines()[-1]  # extractive: a span of the cited block, whatever the kernels
    first, snippet = sources.splitlines()[:2]
    assert first.endswith("] docs/models.md › Loading and the GGUF cache")
    assert "set `LLMLAB_CACHE` to use another folder" in snippet
    # int8 stops the span at the semicolon, fp32 and bf16 copy the whole sentence (AMD EPYC, AVX2 kernels too)
    assert quote.startswith("The cache lives in `~/.cache/llmlab/gguf/`") and quote in snippet
    assert (tmp_path / "home" / "stores" / "llmlab-guide.sqlite").exists()


@pytest.mark.parametrize(
    ("question", "span_choice"),
    [
        ("What is the default max_depth of the website crawler?", "greedy"),
        ("How do I open an encrypted PDF?", "greedy"),
        ("How do I open an encrypted PDF?", "likelihood"),
    ],
)
def test_extractive_answers_quote_the_block_they_cite(guide, engine, question, span_choice):
    """Whatever span SmolLM2 picks on this CPU, it is a verbatim quote of the one block cited and shown."""
    config = AnswerConfig(answer_style="extractive", span_choice=span_choice)
    answer = Answerer(guide, engine, config).answer(question)
    assert not answer.not_found and answer.text
    (block,) = answer.citations
    assert answer.text in answer.hits[block - 1].chunk.text
    assert [s.block for s in answer.sources] == [block] and answer.text in answer.sources[0].snippet


@pytest.fixture(scope="module")
def notes(tmp_path_factory):
    store = Store.open(str(tmp_path_factory.mktemp("notes") / "notes.sqlite"))
    store.ingest([Path(__file__).parents[1] / "fixtures" / "docs" / "rag" / "notes"])
    yield store
    store.close()


@pytest.fixture(scope="module")
def adapted(llmlab_cache):
    """SmolLM2 with the packaged grounded-answer adapter merged in, as `rag ask` loads it by default."""
    from llmlab.rag.adapter import GROUNDED_ADAPTER
    from llmlab.rag.answer import load_engine

    return load_engine("smollm2-135m-instruct", "cpu", adapter=GROUNDED_ADAPTER)


@pytest.mark.parametrize("style", ["free", "extractive"])
def test_the_grounded_adapter_answers_short_and_cited(notes, adapted, style):
    """With the adapter the answer is the phrase, not a sentence restating the question (without it SmolLM2
    wrote "Printer error E-204 means ..." or quoted a radiator note); the prompt is zero-shot."""
    answerer = Answerer(notes, adapted, AnswerConfig(answer_style=style))
    assert answerer.prompt_style == "zero-shot"
    answer = answerer.answer("What does printer error E-204 mean?")
    assert "paper jam" in answer.text and len(answer.text.split()) <= 8
    assert [Path(s.hit.chunk.source).name for s in answer.sources] == ["errors.txt"]
