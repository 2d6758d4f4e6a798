"""The span reader behind --answer-style reader: a trained extractive-QA encoder picks the answer span.

    for each retrieved chunk c, each window w of [CLS] question [SEP] c [SEP]:   s, e = reader(w)   (start, end)
    answer = argmax over all windows of s_a + e_b   (a <= b < a + MAX_ANSWER_TOKENS, both in the chunk)
    null   = min over all windows of s_0 + e_0      ([CLS]: "this window does not answer")
    reply  = the span's characters of its chunk, quoted verbatim and cited to it, if answer - null > margin;
             else "I don't know based on the documents."

This is SQuAD 2.0's decision rule (BERT, Devlin et al. 2019, section 4.3; transformers' run_qa.py
postprocessing with `version_2_with_negative`, min null score over an example's windows), with the chunks
of one question read as the windows of one document. The reader is MiniLM-L6 (the packaged embedder's
weights) with a LoRA adapter and span head trained by `make reader` (`llmlab finetune lora --task
extractive-qa`, bench/data/reader/) on training splits only; it does not load the chat model. The margin is
chosen on held-out training documents (bench/reader_margin.py), never on a dev set.
Tests: tests/rag/test_reader.py (a tiny reader), tests/rag/test_reader_slow.py (the packaged one).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmlab.errors import ConfigError
from llmlab.prompting.grounded import NOT_FOUND
from llmlab.rag.result import Answer
from llmlab.rag.types import Hit
from llmlab.training.extractive_qa import read_spans

if TYPE_CHECKING:
    from llmlab.rag.answer import AnswerStream

READER_DIR = Path(__file__).parent / "adapters" / "reader-minilm-l6"
"""The packaged reader: a LoRA adapter (with the span head `qa_outputs`) for minilm-l6, and reader.json."""
READER_BASE = "minilm-l6"
MAX_ANSWER_TOKENS = 30
SEQ_LEN = 256
"""Window length in tokens (the training runs' --seq-len); longer chunks are read in overlapping windows."""


@dataclass
class ReadSpan:
    """The reader's choice for one question: the span (chunk index, characters) and its margin over
    no-answer (None: no chunk to read)."""

    chunk: int
    start: int
    end: int
    text: str
    margin: float


@dataclass
class Reader:
    """An extractive-QA model (transformers' *ForQuestionAnswering), its tokenizer and no-answer margin."""

    model: Any
    tokenizer: Any
    margin: float = 0.0
    """Answer only when the best span's score beats the no-answer score by more than this."""
    seq_len: int = SEQ_LEN

    def read(self, question: str, texts: Sequence[str]) -> ReadSpan | None:
        """The best span over all `texts`, or None when no text has a context token."""
        chosen = read_spans(self.model, self.tokenizer, question, texts, self.seq_len, MAX_ANSWER_TOKENS)
        found = [(c, s) for c, s in enumerate(chosen) if s is not None]
        if not found:
            return None
        null = min(s.null_score for _, s in found)
        c, best = max(found, key=lambda cs: cs[1].score)
        return ReadSpan(c, best.start, best.end, texts[c][best.start : best.end], best.score - null)

    def answers(self, span: ReadSpan | None) -> bool:
        return span is not None and span.margin > self.margin and bool(span.text.strip())

    def answer_span(self, question: str, texts: Sequence[str]) -> ReadSpan | None:
        """The best span over `texts` when it beats no-answer by the margin, else None."""
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
    from llmlab.rag.answer import AnswerStream, GroundedPrompt

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
    import torch
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
    margin = 0.0
    if (path / "reader.json").is_file():
        margin = float(json.loads((path / "reader.json").read_text(encoding="utf-8"))["null_margin"])
    torch.set_num_threads(min(torch.get_num_threads(), 8))
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
    return Reader(model, tokenizer, margin)
