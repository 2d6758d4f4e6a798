"""Multi-turn questions over a store: each follow-up is rewritten into a standalone search query.

    turn 1: "How do I ingest a folder?"                 -> retrieve for the question as asked
    turn 2: "And can it skip some files?"  -> rewrite -> "Can ingesting a folder skip some files?" -> retrieve

The rewrite is asked of the same model with a short prompt (prompting/grounded.py: REWRITE_RULES and one
worked example) and checked (`clean_rewrite`); when it is empty or garbage, the query is the previous question followed by the
follow-up, which keeps the earlier topic in the words BM25 and the embedder see. The answer prompt holds the
retrieved documents and that standalone query as the question (not the whole chat), so a small model's
context stays short. Tests: tests/rag/test_answer.py (scripted rewrites, good and garbage).
"""

from __future__ import annotations

import re

from llmlab.errors import ConfigError
from llmlab.generation.config import GenerationConfig
from llmlab.prompting.budget import count_tokens, fit_to_budget
from llmlab.prompting.grounded import render_rewrite
from llmlab.rag.answer import AnswerEngine, Answerer
from llmlab.rag.citations import is_not_found
from llmlab.rag.grounded_answer import AnswerStream
from llmlab.rag.result import Answer
from llmlab.rag.stores.text_query import STOPWORDS

REWRITE_TOKENS = 40
"""New tokens allowed for a rewrite (one question)."""
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


def rewrite_query(engine: AnswerEngine, previous: str, answer: str, follow_up: str) -> tuple[str, bool]:
    """A standalone search query for `follow_up` after the turn (`previous`, `answer`).

    The rewrite prompt (prompting/grounded.py) drops its worked example, then the previous answer, when it
    does not fit the context window with room for the rewrite.

    Returns:
        (query, True) with the model's rewrite, or (previous + " " + follow_up, False) when the rewrite is
        unusable (see `clean_rewrite`) or the prompt cannot fit.
    """
    fallback = f"{previous} {follow_up}", False
    config = GenerationConfig(max_new_tokens=REWRITE_TOKENS, greedy=True, stop=["\n"])
    tokenizer = engine.tokenizer
    try:
        fitted = fit_to_budget(
            lambda k: render_rewrite(
                tokenizer, previous, answer if k else None, follow_up, with_example=k == 2
            ),
            2,
            engine.context_length - REWRITE_TOKENS,
            lambda text: count_tokens(tokenizer, text),
        )
    except ConfigError:
        return fallback
    rewritten = clean_rewrite("".join(engine.stream(fitted.text, config)), previous, follow_up, answer)
    return fallback if rewritten is None else (rewritten, True)


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
        if self.answerer.generator is None:  # --answer-style reader: no model to rewrite with
            return f"{previous} {question}"
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
