"""The web page's rankings land in the file `llmlab feedback rank` writes: same records, read back by
rlhf.records, turned into pairs; bad ranks refused with the terminal's messages; the route saves them."""

from __future__ import annotations

import pytest
from servekit import http_json

from llmlab.errors import DataError
from llmlab.rlhf.preferences import Ranking, rankings_to_pairs
from llmlab.rlhf.records import ranking_record, read_rankings
from llmlab.serving.feedback import RankingFile


def test_rankings_are_the_terminal_records(tmp_path):
    path = tmp_path / "ranked.jsonl"
    file = RankingFile(path)
    body = {"prompt": "My house is too hot", "completions": ["fan", "windows", "Iceland"], "ranks": [2, 1, 3],
            "criterion": "helpfulness"}  # fmt: skip
    assert file.add(body) == 1 and file.add({**body, "ranks": [1, 1, 2], "criterion": None}) == 2
    first, second = read_rankings(path)
    assert ranking_record(first) == ranking_record(
        Ranking(body["prompt"], body["completions"], [2, 1, 3], "helpfulness", "human")
    )
    assert second.criterion is None and second.ranker == "human"
    pairs, stats = rankings_to_pairs([first, second])
    assert [(p.chosen, p.rejected) for p in pairs][:3] == [
        ("windows", "fan"),
        ("fan", "Iceland"),
        ("windows", "Iceland"),
    ]
    assert stats.tied == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [({"prompt": "p", "completions": ["a", "b"], "ranks": [1]}, "1 ranks for 2 completions"),
     ({"prompt": "p", "completions": ["a", "b"], "ranks": [1, 3]}, "outside 1..2"),
     ({"prompt": "p", "completions": ["a"], "ranks": [1]}, "list of 2 to 16 strings"),
     ({"prompt": "", "completions": ["a", "b"], "ranks": [1, 2]}, "'prompt'"),
     ({"prompt": "p", "completions": ["a", "b"], "ranks": [1, 2], "evil": 1}, "send")],
)  # fmt: skip
def test_bad_rankings_are_refused_and_nothing_is_written(tmp_path, body, message):
    file = RankingFile(tmp_path / "ranked.jsonl")
    with pytest.raises(DataError, match=message):
        file.add(body)
    assert not file.path.exists()


def test_the_route_saves_and_counts(server):
    body = {"prompt": "How do I boil an egg?", "completions": ["Boil it.", "7 minutes"], "ranks": [2, 1]}
    before = http_json(server.url + "/v1/llmlab/rankings")[1]["count"]
    status, saved = http_json(server.url + "/v1/llmlab/rankings", body)
    assert status == 200 and saved["count"] == before + 1 and read_rankings(saved["file"])[-1].ranks == [2, 1]
    status, bad = http_json(server.url + "/v1/llmlab/rankings", {**body, "ranks": [0, 1]})
    assert status == 400 and "outside 1..2" in bad["error"]["message"]
