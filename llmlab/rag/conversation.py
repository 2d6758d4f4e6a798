"""Multi-turn questions over a store: each follow-up is rewritten into a standalone search query.

    turn 1: "How do I ingest a folder?"                 -> retrieve for the question as asked
    turn 2: "And can it skip some files?"  -> rewrite -> "Can ingesting a folder skip some files?" -> retrieve

The rewrite is asked of the same model with a short prompt (REWRITE_RULES and one worked example) and
checked (`clean_rewrite`); when it is empty or garbage, the query is the previous question followed by the
follow-up, which keeps the earlier topic in the words BM25 and the embedder see. The answer prompt holds the
retrieved documents and that standalone query as the question (not the whole chat), so a small model's
context stays short. Tests: tests/rag/test_answer.py (scripted rewrites, good and garbage).
"""

from __future__ import annotations

import re

from llmlab.generation.config import GenerationConfig
from llmlab.rag.answer import Answer, AnswerEngine, Answerer, AnswerStream
from llmlab.rag.citations import is_not_found
from llmlab.rag.stores.text_query import STOPWORDS

REWRITE_RULES = (
    "Rewrite the follow-up question so that it can be understood without the conversation: replace words "
    "like it, this, that and they with what they refer to. Reply with the rewritten question only."
)
REWRITE_EXAMPLE = (
    ("How do I install the app?", "Run the installer [1].", "Does it need admin rights?"),
    "Does installing the app need admin rights?",
)
"""One worked rewrite shown before the real one: ((question, answer, follow-up), standalone question)."""
_STOPWORDS = STOPWORDS | {"also", "get", "onto", "use", "yes"}
"""Words that carry no topic: the search stop words plus a few a rewrite adds freely."""


_QUESTION_WORDS = frozenset(
    re.findall(
        r"\w+",
        "what how where when why which who whose whom is are was were can could does do did should would will "
        "has have",
    )
)


def _normalize(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def _content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 2 and w not in _STOPWORDS}


def clean_rewrite(candidate: str, previous: str, follow_up: str, answer: str = "") -> str | None:
    """The model's rewrite (up to its first "?") as a query, or None when it is unusable: empty, under two
    or over 40 words, not a question (no question word first and no "?" last: small models often repeat
    the previous answer instead), an echo of the previous question, the answer or the follow-up, a
    refusal, holding markup, sharing no content word with the previous question and the follow-up, or
    bringing a content word found nowhere in the conversation (compared on their first five letters, so
    "ingesting" matches "ingest")."""
    line = next((s.strip() for s in candidate.strip().splitlines() if s.strip()), "")
    line = re.sub(r"^(?:standalone|rewritten)?\s*question\s*:\s*", "", line, flags=re.IGNORECASE)
    line = line.strip().strip("\"'`").strip()
    if "?" in line:  # one question: what follows it is the model running on (often the previous answer)
        line = line[: line.index("?") + 1]
    words = line.split()
    if len(words) < 2 or len(words) > 40 or is_not_found(line) or "<" in line:
        return None
    if not (line.endswith("?") or words[0].lower() in _QUESTION_WORDS):
        return None
    if _normalize(line) in {_normalize(t) for t in (answer, follow_up, previous)}:  # an echo, not a rewrite
        return None
    if not _content_words(line) & _content_words(previous + " " + follow_up):
        return None
    known = {w[:5] for w in _content_words(f"{previous} {answer} {follow_up}")}
    if any(w[:5] not in known for w in _content_words(line)):  # a word from nowhere (e.g. the example's)
        return None
    return line


def rewrite_prompt(tokenizer: object, previous: str, answer: str, follow_up: str) -> str:
    from llmlab.prompting import has_chat_template, render_chat

    def turn(previous: str, answer: str, follow_up: str) -> str:
        return f"{REWRITE_RULES}\n\nQuestion: {previous}\nAnswer: {answer}\nFollow-up question: {follow_up}"

    example, rewritten = REWRITE_EXAMPLE
    if has_chat_template(tokenizer):
        messages = [
            {"role": "user", "content": turn(*example)},
            {"role": "assistant", "content": rewritten},
            {"role": "user", "content": turn(previous, answer, follow_up)},
        ]
        return render_chat(tokenizer, messages)
    return f"{turn(*example)}\nRewritten question: {rewritten}\n\n{turn(previous, answer, follow_up)}\nRewritten question:"


def rewrite_query(engine: AnswerEngine, previous: str, answer: str, follow_up: str) -> tuple[str, bool]:
    """A standalone search query for `follow_up` after the turn (`previous`, `answer`).

    Returns:
        (query, True) with the model's rewrite, or (previous + " " + follow_up, False) when the rewrite is
        unusable (see `clean_rewrite`).
    """
    config = GenerationConfig(max_new_tokens=40, greedy=True, stop=["\n"])
    prompt = rewrite_prompt(engine.tokenizer, previous, answer, follow_up)
    rewritten = clean_rewrite("".join(engine.stream(prompt, config)), previous, follow_up, answer)
    if rewritten is None:
        return f"{previous} {follow_up}", False
    return rewritten, True


class Conversation:
    """A chat over one store: remembers each turn (the query it was searched with, and the answer)."""

    def __init__(self, answerer: Answerer) -> None:
        self.answerer = answerer
        self.turns: list[tuple[str, str]] = []
        self.last_rewritten = False
        """Whether the last query came from the model's rewrite (False: first question, or the fallback)."""

    def query_for(self, question: str) -> str:
        """The search query for the next question: as asked first, rewritten for follow-ups."""
        self.last_rewritten = False
        if not self.turns:
            return question
        previous, answer = self.turns[-1]
        query, self.last_rewritten = rewrite_query(self.answerer.engine, previous, answer, question)
        return query

    def ask(self, question: str) -> AnswerStream:
        """Stream the answer to the next question; the turn is remembered once the stream is exhausted."""
        query = self.query_for(question)
        stream = self.answerer.stream(question, query=query, ask_as=query)

        def remember(answer: Answer) -> None:
            self.turns.append((query, answer.text))

        stream.on_answer.append(remember)
        return stream

    def reset(self) -> None:
        """Forget the conversation (/reset)."""
        self.turns.clear()
        self.last_rewritten = False
