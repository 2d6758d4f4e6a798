"""The span reader behind --answer-style reader: a trained extractive-QA encoder picks the answer span.

    for each retrieved chunk c (rank r), each window w of [CLS] question [SEP] c [SEP]:   s, e = reader(w)
    span_c = argmax over c's windows of s_a + e_b   (a <= b < a + MAX_ANSWER_TOKENS, both in the chunk)
    answer = argmax over chunks of score(span_c) + rank_bonus[r]      (a weaker span in a better chunk can win)
    null   = min over all windows of s_0 + e_0      ([CLS]: "this window does not answer")
    reply  = the span's characters of its chunk, quoted verbatim and cited to it, if
             P(answerable | span_features) > threshold (a logistic regression; without fitted weights:
             score - null > margin, SQuAD 2.0's rule); else "I don't know based on the documents."

The span scores and null are SQuAD 2.0's (BERT, Devlin et al. 2019, section 4.3; transformers' run_qa.py
postprocessing with `version_2_with_negative`, min null score over an example's windows), with the chunks
of one question read as the windows of one document. The reader is MiniLM-L6 (the packaged embedder's
weights) with a LoRA adapter and span head trained by `make reader` (`llmlab finetune lora --task
extractive-qa`, bench/data/reader/) on training splits only; it does not load the chat model.

The rank bonus, refusal weights and threshold (reader.json) were fitted by bench/reader_decision.py on
held-out training documents in a store (519 questions, each asked with its top-3 chunks and with its answer
removed from the store; fitted on half of them, validated on the other half), never on a dev set. On the
validation half, against the best raw span and the single margin: citation precision 70.4% -> 74.5%,
unanswerable refused 26.8% -> 33.5%, answerable refused 7.1% -> 9.7%, token F1 41.0 -> 41.0 (the threshold
refuses no more answerable questions than the margin did on the fit half). The logistic refusal separates
answerable from unanswerable better than the margin alone (validation AUC 0.757 against 0.733); at 70% of
unanswerable refused it refuses 28.6% of answerable questions (the margin: 31.2% at 62.8%).

Tests: tests/rag/test_reader.py (a tiny reader; the decision with fixed numbers), tests/rag/test_reader_slow.py
(the packaged one).
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmlab.errors import ConfigError
from llmlab.prompting.grounded import NOT_FOUND
from llmlab.rag.result import Answer
from llmlab.rag.types import Hit
from llmlab.training.extractive_qa import SpanChoice, read_spans

if TYPE_CHECKING:
    from llmlab.rag.grounded_answer import AnswerStream

READER_DIR = Path(__file__).parent / "adapters" / "reader-minilm-l6"
"""The packaged reader: a LoRA adapter (with the span head `qa_outputs`) for minilm-l6, and reader.json."""
READER_BASE = "minilm-l6"
MAX_ANSWER_TOKENS = 30
SEQ_LEN = 256
"""Window length in tokens (the training runs' --seq-len); longer chunks are read in overlapping windows."""
MAX_THREADS = 8
"""The most torch threads a read uses (the count is lowered only while reading, then restored)."""
CODE_WORDS = 3
"""A span starting inside a code span of at most this many words starts where the code span does."""


NUMBER_QUESTION = re.compile(
    r"\b(when|what year|which year|what date|how (?:many|much|long|old|far|large|big|tall))\b", re.IGNORECASE
)
NUMBER_WORDS = re.compile(
    r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|hundred|thousand"
    r"|million|billion|dozen|half|january|february|march|april|may|june|july|august|september|october"
    r"|november|december|century|year|years|day|days)\b",
    re.IGNORECASE,
)


def whole_markup(text: str, span: SpanChoice | None) -> SpanChoice | None:
    """The span kept to the Markdown unit it starts in: one that starts inside a `code span` ends with it at the
    latest (a flag or a command, not the sentence after it) and, when the code span has at most CODE_WORDS
    words (a name, not a message), starts with it (`config.yaml`, not `yaml`); every span ends before a table
    cell's edge `|` (one cell, not a row). The quote stays a verbatim slice of `text`; text with neither
    backticks nor pipes, as prose is, keeps the reader's span."""
    if span is None:
        return None
    start, end = span.start, span.end
    line = text.rfind("\n", 0, start) + 1
    if text.count("`", line, start) % 2 == 1:  # an odd number of backticks before it on its line: inside one
        close = text.find("`", start)
        if close >= 0 and "\n" not in text[start:close]:
            opened = text.rfind("`", line, start) + 1
            if len(text[opened:close].split()) <= CODE_WORDS:
                start = opened
            end = min(end, close)
    edge = text.find("|", start, end)
    if edge >= 0:
        end = start + len(text[start:edge].rstrip(" \t`"))
    if end <= start:
        return span
    return SpanChoice(span.score, start, end, span.null_score)


@dataclass
class ReadSpan:
    """The reader's choice for one question: the span (chunk index, characters), its margin over no-answer
    (the best span's score minus the lowest no-answer score of all chunks), its score, its own chunk's margin,
    and, under a fitted refusal, the probability that the question is answered by it."""

    chunk: int
    start: int
    end: int
    text: str
    margin: float
    score: float = 0.0
    chunk_margin: float = 0.0
    probability: float | None = None


def span_features(question: str, span: ReadSpan) -> dict[str, float]:
    """What the fitted refusal sees of a read: the margins, the span's score, its length in words, whether a
    when/how-many question got a span with no number, date or unit in it, and its chunk's retrieval rank."""
    asks_number = NUMBER_QUESTION.search(question) is not None
    return {
        "margin": span.margin,
        "chunk_margin": span.chunk_margin,
        "score": span.score,
        "words": float(len(span.text.split())),
        "number_missing": float(asks_number and NUMBER_WORDS.search(span.text) is None),
        "rank": float(span.chunk),
    }


@dataclass
class Decision:
    """How the reader's outputs are used; reader.json holds the fitted values (bench/reader_decision.py).

    Which span: the highest span score plus `rank_bonus[r]` for the chunk at retrieval rank r (0-based;
    missing ranks add 0), so a slightly weaker span in a better-retrieved chunk wins. When to answer: with
    `weights`, a logistic regression over span_features must give P(answerable) above `threshold`;
    without, the span must beat no-answer by `margin` (SQuAD 2.0's single null-score threshold)."""

    margin: float = 0.0
    rank_bonus: tuple[float, ...] = ()
    weights: dict[str, float] | None = None
    threshold: float = 0.5

    def bonus(self, rank: int) -> float:
        return self.rank_bonus[rank] if rank < len(self.rank_bonus) else 0.0

    def answers(self, span: ReadSpan | None) -> bool:
        if span is None or not span.text.strip():
            return False
        if self.weights is not None and span.probability is not None:
            return span.probability > self.threshold
        return span.margin > self.margin


def decide(
    question: str, texts: Sequence[str], spans: Sequence[SpanChoice | None], decision: Decision
) -> ReadSpan | None:
    """The span `decision` picks among the chunks' best spans (`spans[c]` read from `texts[c]`, in retrieval
    order), with its refusal probability when `decision` has fitted weights; None when no chunk was read."""
    found = [(c, s) for c, s in enumerate(spans) if s is not None]
    if not found:
        return None
    null = min(s.null_score for _, s in found)
    c, best = max(found, key=lambda cs: cs[1].score + decision.bonus(cs[0]))
    text = texts[c][best.start : best.end]
    span = ReadSpan(c, best.start, best.end, text, best.score - null, best.score, best.margin)
    if decision.weights is not None:
        features = span_features(question, span)
        z = decision.weights["intercept"] + sum(
            w * features[n] for n, w in decision.weights.items() if n in features
        )
        span.probability = 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))
    return span


@dataclass
class Reader:
    """An extractive-QA model (transformers' *ForQuestionAnswering), its tokenizer and how its outputs are
    used (`decision`; without one, the best span against no-answer by `margin`)."""

    model: Any
    tokenizer: Any
    margin: float = 0.0
    """Answer only when the best span's score beats the no-answer score by more than this."""
    seq_len: int = SEQ_LEN
    decision: Decision | None = None

    @property
    def rule(self) -> Decision:
        return self.decision if self.decision is not None else Decision(margin=self.margin)

    def spans(self, question: str, texts: Sequence[str]) -> list[SpanChoice | None]:
        """Each text's best span (kept to the Markdown unit it starts in: `whole_markup`) and no-answer score."""
        from llmlab.generation.threads import at_most

        with at_most(MAX_THREADS):
            chosen = read_spans(self.model, self.tokenizer, question, texts, self.seq_len, MAX_ANSWER_TOKENS)
        return [whole_markup(t, s) for t, s in zip(texts, chosen, strict=True)]

    def read(self, question: str, texts: Sequence[str]) -> ReadSpan | None:
        """The span the decision picks over all `texts` (in retrieval order), or None when no text has a
        context token."""
        return decide(question, texts, self.spans(question, texts), self.rule)

    def answers(self, span: ReadSpan | None) -> bool:
        return self.rule.answers(span)

    def answer_span(self, question: str, texts: Sequence[str]) -> ReadSpan | None:
        """The chosen span over `texts` when the decision answers with it, else None."""
        span = self.read(question, texts)
        return span if self.answers(span) else None


def quoted_answer(
    question: str,
    query: str,
    hits: Sequence[Hit],
    span: ReadSpan | None,
    relevance: float | None,
    on_topic: float | None,
    gated: bool,
) -> AnswerStream:
    """--answer-style reader's answer stream: the span's quote as one piece, cited to its chunk, or NOT_FOUND
    when there is no span (gated, nothing retrieved, or below the margin)."""
    from llmlab.rag.grounded_answer import AnswerStream, GroundedPrompt

    prompt = GroundedPrompt("", 0, list(hits), [])

    def finish(text: str) -> Answer:
        answer = Answer(question, text, [], prompt.hits, query or question, not_found=span is None)
        answer.relevance, answer.on_topic, answer.gated = relevance, on_topic, gated
        return cite_span(answer, span) if span is not None else answer

    return AnswerStream(prompt, iter([span.text.strip() if span else NOT_FOUND]), finish, query)


def needs_no_generator(style: str, model: str | None) -> bool:
    """--answer-style reader, or auto with the packaged (small) chat model: the span reader answers alone."""
    from llmlab.models.registry import DEFAULT_CHAT_MODEL

    return style == "reader" or (style == "auto" and model in (None, DEFAULT_CHAT_MODEL))


def cite_span(answer: Answer, span: ReadSpan) -> Answer:
    """`answer` with the span's quote as its text, cited to the chunk it was read from (block span.chunk + 1),
    with the chunk's passage that holds the quote as the snippet."""
    from llmlab.rag.citations import Attribution, Source, passages

    quote, hit, block = span.text.strip(), answer.hits[span.chunk], span.chunk + 1
    snippet = next((p for p in passages(hit.chunk.text) if quote in p), quote)
    answer.text = quote
    answer.sources = [Source(block, hit, snippet, 1.0, [quote])]
    answer.citations = [block]
    answer.attributions = [Attribution(quote, block, 1.0, snippet, [block])]
    return answer


@functools.lru_cache(maxsize=2)
def load_reader(folder: str = "auto") -> Reader:
    """The reader in `folder`: an adapter folder of `finetune lora --task extractive-qa` (on the base model its
    adapter_config.json names; auto: the packaged one, on minilm-l6), or a `finetune full --task
    extractive-qa` run folder. Its margin is the folder's
    reader.json `null_margin` (0 without one)."""
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from llmlab.models.loading import model_folder
    from llmlab.peft.peft_format import merge_lora_adapter
    from llmlab.training.tasks import _quiet_from_pretrained

    path = READER_DIR if folder == "auto" else Path(folder)
    if not path.is_dir():
        hint = (
            "run `make reader`"
            if folder == "auto"
            else "give a folder of `llmlab finetune lora --task extractive-qa`"
        )
        raise ConfigError(f"--reader {folder}: no reader at {path}; {hint}")
    margin, decision = 0.0, None
    if (path / "reader.json").is_file():
        saved = json.loads((path / "reader.json").read_text(encoding="utf-8"))
        margin = float(saved["null_margin"])
        if "rank_bonus" in saved:
            decision = Decision(
                margin, tuple(saved["rank_bonus"]), saved.get("refusal"), saved.get("threshold", 0.5)
            )
    if (path / "adapter_config.json").is_file():
        config = json.loads((path / "adapter_config.json").read_text(encoding="utf-8"))
        base, _, _ = model_folder(config.get("base_model_name_or_path") or READER_BASE)
        model = _quiet_from_pretrained(AutoModelForQuestionAnswering, base)
        model = merge_lora_adapter(model, path, inplace=True)
        tokenizer = AutoTokenizer.from_pretrained(base)
    elif (path / "config.json").is_file():
        model = _quiet_from_pretrained(AutoModelForQuestionAnswering, path)
        tokenizer = AutoTokenizer.from_pretrained(path)
    else:
        raise ConfigError(
            f"--reader {folder}: {path} holds neither adapter_config.json nor config.json; give the folder of "
            "a `llmlab finetune lora --task extractive-qa` or `finetune full --task extractive-qa` run"
        )
    model.eval()
    return Reader(model, tokenizer, margin, decision=decision)
