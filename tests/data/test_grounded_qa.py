"""Grounded-answer examples from a tiny SQuAD-format file: kinds, block numbers, distractors, errors."""

from __future__ import annotations

import csv
import json
from collections import Counter

import pytest

from llmlab.data.grounded_qa import chat_example, grounded_examples, read_fairytaleqa, read_squad
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


def _fairytaleqa(tmp_path):
    """One story in FairytaleQA's layout: section 1 is long (cut into two pieces at a sentence end), section 2
    short; questions: explicit with the answer in piece 1 (lower case in the CSV), explicit in piece 2,
    implicit (left out), explicit with an answer not in its section (left out), and a long explicit one."""
    root = tmp_path / "data-by-train-split"
    (root / "section-stories" / "train").mkdir(parents=True)
    (root / "questions" / "train").mkdir(parents=True)
    first = "The Miller lived by the river. " + "He ground corn every day. " * 3 + "His cat was called Tibbs."
    with (root / "section-stories" / "train" / "mill-story.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["section", "text"])
        w.writerow(["1", first.replace("river. ", "river.\n  ")])  # line breaks become single spaces
        w.writerow(["2", "One night a storm broke the wheel of the mill."])
    header = ["question_id", "local-or-sum", "cor_section", "question", "ex-or-im1", "answer1"]
    rows = [
        ["1", "local", "1", "Where did the miller live?", "explicit", "by the river."],
        ["2", "local", "1", "What was the cat called?", "explicit", "Tibbs"],
        ["3", "local", "2", "Why was the miller sad?", "implicit", "the wheel broke"],
        ["4", "local", "2", "What broke?", "explicit", "the roof"],
        ["5", "local", "2", "What happened one night?", "explicit", "a storm broke the wheel of the mill"],
    ]
    with (root / "questions" / "train" / "mill-questions.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return tmp_path


def test_fairytaleqa_sections_become_blocks_with_their_questions(tmp_path):
    folder = _fairytaleqa(tmp_path)
    (story,) = read_fairytaleqa(folder, max_block_words=12)
    assert story.title == "mill"
    texts = [p.context for p in story.paragraphs]
    assert texts == [
        "The Miller lived by the river. He ground corn every day.",
        "He ground corn every day. He ground corn every day.",
        "His cat was called Tibbs.",
        "One night a storm broke the wheel of the mill.",
    ]
    found = {q.text: (i, q.answers) for i, p in enumerate(story.paragraphs) for q in p.questions}
    assert found == {
        "Where did the miller live?": (0, ["by the river"]),  # the section's own text, trailing "." dropped
        "What was the cat called?": (2, ["Tibbs"]),
        "What happened one night?": (3, ["a storm broke the wheel of the mill"]),
    }
    (short,) = read_fairytaleqa(folder, max_answer_words=5, max_block_words=12)
    assert sum(len(p.questions) for p in short.paragraphs) == 2
    with pytest.raises(DataError, match="no FairytaleQA stories under"):
        read_fairytaleqa(folder, split="test")


def test_chat_examples_in_both_answer_styles(tmp_path):
    from llmlab.prompting.grounded import EXTRACTIVE_RULES, NOT_FOUND, RULES

    record = {"question": "Q?", "blocks": ["a b", "c d"], "answer": "c", "block": 2, "kind": "answerable"}
    free, extractive = chat_example(record, "free"), chat_example(record, "extractive")
    assert free["messages"][1] == {"role": "assistant", "content": "c [2]."}
    assert extractive["messages"][1] == {"role": "assistant", "content": "c"}
    assert (
        RULES in free["messages"][0]["content"] and EXTRACTIVE_RULES in extractive["messages"][0]["content"]
    )
    assert '<document number="2">\nc d\n</document>' in free["messages"][0]["content"]
    missing = record | {"answer": None, "block": None, "kind": "not_retrieved"}
    assert chat_example(missing, "extractive")["messages"][1]["content"] == NOT_FOUND
