"""Training records: each format read, bad lines reported at file:line and left out, the rest kept."""

from __future__ import annotations

import json

import pytest

from llmlab.data.records import load_records
from llmlab.errors import DataError


def write(path, lines):
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def test_each_format_is_detected(tmp_path):
    text = load_records(write(tmp_path / "t.jsonl", [{"text": "hello"}]))
    inst = load_records(write(tmp_path / "i.jsonl", [{"instruction": "Add", "input": "1 2", "output": "3"}]))
    chat = load_records(
        write(
            tmp_path / "c.jsonl",
            [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}],
        )
    )
    assert (text.format, inst.format, chat.format) == ("text", "instruction", "chat")
    assert inst.records[0].source == f"{tmp_path / 'i.jsonl'}:1"


def test_bad_lines_are_reported_and_the_rest_kept(tmp_path):
    path = write(
        tmp_path / "train.jsonl",
        [
            {"instruction": "Name a colour", "output": "red"},
            "{not json",
            {"instruction": "Name a fruit"},
            {"text": "a text record"},
            "",
            {"instruction": "Name a tree", "output": "oak", "extra": 1},
            {"instruction": "Name a bird", "output": 7},
            {"instruction": "Name a fish", "output": "cod"},
        ],
    )
    loaded = load_records(path)
    assert [r.fields["output"] for r in loaded.records] == ["red", "cod"]
    assert [r.source for r in loaded.records] == [f"{path}:1", f"{path}:8"]
    assert loaded.problems == [
        f"{path}:2: invalid JSON (Expecting property name enclosed in double quotes at column 2); write one JSON object per line",
        f"{path}:3: instruction record is missing 'output'; each line needs 'instruction', 'output'",
        f"{path}:4: instruction record is missing 'instruction', 'output' (it looks like a text record; one file "
        "holds one format); each line needs 'instruction', 'output'",
        f"{path}:6: unknown field(s) 'extra' in a instruction record; allowed: 'instruction', 'output', 'input'",
        f"{path}:7: field 'output' must be a string, got int",
    ]


@pytest.mark.parametrize(
    ("messages", "problem"),
    [
        ([], "'messages' must be a non-empty list"),
        ([{"role": "user", "content": "hi"}], "the last message must be the assistant's"),
        (
            [{"role": "bot", "content": "hi"}],
            "message 0 has role 'bot'; use one of system, user, assistant, tool",
        ),
        ([{"role": "assistant", "content": "hi"}], "the conversation starts with an assistant message"),
        (
            [{"role": "user", "content": 3}, {"role": "assistant", "content": "x"}],
            "message 0 content must be a string",
        ),
    ],
)
def test_chat_problems(tmp_path, messages, problem):
    good = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}
    loaded = load_records(write(tmp_path / "c.jsonl", [good, {"messages": messages}]))
    assert len(loaded.records) == 1
    assert loaded.problems[0].startswith(f"{tmp_path / 'c.jsonl'}:2: {problem}")


def test_no_good_record_is_an_error(tmp_path):
    path = write(tmp_path / "bad.jsonl", [{"prompt": "x"}])
    with pytest.raises(
        DataError, match=r"bad.jsonl has no usable training record \(.*bad.jsonl:1: not a training"
    ):
        load_records(path)
    with pytest.raises(DataError, match="file not found"):
        load_records(tmp_path / "missing.jsonl")
