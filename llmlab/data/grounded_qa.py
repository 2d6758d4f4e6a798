"""Grounded-answer examples from a reading-comprehension set: SQuAD's JSON format (Rajpurkar et al., 2018, "Know
What You Don't Know: Unanswerable Questions for SQuAD", ACL) or FairytaleQA's CSV folders (Xu et al., 2022,
"Fantastic Questions and Where to Find Them: FairytaleQA", ACL; its explicit questions, whose answers are
phrases of one story section).

One example = numbered context blocks + a question -> a short answer and the number of the block that holds
it, or no answer ("not in the documents"). Blocks are whole paragraphs, as a retriever returns chunks:

    answerable    the question's paragraph + (k - 1) other paragraphs of the same article, in random order;
                  target: the gold answer (its first annotation) and the gold paragraph's block number
    unanswerable  SQuAD 2.0's adversarial questions (`is_impossible`): their own paragraph + (k - 1) others
    not retrieved an answerable question whose paragraph was left out: k other paragraphs of the article,
                  none containing the answer text

Distractors are the paragraphs of the same article that share the most words with the question (hard
negatives, like a retriever's next hits). The record keeps the fields, not a rendered prompt, so the
trainer renders them with the grounded prompt of its time. Records:
`{"id", "question", "blocks": [...], "answer": str | None, "block": int | None, "kind"}`.
`chat_example` renders a record as the chat turns `finetune lora` trains on (the answer styles' prompts).
Tests: tests/data/test_grounded_qa.py
"""

from __future__ import annotations

import csv
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmlab.errors import ConfigError, DataError

KINDS = ("answerable", "unanswerable", "not_retrieved")
_WORD = re.compile(r"\w+")


@dataclass
class Question:
    id: str
    text: str
    answers: list[str]
    """Gold answer texts in annotation order (empty: unanswerable)."""


@dataclass
class Paragraph:
    context: str
    questions: list[Question]


@dataclass
class Article:
    title: str
    paragraphs: list[Paragraph]


def read_squad(path: str | Path) -> list[Article]:
    """The articles of a SQuAD v1.1 / v2.0 JSON file (`{"data": [{"title", "paragraphs": [...]}]}`)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))["data"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DataError(
            f"not a SQuAD JSON file ({e}); expected {{'data': [{{'title', 'paragraphs'}}]}}", str(path)
        ) from None
    articles = []
    for a in data:
        paragraphs = []
        for p in a["paragraphs"]:
            questions = [
                Question(qa["id"], qa["question"].strip(), [x["text"].strip() for x in qa.get("answers", [])])
                for qa in p["qas"]
            ]
            paragraphs.append(Paragraph(p["context"].strip(), questions))
        articles.append(Article(a["title"].replace("_", " "), paragraphs))
    return articles


def _pieces(text: str, max_words: int) -> list[str]:
    """`text` cut at sentence ends into pieces of at most about `max_words` words (a retriever's chunks)."""
    pieces: list[str] = []
    current: list[str] = []
    for sentence in re.split(r"(?<=[.!?\"])\s+(?=[A-Z\"])", text):
        if current and len(" ".join([*current, sentence]).split()) > max_words:
            pieces.append(" ".join(current))
            current = []
        current.append(sentence)
    if current:
        pieces.append(" ".join(current))
    return pieces


def _explicit_questions(
    path: Path, story: str, pieces: dict[str, list[str]], max_answer_words: int | None
) -> dict[tuple[str, int], list[Question]]:
    """A story's explicit questions by (section, piece): each where its first answer occurs first, with the
    piece's own text of the answer; questions whose answer is in no piece, or too long, are left out."""
    found: dict[tuple[str, int], list[Question]] = {}
    with path.open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            section = row["cor_section"].strip()
            answer = " ".join(row["answer1"].split()).strip(" .")
            if row["ex-or-im1"].strip() != "explicit" or section not in pieces or not answer:
                continue
            if max_answer_words is not None and len(answer.split()) > max_answer_words:
                continue
            at = [(i, piece.lower().find(answer.lower())) for i, piece in enumerate(pieces[section])]
            i, start = next(((i, start) for i, start in at if start >= 0), (-1, -1))
            if i >= 0:
                text = pieces[section][i][start : start + len(answer)]
                qid = f"{story}-{row['question_id'].strip()}"
                found.setdefault((section, i), []).append(Question(qid, row["question"].strip(), [text]))
    return found


def read_fairytaleqa(
    folder: str | Path,
    split: str = "train",
    max_answer_words: int | None = None,
    max_block_words: int = 90,
) -> list[Article]:
    """The stories of one FairytaleQA split as articles. Each story section is cut at sentence ends into
    paragraphs of at most about `max_block_words` words (a retriever's chunks), and each explicit question
    about one section is kept when its first answer occurs in one paragraph of it (the answer is that
    paragraph's own text, its case included, so it can be copied word for word). `max_answer_words` drops
    questions with longer answers (short answers are what a grounded reply should quote).

    `folder` is a checkout of github.com/uci-soe/FairytaleQAData (`data-by-train-split/` inside)."""
    root = Path(folder) / "data-by-train-split"
    stories = sorted((root / "section-stories" / split).glob("*-story.csv"))
    if not stories:
        raise DataError(
            f"no FairytaleQA stories under {root / 'section-stories' / split}; give a checkout of "
            "uci-soe/FairytaleQAData (the folder that holds data-by-train-split/)",
            str(folder),
        )
    articles = []
    for story in stories:
        name = story.name.removesuffix("-story.csv")
        sections: dict[str, str] = {}
        with story.open(encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f):
                sections[row["section"].strip()] = " ".join(row["text"].split())
        pieces = {key: _pieces(text, max_block_words) for key, text in sections.items()}
        path = root / "questions" / split / f"{name}-questions.csv"
        questions = _explicit_questions(path, name, pieces, max_answer_words)
        paragraphs = [
            Paragraph(piece, questions.get((key, i), []))
            for key in sections
            for i, piece in enumerate(pieces[key])
        ]
        articles.append(Article(name.replace("-", " "), paragraphs))
    return articles


def _overlap(question: str, context: str) -> int:
    words = {w.lower() for w in _WORD.findall(question) if len(w) > 3}
    return len(words & {w.lower() for w in _WORD.findall(context)})


def _distractors(article: Article, question: Question, exclude: int, k: int, answer: str | None) -> list[str]:
    """The k paragraphs (other than `exclude`) sharing most words with the question, without the answer."""
    scored = [
        (-_overlap(question.text, p.context), i, p.context)
        for i, p in enumerate(article.paragraphs)
        if i != exclude and (answer is None or answer not in p.context)
    ]
    return [context for _, _, context in sorted(scored)[:k]]


def grounded_examples(
    articles: list[Article],
    count: int,
    *,
    blocks: int = 3,
    mix: tuple[float, float, float] = (0.6, 0.25, 0.15),
    seed: int = 0,
) -> list[dict[str, Any]]:
    """`count` examples drawn from `articles` in the proportions `mix` of KINDS (see the module docstring)."""
    if blocks < 1 or count < 1 or len(mix) != 3 or abs(sum(mix) - 1) > 1e-9 or min(mix) < 0:
        raise ConfigError(
            f"need blocks >= 1, count >= 1 and three shares summing to 1, got {blocks}, {count}, {mix}"
        )
    rng = random.Random(seed)
    pool: dict[str, list[tuple[Article, int, Question]]] = {"answerable": [], "unanswerable": []}
    for article in articles:
        if len(article.paragraphs) <= blocks:
            continue  # too few paragraphs for distractors
        for i, p in enumerate(article.paragraphs):
            for q in p.questions:
                pool["answerable" if q.answers else "unanswerable"].append((article, i, q))
    wanted = [round(count * share) for share in mix]
    wanted[0] = count - wanted[1] - wanted[2]
    sources = {
        "answerable": pool["answerable"],
        "unanswerable": pool["unanswerable"],
        "not_retrieved": pool["answerable"],
    }
    examples: list[dict[str, Any]] = []
    for kind, n in zip(KINDS, wanted, strict=True):
        if n > len(sources[kind]):
            raise DataError(f"asked for {n} {kind} examples but the articles hold {len(sources[kind])}")
        for article, i, q in rng.sample(sources[kind], n):
            examples.append(_example(kind, article, i, q, blocks, rng))
    rng.shuffle(examples)
    return examples


def _example(
    kind: str, article: Article, index: int, q: Question, k: int, rng: random.Random
) -> dict[str, Any]:
    answer = q.answers[0] if q.answers else None
    own = article.paragraphs[index].context
    if kind == "not_retrieved":
        texts = _distractors(article, q, index, k, answer)
    else:
        texts = [own, *_distractors(article, q, index, k - 1, answer)]
    rng.shuffle(texts)
    block = texts.index(own) + 1 if kind == "answerable" else None
    return {
        "id": q.id,
        "question": q.text,
        "blocks": texts,
        "answer": answer if kind == "answerable" else None,
        "block": block,
        "kind": kind,
    }


def chat_example(record: dict[str, Any], style: str) -> dict[str, Any]:
    """A grounded record as one training conversation in `style`'s zero-shot prompt (free: "answer [n]." or
    the not-found reply; extractive: the answer phrase alone, as the span decoding copies it)."""
    from llmlab.prompting.grounded import NOT_FOUND, STYLES, user_turn

    rules = STYLES[style][0]
    if record["answer"] is None:
        reply = NOT_FOUND
    elif style == "free":
        reply = f"{record['answer']} [{record['block']}]."
    else:
        reply = record["answer"]
    return {
        "messages": [
            {"role": "user", "content": user_turn(record["question"], record["blocks"], rules)},
            {"role": "assistant", "content": reply},
        ]
    }
