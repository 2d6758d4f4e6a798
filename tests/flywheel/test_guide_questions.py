"""The flywheel's question files (fast tier): bench/data/qa/guide-more.jsonl is checked against the guide, so a
docs/ edit that removes a reference answer fails here; and `--questions` reads several files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from llmlab.errors import DataError
from llmlab.flywheel.questions import question_files, read_questions, split_questions
from llmlab.flywheel.run import FlywheelConfig, FlywheelError, run_flywheel

REPO = Path(__file__).resolve().parents[2]
QA = REPO / "bench" / "data" / "qa"


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def words(text: str) -> str:
    return " ".join(text.lower().split())


def test_the_more_questions_are_answered_by_the_pages_they_name_and_repeat_none_of_guide() -> None:
    more, guide = records(QA / "guide-more.jsonl"), records(QA / "guide.jsonl")
    assert len(more) == 120
    ids = [r["id"] for r in more]
    assert len(set(ids)) == len(ids) and not set(ids) & {r["id"] for r in guide}
    asked = {words(r["question"]) for r in guide}
    assert [r["id"] for r in more if words(r["question"]) in asked] == []
    pages = {p.name for p in (REPO / "docs").glob("*.md")}
    assert {page for r in more for page in r["docs"]} == pages  # every page of the guide is asked about
    for r in more:
        assert set(r) == {"id", "question", "answer", "docs"} and r["docs"], r["id"]
        assert isinstance(r["answer"], str) and 1 <= len(r["answer"].split()) <= 6, r["id"]
        for page in r["docs"]:
            text = words((REPO / "docs" / page).read_text(encoding="utf-8"))
            assert words(r["answer"]) in text, f"{r['id']}: {r['answer']!r} is not in docs/{page}"


def test_the_default_questions_are_both_files_with_50_held_out() -> None:
    config = FlywheelConfig()
    assert question_files(config.questions) == ["bench/data/qa/guide.jsonl", "bench/data/qa/guide-more.jsonl"]
    questions = read_questions([str(REPO / f) for f in question_files(config.questions)])
    train, heldout = split_questions(questions, config.heldout, config.train, config.seed)
    assert (len(questions), len(train), len(heldout)) == (170, 120, 50)  # 50 + 120 answerable questions


def write(path: Path, ids: list[str]) -> str:
    path.write_text("".join(json.dumps({"id": i, "question": f"{i}?", "answer": i}) + "\n" for i in ids))
    return str(path)


def test_several_files_are_read_in_order_as_a_comma_list_or_a_list(tmp_path: Path) -> None:
    a, b = write(tmp_path / "a.jsonl", ["a1", "a2"]), write(tmp_path / "b.jsonl", ["b1"])
    assert [q.id for q in read_questions(f"{a}, {b}")] == ["a1", "a2", "b1"]
    assert [q.id for q in read_questions([b, a])] == ["b1", "a1", "a2"]
    with pytest.raises(DataError, match="--questions names no file"):
        read_questions(" , ")


def test_an_id_in_two_files_names_the_file_the_line_and_the_first_use(tmp_path: Path) -> None:
    a, b = write(tmp_path / "a.jsonl", ["a1", "x"]), write(tmp_path / "b.jsonl", ["b1", "b2", "x"])
    with pytest.raises(DataError) as error:
        read_questions(f"{a},{b}")
    assert str(error.value) == f"{b}:3: id 'x' is used twice (first at {a}:2); give every question its own id"


def test_the_split_step_reads_every_file_and_the_report_lists_them(tmp_path: Path) -> None:
    a = write(tmp_path / "a.jsonl", [f"a{i}" for i in range(5)])
    b = write(tmp_path / "b.jsonl", [f"b{i}" for i in range(5)])
    config = FlywheelConfig(out=str(tmp_path / "run"), questions=f"{a},{b}", heldout=4)
    run_flywheel(config, until="split", runner=lambda argv, log: (0, ""))
    split = Path(config.out) / "01-split"
    ids = [r["id"] for name in ("train", "heldout") for r in records(split / f"{name}.jsonl")]
    assert sorted(ids) == sorted([f"a{i}" for i in range(5)] + [f"b{i}" for i in range(5)])
    assert len(records(split / "heldout.jsonl")) == 4
    bad = FlywheelConfig(out=str(tmp_path / "other"), questions=f"{a},{tmp_path / 'none.jsonl'}")
    missing = re.escape(f"flywheel step split: {tmp_path / 'none.jsonl'}: no such file")
    with pytest.raises(FlywheelError, match=missing):
        run_flywheel(bad, until="split", runner=lambda argv, log: (0, ""))


def test_a_yaml_list_of_files_is_the_comma_list(tmp_path: Path) -> None:
    from llmlab.cli.args import build_config

    a, b = write(tmp_path / "a.jsonl", ["a1"]), write(tmp_path / "b.jsonl", ["b1"])
    yaml = tmp_path / "flywheel.yaml"
    yaml.write_text(f"questions:\n  - {a}\n  - {b}\nheldout: 1\n", encoding="utf-8")
    config = build_config(FlywheelConfig, {}, str(yaml))
    assert config.questions == f"{a},{b}" and [q.id for q in read_questions(config.questions)] == ["a1", "b1"]
