"""Rankings -> preference pairs: the mission's worked example exactly, the pair count, and every rule."""

from __future__ import annotations

import itertools
import json
import math

import pytest

from llmlab.errors import DataError
from llmlab.rlhf.preferences import (
    Comparison,
    PreferencePair,
    Ranking,
    comparisons,
    describe_order,
    parse_ranks,
    ranking_to_pairs,
    rankings_to_pairs,
    validate_ranks,
)
from llmlab.rlhf.records import read_pairs, read_rankings

HOT = "My house is too hot"
C1, C2, C3 = "Open the windows at night.", "Close the curtains and run a fan.", "Move."


def test_mission_worked_example_exactly() -> None:
    """Prompt "My house is too hot", ranks 2, 1, 3 for completions 1, 2, 3.

    Comparisons in position order: (1, 2): ranks 2 vs 1, so completion 2 wins -> rewards (0, 1);
    (1, 3): 2 vs 3 -> rewards (1, 0); (2, 3): 1 vs 3 -> rewards (1, 0).
    Reordered preferred-first: (2 over 1), (1 over 3), (2 over 3).
    """
    ranking = Ranking(HOT, [C1, C2, C3], [2, 1, 3])
    assert comparisons(ranking.ranks) == [
        Comparison(0, 1, 0, 1),
        Comparison(0, 2, 1, 0),
        Comparison(1, 2, 1, 0),
    ]
    assert ranking_to_pairs(ranking) == [
        PreferencePair(HOT, C2, C1),
        PreferencePair(HOT, C1, C3),
        PreferencePair(HOT, C2, C3),
    ]


@pytest.mark.parametrize("n", [2, 3, 4, 5, 7])
def test_n_completions_give_n_choose_2_pairs_consistent_with_ranks(n: int) -> None:
    """Every permutation of ranks gives N(N-1)/2 pairs, each with the better-ranked completion first."""
    texts = [f"completion {i}" for i in range(n)]
    for ranks in itertools.islice(itertools.permutations(range(1, n + 1)), 50):
        pairs = ranking_to_pairs(Ranking("p", texts, list(ranks)))
        assert len(pairs) == n * (n - 1) // 2 == math.comb(n, 2)
        rank_of = dict(zip(texts, ranks, strict=True))
        assert all(rank_of[p.chosen] < rank_of[p.rejected] for p in pairs)
        assert len({(p.chosen, p.rejected) for p in pairs}) == len(pairs)


def test_ties_make_no_pair_and_are_counted() -> None:
    """Ranks 1, 2, 2: completion 1 beats both others; 2 and 3 tie -> 2 pairs, 1 tied comparison."""
    pairs, stats = rankings_to_pairs([Ranking("p", ["a", "b", "c"], [1, 2, 2])])
    assert [(p.chosen, p.rejected) for p in pairs] == [("a", "b"), ("a", "c")]
    assert (stats.rankings, stats.pairs, stats.tied, stats.identical) == (1, 2, 1, 0)
    assert rankings_to_pairs([Ranking("p", ["a", "b"], [1, 1])])[0] == []


def test_only_the_order_of_ranks_matters() -> None:
    texts = ["a", "b", "c"]
    assert ranking_to_pairs(Ranking("p", texts, [1, 3, 3])) == ranking_to_pairs(
        Ranking("p", texts, [1, 2, 2])
    )


def test_ties_refused_on_request() -> None:
    with pytest.raises(DataError, match=r"rank 2 is given to completions 2, 3; .*--ties skip"):
        ranking_to_pairs(Ranking("p", ["a", "b", "c"], [1, 2, 2]), ties="error")


def test_identical_completions_make_no_pair() -> None:
    pairs, stats = rankings_to_pairs([Ranking("p", ["same", "same", "other"], [1, 2, 3])])
    assert [(p.chosen, p.rejected) for p in pairs] == [("same", "other"), ("same", "other")]
    assert stats.identical == 1 and stats.pairs == 2


@pytest.mark.parametrize(
    ("ranks", "message"),
    [
        ([1, 2], "2 ranks for 3 completions; give every completion a rank from 1 \\(best\\) to 3"),
        ([1, 2, 3, 4], "4 ranks for 3 completions"),
        ([1, None, 2], "completion 2 has no rank \\(null\\)"),
        ([1, 2, 4], "completion 3 has rank 4, outside 1..3; 1 is the best, 3 the worst"),
        ([0, 1, 2], "completion 1 has rank 0, outside 1..3"),
        ([1, 2.5, 3], "completion 2 has rank 2.5; ranks are whole numbers from 1 to 3"),
        ([1, True, 3], "completion 2 has rank True"),
        ("1 2 3", "'ranks' must be a list of integers"),
    ],
)
def test_bad_ranks_are_refused_with_the_location(ranks: object, message: str) -> None:
    with pytest.raises(DataError, match=f"^ranked.jsonl:7: {message}"):
        validate_ranks(ranks, 3, "ranked.jsonl:7")


def test_a_ranking_needs_two_completions() -> None:
    with pytest.raises(DataError, match="at least 2 completions"):
        validate_ranks([1], 1)


def test_parse_ranks_typed_by_a_person() -> None:
    assert parse_ranks("2 1 3", 3) == [2, 1, 3]
    assert parse_ranks(" 2, 1,3 ", 3) == [2, 1, 3]
    with pytest.raises(DataError, match="'b' is not a rank; type 3 whole numbers"):
        parse_ranks("1 b 2", 3)
    with pytest.raises(DataError, match="2 ranks for 3 completions"):
        parse_ranks("1 2", 3)


def test_describe_order_best_first() -> None:
    assert describe_order([2, 1, 3]) == "2 > 1 > 3"
    assert describe_order([1, 3, 1]) == "1 = 3 > 2"


def _write(path, lines) -> None:
    path.write_text("".join(json.dumps(x) + "\n" if not isinstance(x, str) else x + "\n" for x in lines))


def test_read_rankings_reports_file_and_line(tmp_path) -> None:
    path = tmp_path / "ranked.jsonl"
    good = {"prompt": HOT, "completions": [C1, C2, C3], "ranks": [2, 1, 3]}
    _write(path, [good, "", {"prompt": HOT, "completions": [C1, C2, C3], "ranks": [2, 2, 9]}])
    with pytest.raises(DataError, match=f"^{path}:3: completion 3 has rank 9, outside 1..3"):
        read_rankings(path)
    _write(path, [good, {"prompt": HOT, "completions": [C1, C2]}])
    with pytest.raises(DataError, match=f"^{path}:2: ranking is missing 'ranks'; rank the completions first"):
        read_rankings(path)
    _write(path, [{**good, "score": 3}])
    with pytest.raises(DataError, match=f"^{path}:1: unknown field\\(s\\) 'score' in a ranking"):
        read_rankings(path)
    _write(path, [{"prompt": HOT, "completions": [C1], "ranks": [1]}])
    with pytest.raises(DataError, match=f"^{path}:1: 1 completion\\(s\\); ranking needs at least 2"):
        read_rankings(path)
    _write(path, [good, "{not json"])
    with pytest.raises(DataError, match=f"^{path}:2: invalid JSON"):
        read_rankings(path)


def test_read_pairs_refuses_equal_texts(tmp_path) -> None:
    path = tmp_path / "pairs.jsonl"
    _write(
        path,
        [{"prompt": "p", "chosen": "a", "rejected": "b"}, {"prompt": "p", "chosen": "a", "rejected": "a"}],
    )
    with pytest.raises(DataError, match=f"^{path}:2: 'chosen' and 'rejected' are the same text"):
        read_pairs(path)


def test_per_prompt_keeps_the_widest_rank_gaps_in_order_and_counts_the_rest() -> None:
    """Ranks 1, 2, 3, 3 give 5 pairs (3 and 4 tie): gaps a-b 1, a-c 2, a-d 2, b-c 1, b-d 1. Two per prompt
    keep the gap-2 pairs a-c and a-d; three add a-b, the first gap-1 pair in the completions' order."""
    ranking = Ranking("p", ["a", "b", "c", "d"], [1, 2, 3, 3])
    pairs, stats = rankings_to_pairs([ranking], per_prompt=2)
    assert [(p.chosen, p.rejected) for p in pairs] == [("a", "c"), ("a", "d")]
    assert (stats.pairs, stats.tied, stats.capped) == (2, 1, 3)
    assert [(p.chosen, p.rejected) for p in ranking_to_pairs(ranking, per_prompt=3)] == [
        ("a", "b"), ("a", "c"), ("a", "d")
    ]  # fmt: skip
    assert len(ranking_to_pairs(ranking, per_prompt=0)) == len(ranking_to_pairs(ranking, per_prompt=9)) == 5
    with pytest.raises(DataError, match="--per-prompt must be 0 \\(every pair\\) or more, got -1"):
        ranking_to_pairs(ranking, per_prompt=-1)
