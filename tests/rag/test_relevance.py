"""The fitted relevance gate (llmlab/rag/relevance.py): its features, its probability, where it applies, and the
answerer refusing an off-topic question without asking the model (scripted engine, keyword embedder)."""

from __future__ import annotations

import math
from typing import ClassVar

import pytest
from answer_fakes import FakeEngine, keyword_store

from llmlab.errors import ConfigError
from llmlab.prompting.grounded import NOT_FOUND
from llmlab.rag import relevance
from llmlab.rag.answer import AnswerConfig, Answerer
from llmlab.rag.relevance import content_words, gate_applies, on_topic_probability, relevance_features
from llmlab.rag.types import Chunk, Hit


def hit(text: str, dense: float | None) -> Hit:
    scores = {} if dense is None else {"dense": dense}
    return Hit(Chunk(text, "/d/a.md", "markdown", 0), score=1.0, rank=1, scores=scores)


@pytest.fixture(scope="module")
def kb(tmp_path_factory):
    yield from keyword_store(tmp_path_factory.mktemp("kb"))


def test_content_words_drop_stop_words_and_compare_five_letters():
    assert content_words("How many pages does the printer print?") == {"many", "pages", "print"}
    assert content_words("The printers printed") == {"print"}


def test_features_are_the_best_cosine_and_the_share_of_question_words_found():
    hits = [hit("The printer prints 24 pages per minute.", 0.41), hit("Toner is in the cupboard.", 0.62)]
    features = relevance_features("How many pages does the printer print per hour?", hits)
    # content words: many, pages, print, per, hour; found in the hits: pages, print, per
    assert features == {"cosine": 0.62, "coverage": pytest.approx(3 / 5)}
    assert relevance_features("anything", [hit("text", None)]) is None  # no dense scores: no gate
    assert relevance_features("the of", [hit("text", 0.5)]) == {"cosine": 0.5, "coverage": 1.0}


def test_probability_is_the_logistic_model_of_the_fitted_weights():
    weights = {"intercept": -1.0, "cosine": 2.0, "coverage": 4.0}
    p = on_topic_probability({"cosine": 0.5, "coverage": 0.25}, weights)
    assert p == pytest.approx(1 / (1 + math.exp(-(-1.0 + 1.0 + 1.0))))
    # the fitted gate: an on-topic-looking question passes, an unrelated one does not
    assert on_topic_probability({"cosine": 0.7, "coverage": 0.8}) > relevance.THRESHOLD
    assert on_topic_probability({"cosine": 0.15, "coverage": 0.0}) < relevance.THRESHOLD
    assert gate_applies("minilm-l6") and not gate_applies("keywords") and not gate_applies(None)


def test_answerer_refuses_an_off_topic_question_without_the_model(tiny_tok, kb, monkeypatch):
    monkeypatch.setattr(relevance, "FITTED_EMBEDDERS", ("keywords",))  # as if the store were MiniLM's
    engine = FakeEngine(tiny_tok, ["In the oven [1]."])
    off = Answerer(kb, engine).answer("What is the capital of France?")
    assert off.gated and off.not_found and off.text == NOT_FOUND and engine.prompts == []
    assert off.on_topic is not None and off.on_topic < relevance.THRESHOLD
    assert off.to_dict()["on_topic"] == off.on_topic
    on = Answerer(kb, engine).answer("How long does bread bake?")
    assert not on.gated and on.text == "In the oven [1]." and on.on_topic > relevance.THRESHOLD
    # off: the model is asked whatever the question
    engine = FakeEngine(tiny_tok, ["Paris [1]."])
    asked = Answerer(kb, engine, AnswerConfig(relevance_gate="off")).answer("What is the capital of France?")
    assert (
        not asked.gated and asked.on_topic is None and asked.text == "Paris [1]." and len(engine.prompts) == 1
    )


def test_gate_does_not_apply_to_other_embedders(tiny_tok, kb):
    engine = FakeEngine(tiny_tok, ["Paris [1]."])
    answer = Answerer(kb, engine).answer("What is the capital of France?")  # the store's embedder: keywords
    assert not answer.gated and answer.on_topic is None and answer.text == "Paris [1]."


def test_bad_gate_setting_is_an_error():
    with pytest.raises(ConfigError, match="--relevance-gate must be one of auto, off, got 'on'"):
        AnswerConfig(relevance_gate="on")


def test_answer_all_batches_the_generated_answers_and_keeps_each_answer(tiny_tok, kb, monkeypatch):
    """`Answerer.answer_all` (the flywheel's ask step): the gated question gets NOT_FOUND without the model, the
    others are decoded in batches of 2 (the longest prompts first), and each Answer, returned in the
    questions' order, is the one `answer` gives alone."""
    monkeypatch.setattr(relevance, "FITTED_EMBEDDERS", ("keywords",))
    replies = {"How long does bread bake?": "In the oven for 40 minutes [1].",
               "When does the garden open?": "At 9 am [1].", "Where do I buy a train ticket?": "At the station [1]."}  # fmt: skip
    questions = [*list(replies)[:1], "What is the capital of France?", *list(replies)[1:]]

    class ByQuestion(FakeEngine):
        """Replies to the question its prompt ends with; records each batch's prompt lengths."""

        batches: ClassVar[list[list[int]]] = []

        def stream(self, prompt: str, config=None):
            self.replies = [next(r for q, r in replies.items() if q in prompt[-200:])]
            return super().stream(prompt, config)

        def generate(self, prompts, config=None):
            self.batches.append([len(tiny_tok(p)["input_ids"]) for p in prompts])
            return super().generate(prompts, config)

    engine = ByQuestion(tiny_tok, [])
    together = Answerer(kb, engine).answer_all(questions, batch_size=2)
    assert [len(b) for b in engine.batches] == [2, 1] and len(engine.prompts) == 3
    lengths = [n for batch in engine.batches for n in batch]
    assert lengths == sorted(lengths, reverse=True)
    alone = {q: Answerer(kb, FakeEngine(tiny_tok, [r])).answer(q) for q, r in replies.items()}
    off = Answerer(kb, FakeEngine(tiny_tok, [])).answer(questions[1])
    expected = [alone[questions[0]], off, alone[questions[2]], alone[questions[3]]]
    assert [a.to_dict() for a in together] == [a.to_dict() for a in expected]
    assert together[1].gated and together[1].text == NOT_FOUND
    assert [a.text for a in together] == [replies[questions[0]], NOT_FOUND, *list(replies.values())[1:]]
