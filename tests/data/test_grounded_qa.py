"""Grounded-answer examples from a tiny SQuAD-format file: kinds, block numbers, distractors, errors."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from llmlab.data.grounded_qa import grounded_examples, read_squad
from llmlab.errors import ConfigError, DataError


def _squad(tmp_path):
    """One article of five paragraphs; paragraph n says "Fact n: the colour is cn." and has one answerable
    question (answer "cn") and one unanswerable one."""
    paragraphs = []
    for n in range(5):
        context = f"Fact {n}: the colour of item {n} is c{n}. Filler words about item {n}."
        paragraphs.append(
            {
                "context": context,
                "qas": [
                    {
                        "id": f"a{n}",
                        "question": f"What colour is item {n}?",
                        "is_impossible": False,
                        "answers": [{"text": f"c{n}", "answer_start": context.index(f"c{n}")}],
                    },
                    {
                        "id": f"u{n}",
                        "question": f"What size is item {n}?",
                        "is_impossible": True,
                        "answers": [],
                    },
                ],
            }
        )
    path = tmp_path / "train.json"
    path.write_text(
        json.dumps({"version": "v2.0", "data": [{"title": "Items_list", "paragraphs": paragraphs}]})
    )
    return path


def test_examples_have_the_kinds_blocks_and_answers(tmp_path):
    articles = read_squad(_squad(tmp_path))
    assert articles[0].title == "Items list" and len(articles[0].paragraphs) == 5
    assert articles[0].paragraphs[2].questions[0].answers == ["c2"]
    examples = grounded_examples(articles, 10, blocks=3, mix=(0.5, 0.3, 0.2), seed=1)
    assert Counter(e["kind"] for e in examples) == {"answerable": 5, "unanswerable": 3, "not_retrieved": 2}
    for e in examples:
        n = e["id"][1:]
        assert len(e["blocks"]) == 3 and len(set(e["blocks"])) == 3
        own = f"Fact {n}:"
        if e["kind"] == "answerable":
            assert e["answer"] == f"c{n}" and own in e["blocks"][e["block"] - 1]
            assert sum(f"c{n}." in b for b in e["blocks"]) == 1  # no distractor holds the answer
        elif e["kind"] == "unanswerable":
            assert e["id"].startswith("u") and e["answer"] is None and e["block"] is None
            assert any(own in b for b in e["blocks"])  # SQuAD 2.0: the paragraph is there, the answer is not
        else:
            assert e["id"].startswith("a") and e["answer"] is None and e["block"] is None
            assert not any(own in b for b in e["blocks"])  # the gold paragraph was not retrieved
    assert examples == grounded_examples(articles, 10, blocks=3, mix=(0.5, 0.3, 0.2), seed=1)  # seeded


def test_errors(tmp_path):
    articles = read_squad(_squad(tmp_path))
    with pytest.raises(DataError, match="asked for 9 unanswerable examples but the articles hold 5"):
        grounded_examples(articles, 10, mix=(0.1, 0.9, 0.0))
    with pytest.raises(ConfigError, match="three shares summing to 1"):
        grounded_examples(articles, 10, mix=(0.5, 0.5, 0.5))
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(DataError, match=r"bad.json: not a SQuAD JSON file"):
        read_squad(bad)
