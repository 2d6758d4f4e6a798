"""Scripted rankers: stand-ins for people with a stated rule."""

from __future__ import annotations

import pytest

from llmlab.errors import ConfigError
from llmlab.rlhf.rankers import make_ranker, ranks_from_scores


def test_ranks_from_scores_share_ranks_on_ties() -> None:
    assert ranks_from_scores([5, 9, 5]) == [2, 1, 2]
    assert ranks_from_scores([1, 2, 3]) == [3, 2, 1]
    assert ranks_from_scores([4, 4, 1]) == [1, 1, 2]


def test_shortest_and_longest() -> None:
    shortest, rule = make_ranker("shortest")
    assert "fewer characters" in rule
    assert shortest("p", ["abcd", "ab ", "abc", "xy"]) == [
        3,
        1,
        2,
        1,
    ]  # "ab " strips to 2 characters, ties "xy"
    longest, _ = make_ranker("longest")
    assert longest("p", ["abcd", "ab", "abc"]) == [1, 3, 2]


def test_contains_word_case_insensitive_whole_word() -> None:
    rank, rule = make_ranker("contains:Paris")
    assert rule == "completions containing 'Paris' (any case, whole word) beat the others; the rest tie"
    assert rank("p", ["It is paris.", "Parisian food", "Rome", "PARIS!"]) == [1, 2, 2, 1]


@pytest.mark.parametrize(
    ("name", "message"),
    [("bogus", "--ranker must be one of shortest, longest, contains:WORD, reference:FILE, f1:FILE, got 'bogus'"),
     ("contains:", "needs a word after the colon"), ("shortest:x", "must be one of")],
)  # fmt: skip
def test_unknown_rankers_are_refused(name: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_ranker(name)


def test_reference_ranks_answers_holding_the_reference_first_then_shorter(tmp_path) -> None:
    """Hand-derived: "Rome" holds no reference (group 2); "Paris." (6 chars) beats "It is paris, yes." (17);
    "Lutetia" is an accepted reference too (7 chars, between them)."""
    refs = tmp_path / "refs.jsonl"
    refs.write_text('{"prompt": "Capital of France?", "reference": ["Paris", "Lutetia"]}\n', encoding="utf-8")
    rank, rule = make_ranker(f"reference:{refs}")
    assert rule.startswith("completions containing the prompt's reference answer in ")
    assert rank("Capital of France?", ["It is  PARIS, yes.", "Rome", "Paris.", "Lutetia"]) == [3, 4, 1, 2]
    # answers without the reference tie, whatever their length: a short wrong answer is no better
    assert rank("Capital of France?", ["Rome", "Lyon, I think.", "Paris"]) == [2, 2, 1]


def test_reference_refuses_a_prompt_without_reference_and_a_bad_file(tmp_path) -> None:
    refs = tmp_path / "refs.jsonl"
    refs.write_text('{"prompt": "A?", "reference": "a"}\n{"prompt": "B?"}\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"refs\.jsonl:2: expected \{\"prompt\": \.\.\., \"reference\""):
        make_ranker(f"reference:{refs}")
    refs.write_text('{"prompt": "A?", "reference": "a"}\n', encoding="utf-8")
    rank, _ = make_ranker(f"reference:{refs}")
    with pytest.raises(ConfigError, match=r"no reference for the prompt 'C\?'"):
        rank("C?", ["x", "y"])
    with pytest.raises(ConfigError, match=r"reference:.*missing\.jsonl: no such file"):
        make_ranker(f"reference:{tmp_path / 'missing.jsonl'}")


def test_reference_matches_whole_words_only(tmp_path) -> None:
    refs = tmp_path / "refs.jsonl"
    refs.write_text('{"prompt": "OCR?", "reference": "no"}\n', encoding="utf-8")
    rank, _ = make_ranker(f"reference:{refs}")
    assert rank("OCR?", ["It does not.", "No, it does not."]) == [2, 1]


def test_f1_ranks_by_token_f1_against_the_reference_and_ties_equal_scores(tmp_path) -> None:
    """Hand-derived SQuAD F1 against "python docx" (normalised: lower case, no punctuation or articles):
    "python-docx" -> "pythondocx", F1 0; "Python docx." -> 1.0; "It uses python docx" -> P 2/4, R 2/2, F1 2/3;
    "python" -> P 1, R 1/2, F1 2/3 (ties with the sentence); "pypdf" and "Word" share no word: F1 0, tied."""
    refs = tmp_path / "refs.jsonl"
    refs.write_text('{"prompt": "Which library?", "reference": ["python docx"]}\n', encoding="utf-8")
    rank, rule = make_ranker(f"f1:{refs}")
    assert rule.startswith("a higher SQuAD token F1 against the prompt's reference answer in ")
    completions = ["python-docx", "Python docx.", "It uses python docx", "python", "pypdf", "Word"]
    assert rank("Which library?", completions) == [3, 1, 2, 2, 3, 3]
    with pytest.raises(ConfigError, match=r"no reference for the prompt 'C\?'"):
        rank("C?", ["x", "y"])
    with pytest.raises(ConfigError, match=r"--ranker f1:.*missing\.jsonl: no such file"):
        make_ranker(f"f1:{tmp_path / 'missing.jsonl'}")
