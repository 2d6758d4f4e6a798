"""The flywheel's questions: read, split into train and held-out, and turned into grounded prompts.

The split is deterministic: questions are ordered by sha256(f"{seed}:{id}") and the first `heldout` of that
order are held out; the next `train` (all the others when 0) are for feedback, ranking, reward training and
alignment. Held-out questions are only ever used by the final evaluation.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmlab.errors import DataError

# The prompt every step sees: the question with the passages retrieval found for it, so that an answer can
# contain the reference answer; the same text for the ranked completions, DPO and the final evaluation.
PROMPT = (
    "Answer the question in one short sentence, using the notes.\n\nNotes:\n{notes}\n\nQuestion: {question}"
)


def question_of(prompt: str) -> str:
    """The question of a grounded prompt (the text after its last "Question:")."""
    line = (prompt.rsplit("Question:", 1)[-1].strip().splitlines() or [""])[0]
    return line.split("<|")[0].strip()  # a chat rendering's end-of-turn token may follow it on the line


PASSAGE_CHARS = 500  # each retrieved passage is cut to this many characters: short prompts train faster


@dataclass(frozen=True)
class Question:
    """One question with its reference answer (`answer`, or several acceptable ones)."""

    id: str
    question: str
    answers: tuple[str, ...]


def question_files(questions: str | list[str] | tuple[str, ...]) -> list[str]:
    """The files of a `--questions` value: a comma-separated list (`a.jsonl,b.jsonl`) or, from a YAML config,
    a list of paths."""
    parts = questions.split(",") if isinstance(questions, str) else [str(q) for q in questions]
    files = [p.strip() for p in parts if p.strip()]
    if not files:
        raise DataError('--questions names no file; give one or more JSONL files of {"id", "question", "answer"} '
                        "records, separated by commas")  # fmt: skip
    return files


def read_questions(questions: str | Path | list[str] | tuple[str, ...]) -> list[Question]:
    """Questions from one or more JSONL files of {"id", "question", "answer"} records (`answer` a string or a
    list; records with `"answer": null`, questions the documents do not answer, are left out). Several files
    are given as a comma-separated string or a list (see `question_files`); their questions are read in that
    order, and an id must be unique over all of them.

    Raises:
        DataError: a missing file, a line that is not such a record, or an id used twice; `file:line: ...`.
    """
    paths = [Path(questions)] if isinstance(questions, Path) else [Path(f) for f in question_files(questions)]
    out: list[Question] = []
    seen: dict[str, str] = {}  # id -> where it was first given
    for path in paths:
        out += _read_file(path, seen)
    return out


def _read_file(path: Path, seen: dict[str, str]) -> list[Question]:
    if not path.is_file():
        raise DataError(f'{path}: no such file; give a JSONL file of {{"id", "question", "answer"}} records')
    questions: list[Question] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{where}: not JSON ({error.msg}); fix or remove the line") from None
        missing = [k for k in ("id", "question", "answer") if not isinstance(record, dict) or k not in record]
        if missing:
            raise DataError(f"{where}: missing field(s) {', '.join(missing)}; each question needs "
                            '"id", "question" and "answer" (the reference answer)')  # fmt: skip
        key = str(record["id"])
        if key in seen:
            raise DataError(f"{where}: id {key!r} is used twice (first at {seen[key]}); give every question its "
                            "own id")  # fmt: skip
        seen[key] = where
        answer = record["answer"]
        if answer is None:  # an unanswerable question (the guide set has some): no reference to learn from
            continue
        answers = (answer,) if isinstance(answer, str) else tuple(str(a) for a in answer)
        if not answers or not all(a.strip() for a in answers) or not str(record["question"]).strip():
            raise DataError(f"{where}: empty question or answer; write the question and its reference answer")
        questions.append(Question(key, str(record["question"]), answers))
    return questions


def split_questions(
    questions: list[Question], heldout: int, train: int = 0, seed: int = 0
) -> tuple[list[Question], list[Question]]:
    """(train, held-out): see the module docstring. Raises DataError when there are too few questions."""
    if heldout < 1 or train < 0:
        raise DataError(f"--heldout must be at least 1 and --train at least 0, got {heldout} and {train}")
    order = sorted(questions, key=lambda q: hashlib.sha256(f"{seed}:{q.id}".encode()).hexdigest())
    rest = order[heldout:]
    chosen = rest[:train] if train else rest
    if len(order) < heldout + max(train, 2):
        raise DataError(f"{len(order)} questions cannot give {heldout} held-out and {max(train, 2)} train "
                        "questions; lower --heldout or --train, or add questions")  # fmt: skip
    return chosen, order[:heldout]


def grounded_prompt(question: str, passages: list[str]) -> str:
    """The prompt for a question and the passages retrieved for it, numbered [1], [2], ..."""
    notes = "\n".join(f"[{i}] {' '.join(p.split())[:PASSAGE_CHARS]}" for i, p in enumerate(passages, start=1))
    return PROMPT.format(notes=notes, question=question)


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    """Write records as JSON Lines, atomically (a temporary name, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    tmp.replace(path)


def ask_questions(
    store: str, model: str, train: str | Path, heldout: str | Path, out: str | Path, max_new_tokens: int = 48
) -> dict[str, int]:
    """`llmlab flywheel prompts`: ask every question with RAG (`llmlab rag ask --chunks 2`, zero-shot
    prompt), keep the answers, and write the grounded prompts of the later steps into `out`:

    - answers.jsonl: per question its split, the RAG answer, its sources, whether a passage holds the answer;
    - prompts.jsonl: the train prompts, {"prompt"} (for `feedback generate`), and references.jsonl, the same
      with their {"reference"} answers (for the scripted ranker);
    - heldout.jsonl: the held-out prompts, {"id", "input", "reference"} (for `eval run`), and task.yaml;
      heldout-prompts.jsonl: the same prompts as {"prompt"} (for the sampled measures' `feedback generate`).

    Returns counts: train, heldout, and how many questions retrieval found a passage with the answer for.
    """
    from llmlab.rag.answer import AnswerConfig, Answerer, answer_generation, load_engine
    from llmlab.rag.result import source_label
    from llmlab.rag.store import Store

    out = Path(out)
    splits = [("train", q) for q in _stored(train)] + [("heldout", q) for q in _stored(heldout)]
    engine = load_engine(model, "cpu", "fp32")
    records: list[dict[str, Any]] = []
    with Store.open(store, create=False) as opened:
        answerer = Answerer(opened, engine, AnswerConfig(chunks=2, prompt="zero-shot", answer_style="free"),
                            answer_generation(max_new_tokens=max_new_tokens))  # fmt: skip
        answers = answerer.answer_all([q.question for _, q in splits])
        for (split, q), answer in zip(splits, answers, strict=True):
            passages = [hit.chunk.text for hit in answer.hits]
            prompt = grounded_prompt(q.question, passages)
            found = any(a.lower() in " ".join(prompt.lower().split()) for a in q.answers)
            records.append({"id": q.id, "split": split, "question": q.question, "reference": list(q.answers),
                            "rag_answer": answer.text, "sources": [source_label(h.chunk) for h in answer.hits],
                            "passages_contain_answer": found, "prompt": prompt})  # fmt: skip
    write_jsonl(out / "answers.jsonl", records)
    train_records = [r for r in records if r["split"] == "train"]
    write_jsonl(out / "prompts.jsonl", [{"prompt": r["prompt"]} for r in train_records])
    write_jsonl(
        out / "references.jsonl",
        [{"prompt": r["prompt"], "reference": r["reference"]} for r in train_records],
    )
    held = [r for r in records if r["split"] == "heldout"]
    write_jsonl(out / "heldout.jsonl", [{"id": r["id"], "input": r["prompt"], "reference": r["reference"]}
                                        for r in held])  # fmt: skip
    write_jsonl(out / "heldout-prompts.jsonl", [{"prompt": r["prompt"]} for r in held])
    (out / "task.yaml").write_text(TASK.format(max_new_tokens=max_new_tokens), encoding="utf-8")
    return {"train": sum(r["split"] == "train" for r in records),
            "heldout": sum(r["split"] == "heldout" for r in records),
            "found": sum(r["passages_contain_answer"] for r in records)}  # fmt: skip


TASK = """\
# The flywheel's held-out evaluation: each item's input is the grounded prompt (question + retrieved notes).
name: flywheel-qa
template: "{{input}}"
reference: reference
postprocess: strip
metrics: [rougeL, f1]
max_new_tokens: {max_new_tokens}
"""


def _stored(path: str | Path) -> list[Question]:
    """The questions of a split file written by the split step ("answer" is a list there)."""
    return read_questions(Path(path))
