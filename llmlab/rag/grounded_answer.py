"""One answer's grounded prompt and the checks on its text (the middle of llmlab/rag/answer.py's pipeline).

    hits (best first) -> build_prompt: numbered, fenced context blocks, the lowest-ranked dropped until the
    prompt fits the token budget -> GroundedPrompt -> the text generated for it (AnswerStream, piece by piece,
    or all at once from a batch) -> finish_answer: citations parsed and validated, NOT_FOUND detected, each
    sentence attributed to the block that supports it (citations.py) -> Answer

The prompt's words (rules, worked examples, fences) are llmlab/prompting/grounded.py; retrieval, the answer
styles and the relevance gate are answer.py's Answerer, which builds on these.
Tests: tests/rag/test_answer.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from llmlab.errors import ConfigError
from llmlab.prompting.budget import count_tokens, fit_to_budget
from llmlab.prompting.grounded import render_grounded
from llmlab.rag.citations import attribute, is_not_found, parse_citations, sources_from, validate_citations
from llmlab.rag.result import Answer
from llmlab.rag.types import Chunk, Hit


@dataclass
class GroundedPrompt:
    """The prompt text and which hits made it in: context block n is `hits[n - 1]`."""

    text: str
    tokens: int
    hits: list[Hit]
    dropped: list[Hit]
    """Lower-ranked hits left out to fit the token budget."""


def render_prompt(
    tokenizer: Any, question: str, chunks: Sequence[Chunk], prompt: str, style: str = "free"
) -> str:
    """The grounded prompt as text for these chunks (prompting/grounded.py)."""
    return render_grounded(tokenizer, question, [c.text for c in chunks], prompt, style)


def build_prompt(
    question: str,
    hits: Sequence[Hit],
    tokenizer: Any,
    budget: int,
    prompt: str = "few-shot",
    style: str = "free",
) -> GroundedPrompt:
    """Render the grounded prompt with as many of `hits` (best first) as fit in `budget` tokens.

    Raises:
        ConfigError: not even the question with one block (or none, when there are no hits) fits.
    """
    if not question.strip():
        raise ConfigError("the question is empty; ask something")
    fitted = fit_to_budget(
        lambda k: render_prompt(tokenizer, question, [h.chunk for h in hits[:k]], prompt, style),
        len(hits),
        budget,
        lambda text: count_tokens(tokenizer, text),
        least=min(1, len(hits)),
        too_long=lambda tokens, kept: (
            f"the prompt needs {tokens} tokens with {kept} context block(s), over the budget of {budget}; "
            "raise --max-prompt-tokens, lower --max-new-tokens, or use a model with a longer context window"
        ),
    )
    return GroundedPrompt(fitted.text, fitted.tokens, list(hits[: fitted.kept]), list(hits[fitted.kept :]))


def finish_answer(
    question: str,
    text: str,
    prompt: GroundedPrompt,
    embed: Callable[[Sequence[str]], Any],
    min_support: float,
    query: str = "",
) -> Answer:
    """Check the generated text: validate citations, detect NOT_FOUND, attribute sentences to blocks."""
    text = text.strip()
    valid, invalid = validate_citations(parse_citations(text), len(prompt.hits))
    not_found = is_not_found(text)
    attributions = [] if not_found else attribute(text, prompt.hits, embed, min_support)
    return Answer(
        question=question,
        text=text,
        sources=sources_from(attributions, prompt.hits),
        hits=prompt.hits,
        query=query or question,
        citations=valid,
        invalid_citations=invalid,
        attributions=attributions,
        not_found=not_found,
        dropped=prompt.dropped,
        prompt_tokens=prompt.tokens,
    )


class AnswerStream:
    """Iterate for the answer's text pieces as they are generated; `.answer` is set once it is exhausted."""

    def __init__(
        self,
        prompt: GroundedPrompt,
        pieces: Iterable[str],
        finish: Callable[[str], Answer],
        query: str = "",
        generated: bool = False,
    ):
        self.prompt = prompt
        self.query = query
        """What was searched for (in a chat, the rewritten follow-up)."""
        self._pieces, self._finish = pieces, finish
        self.generated = generated
        """Whether the text comes from the engine decoding `prompt.text` (with `Answerer.generation`)."""
        self.answer: Answer | None = None
        self.on_answer: list[Callable[[Answer], None]] = []
        """Called with the Answer when the stream is exhausted (a chat remembers the turn this way)."""

    def __iter__(self) -> Iterator[str]:
        parts: list[str] = []
        for piece in self._pieces:
            parts.append(piece)
            yield piece
        self.finish("".join(parts))

    def finish(self, text: str) -> Answer:
        """The Answer for a text generated elsewhere (a batch) instead of by iterating this stream."""
        self.answer = self._finish(text)
        for callback in self.on_answer:
            callback(self.answer)
        return self.answer

    def result(self) -> Answer:
        """Consume what is left of the stream and return the Answer."""
        for _ in self:
            pass
        assert self.answer is not None
        return self.answer
