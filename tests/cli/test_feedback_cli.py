"""`llmlab feedback rank --ranker` and `llmlab feedback pairs`, through the real CLI entry point."""

from __future__ import annotations

import json

import pytest

from llmlab.cli import main

HOT = "My house is too hot"
SETS = [
    {"prompt": HOT, "completions": ["Open the windows at night.", "Fans.", "Buy an air conditioner today."]},
    {"prompt": "Capital of France?", "completions": ["Paris.", "It is Paris, of course.", "Lille."]},
]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def completions(tmp_path):
    path = tmp_path / "completions.jsonl"
    path.write_text("".join(json.dumps(s) + "\n" for s in SETS))
    return path


def test_scripted_ranker_is_labelled_and_pairs_follow(capsys, completions, tmp_path) -> None:
    ranked, pairs = tmp_path / "ranked.jsonl", tmp_path / "pairs.jsonl"
    code, out, _ = run(
        capsys, "feedback", "rank", str(completions), "--ranker", "shortest", "--out", str(ranked)
    )
    assert code == 0
    assert out.splitlines() == [
        "scripted ranker 'shortest', a stand-in for people: fewer characters is better; equal lengths tie",
        "1. My house is too hot  best first: 2 > 1 > 3",
        "2. Capital of France?  best first: 1 = 3 > 2",
        f"2 prompts ranked, saved in {ranked}",
    ]
    records = lines(ranked)
    assert [r["ranks"] for r in records] == [[2, 1, 3], [1, 2, 1]]
    assert {r["ranker"] for r in records} == {"scripted:shortest"} and "criterion" not in records[0]
    code, out, _ = run(capsys, "feedback", "pairs", str(ranked), "--out", str(pairs))
    assert code == 0
    assert out == f"2 rankings -> 5 pairs (1 tied and 0 identical comparisons left out), written to {pairs}\n"
    assert [(p["chosen"], p["rejected"]) for p in lines(pairs)] == [
        ("Fans.", "Open the windows at night."),
        ("Open the windows at night.", "Buy an air conditioner today."),
        ("Fans.", "Buy an air conditioner today."),
        ("Paris.", "It is Paris, of course."),
        ("Lille.", "It is Paris, of course."),
    ]


def test_pairs_to_stdout_in_the_worked_example_order(capsys, tmp_path) -> None:
    ranked = tmp_path / "ranked.jsonl"
    ranked.write_text(
        json.dumps({"prompt": HOT, "completions": ["one", "two", "three"], "ranks": [2, 1, 3]}) + "\n"
    )
    code, out, err = run(capsys, "feedback", "pairs", str(ranked), "--out", "-")
    assert code == 0 and err.startswith("1 rankings -> 3 pairs")
    assert [json.loads(x) for x in out.splitlines()] == [
        {"prompt": HOT, "chosen": "two", "rejected": "one"},
        {"prompt": HOT, "chosen": "one", "rejected": "three"},
        {"prompt": HOT, "chosen": "two", "rejected": "three"},
    ]


def test_pairs_errors_name_file_and_line(capsys, tmp_path) -> None:
    ranked = tmp_path / "ranked.jsonl"
    ranked.write_text(
        json.dumps({"prompt": HOT, "completions": ["a", "b", "c"], "ranks": [1, 2, 3]}) + "\n"
        + json.dumps({"prompt": HOT, "completions": ["a", "b", "c"], "ranks": [1, 1, 4]}) + "\n"
    )  # fmt: skip
    code, _, err = run(capsys, "feedback", "pairs", str(ranked), "--out", str(tmp_path / "p.jsonl"))
    assert (
        code == 2
        and err == f"error: {ranked}:2: completion 3 has rank 4, outside 1..3; 1 is the best, 3 the worst\n"
    )
    ranked.write_text(json.dumps({"prompt": HOT, "completions": ["a", "b", "c"], "ranks": [1, 1, 2]}) + "\n")
    code, _, err = run(capsys, "feedback", "pairs", str(ranked), "--out", "-", "--ties", "error")
    assert code == 2 and f"{ranked}:1: rank 1 is given to completions 1, 2" in err
    assert not (tmp_path / "p.jsonl").exists()


def test_scripted_resume_refuses_another_ranker(capsys, completions, tmp_path) -> None:
    ranked = tmp_path / "ranked.jsonl"
    assert (
        run(capsys, "feedback", "rank", str(completions), "--ranker", "longest", "--out", str(ranked))[0] == 0
    )
    code, _, err = run(
        capsys, "feedback", "rank", str(completions), "--ranker", "shortest", "--out", str(ranked)
    )
    assert code == 2
    assert (
        f"{ranked}:1: this record was ranked by scripted:longest with no criterion, not by scripted:shortest"
        in err
    )


def test_rank_refuses_a_file_of_another_input(capsys, completions, tmp_path) -> None:
    ranked = tmp_path / "ranked.jsonl"
    ranked.write_text(json.dumps({"prompt": "other", "completions": ["x", "y"], "ranks": [1, 2]}) + "\n")
    code, _, err = run(
        capsys, "feedback", "rank", str(completions), "--ranker", "shortest", "--out", str(ranked)
    )
    assert code == 2
    assert f"error: {ranked}:1: this record is not {completions}:1's prompt and completions" in err
